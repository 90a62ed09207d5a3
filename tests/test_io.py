import os
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest

import minidl as mdl
from conftest import small_model
from test_layers import LeakyReLU

RNG = np.random.default_rng(5)
X = RNG.standard_normal((30, 5))
Y = (X[:, :1] > 0).astype(float)


def params_equal(a, b):
    pa, pb = a.named_parameters(), b.named_parameters()
    return [n for n, _ in pa] == [n for n, _ in pb] and all(
        va.dtype == vb.dtype and np.array_equal(va, vb) for (_, va), (_, vb) in zip(pa, pb))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_save_load_round_trip_is_exact(tmp_path, dtype):
    model = small_model(l2=0.3, dropout=0.4, dtype=dtype, seed=9)
    model.forward(X, training=True)                    # move the dropout RNG away from its start
    path = tmp_path / "model.h5"
    model.save(path)
    loaded = mdl.load(path)
    assert params_equal(model, loaded)
    assert loaded.get_config() == model.get_config() and repr(loaded) == repr(model)
    assert np.array_equal(loaded.forward(X), model.forward(X))
    assert np.array_equal(loaded.forward(X, training=True), model.forward(X, training=True))
    assert sorted(os.listdir(tmp_path)) == ["model.h5"]          # no temporary file left behind


def test_load_weights_into_the_same_architecture(tmp_path):
    source, target = small_model(seed=1), small_model(seed=2)
    source.save(tmp_path / "w.h5")
    assert target.load_weights(tmp_path / "w.h5") is target
    assert params_equal(source, target)


def test_load_weights_from_another_architecture_is_rejected_and_leaves_model_unchanged(tmp_path):
    mdl.Sequential([mdl.Dense(5, 3), mdl.ReLU(), mdl.Dense(3, 1), mdl.Sigmoid()]).save(tmp_path / "other.h5")
    model = small_model()
    before = [v.copy() for _, v in model.named_parameters()]
    with pytest.raises(mdl.CheckpointError, match=r"saved from another architecture: it holds \[Dense\(5, 3, auto\)"):
        model.load_weights(tmp_path / "other.h5")
    assert all(np.array_equal(a, v) for a, (_, v) in zip(before, model.named_parameters()))


def test_custom_layers_need_to_be_named_on_load(tmp_path):
    model = mdl.Sequential([mdl.Dense(5, 3), LeakyReLU(0.2), mdl.Dense(3, 1), mdl.Sigmoid()], seed=1)
    model.save(tmp_path / "c.h5")
    with pytest.raises(mdl.CheckpointError, match="uses the layer class 'LeakyReLU', which is not built in; pass "
                                                  "custom_layers="):
        mdl.load(tmp_path / "c.h5")
    loaded = mdl.load(tmp_path / "c.h5", custom_layers={"LeakyReLU": LeakyReLU})
    assert params_equal(model, loaded) and loaded.layers[1].alpha == 0.2


def trainer(epochs, model=None):
    model = model or small_model(l2=0.1, dropout=0.3, seed=4)
    return mdl.Trainer(model, mdl.Adam(0.01), epochs=epochs, batch_size=8, seed=3, progress=False)


def test_resume_from_a_checkpoint_equals_an_uninterrupted_run(tmp_path):
    straight = trainer(6)
    straight.fit(X, Y)
    first = trainer(3)
    first.fit(X, Y)
    first.save(tmp_path / "ckpt.h5")
    resumed = mdl.Trainer.load(tmp_path / "ckpt.h5", epochs=6, progress=False)
    assert resumed.epoch == 3 and resumed.step == first.step and resumed.optimizer.t == first.optimizer.t
    history = resumed.fit(X, Y)
    assert params_equal(straight.model, resumed.model)
    assert history["cost"] == straight.history["cost"]


def test_resume_with_early_stopping_equals_an_uninterrupted_run(tmp_path):
    def make(epochs):
        return mdl.Trainer(small_model(l2=0.1, dropout=0.3, seed=4), mdl.Adam(0.05), epochs=epochs, batch_size=8,
                           seed=3, progress=False, patience=4)
    validation = (X[:8], Y[:8])
    straight = make(60)
    straight.fit(X, Y, validation=validation)
    stopped_at = len(straight.history["val_cost"])
    assert stopped_at < 60                               # early stopping did stop it
    first = make(stopped_at - 2)
    first.fit(X, Y, validation=validation)
    first.save(tmp_path / "ckpt.h5")
    resumed = mdl.Trainer.load(tmp_path / "ckpt.h5", epochs=60, progress=False)
    resumed.fit(X, Y, validation=validation)
    assert resumed.history["val_cost"] == straight.history["val_cost"]
    assert params_equal(straight.model, resumed.model)


def test_trainer_load_needs_a_trainer_checkpoint(tmp_path):
    small_model().save(tmp_path / "m.h5")
    with pytest.raises(mdl.CheckpointError, match="holds a model but no trainer state"):
        mdl.Trainer.load(tmp_path / "m.h5")


def test_a_failed_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "m.h5"
    old = small_model(seed=1)
    old.save(path)
    original = h5py.Group.create_dataset
    calls = []

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", failing)
    with pytest.raises(OSError, match="disk full"):
        small_model(seed=2).save(path)
    monkeypatch.undo()
    assert params_equal(mdl.load(path), old)
    assert sorted(os.listdir(tmp_path)) == ["m.h5"]


