"""Checkpoints in HDF5: the architecture as plain config in attributes, arrays as datasets.

Nothing is pickled. Writes go to a temporary file in the same folder, then ``os.replace``,
so a crash never leaves a half-written checkpoint; the file gets the permissions any new
file of the user gets (``0o666`` less the umask).

What loading a file guarantees, even a hostile one:

* Integrity before parsing. The first 512 bytes (HDF5's user block, which HDF5 itself skips)
  hold a header: a magic line, the length and the SHA-256 of everything after it. They are
  checked from the raw bytes before HDF5 reads anything, so a flipped bit or a truncated copy
  is a :class:`CheckpointError` and never reaches the HDF5 library (whose parser can spin
  forever on some damaged metadata).
* Bounded work. A file of N bytes can make ``load`` allocate about N bytes of arrays, plus the
  model it declares, and the model it declares may hold at most N / itemsize parameters
  (parameters are stored uncompressed), checked from the config before anything is built.
  Only the datasets the format defines are read, each after its shape, dtype and storage
  (no compression filters) are checked against the architecture.
* Nothing runs. Layers are rebuilt from plain config by their class; unknown classes must be
  named in ``custom_layers``.

What it does not guarantee: that a file whose header was recomputed by someone else holds
sensible weights (the checksum detects damage, not intent), or that a custom layer class you
pass is safe to construct.
"""
import contextlib
import hashlib
import json
import os
import tempfile

import numpy as np

from .errors import CheckpointError, InputTypeError
from .layers import BUILT_IN_LAYERS, Dropout, Layer
from .losses import BinaryCrossEntropy
from .optim import OPTIMIZERS, Optimizer

FORMAT = "minidl-checkpoint"
VERSION = 2                  # 2: integrity header in the user block; 1: checksum attribute only (still read)
HEADER_SIZE = 512            # HDF5's smallest user block
MAGIC = b"minidl-checkpoint\n"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
LAYERS = BUILT_IN_LAYERS


