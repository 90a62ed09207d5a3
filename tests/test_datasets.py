import functools
import hashlib
import http.server
import os
import shutil
import threading

import h5py
import numpy as np
import pytest

import minidl as mdl
from minidl import datasets


def test_xor():
    X, Y = mdl.datasets.xor()
    assert X.shape == (4, 2) and Y.shape == (4, 1)
    assert np.array_equal(Y[:, 0], np.logical_xor(X[:, 0], X[:, 1]).astype(float))


def test_load_cat_real_files(cat_dir):
    X_train, Y_train, X_test, Y_test, classes = mdl.datasets.load_cat(cat_dir)
    assert X_train.shape == (209, 12288) and Y_train.shape == (209, 1)
    assert X_test.shape == (50, 12288) and Y_test.shape == (50, 1)
    assert X_train.min() >= 0 and X_train.max() <= 1 and X_train.max() > 0.99
    assert list(classes) == [b"non-cat", b"cat"]
    assert Y_train.sum() == 72 and Y_test.sum() == 33
    for name, sha in datasets.CAT_FILES.items():
        assert datasets._sha256(os.path.join(cat_dir, name)) == sha


def test_load_cat_reads_data_dir_from_the_environment(cat_dir, monkeypatch):
    monkeypatch.setenv("MINIDL_DATA_DIR", cat_dir)
    assert mdl.datasets.load_cat()[0].shape == (209, 12288)


def fake_cat_files(folder, m_train=6, m_test=4, labels=None, x_key="train_set_x"):
    rng = np.random.default_rng(0)
    for split, m in (("train", m_train), ("test", m_test)):
        with h5py.File(os.path.join(folder, f"{split}_catvnoncat.h5"), "w") as f:
            f.create_dataset(x_key.replace("train", split), data=rng.integers(0, 256, (m, 64, 64, 3), dtype=np.uint8))
            f.create_dataset(f"{split}_set_y", data=labels if labels is not None else np.arange(m) % 2)
            f.create_dataset("list_classes", data=np.array([b"non-cat", b"cat"]))


def test_load_cat_on_small_fake_files(tmp_path):
    fake_cat_files(tmp_path)
    with pytest.raises(mdl.DataFileError, match=r"train_catvnoncat.h5 has sha256 [0-9a-f]{64}, not the "
                                                r"train_catvnoncat.h5 minidl knows \(fbe56ab6.*\); a modified or "
                                                r"foreign copy is not parsed by default: .* allow_modified=True"):
        mdl.datasets.load_cat(tmp_path)
    X_train, Y_train, X_test, Y_test, _ = mdl.datasets.load_cat(tmp_path, allow_modified=True)
    assert X_train.shape == (6, 12288) and X_test.shape == (4, 12288)
    assert Y_train.ravel().tolist() == [0, 1, 0, 1, 0, 1]


