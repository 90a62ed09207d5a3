"""Checkpoints in HDF5: the architecture as plain config in attributes, arrays as datasets.

Nothing is pickled. Writes go to a temporary file in the same folder, then ``os.replace``,
so a crash never leaves a half-written checkpoint. A SHA-256 of the content is stored and
verified on load, so a flipped bit is an error, not silently wrong weights.
"""
import contextlib
import hashlib
import json
import os
import tempfile

import numpy as np

from .errors import CheckpointError, InputTypeError
from .layers import Dense, Dropout, Layer, ReLU, Sigmoid, Tanh
from .losses import BinaryCrossEntropy
from .optim import OPTIMIZERS, Optimizer

FORMAT = "minidl-checkpoint"
VERSION = 1
LAYERS = {cls.__name__: cls for cls in (Dense, ReLU, Sigmoid, Tanh, Dropout)}


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
    attrs["checksum"] = _checksum(attrs, arrays)

    import h5py
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for key, value in attrs.items():
            f.attrs[key] = value
        for key, value in arrays.items():
            f.create_dataset(key, data=value)


def _read(path):
    import h5py
    if not os.path.exists(path):
        raise CheckpointError(f"no checkpoint at {path}: the file does not exist")
    if not os.path.isfile(path):
        raise CheckpointError(f"{path} is not a file")
    try:
        if not h5py.is_hdf5(path):
            raise CheckpointError(f"{path} is not an HDF5 file (empty, truncated or another format)")
        with h5py.File(path, "r") as f:
            attrs = {key: (value.decode() if isinstance(value, bytes) else value) for key, value in f.attrs.items()}
            if attrs.get("format") != FORMAT:
                raise CheckpointError(f"{path} is an HDF5 file but not a minidl checkpoint "
                                      f"(attribute 'format' is {attrs.get('format')!r}, expected {FORMAT!r})")
            arrays = {}
            f.visititems(lambda key, obj: arrays.__setitem__(key, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    except CheckpointError:
        raise
    except Exception as exc:  # h5py raises OSError, KeyError, RuntimeError, ValueError on damaged files
        raise CheckpointError(f"{path} is corrupt or truncated ({type(exc).__name__}: {exc})") from None
    stored = attrs.pop("checksum", None)
    if not isinstance(stored, str) or _checksum(attrs, arrays) != stored:
        raise CheckpointError(f"{path} is corrupt: its content does not match the stored checksum")
    if int(attrs.get("version", -1)) != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {attrs.get('version')!r}; this minidl reads {VERSION}")
    return attrs, arrays


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
    attrs, arrays = _read(path)
    try:
        model = _build_model(json.loads(attrs["config"]), custom_layers, path)
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


def _describe(config):
    return ", ".join(f"{spec['class']}({', '.join(map(str, spec['config'].values()))})" for spec in config["layers"])


def _dropouts(model):
    return [layer for layer in model.layers if isinstance(layer, Dropout)]


def load_weights(model, path):
    """Copy the parameters saved at ``path`` into ``model``, which must have the same architecture."""
    path = _path(path)
    attrs, arrays = _read(path)
    saved = json.loads(attrs["config"])
    mine = model.get_config()
    if saved["layers"] != mine["layers"]:
        raise CheckpointError(f"{path} was saved from another architecture: it holds [{_describe(saved)}], "
                              f"the model is [{_describe(mine)}]")
    _copy_params(model, arrays, path)
    return model