def _path(path, name="path"):
    if not isinstance(path, (str, os.PathLike)):
        raise InputTypeError(f"{name} must be a file path (str or os.PathLike); received {type(path).__name__}")
    return os.fspath(path)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; when the block succeeds, fsync it and rename it over
    ``path``. On any failure the temporary file is removed and ``path`` is left as it was."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=f".{os.path.basename(path)}.",
                               suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)      # mkstemp makes 0o600; a saved file gets what open() would give it
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _checksum(attrs, arrays):
    digest = hashlib.sha256()
    for key in sorted(attrs):
        digest.update(f"{key}={attrs[key]}\n".encode())
    for key in sorted(arrays):
        array = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}:{array.dtype.str}:{array.shape}\n".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def save(model, path, optimizer=None, trainer_state=None, trainer_arrays=None):
    """Write ``model`` (and optionally an optimizer's state and a trainer's state) to ``path``.

    Parameters
    ----------
    model : Sequential
    path : str or os.PathLike
        Destination; replaced atomically if it exists.
    optimizer : Optimizer, optional
        Its configuration, step count and moment arrays are stored so training can resume.
    trainer_state : dict, optional
        Plain data (JSON-serializable) from :class:`minidl.Trainer`.
    trainer_arrays : dict, optional
        Arrays of the trainer (the best weights kept for early stopping).
    """
    from .model import Sequential
    if not isinstance(model, Sequential):
        raise InputTypeError(f"model must be a minidl Sequential; received {type(model).__name__}")
    if optimizer is not None and not isinstance(optimizer, Optimizer):
        raise InputTypeError(f"optimizer must be a minidl Optimizer; received {type(optimizer).__name__}")
    path = _path(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CheckpointError(f"cannot save to {path}: the folder {folder} does not exist")
    if os.path.isdir(path):
        raise CheckpointError(f"cannot save to {path}: it is a folder; give a file name such as model.h5")
    attrs = {"format": FORMAT, "version": VERSION, "config": json.dumps(model.get_config()),
             "rng": json.dumps([layer.rng.bit_generator.state for layer in _dropouts(model)])}
    arrays = {f"params/{name}": value for name, value in model.named_parameters()}
    if optimizer is not None:
        state = optimizer.state_dict()
        attrs["optimizer"] = json.dumps({"class": type(optimizer).__name__, "config": optimizer.get_config(),
                                         "t": state["t"]})
        arrays.update({f"optimizer/{k}": v for k, v in state["arrays"].items()})
    if trainer_state is not None:
        attrs["trainer"] = json.dumps(trainer_state)
    arrays.update({f"trainer/{k}": v for k, v in (trainer_arrays or {}).items()})

    import h5py
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", userblock_size=HEADER_SIZE) as f:
            for key, value in attrs.items():
                f.attrs[key] = value
            for key, value in arrays.items():
                f.create_dataset(key, data=value)
        _sign(tmp)


def _sign(path):
    """Write the integrity header: magic, the length and the SHA-256 of everything after the header."""
    with open(path, "rb+") as f:
        f.seek(HEADER_SIZE)
        digest, length = _digest(f)
        header = MAGIC + f"length {length}\nsha256 {digest}\n".encode()
        f.seek(0)
        f.write(header.ljust(HEADER_SIZE, b"\0"))


def _digest(f):
    digest, length = hashlib.sha256(), 0
    for block in iter(lambda: f.read(1 << 20), b""):
        digest.update(block)
        length += len(block)
    return digest.hexdigest(), length


def _verify(path):
    """Check the integrity header from the raw bytes; returns the format version (1 for old files)."""
    with open(path, "rb") as f:
        head = f.read(HEADER_SIZE)
        if head.startswith(HDF5_SIGNATURE):
            return 1       # written before the header existed; its checksum attribute is checked after parsing
        if not head.startswith(MAGIC):
            raise CheckpointError(f"{path} is not an HDF5 file or not a minidl checkpoint (empty, truncated or another "
                                  f"format)")
        lines = head[len(MAGIC):].split(b"\0", 1)[0].decode("ascii", "replace").splitlines()
        fields = dict(line.split(" ", 1) for line in lines if " " in line)
        digest, length = _digest(f)
    if fields.get("length") != str(length) or fields.get("sha256") != digest or len(head) != HEADER_SIZE:
        raise CheckpointError(f"{path} is corrupt or truncated: its content does not match its integrity header")
    return VERSION


def _read(path, custom_layers=None):
    """Verify, then read the attributes and the datasets the format defines for the declared model.

    Returns ``(attrs, arrays, model)``: the model is built from the config, then filled.
    """
    import h5py
    if not os.path.exists(path):
        raise CheckpointError(f"no checkpoint at {path}: the file does not exist")
    if not os.path.isfile(path):
        raise CheckpointError(f"{path} is not a file")
    version = _verify(path)
    size = os.path.getsize(path)
    try:
        with h5py.File(path, "r") as f:
            attrs = {str(key): (value.decode() if isinstance(value, bytes) else value)
                     for key, value in f.attrs.items()}
            if attrs.get("format") != FORMAT:
                raise CheckpointError(f"{path} is an HDF5 file but not a minidl checkpoint "
                                      f"(attribute 'format' is {attrs.get('format')!r}, expected {FORMAT!r})")
            if int(attrs.get("version", -1)) != version:
                raise CheckpointError(f"{path} has checkpoint version {attrs.get('version')!r}; this minidl "
                                      f"reads {VERSION} (and 1)")
            config = json.loads(attrs["config"])
            _check_size(config, size, path)
            model = _build_model(config, custom_layers, path)
            expected = _expected_arrays(model, attrs)
            datasets = {}
            f.visititems(lambda key, obj: datasets.__setitem__(key, obj) if isinstance(obj, h5py.Dataset) else None)
            unknown = sorted(set(datasets) - set(expected))
            if unknown:
                raise CheckpointError(f"{path} holds the dataset {unknown[0]!r}, which is not part of a minidl "
                                      f"checkpoint of this model")
            arrays = {key: _read_dataset(datasets[key], shape, size, path) for key, shape in expected.items()
                      if key in datasets}
    except CheckpointError:
        raise
    except Exception as exc:  # h5py raises OSError, KeyError, RuntimeError, ValueError on damaged files
        raise CheckpointError(f"{path} is corrupt or truncated ({type(exc).__name__}: {exc})") from None
    if version == 1:
        stored = attrs.pop("checksum", None)
        if not isinstance(stored, str) or _checksum(attrs, arrays) != stored:
            raise CheckpointError(f"{path} is corrupt: its content does not match the stored checksum")
    return attrs, arrays, model


def _check_size(config, size, path):
    """Refuse a config that declares more parameters than a file of ``size`` bytes can hold."""
    try:
        itemsize = np.dtype(config["dtype"]).itemsize
        n = sum(int(spec["config"]["n_in"]) * int(spec["config"]["n_out"]) + int(spec["config"]["n_out"])
                for spec in config["layers"] if spec["class"] == "Dense")
    except Exception as exc:
        raise CheckpointError(f"{path} holds an unreadable configuration ({type(exc).__name__}: {exc})") from None
    if n * itemsize > size:
        raise CheckpointError(f"{path} declares a model of {n:,} parameters ({n * itemsize / 2 ** 30:.1f} GiB), "
                              f"which a file of {size:,} bytes cannot hold")


def _expected_arrays(model, attrs):
    """Dataset name -> shape, for every array a checkpoint of ``model`` may hold."""
    params = {name: value.shape for name, value in model.named_parameters()}
    expected = {f"params/{name}": shape for name, shape in params.items()}
    if "optimizer" in attrs:
        expected.update({f"optimizer/{name}.{slot}": shape for name, shape in params.items() for slot in "mv"})
    if "trainer" in attrs:
        expected.update({f"trainer/{name}": shape for name, shape in params.items()})
    return expected


def _read_dataset(dataset, shape, size, path):
    """Read one dataset after checking its shape, dtype and storage: what it allocates is bounded by the file."""
    dtype = dataset.dtype
    if dataset.shape != shape or dtype.kind != "f" or dtype.itemsize > 8:
        raise CheckpointError(f"{path}: dataset {dataset.name.lstrip('/')} has shape {dataset.shape} and dtype "
                              f"{dtype}; expected shape {shape} and a float dtype")
    if dataset.compression is not None or dataset.scaleoffset is not None or dataset.nbytes > size:
        raise CheckpointError(f"{path}: dataset {dataset.name.lstrip('/')} is compressed or larger than the file; "
                              f"minidl never writes such datasets")
    return dataset[()]


def _build_model(config, custom_layers, path):
    from .model import Sequential
    classes = dict(LAYERS, **(custom_layers or {}))
    layers = []
    for spec in config["layers"]:
        cls = classes.get(spec["class"])
        if cls is None:
            raise CheckpointError(f"{path} uses the layer class {spec['class']!r}, which is not built in; pass "
                                  f"custom_layers={{{spec['class']!r}: {spec['class']}}} to load it")
        layers.append(cls(**spec["config"]))
    return Sequential(layers, loss=BinaryCrossEntropy(**config["loss"]), seed=config["seed"],
                      dtype=np.dtype(config["dtype"]))


def load_checkpoint(path, custom_layers=None):
    """Read a checkpoint: ``{"model": Sequential, "optimizer": Optimizer or None, "trainer": dict or None,
    "trainer_arrays": dict}``.

    ``custom_layers`` maps class names to user-written Layer classes used in the model.
    """
    path = _path(path)
    if custom_layers is not None and (not isinstance(custom_layers, dict) or not all(
            isinstance(c, type) and issubclass(c, Layer) for c in custom_layers.values())):
        raise InputTypeError("custom_layers must be a dict mapping class names to Layer subclasses")
    attrs, arrays, model = _read(path, custom_layers)
    try:
        _copy_params(model, arrays, path)
        states = json.loads(attrs["rng"])
        for layer, state in zip(_dropouts(model), states):
            layer.rng.bit_generator.state = state
        optimizer = None
        if "optimizer" in attrs:
            spec = json.loads(attrs["optimizer"])
            optimizer = OPTIMIZERS[spec["class"]](**spec["config"])
            prefix = "optimizer/"
            optimizer.load_state_dict({"t": spec["t"], "arrays": {k[len(prefix):]: v for k, v in arrays.items()
                                                                  if k.startswith(prefix)}})
        trainer = json.loads(attrs["trainer"]) if "trainer" in attrs else None
        trainer_arrays = {k[len("trainer/"):]: v for k, v in arrays.items() if k.startswith("trainer/")}
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"{path} holds an unreadable configuration ({type(exc).__name__}: {exc})") from None
    return {"model": model, "optimizer": optimizer, "trainer": trainer, "trainer_arrays": trainer_arrays}


