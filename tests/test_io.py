import json
import os
import re
import signal
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

import minidl as mdl
from conftest import models_and_data, small_model
from hypothesis import given, settings
from test_layers import LeakyReLU

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
    with pytest.raises(mdl.CheckpointError, match=r"cannot save to .*m\.h5: disk full"):
        small_model(seed=2).save(path)
    monkeypatch.undo()
    assert params_equal(mdl.load(path), old)
    assert sorted(os.listdir(tmp_path)) == ["m.h5"]


def test_every_os_error_of_a_save_is_a_checkpoint_error_naming_path_and_cause(tmp_path, monkeypatch):
    import errno

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(mdl.CheckpointError, match=r"cannot save to .*m\.h5: No space left on device"):
        small_model().save(tmp_path / "m.h5")
    monkeypatch.undo()

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")
    monkeypatch.setattr("tempfile.mkstemp", denied)
    with pytest.raises(mdl.CheckpointError, match=r"cannot save to .*m\.h5: Permission denied"):
        small_model().save(tmp_path / "m.h5")
    assert os.listdir(tmp_path) == []


def test_an_overwritten_checkpoint_keeps_its_permissions(tmp_path):
    path = tmp_path / "private.h5"
    small_model().save(path)
    os.chmod(path, 0o600)
    small_model(seed=2).save(path)
    assert os.stat(path).st_mode & 0o777 == 0o600          # main: 0o644


def test_a_killed_saves_temporary_file_is_removed_by_the_next_save(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".m.h5.{dead}.abcd1234.tmp"
    stale.write_bytes(b"\0" * 1000)
    alive = tmp_path / f".m.h5.{os.getpid()}.efgh5678.tmp"       # a save in progress in a live process
    alive.write_bytes(b"\0")
    other = tmp_path / f".other.h5.{dead}.abcd1234.tmp"          # another file's: not this save's business
    other.write_bytes(b"\0")
    small_model().save(tmp_path / "m.h5")
    assert sorted(os.listdir(tmp_path)) == sorted(["m.h5", alive.name, other.name])


def test_the_folder_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    import stat
    synced = []
    original = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(stat.S_ISDIR(os.fstat(fd).st_mode)), original(fd)))
    small_model().save(tmp_path / "m.h5")
    assert synced == [False, True]            # the file's bytes, then the folder that now names it


KILL_POINTS = [("between two datasets", h5py.Group, "create_dataset", 3, False),
               ("before sealing", mdl.io, "_sign", 1, False),
               ("before the rename", os, "fsync", 1, False),
               ("at the rename", os, "replace", 1, False),
               ("after the rename", mdl.io, "_fsync_folder", 1, True)]


@pytest.mark.parametrize("stage, owner, name, nth, replaced", KILL_POINTS, ids=[p[0] for p in KILL_POINTS])
def test_a_save_killed_midway_leaves_a_loadable_checkpoint(tmp_path, monkeypatch, stage, owner, name, nth, replaced):
    """A forked child saves and stops at one point of the save (the nth call of ``owner.name``), says so through
    a pipe and is killed there (SIGKILL: no sleep decides where). The path then holds the previous checkpoint,
    or the new one complete, never a mix."""
    path = tmp_path / "ckpt.h5"
    previous = mdl.Sequential([mdl.Dense(30, 20), mdl.ReLU(), mdl.Dense(20, 1), mdl.Sigmoid()], seed=1)
    new = mdl.Sequential([mdl.Dense(30, 20), mdl.ReLU(), mdl.Dense(20, 1), mdl.Sigmoid()], seed=2)
    previous.save(path)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                                   # the child: never returns into pytest
        try:
            real, calls = getattr(owner, name), []

            def stopped(*args, **kwargs):
                calls.append(1)
                if len(calls) == nth:
                    os.write(write, stage.encode())
                    signal.pause()               # killed here
                return real(*args, **kwargs)
            monkeypatch.setattr(owner, name, stopped)
            new.save(path)
        finally:
            os._exit(1)
    os.close(write)
    try:
        said = os.read(read, 100).decode()
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(read)
    assert said == stage
    assert params_equal(mdl.load(path), new if replaced else previous)


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


