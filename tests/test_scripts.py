"""The scripts end to end, as a user runs them: what they print in this process (their main), exit codes,
signals and the environment they start in through a real interpreter."""
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

import minidl as mdl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(script, *args, env=None):
    environment = dict(os.environ, **(env or {}))
    environment.pop("MINIDL_DEBUG", None)
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", script), *args], capture_output=True,
                          text=True, timeout=300, env=environment, cwd=ROOT)


def run_in_process(script, *args, capsys):
    """``script``'s main(argv) in this process (no interpreter of its own to start): its exit status, and what it
    wrote to stdout and stderr. For what a script prints and returns; signals and kills stay in ``run``."""
    import runpy
    scripts = os.path.join(ROOT, "scripts")
    sys.path.insert(0, scripts)
    try:
        main = runpy.run_path(os.path.join(scripts, script))["main"]
        try:
            status = main(list(args))
        except SystemExit as exc:
            status = exc.code
    finally:
        sys.path.remove(scripts)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def script(capsys, monkeypatch):
    """``script(name, *args, env=None)``: ``run``'s result (returncode, stdout, stderr), from ``run_in_process``
    in ``run``'s environment (MINIDL_DEBUG unset, ``env`` set, the repository as the working folder)."""
    def call(name, *args, env=None):
        monkeypatch.delenv("MINIDL_DEBUG", raising=False)
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        monkeypatch.chdir(ROOT)
        status, out, err = run_in_process(name, *args, capsys=capsys)
        return subprocess.CompletedProcess([name, *args], status or 0, out, err)
    return call


def test_train_xor_reaches_full_accuracy(script):
    result = script("train_xor.py")
    assert result.returncode == 0, result.stderr
    assert "accuracy 100%" in result.stdout
    assert "[0, 1] -> 1.000 (label 1)" in result.stdout and "[1, 1] -> 0.002 (label 0)" in result.stdout