def test_missing_files_say_where_to_get_them(tmp_path, monkeypatch):
    with pytest.raises(mdl.MissingDataFileError, match="train_catvnoncat.h5 does not exist; get .* download=True"):
        mdl.datasets.load_cat(tmp_path)
    monkeypatch.delenv("MINIDL_DATA_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="data_dir was not given and MINIDL_DATA_DIR is not set"):
        mdl.datasets.load_cat()


def test_corrupt_and_wrong_files(tmp_path):
    (tmp_path / "train_catvnoncat.h5").write_bytes(b"not hdf5")
    with pytest.raises(mdl.DataFileError, match="is not an HDF5 file .* expected sha256 fbe56ab6"):
        mdl.datasets.load_cat(tmp_path, allow_modified=True)
    fake_cat_files(tmp_path, x_key="train_set_images")
    with pytest.raises(mdl.DataFileError, match=r"lacks the datasets \['train_set_x'\]"):
        mdl.datasets.load_cat(tmp_path, allow_modified=True)
    fake_cat_files(tmp_path, labels=np.array([0, 1, 2, 0, 1, 0]))
    with pytest.raises(mdl.DataFileError, match=r"train_set_y must hold labels in \{0, 1\}; received \[0, 1, 2\]"):
        mdl.datasets.load_cat(tmp_path, allow_modified=True)


def test_truncated_data_file(tmp_path, cat_dir):
    content = open(os.path.join(cat_dir, "train_catvnoncat.h5"), "rb").read()
    (tmp_path / "train_catvnoncat.h5").write_bytes(content[:len(content) // 2])
    shutil.copy(os.path.join(cat_dir, "test_catvnoncat.h5"), tmp_path)
    with pytest.raises(mdl.DataFileError, match="has sha256 .* not the train_catvnoncat.h5 minidl knows"):
        mdl.datasets.load_cat(tmp_path)
    with pytest.raises(mdl.DataFileError, match="could not be read"):
        mdl.datasets.load_cat(tmp_path, allow_modified=True)


@pytest.fixture
def server(tmp_path):
    """A local http.server on 127.0.0.1 serving tmp_path/served."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


def test_download_verifies_checksums_and_writes_atomically(tmp_path, server, monkeypatch):
    served, url = server
    fake_cat_files(served)
    sums = {name: hashlib.sha256((served / name).read_bytes()).hexdigest() for name in datasets.CAT_FILES}
    monkeypatch.setattr(datasets, "CAT_FILES", sums)
    target = tmp_path / "data"
    X_train, *_ = mdl.datasets.load_cat(target, download=True, url=url)
    assert X_train.shape == (6, 12288)
    assert sorted(os.listdir(target)) == sorted(sums)
    assert mdl.datasets.download_cat(target, url=url) == []      # already there and verified


def test_download_url_from_the_environment(tmp_path, server, monkeypatch):
    served, url = server
    fake_cat_files(served)
    monkeypatch.setattr(datasets, "CAT_FILES", {n: hashlib.sha256((served / n).read_bytes()).hexdigest()
                                                for n in datasets.CAT_FILES})
    monkeypatch.setenv("MINIDL_CAT_URL", url)
    assert len(mdl.datasets.download_cat(tmp_path / "d")) == 2


def test_download_with_a_wrong_checksum_writes_nothing(tmp_path, server):
    served, url = server
    fake_cat_files(served)                         # not the real files: their sha256 differs
    target = tmp_path / "data"
    with pytest.raises(mdl.DataFileError, match="has sha256 .* expected fbe56ab6.*; not written"):
        mdl.datasets.download_cat(target, url=url)
    assert os.listdir(target) == []


def test_download_of_a_missing_url(tmp_path, server):
    _, url = server
    with pytest.raises(mdl.DataFileError, match="could not download .*train_catvnoncat.h5"):
        mdl.datasets.download_cat(tmp_path, url=url)


def test_train_val_split_is_stratified_and_seeded():
    X = np.arange(40.0).reshape(20, 2)
    Y = np.array([1] * 5 + [0] * 15)
    Xt, Yt, Xv, Yv = mdl.datasets.train_val_split(X, Y, 0.2, seed=1)
    assert Xt.shape == (16, 2) and Xv.shape == (4, 2) and Yv.sum() == 1 and Yt.sum() == 4
    assert np.array_equal(Xv, mdl.datasets.train_val_split(X, Y, 0.2, seed=1)[2])
    with pytest.raises(mdl.InputError, match=r"val_fraction must be a finite number in \(0, 1\)"):
        mdl.datasets.train_val_split(X, Y, 1.0)


# ---------------------------------------------------------------------- hostile data files
def _hostile_cat(folder, case):
    """A train file built to hurt the loader, beside a plain test file."""
    fake_cat_files(folder)
    path = folder / "train_catvnoncat.h5"
    with h5py.File(path, "w") as f:
        x = np.zeros((6, 64, 64, 3), dtype=np.uint8)
        y = np.arange(6) % 2
        classes = np.array([b"non-cat", b"cat"])
        if case == "gzip bomb":              # 20,000 images of zeros in a few KB
            f.create_dataset("train_set_x", shape=(20_000, 64, 64, 3), dtype=np.uint8, chunks=(100, 64, 64, 3),
                             compression="gzip")
            x = None
        elif case == "list_classes bomb":
            f.create_dataset("list_classes", shape=(60_000_000,), dtype="S8", chunks=(1 << 20,), compression="gzip")
            classes = None
        elif case == "external storage":
            f.create_dataset("train_set_x", shape=(1, 64, 64, 3), dtype=np.uint8, external=[("/etc/passwd", 0, 12288)])
            x, y = None, np.array([0])
        elif case == "NaN pixels":
            x = np.full((6, 64, 64, 3), np.nan)
        elif case == "bool labels":
            y = np.array([True, False] * 3)
        elif case == "string pixels":
            x = np.full((6, 64, 64, 3), b"x")
        if x is not None:
            f.create_dataset("train_set_x", data=x)
        f.create_dataset("train_set_y", data=y)
        if classes is not None:
            f.create_dataset("list_classes", data=classes)


HOSTILE_CAT = {
    "gzip bomb": "compressed or larger than the file",
    "list_classes bomb": "compressed or larger than the file",
    "external storage": "stored outside the file",
    "NaN pixels": "must hold finite pixel values in [0, 255]",
    "bool labels": "train_set_y must hold numbers (int or float, not bool or text); received dtype bool",
    "string pixels": "train_set_x must hold numbers (int or float, not bool or text); received dtype |S1",
}


def test_hostile_cat_files_are_refused_unparsed_and_checked_when_allowed(tmp_path):
    import subprocess
    import sys
    import textwrap
    folders = []
    for i, case in enumerate(HOSTILE_CAT):
        folder = tmp_path / f"case{i}"
        folder.mkdir()
        _hostile_cat(folder, case)
        folders.append(str(folder))
    code = textwrap.dedent(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        import minidl as mdl
        for folder in {folders!r}:
            for allow in (False, True):
                try:
                    mdl.datasets.load_cat(folder, allow_modified=allow)
                    print("loaded")
                except mdl.DataFileError as exc:
                    print("DataFileError:", str(exc).replace(chr(10), " "))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    for i, (case, message) in enumerate(HOSTILE_CAT.items()):
        refused, checked = lines[2 * i], lines[2 * i + 1]
        assert refused.startswith("DataFileError") and "not parsed by default" in refused, case
        assert checked.startswith("DataFileError") and message in checked, (case, checked)
