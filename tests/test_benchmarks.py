"""The benchmark scripts run (quick settings) and print their tables; timings are not asserted. Each runs its
main() in this process, as ``python benchmarks/<script> ...`` would."""
import os
import runpy
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def run(capsys, monkeypatch):
    def call(script, *args):
        path = os.path.join(ROOT, "benchmarks", script)
        monkeypatch.setattr(sys, "argv", [path, *args])
        monkeypatch.syspath_prepend(os.path.dirname(path))
        runpy.run_path(path, run_name="__main__")
        return capsys.readouterr().out
    return call


def test_gradcheck_speed_quick(run):
    out = run("gradcheck_speed.py", "--quick", "--sample", "40")
    assert "minidl full check: gradcheck passed" in out
    for line in ("seed-course loop", "scipy check_grad, all directions", "torch", "speed-up over the seed-course loop",
                 "physical limit", "agreement with the seed-course loop",
                 "minidl gradcheck, default settings", "x the check without it"):
        assert line in out


def test_train_speed_runs(run):
    out = run("train_speed.py", "--repeats", "3")
    assert "cat 12288-20-7-5-1, m=209" in out and "XOR 2-4-1, m=4" in out


def test_probe_cost_runs(run):
    out = run("probe_cost.py", "--repeats", "1", "--quick")
    assert "64-32-16-1, m=256" in out and "one probe of a LeakyReLU on (209, 20)" in out
