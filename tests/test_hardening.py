"""Issue 12: hostile and corrupt checkpoints, file permissions, library misuse."""
import json
import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

import minidl as mdl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def xor_checkpoint(path):
    X, Y = mdl.datasets.xor()
    model = mdl.Sequential([mdl.Dense(2, 3), mdl.Tanh(), mdl.Dense(3, 1), mdl.Sigmoid()], seed=0)
    trainer = mdl.Trainer(model, mdl.Adam(0.05), epochs=3, progress=False)
    trainer.fit(X, Y)
    trainer.save(path)
    return model


def run_isolated(code, timeout, memory_gib=3):
    """Run ``code`` in a fresh interpreter with a cap on its address space; returns its stdout."""
    prelude = textwrap.dedent(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, ({memory_gib} << 30, {memory_gib} << 30))
        import sys; sys.path.insert(0, {ROOT!r})
    """)
    result = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


# ------------------------------------------------------------------ corrupt files
def test_every_byte_of_a_checkpoint_flipped_gives_an_error_or_the_exact_model(tmp_path):
    """One bit flipped (bit i % 8 of byte i) in every byte of the header and its index, and in a seeded sample of
    the bytes the SHA-256 covers after it (a checksum finds them all alike): never a hang, never a wrong model.
    Only the header's unused padding may be flipped harmlessly."""
    path = tmp_path / "xor.h5"
    xor_checkpoint(path)
    data = path.read_bytes()
    size = int(data[:512].split(b"header ")[1].split(b"\n")[0])
    used = data.index(b"\0", 0, size)                    # the header's text and index end where padding starts
    rng = np.random.default_rng(0)
    offsets = list(range(used)) + sorted(rng.choice(np.arange(used, size), 100, replace=False).tolist()) + \
        sorted(rng.choice(np.arange(size, len(data)), 400, replace=False).tolist())
    out = run_isolated(f"""
        import time, numpy as np, minidl as mdl
        path, offsets, used = {str(path)!r}, {offsets!r}, {used}
        data = open(path, "rb").read()
        good = mdl.load(path)
        harmless, slowest = [], 0.0
        for i in offsets:
            flipped = bytearray(data)
            flipped[i] ^= 1 << (i % 8)
            with open(path + ".flip", "wb") as f:
                f.write(flipped)
            start = time.perf_counter()
            try:
                model = mdl.load(path + ".flip")
            except mdl.CheckpointError:
                pass
            else:
                same = all(np.array_equal(a, b) for (_, a), (_, b) in
                           zip(model.named_parameters(), good.named_parameters()))
                assert same and repr(model) == repr(good), f"byte {{i}}: a different model loaded"
                harmless.append(i)
            slowest = max(slowest, time.perf_counter() - start)
        print(len(offsets), min(harmless, default=len(data)), max(harmless, default=0), slowest)
    """, timeout=240)
    flipped, first_harmless, last_harmless, slowest = out.split()
    assert int(flipped) == used + 500 and used > 200
    assert int(first_harmless) >= used and int(last_harmless) < size     # only padding is harmless
    assert float(slowest) < 2.0


def load_isolated(path):
    """``mdl.load(path)`` in a capped interpreter: prints ``error: ...`` and ``peak <bytes traced>``."""
    return run_isolated(f"""
        import tracemalloc, minidl as mdl
        tracemalloc.start()
        try:
            mdl.load({str(path)!r})
        except mdl.CheckpointError as exc:
            print("error:", exc)
        print("peak", tracemalloc.get_traced_memory()[1])
    """, timeout=60)


def resign(path):
    """Recompute the integrity header after editing a checkpoint, as an attacker could."""
    from minidl.io import _sign
    _sign(str(path))


def test_a_compressed_dataset_bomb_is_not_read(tmp_path):
    path = tmp_path / "bomb.h5"
    xor_checkpoint(path)
    with h5py.File(path, "r+") as f:          # 2e9 zeros in a few KB: chunks never written read as zeros
        f.create_dataset("extra", shape=(2_000_000_000,), dtype="f8", chunks=(1 << 20,), compression="gzip")
    with pytest.raises(mdl.CheckpointError, match="dataset extra is not a contiguous little-endian float array "
                                                   "inside the file, which the checkpoint format cannot express"):
        resign(path)                          # the format cannot even say "compressed": no header can claim it
    assert os.path.getsize(path) < 64_000
    out = load_isolated(path)
    assert "error:" in out and "does not match its integrity header" in out
    assert int(out.split("peak")[-1]) < 20 << 20