def test_a_version_1_checkpoint_loads_only_when_trusted(tmp_path):
    """Files written before the integrity header (no user block, a checksum attribute) need HDF5's parser:
    refused by default, loaded as before with trust_old_format=True."""
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
    with pytest.raises(mdl.CheckpointError, match=r"is an HDF5 file without minidl's header: not a minidl "
                                                   r"checkpoint, or one written by minidl 0.1 \(format 1\)\. .* If you "
                                                   r"trust the file: model = mdl.load\(path, trust_old_format=True\); "
                                                   r"model.save\(path\) converts it"):
        mdl.load(path)
    loaded = mdl.load(path, trust_old_format=True)
    assert repr(loaded) == repr(model)
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(loaded.named_parameters(), model.named_parameters()))
    loaded.save(tmp_path / "converted.h5")
    assert repr(mdl.load(tmp_path / "converted.h5")) == repr(model)
    with h5py.File(path, "r+") as f:
        f["params/0.b"][0] = 1.0
    with pytest.raises(mdl.CheckpointError, match="does not match the stored checksum"):
        mdl.load(path, trust_old_format=True)


def test_foreign_hdf5_file(tmp_path):
    path = tmp_path / "keras.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("model_weights", data=np.ones(3))
    with pytest.raises(mdl.CheckpointError, match="is an HDF5 file without minidl's header: not a minidl checkpoint"):
        mdl.load(path)
    with pytest.raises(mdl.CheckpointError, match="is an HDF5 file but not a minidl checkpoint"):
        mdl.load(path, trust_old_format=True)


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


# ---------------------------------------------------------------------- hostile files (format 3: no HDF5 on load)
def test_loading_never_calls_libhdf5(tmp_path, monkeypatch):
    small_model(seed=2).save(tmp_path / "m.h5")
    monkeypatch.setattr(h5py, "File", lambda *a, **k: pytest.fail("h5py.File called while loading"))
    model = mdl.load(tmp_path / "m.h5")
    assert params_equal(model, small_model(seed=2))


def test_the_file_is_still_an_ordinary_hdf5_file(tmp_path):
    model = small_model(seed=2)
    model.save(tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "r") as f:         # h5py (and HDFView) read it as before
        assert f.attrs["format"] == "minidl-checkpoint" and f.attrs["version"] == 3
        assert np.array_equal(f["params/0.W"][()], model.layers[0].params["W"])
        assert all(f[key].chunks is None for key in ("params/0.W", "params/0.b"))
    header = (tmp_path / "m.h5").read_bytes()[:512]
    assert header.startswith(b"minidl-checkpoint\nversion 3\nheader ")


def _external(path, target):
    """Replace the first W by a dataset whose bytes HDF5 would take from ``target`` (another file)."""
    with h5py.File(path, "r+") as f:
        del f["params/0.W"]
        f.create_dataset("params/0.W", shape=(5, 6), dtype="f8", external=[(str(target), 0, 240)])


def _virtual(path, source):
    with h5py.File(path, "r+") as f:
        del f["params/0.W"]
        layout = h5py.VirtualLayout(shape=(5, 6), dtype="f8")
        layout[:] = h5py.VirtualSource(str(source), "data", shape=(5, 6))
        f.create_virtual_dataset("params/0.W", layout, fillvalue=7.0)


def _groups(path, deep):
    with h5py.File(path, "r+") as f:
        group = f
        for i in range(300):
            group = group.create_group("g") if deep else f.create_group(f"g{i}")


def _unwritten(path):
    with h5py.File(path, "r+") as f:
        del f["params/0.W"]
        f.create_dataset("params/0.W", shape=(5, 6), dtype="f8")      # storage never allocated


HOSTILE = {
    "external storage: a regular file": lambda p, d: _external(p, "/etc/passwd"),
    "external storage: a FIFO": lambda p, d: (os.mkfifo(d / "fifo"), _external(p, d / "fifo")),
    "external storage: the zero device": lambda p, d: _external(p, "/dev/zero"),
    "virtual dataset: another file": lambda p, d: (_data_file(d / "other.h5"), _virtual(p, d / "other.h5")),
    "virtual dataset: a missing file": lambda p, d: _virtual(p, d / "missing.h5"),
    "virtual dataset: a FIFO": lambda p, d: (os.mkfifo(d / "vfifo"), _virtual(p, d / "vfifo")),
    "a dataset never written (sparse)": lambda p, d: _unwritten(p),
}


def _data_file(path):
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=np.full((5, 6), 3.0))