KILL_SCRIPT = textwrap.dedent("""
    import sys, minidl as mdl
    model = mdl.Sequential([mdl.Dense(3000, 300), mdl.ReLU(), mdl.Dense(300, 1), mdl.Sigmoid()], seed=1)
    print("ready", flush=True)
    while True:
        model.save(sys.argv[1])
""")


def test_a_save_killed_midway_leaves_a_loadable_checkpoint(tmp_path):
    path = tmp_path / "ckpt.h5"
    previous = mdl.Sequential([mdl.Dense(3000, 300), mdl.ReLU(), mdl.Dense(300, 1), mdl.Sigmoid()], seed=1)
    previous.save(path)
    for delay in (0.05, 0.2, 0.45):
        proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(path)], stdout=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert params_equal(mdl.load(path), previous)       # the old one, or an identical complete new one


def test_loading_never_unpickles(tmp_path, monkeypatch):
    import pickle
    small_model().save(tmp_path / "m.h5")
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("pickle.loads called"))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("pickle.load called"))
    mdl.load(tmp_path / "m.h5")


# ---------------------------------------------------------------------- bad files
def saved(tmp_path):
    path = tmp_path / "good.h5"
    small_model(seed=3).save(path)
    return path, path.read_bytes()


def test_missing_file(tmp_path):
    with pytest.raises(mdl.CheckpointError, match="no checkpoint at .*nope.h5: the file does not exist"):
        mdl.load(tmp_path / "nope.h5")


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(mdl.CheckpointError, match="is not a file"):
        mdl.load(tmp_path)


@pytest.mark.parametrize("content", [b"", b"hello, I am a text file\n", bytes(range(256)) * 40],
                         ids=["empty", "text", "random"])
def test_non_hdf5_files(tmp_path, content):
    path = tmp_path / "bad.h5"
    path.write_bytes(content)
    with pytest.raises(mdl.CheckpointError, match="is not an HDF5 file"):
        mdl.load(path)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.99])
def test_truncated_files(tmp_path, fraction):
    path, content = saved(tmp_path)
    path.write_bytes(content[:int(len(content) * fraction)])
    with pytest.raises(mdl.CheckpointError):
        mdl.load(path)


def test_bit_flip_in_the_weights_is_detected(tmp_path):
    path, content = saved(tmp_path)
    W = mdl.load(path).layers[0].params["W"]
    at = content.index(W.tobytes()[:16])
    damaged = bytearray(content)
    damaged[at + 5] ^= 0x10
    path.write_bytes(bytes(damaged))
    with pytest.raises(mdl.CheckpointError, match="does not match its integrity header"):
        mdl.load(path)


def test_a_version_1_checkpoint_still_loads(tmp_path):
    """Files written before the integrity header (no user block, a checksum attribute) load as before."""
    import json
    from minidl.io import _checksum
    model = mdl.Sequential([mdl.Dense(2, 3), mdl.ReLU(), mdl.Dropout(0.2), mdl.Dense(3, 1), mdl.Sigmoid()], seed=4)
    attrs = {"format": "minidl-checkpoint", "version": 1, "config": json.dumps(model.get_config()),
             "rng": json.dumps([model.layers[2].rng.bit_generator.state])}
    arrays = {f"params/{name}": value for name, value in model.named_parameters()}
    attrs["checksum"] = _checksum(attrs, arrays)
    path = tmp_path / "v1.h5"
    with h5py.File(path, "w") as f:
        f.attrs.update(attrs)
        for key, value in arrays.items():
            f.create_dataset(key, data=value)
    loaded = mdl.load(path)
    assert repr(loaded) == repr(model)
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(loaded.named_parameters(), model.named_parameters()))
    with h5py.File(path, "r+") as f:
        f["params/0.b"][0] = 1.0
    with pytest.raises(mdl.CheckpointError, match="does not match the stored checksum"):
        mdl.load(path)


def test_foreign_hdf5_file(tmp_path):
    path = tmp_path / "keras.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("model_weights", data=np.ones(3))
    with pytest.raises(mdl.CheckpointError, match="is an HDF5 file but not a minidl checkpoint"):
        mdl.load(path)


def test_cat_data_file_is_not_a_checkpoint(cat_dir):
    with pytest.raises(mdl.CheckpointError, match="not a minidl checkpoint"):
        mdl.load(os.path.join(cat_dir, "test_catvnoncat.h5"))


@pytest.mark.parametrize("path, error, message", [
    (42, mdl.InputTypeError, "path must be a file path"),
    ("/nonexistent-folder/m.h5", mdl.CheckpointError, "the folder /nonexistent-folder does not exist"),
])
def test_save_rejects_bad_paths(path, error, message):
    with pytest.raises(error, match=message):
        small_model().save(path)


def test_save_to_a_folder_is_rejected(tmp_path):
    with pytest.raises(mdl.CheckpointError, match="it is a folder; give a file name such as model.h5"):
        small_model().save(tmp_path)
    assert list(tmp_path.iterdir()) == []