def load(path, custom_layers=None):
    """Rebuild the Sequential saved at ``path`` (architecture, parameters, dropout RNG states)."""
    return load_checkpoint(path, custom_layers)["model"]


def _copy_params(model, arrays, path):
    """Copy the saved parameters into ``model``: all of them after checking all, or none."""
    params = model.named_parameters()
    for name, value in params:
        key = f"params/{name}"
        if key not in arrays:
            raise CheckpointError(f"{path} lacks the parameter {name}")
        if arrays[key].shape != value.shape:
            raise CheckpointError(f"{path}: parameter {name} has shape {arrays[key].shape}, the model expects "
                                  f"{value.shape}")
    for name, value in params:
        value[...] = arrays[f"params/{name}"]


def _custom_classes(model):
    return {type(layer).__name__: type(layer) for layer in model.layers if type(layer).__name__ not in LAYERS}


def _describe(config):
    return ", ".join(f"{spec['class']}({', '.join(map(str, spec['config'].values()))})" for spec in config["layers"])


def _dropouts(model):
    return [layer for layer in model.layers if isinstance(layer, Dropout)]


def load_weights(model, path):
    """Copy the parameters saved at ``path`` into ``model``, which must have the same architecture."""
    path = _path(path)
    attrs, arrays, _ = _read(path, _custom_classes(model))
    saved = json.loads(attrs["config"])
    mine = model.get_config()
    if saved["layers"] != mine["layers"]:
        raise CheckpointError(f"{path} was saved from another architecture: it holds [{_describe(saved)}], "
                              f"the model is [{_describe(mine)}]")
    _copy_params(model, arrays, path)
    return model
