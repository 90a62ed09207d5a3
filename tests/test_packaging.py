"""The source distribution ships what its tests and its licence need; generated files are never tracked."""
import os
import subprocess
import sys
import tarfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_sdist_ships_the_tests_with_their_conftest_and_the_licence(tmp_path):
    pytest.importorskip("setuptools")
    code = f"from setuptools import build_meta; print(build_meta.build_sdist({str(tmp_path)!r}))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    name = result.stdout.strip().splitlines()[-1]
    with tarfile.open(tmp_path / name) as sdist:
        members = {m.split("/", 1)[1] for m in sdist.getnames() if "/" in m}
    tests = {f"tests/{f}" for f in os.listdir(os.path.join(ROOT, "tests")) if f.endswith(".py")}
    assert {"LICENSE", "README.md", "setup.cfg", "tests/conftest.py"} <= members
    assert tests <= members
    assert "minidl/gradcheck/verdict.py" in members and "scripts/_cli.py" in members


def test_no_generated_file_is_tracked():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not files:
        pytest.skip("not a git checkout")
    generated = [f for f in files if f.endswith((".png", ".h5", ".pyc")) or os.path.basename(f).startswith(".coverage")]
    assert generated == []