def _load_each(paths, timeout=60):
    """Load every file in one child process capped at 1 GiB and ``timeout`` s: ``{path: outcome}``."""
    code = textwrap.dedent(f"""
        import resource, sys, time
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        import minidl as mdl
        for path in {[str(p) for p in paths]!r}:
            start = time.perf_counter()
            try:
                mdl.load(path)
                outcome = "loaded"
            except mdl.CheckpointError as exc:
                outcome = "CheckpointError: " + str(exc).replace(chr(10), " ")
            print(path, "|", round(time.perf_counter() - start, 3), "|", outcome, flush=True)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line.split(" | ") for line in result.stdout.splitlines()]
    return {path: (float(seconds), outcome) for path, seconds, outcome in lines}


def test_hostile_files_end_in_checkpoint_error_without_hdf5(tmp_path):
    """Each hostile construction, then sealed as an attacker would (``_sign``): the format cannot express it,
    so no header can claim it, and loading the file ends at the header check, in a capped child process."""
    from minidl.io import _sign
    paths = []
    for i, (name, build) in enumerate(HOSTILE.items()):
        folder = tmp_path / f"case{i}"
        folder.mkdir()
        path = folder / "hostile.h5"
        small_model(seed=1).save(path)
        build(path, folder)
        with pytest.raises(mdl.CheckpointError, match="which the checkpoint format cannot express"):
            _sign(str(path))
        paths.append(path)
    outcomes = _load_each(paths)
    for name, path in zip(HOSTILE, paths):
        seconds, outcome = outcomes[str(path)]
        assert outcome.startswith("CheckpointError") and "does not match its integrity header" in outcome, name
        assert seconds < 2, name


def _reseal(path, edit):
    """Edit a sealed file's bytes after its header, then recompute its SHA-256 as an attacker would, without
    parsing anything (so it works on files HDF5 would hang or crash on)."""
    import hashlib
    data = bytearray(open(path, "rb").read())
    text = data[:512].split(b"\n\n", 1)[0].decode().splitlines()
    fields = dict(line.split(" ", 1) for line in text[1:])
    size, index_size = int(fields["header"]), int(fields["index"])
    start = len(b"\n".join(line.encode() for line in text)) + 2
    index = bytes(data[start:start + index_size])
    body = bytearray(data[size:])
    index = edit(index, body) or index
    digest = hashlib.sha256(index + bytes(body)).hexdigest()
    header = (f"minidl-checkpoint\nversion 3\nheader {size}\nindex {len(index)}\nlength {len(body)}\n"
              f"sha256 {digest}\n\n").encode() + index
    open(path, "wb").write(header.ljust(size, b"\0") + bytes(body))


def test_a_resealed_index_cannot_reach_outside_the_file_or_overlap(tmp_path):
    import json
    path = tmp_path / "m.h5"
    small_model(seed=1).save(path)
    size = os.path.getsize(path)
    cases = {
        "beyond the end": (lambda e: e["params/0.W"].__setitem__(0, size - 8), "would lie outside the file"),
        "into the header": (lambda e: e["params/0.W"].__setitem__(0, 8), "would lie outside the file"),
        "a huge offset": (lambda e: e["params/0.W"].__setitem__(0, 2 ** 62), "would lie outside the file"),
        "overlapping": (lambda e: e["params/0.b"].__setitem__(0, e["params/0.W"][0]), "overlap"),
        "big-endian": (lambda e: e["params/0.W"].__setitem__(1, ">f8"), "expected shape (5, 6) and a float dtype"),
        "another shape": (lambda e: e["params/0.W"].__setitem__(2, [6, 5]), "has shape (6, 5)"),
        "an extra array": (lambda e: e.__setitem__("extra", [512, "<f8", [1]]), "'extra', which is not part"),
        "a string offset": (lambda e: e["params/0.W"].__setitem__(0, "512"), "would lie outside the file"),
    }
    for name, (change, message) in cases.items():
        forged = tmp_path / f"{name}.h5"
        forged.write_bytes(path.read_bytes())

        def edit(index, body, change=change):
            parsed = json.loads(index)
            change(parsed["arrays"])
            return json.dumps(parsed).encode()
        _reseal(forged, edit)
        with pytest.raises(mdl.CheckpointError, match=re.escape(message)):
            mdl.load(forged)


def test_mutated_hdf5_metadata_behind_a_resealed_header_is_never_parsed(tmp_path):
    """Bytes of the HDF5 part changed (metadata that made libhdf5 spin or crash) and the header recomputed:
    the loader reads only the indexed arrays, so every mutant loads in bounded time and memory, with the
    original weights where the mutation missed them, or fails with CheckpointError; never a hang or a crash."""
    path = tmp_path / "m.h5"
    model = small_model(seed=1)
    model.save(path)
    size = int(open(path, "rb").read(512).split(b"header ")[1].split(b"\n")[0])
    total = os.path.getsize(path)
    rng = np.random.default_rng(0)
    offsets = sorted(rng.choice(np.arange(size, total), size=60, replace=False))
    paths = []
    for offset in offsets:
        mutant = tmp_path / f"mutant{offset}.h5"
        mutant.write_bytes(path.read_bytes())
        _reseal(mutant, lambda index, body, o=offset: body.__setitem__(o - size, body[o - size] ^ 0xFF))
        paths.append(mutant)
    outcomes = _load_each(paths)
    assert all(seconds < 2 for seconds, _ in outcomes.values())
    assert {outcome.split(":")[0] for _, outcome in outcomes.values()} <= {"loaded", "CheckpointError"}


def test_older_formats_are_refused_before_any_parsing(tmp_path):
    """Version-1 and version-2 files (the ones whose mutants made HDF5 hang or crash) are not parsed at all."""
    import hashlib
    v1 = tmp_path / "v1.h5"
    with h5py.File(v1, "w") as f:
        f.attrs["format"] = "minidl-checkpoint"
        f.create_dataset("params/0.W", data=np.zeros((5, 6)))
    data = v1.read_bytes()
    v2 = tmp_path / "v2.h5"
    digest = hashlib.sha256(data).hexdigest()
    v2.write_bytes((b"minidl-checkpoint\n" + f"length {len(data)}\nsha256 {digest}\n".encode()).ljust(512, b"\0")
                   + data)
    mutants = []
    for i, offset in enumerate(range(0, len(data), max(1, len(data) // 40))):
        mutant = tmp_path / f"v1-{i}.h5"
        flipped = bytearray(data)
        flipped[offset] ^= 0xFF
        mutant.write_bytes(bytes(flipped) if flipped.startswith(b"\x89HDF") else data)
        mutants.append(mutant)
    outcomes = _load_each([v1, v2] + mutants)
    assert "written by an older minidl (checkpoint format 2)" in outcomes[str(v2)][1]
    for path in [v1] + mutants:
        seconds, outcome = outcomes[str(path)]
        assert outcome.startswith("CheckpointError") and "trust_old_format=True" in outcome and seconds < 2


def test_deep_and_many_groups_are_never_walked(tmp_path):
    """Groups nested 300 deep or 300 wide (main: visititems walked every object before any check, 1 MB of
    them took 8 s): sealed with a valid header, the loader reads only the indexed arrays."""
    from minidl.io import _sign
    paths = []
    for deep in (True, False):
        path = tmp_path / f"groups{deep}.h5"
        small_model(seed=1).save(path)
        _groups(path, deep)
        _sign(str(path))
        paths.append(path)
    outcomes = _load_each(paths)
    for path in paths:
        seconds, outcome = outcomes[str(path)]
        assert outcome == "loaded" and seconds < 2
    assert params_equal(mdl.load(paths[0]), small_model(seed=1))


# ------------------------------------------------------------------ hostile and corrupt checkpoints, permissions (from the hardening issue)
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


def test_a_checkpoint_gets_the_permissions_of_any_new_file(tmp_path):
    old = os.umask(0o022)
    try:
        xor_checkpoint(tmp_path / "a.h5")
        with open(tmp_path / "plain.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "a.h5").st_mode & 0o777 == os.stat(tmp_path / "plain.txt").st_mode & 0o777 == 0o644


# ------------------------------------------------------------------ properties
@settings(max_examples=15, deadline=None)
@given(models_and_data())
def test_save_load_round_trips_exactly(tmp_path_factory, case):
    model, X, _ = case
    path = tmp_path_factory.mktemp("ckpt") / "m.h5"
    model.save(path)
    loaded = mdl.load(path)
    for (na, a), (nb, b) in zip(model.named_parameters(), loaded.named_parameters()):
        assert na == nb and a.dtype == b.dtype and np.array_equal(a, b)
    assert np.array_equal(model.forward(X, training=True), loaded.forward(X, training=True))