def test_a_config_declaring_a_huge_layer_is_rejected_before_allocating(tmp_path):
    path = tmp_path / "huge.h5"
    xor_checkpoint(path)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["config"])
        config["layers"][0]["config"].update(n_in=200000, n_out=100000)
        config["layers"][2]["config"].update(n_in=100000)
        f.attrs["config"] = json.dumps(config)
    resign(path)
    out = load_isolated(path)
    assert "error:" in out and "20,000,200,001 parameters" in out, out
    assert int(out.split("peak")[-1]) < 20 << 20


def test_a_dataset_with_the_wrong_shape_is_rejected_before_reading(tmp_path):
    path = tmp_path / "shape.h5"
    xor_checkpoint(path)
    with h5py.File(path, "r+") as f:
        del f["params/0.W"]
        f.create_dataset("params/0.W", data=np.zeros((3, 2)))
    resign(path)
    with pytest.raises(mdl.CheckpointError, match=r"params/0.W has shape \(3, 2\) and dtype float64; "
                                                   r"expected shape \(2, 3\)"):
        mdl.load(path)


def test_an_unsigned_edit_is_caught_before_parsing(tmp_path):
    path = tmp_path / "edit.h5"
    xor_checkpoint(path)
    with h5py.File(path, "r+") as f:
        f["params/0.b"][0] = 1.0
    with pytest.raises(mdl.CheckpointError, match="integrity header"):
        mdl.load(path)


# ------------------------------------------------------------------ permissions
def test_a_checkpoint_gets_the_permissions_of_any_new_file(tmp_path):
    old = os.umask(0o022)
    try:
        xor_checkpoint(tmp_path / "a.h5")
        with open(tmp_path / "plain.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "a.h5").st_mode & 0o777 == os.stat(tmp_path / "plain.txt").st_mode & 0o777 == 0o644


# ------------------------------------------------------------------ library misuse
@pytest.mark.parametrize("layers, received", [
    (lambda: [mdl.Dense(2, 1)], "Dense(2, 1)"),
    (lambda: [mdl.Dense(2, 3), mdl.Tanh(), mdl.Dense(3, 1), mdl.ReLU()], "ReLU()"),
])
def test_a_model_must_end_in_a_sigmoid(layers, received):
    with pytest.raises(mdl.InputError, match=r"the last layer must be a Sigmoid .*; received " + received.replace(
            "(", r"\(").replace(")", r"\)")):
        mdl.Sequential(layers())


def test_a_sigmoid_subclass_may_end_a_model():
    class MySigmoid(mdl.Sigmoid):
        pass
    assert mdl.Sequential([mdl.Dense(2, 1), MySigmoid()]).n_params == 3


@pytest.mark.parametrize("optimizer", [mdl.SGD(), mdl.Momentum(), mdl.Adam()])
def test_an_optimizer_step_before_any_backward_says_what_to_do(optimizer):
    model = mdl.Sequential([mdl.Dense(2, 3), mdl.Tanh(), mdl.Dense(3, 1), mdl.Sigmoid()])
    before = [v.copy() for _, v in model.named_parameters()]
    with pytest.raises(mdl.InputError, match=r"no gradients for 0.W: call model.backward\(X, Y\) before "
                                             r"optimizer.step\(model\)"):
        optimizer.step(model)
    assert all(np.array_equal(a, v) for a, (_, v) in zip(before, model.named_parameters()))


@pytest.mark.parametrize("layer", [mdl.Tanh(), mdl.Sigmoid(), mdl.ReLU(), mdl.Dense(2, 2)])
def test_backward_before_forward_says_what_to_do(layer):
    with pytest.raises(mdl.InputError, match=rf"{type(layer).__name__}.backward was called before forward"):
        layer.backward(np.ones((3, 2)))


def test_evaluate_gives_cost_and_accuracy():
    X, Y = mdl.datasets.xor()
    model = mdl.Sequential([mdl.Dense(2, 4), mdl.Tanh(), mdl.Dense(4, 1), mdl.Sigmoid()], seed=0)
    cost, accuracy = model.evaluate(X, Y)
    assert cost == model.cost(X, Y)
    assert accuracy == float(np.mean(model.predict(X) == Y))
    with pytest.raises(mdl.InputError, match="X has 3 features per example, but 2 were expected"):
        model.evaluate(np.ones((4, 3)), Y)


def test_an_open_interval_is_printed_as_one():
    with pytest.raises(mdl.InputError, match=r"lr must be a finite number in \(0, inf\); received lr=-1.0"):
        mdl.Adam(lr=-1)
