"""Small data sets: XOR, and the cat / non-cat images of the classic course exercise."""
import hashlib
import os
import urllib.request

import numpy as np

from .errors import DataFileError, InputError, InputTypeError, MissingDataFileError
from .io import atomic_path
from .validation import check_array, check_float, check_labels, check_seed

CAT_FILES = {
    "train_catvnoncat.h5": "fbe56ab67c3ae28d564e3a644189117976d6b31af0a3ce9bb17dbf22908af242",
    "test_catvnoncat.h5": "6a9d39ce52fa85953c5834695b8534a30ed8cfd54971fb2f080b5a24d002b951",
}
#: Where ``download=True`` fetches the files from; override with ``url=`` or ``MINIDL_CAT_URL``.
CAT_URL = "https://raw.githubusercontent.com/Hiren2002/Logistic-Regression/main/datasets/"
_HOW_TO_GET = ("get train_catvnoncat.h5 and test_catvnoncat.h5 with "
               "mdl.datasets.load_cat(DIR, download=True) or see data/README.md")


def xor():
    """The XOR truth table: ``X`` (4, 2) of {0, 1} inputs, ``Y`` (4, 1) = x1 XOR x2."""
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    Y = np.array([[0.0], [1.0], [1.0], [0.0]])
    return X, Y


def _data_dir(data_dir):
    if data_dir is None or data_dir == "":
        data_dir = os.environ.get("MINIDL_DATA_DIR")
        if not data_dir:
            raise MissingDataFileError(f"data_dir was not given and MINIDL_DATA_DIR is not set; {_HOW_TO_GET}")
    if not isinstance(data_dir, (str, os.PathLike)):
        raise InputTypeError(f"data_dir must be a path (str or os.PathLike); received {type(data_dir).__name__}")
    return os.fspath(data_dir)


def _read_split(path, split, allow_modified=False):
    """One split: the file's SHA-256 is checked before HDF5 parses a byte of it; a file with another sum is
    refused unless ``allow_modified``, and every file's datasets are checked (storage, shape, dtype, values)
    before and after they are read."""
    import h5py
    if not os.path.isfile(path):
        raise MissingDataFileError(f"{path} does not exist; {_HOW_TO_GET}")
    name = os.path.basename(path)
    digest = _sha256(path)
    if digest != CAT_FILES[name] and not allow_modified:
        raise DataFileError(f"{path} has sha256 {digest}, not the {name} minidl knows ({CAT_FILES[name]}); a "
                            f"modified or foreign copy is not parsed by default: {_HOW_TO_GET}, or pass "
                            f"allow_modified=True to read a copy you trust (its storage, shapes, dtypes and values "
                            f"are then checked)")
    if not h5py.is_hdf5(path):
        raise DataFileError(f"{path} is not an HDF5 file (truncated or another format); "
                            f"expected sha256 {CAT_FILES[name]}; {_HOW_TO_GET}")
    x_key, y_key = f"{split}_set_x", f"{split}_set_y"
    size = os.path.getsize(path)
    try:
        with h5py.File(path, "r") as f:
            missing = [key for key in (x_key, y_key, "list_classes") if key not in f]
            if missing:
                raise DataFileError(f"{path} lacks the datasets {missing}; it holds {sorted(f.keys())}")
            for key, kinds in ((x_key, "uif"), (y_key, "uif"), ("list_classes", "S")):
                _check_dataset(f[key], key, kinds, size, path)
            X, Y, classes = f[x_key][()], f[y_key][()], f["list_classes"][()]
    except DataFileError:
        raise
    except Exception as exc:  # h5py raises OSError, KeyError, RuntimeError on damaged files
        raise DataFileError(f"{path} could not be read ({type(exc).__name__}: {exc}); {_HOW_TO_GET}") from None
    if X.ndim != 4 or X.shape[1:] != (64, 64, 3) or Y.shape != (X.shape[0],):
        raise DataFileError(f"{path}: expected {x_key} of shape (m, 64, 64, 3) and {y_key} of shape (m,); "
                            f"received {X.shape} and {Y.shape}")
    if not (np.all(np.isfinite(X)) and X.min(initial=0) >= 0 and X.max(initial=0) <= 255):
        raise DataFileError(f"{path}: {x_key} must hold finite pixel values in [0, 255]; received values from "
                            f"{np.nanmin(X)} to {np.nanmax(X)}" + (" and NaN" if np.isnan(X).any() else ""))
    if not np.isin(Y, (0, 1)).all():
        raise DataFileError(f"{path}: {y_key} must hold labels in {{0, 1}}; received {np.unique(Y).tolist()}")
    return X.reshape(X.shape[0], -1).astype(np.float64) / 255.0, Y.reshape(-1, 1).astype(np.float64), classes


