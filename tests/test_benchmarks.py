"""The benchmark scripts run (quick settings) and print their tables; timings are not asserted."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(script, *args):
    result = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", script), *args], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_gradcheck_speed_quick():
    out = run("gradcheck_speed.py", "--quick", "--sample", "40")
    assert "minidl full check: gradcheck passed" in out
    for line in ("seed-course loop", "scipy check_grad, all directions", "torch", "speed-up over the seed-course loop",
                 "physical limit", "agreement with the seed-course loop",
                 "x the check without it (interleaved medians)"):
        assert line in out


def test_train_speed_runs():
    out = run("train_speed.py", "--repeats", "3")
    assert "cat 12288-20-7-5-1, m=209" in out and "XOR 2-4-1, m=4" in out


def test_probe_cost_runs():
    out = run("probe_cost.py", "--repeats", "1", "--quick")
    assert "64-32-16-1, m=256" in out and "one probe of a LeakyReLU on (209, 20)" in out