def test_train_xor_debug_prints_the_reports(tmp_path, script):
    result = script("train_xor.py", "--debug", "--save", str(tmp_path / "xor.h5"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "[debug] before training: gradcheck passed" in out
    assert "[debug] after 100 steps: gradcheck passed" in out
    assert "--- gradient check at step 0 ---" in out and "--- gradient check at step 100 ---" in out
    assert out.count("PASSED") == 2 and "scipy.optimize.check_grad" in out
    model = mdl.load(tmp_path / "xor.h5")
    X, Y = mdl.datasets.xor()
    assert (model.predict(X) == Y).all()


def test_train_xor_help(capsys):
    status, out, _ = run_in_process("train_xor.py", "--help", capsys=capsys)
    assert status == 0 and "--debug" in out and "--seed" in out


@pytest.mark.parametrize("args, message", [
    (["--lr", "-1"], "argument --lr: must be a finite number > 0; received -1"),
    (["--lr", "inf"], "argument --lr: must be a finite number > 0; received inf"),
    (["--epochs", "many"], "argument --epochs: must be an integer >= 1; received 'many'"),
    (["--epochs", "0"], "argument --epochs: must be an integer >= 1; received 0"),
    (["--dropout", "1.5"], "argument --dropout: must be a number in [0, 1); received 1.5"),
    (["--hidden", "0"], "argument --hidden: must be an integer >= 1; received 0"),
    (["--save", "/missing/dir/x.h5"], "argument --save: the folder /missing/dir does not exist"),
])
def test_train_xor_bad_arguments_exit_2(args, message, capsys):
    status, _, err = run_in_process("train_xor.py", *args, capsys=capsys)
    assert status == 2
    assert message in err and "usage:" in err


def test_train_cat_end_to_end_on_the_real_files(cat_dir, tmp_path, script):
    result = script("train_cat.py", "--data-dir", cat_dir, "--epochs", "3", "--debug", "--gradcheck-after", "4",
                 "--save", str(tmp_path / "cat.h5"), "--no-progress")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "[debug] before training: gradcheck passed" in out and "over 245,973 coordinates" in out
    assert "[debug] after 4 steps: gradcheck passed" in out
    assert "train accuracy" in out and "test accuracy" in out
    assert mdl.load(tmp_path / "cat.h5").n_params == 245_973


def test_train_cat_plot(cat_dir, tmp_path, script):
    path = tmp_path / "curves.png"
    result = script("train_cat.py", "--data-dir", cat_dir, "--epochs", "2", "--plot", str(path), "--no-progress")
    if importlib.util.find_spec("matplotlib") is None:
        assert result.returncode == 2 and "--plot needs matplotlib" in result.stderr
    else:
        assert result.returncode == 0, result.stderr
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_cat_missing_data_exits_2(tmp_path, script):
    result = script("train_cat.py", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "train_catvnoncat.h5 does not exist" in result.stderr and "download=True" in result.stderr
    result = script("train_cat.py", env={"MINIDL_DATA_DIR": ""})
    assert result.returncode == 2 and "no data folder: pass --data-dir DIR or set MINIDL_DATA_DIR" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--layers", "20,x"], "--layers must be comma-separated integers such as 20,7,5; received '20,x'"),
    (["--layers", "20,0"], "--layers must list positive widths"),
    (["--patience", "3"], "--patience needs --val-split"),
    (["--l2", "-2"], "argument --l2: must be a finite number >= 0; received -2"),
    (["--epochs", "0"], "argument --epochs: must be an integer >= 1; received 0"),
    (["--dropout", "1"], "argument --dropout: must be a number in [0, 1); received 1"),
    (["--layers", "20,0,5"], "--layers must list positive widths"),
    (["--save", "/missing/dir/cat.h5"], "argument --save: the folder /missing/dir does not exist"),
    (["--plot", "/missing/curves.png"], "argument --plot: the folder /missing does not exist"),
    (["--val-split", "1.0"], "argument --val-split: must be a number in [0, 1); received 1.0"),
])
def test_train_cat_bad_arguments_exit_2(cat_dir, args, message, capsys):
    status, _, err = run_in_process("train_cat.py", "--data-dir", cat_dir, *args, capsys=capsys)
    assert status == 2 and message in err


def test_train_cat_help(capsys, monkeypatch):
    monkeypatch.setenv("MINIDL_DATA_DIR", "/some/folder")
    status, out, _ = run_in_process("train_cat.py", "--help", capsys=capsys)
    assert status == 0 and "--data-dir" in out and "--plot" in out
    help_of_data_dir = out.split("\n  --data-dir")[1].split("--download")[0]
    assert help_of_data_dir.count("default") == 1 and "/some/folder" in help_of_data_dir
    assert "pip install -e '.[plot]'" in out


def test_bad_arguments_are_refused_before_any_training(tmp_path, capsys):
    status, _, err = run_in_process("train_cat.py", "--data-dir", str(tmp_path), "--save",
                                    str(tmp_path / "no" / "x.h5"), capsys=capsys)
    assert status == 2 and "argument --save" in err   # before even looking for the data


def test_a_diverging_run_says_so_and_fails():
    result = run("train_xor.py", "--lr", "1e6", "--epochs", "50")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "diverged" in result.stderr and "--lr" in result.stderr and "Traceback" not in result.stderr


def test_a_nan_run_says_so_without_a_traceback():
    result = run("train_xor.py", "--lr", "1e300", "--epochs", "50")
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert "diverged" in result.stderr and "--lr" in result.stderr


def test_train_cat_reports_early_stopping(cat_dir, script):
    result = script("train_cat.py", "--data-dir", cat_dir, "--val-split", "0.2", "--patience", "3", "--epochs", "60",
                 "--no-progress")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "stopped early after epoch" in out and "no validation improvement for 3 epochs" in out
    kept = int(out.split("kept the weights of epoch ")[1].split()[0])
    stopped = int(out.split("stopped early after epoch ")[1].split(":")[0])
    assert stopped == kept + 3
    assert "validation cost" in out and "test accuracy" in out


def test_find_the_bug_names_both_of_the_courses_mistakes(script):
    result = script("find_the_bug.py")
    assert result.returncode == 0, result.stderr
    assert "layer 2 (MyDense) backward: W is 2 times the right value (fitted factor 2)" in result.stdout
    assert "layer 0 (MyDense) backward: b is 4 times the right value (fitted factor 4)" in result.stdout
    fixed = script("find_the_bug.py", "--fixed")
    assert fixed.returncode == 0 and "PASSED" in fixed.stdout and "diagnosis" not in fixed.stdout


def test_course_gradcheck_runs_the_walkthrough_without_data(script):
    result = script("course_gradcheck.py", "--loop-sample", "5", "--examples", "4", env={"MINIDL_DATA_DIR": ""})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "random data" in out and out.count("PASSED") == 1 and out.count("FAILED") == 1
    assert "grads: dW2 is 2 times the right value" in out and "grads: db1 is 4 = m times the right value" in out
    assert "timing, side by side: the course's loop" in out


@pytest.mark.parametrize("script, args, message", [
    ("train_xor.py", ["--hidden", "99999999999"], "--hidden: a network of widths [2, 99999999999, 1] has "
                                                  "399,999,999,997 parameters, which need about"),
    ("train_cat.py", ["--layers", "99999999999", "--data-dir", "/nonexistent"],
     "--layers: a network of widths [12288, 99999999999, 1] has 1,228,999,999,987,711 parameters"),
    ("train_cat.py", ["--layers", "20,,5", "--data-dir", "/nonexistent"],
     "--layers must be comma-separated integers such as 20,7,5, with no empty item; received '20,,5'"),
], ids=["xor width beyond memory", "cat width beyond memory", "empty item"])
def test_layer_widths_are_bounded_before_anything_is_read_or_allocated(script, args, message, capsys):
    status, _, err = run_in_process(script, *args, capsys=capsys)
    assert status == 2 and message in err, err      # main: a NumPy traceback (8.73 PiB)


def test_ctrl_c_stops_training_cleanly_saves_and_exits_130(tmp_path):
    import signal
    environment = dict(os.environ)
    environment.pop("MINIDL_DEBUG", None)
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", "train_xor.py"), "--epochs", "10000000",
                             "--save", str(tmp_path / "xor.h5")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=environment, cwd=ROOT)
    for line in proc.stdout:                 # the summary's last line: training starts right after it
        if line.startswith("total parameters"):
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted at epoch " in err and " of 10000000 (after " in err
    assert "saved to" in out
    model = mdl.load(tmp_path / "xor.h5")         # a whole model: never half-updated
    assert np.all(np.isfinite(model.layers[0].params["W"]))


def test_train_cat_doctor_prints_the_report_and_exits(cat_dir, script):
    result = script("train_cat.py", "--data-dir", cat_dir, "--doctor", "--lr", "0.1", "--no-center")
    assert result.returncode == 0, result.stderr
    assert "doctor: " in result.stdout and "[learning rate too high]" in result.stdout
    assert "train accuracy" not in result.stdout          # no training