def _check_dataset(dataset, key, kinds, size, path):
    """A dataset stored plainly inside the file (no external or virtual storage, no filters), of a dtype of
    ``kinds`` and no larger than the file: what reading it allocates is bounded by the file."""
    import h5py
    if not isinstance(dataset, h5py.Dataset):
        raise DataFileError(f"{path}: {key} is not a dataset")
    if dataset.external is not None or dataset.is_virtual or dataset.compression is not None \
            or dataset.scaleoffset is not None or dataset.nbytes > size:
        raise DataFileError(f"{path}: {key} is stored outside the file, compressed or larger than the file "
                            f"({dataset.nbytes:,} bytes in a file of {size:,}); the cat files store their arrays "
                            f"plainly")
    if dataset.dtype.kind not in kinds or (kinds == "S" and dataset.dtype.itemsize > 64):
        expected = "short byte strings" if kinds == "S" else "numbers (int or float, not bool or text)"
        raise DataFileError(f"{path}: {key} must hold {expected}; received dtype {dataset.dtype}")


def load_cat(data_dir=None, download=False, url=None, allow_modified=False):
    """Load the cat / non-cat images, flattened and scaled to [0, 1].

    Each file's SHA-256 is checked against the known one before HDF5 parses it (a data file is a file
    someone else wrote); a copy with another sum is refused unless ``allow_modified=True``.

    Parameters
    ----------
    data_dir : path, optional
        Folder holding ``train_catvnoncat.h5`` and ``test_catvnoncat.h5``; default
        ``$MINIDL_DATA_DIR``.
    download : bool
        Fetch missing files (see :func:`download_cat`) instead of raising.
    url : str, optional
        Base URL for ``download``.
    allow_modified : bool
        Read copies whose SHA-256 differs (your own modified or smaller files), with their storage (no
        external, virtual or compressed datasets), shapes, dtypes and values (finite pixels in [0, 255],
        labels 0/1) checked.

    Returns
    -------
    X_train : ndarray (209, 12288)
    Y_train : ndarray (209, 1)
    X_test : ndarray (50, 12288)
    Y_test : ndarray (50, 1)
    classes : ndarray of bytes, ``[b'non-cat', b'cat']``
    """
    data_dir = _data_dir(data_dir)
    if download and not all(os.path.isfile(os.path.join(data_dir, name)) for name in CAT_FILES):
        download_cat(data_dir, url=url)
    if not isinstance(allow_modified, bool):
        raise InputTypeError(f"allow_modified must be True or False; received {type(allow_modified).__name__}")
    X_train, Y_train, classes = _read_split(os.path.join(data_dir, "train_catvnoncat.h5"), "train", allow_modified)
    X_test, Y_test, _ = _read_split(os.path.join(data_dir, "test_catvnoncat.h5"), "test", allow_modified)
    return X_train, Y_train, X_test, Y_test, classes


def download_cat(data_dir, url=None, timeout=60):
    """Fetch the two cat files into ``data_dir``, verify their sha256 and write them atomically.

    ``url`` (default ``$MINIDL_CAT_URL`` or :data:`CAT_URL`) is the folder that holds both
    files. A file whose checksum differs is not written. Returns the paths written.
    """
    base = url or os.environ.get("MINIDL_CAT_URL") or CAT_URL
    if not isinstance(base, str):
        raise InputTypeError(f"url must be a string; received {type(base).__name__}")
    data_dir = _data_dir(data_dir)
    os.makedirs(data_dir, exist_ok=True)
    written = []
    for name, sha256 in CAT_FILES.items():
        target = os.path.join(data_dir, name)
        if os.path.isfile(target) and _sha256(target) == sha256:
            continue
        source = base.rstrip("/") + "/" + name
        try:
            with urllib.request.urlopen(source, timeout=timeout) as response:
                payload = response.read()
        except OSError as exc:
            raise DataFileError(f"could not download {source}: {exc}") from None
        digest = hashlib.sha256(payload).hexdigest()
        if digest != sha256:
            raise DataFileError(f"{source} has sha256 {digest}, expected {sha256}; not written")
        _atomic_write(target, payload)
        written.append(target)
    return written


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _atomic_write(path, payload):
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(payload)


def train_val_split(X, Y, val_fraction=0.2, seed=0):
    """Split ``(X, Y)`` into a training and a validation part, stratified by label and seeded.

    Returns ``X_train, Y_train, X_val, Y_val``; each class keeps its share in both parts.
    """
    X = check_array(X, "X")
    Y = check_labels(Y, X.shape[0])
    val_fraction = check_float(val_fraction, "val_fraction", 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    rng = np.random.default_rng(check_seed(seed))
    val = []
    for label in (0.0, 1.0):
        members = rng.permutation(np.flatnonzero(Y[:, 0] == label))
        val.extend(members[:int(round(val_fraction * members.size))].tolist())
    is_val = np.zeros(X.shape[0], dtype=bool)
    is_val[val] = True
    if is_val.all() or not is_val.any():
        raise InputError(f"val_fraction={val_fraction} leaves no examples on one side of the split")
    return X[~is_val], Y[~is_val], X[is_val], Y[is_val]
