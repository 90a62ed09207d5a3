"""Checkpoints: ordinary HDF5 files that minidl reads without HDF5.

Nothing is pickled. Writes go to a temporary file in the same folder, then ``os.replace`` and an
fsync of the folder, so a crash never leaves a half-written checkpoint; an overwritten file keeps
its permissions, a new one gets what ``open()`` would give it (``0o666`` less the umask), and every
OS error is a :class:`CheckpointError` naming the path and the cause.

The format (version 3). The file is an HDF5 file (h5py and HDFView open it: the architecture as JSON
attributes, each array a dataset) whose user block, the bytes HDF5 itself skips, holds a header: a
magic line, the header's size, the length of an index and of the file after the header, and a
SHA-256 of both; then the index, JSON with the same attributes and, for every array, its byte
offset, dtype and shape. minidl stores every array contiguously, so the index says where its bytes
are.

Loading is a parse of that header and nothing else: the checksum is checked on the raw bytes, the
config bounds the model (a file of N bytes declares at most N / itemsize parameters), every array
the model expects is read with ``seek``/``read`` after its dtype (little-endian float32 or float64),
shape, offset and length are checked against the model and the file size, arrays may not overlap,
and an array the model does not have is refused. libhdf5 never sees the bytes, so no HDF5 feature
(external or virtual storage, filters, deep groups, damaged metadata) can read other files, hang,
crash or allocate beyond the bytes actually in the file plus the declared model; time is linear
in the file size. The checksum finds damage, not intent: anyone can recompute it, which is why
nothing rests on it but the detection of accidents.

Older checkpoints (version 1: a checksum attribute; version 2: a header without an index) can only
be read through HDF5's parser, so they are refused unless you trust the file:
``mdl.load(path, trust_old_format=True)``, then ``model.save(path)`` converts it.

Nothing runs: layers are rebuilt from plain config by their class; unknown classes must be named
in ``custom_layers`` (a class you pass is yours to trust).
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
from .model import Sequential
from .optim import OPTIMIZERS, Optimizer

FORMAT = "minidl-checkpoint"
VERSION = 3                  # 3: header with an index of raw offsets; 2, 1: HDF5-parsed (trust_old_format=True)
HEADER_SIZE = 512            # HDF5's smallest user block; the header takes the next power of two that holds it
MAX_HEADER = 1 << 20         # largest header (user block) a checkpoint may declare
DTYPES = ("<f4", "<f8")      # the array dtypes of the format
MAGIC = b"minidl-checkpoint\n"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
LAYERS = BUILT_IN_LAYERS


def _path(path, name="path"):
    if not isinstance(path, (str, os.PathLike)):
        raise InputTypeError(f"{name} must be a file path (str or os.PathLike); received {type(path).__name__}")
    return os.fspath(path)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; when the block succeeds, fsync it, rename it over ``path`` and
    fsync the folder. On any failure the temporary file is removed and ``path`` is left as it was.

    The temporary file is named ``.NAME.PID.XXXX.tmp``: one left by a save that was killed (its process is
    gone) is removed by the next save to the same path. An overwritten file keeps its permission bits; a new
    one gets what ``open()`` would give it.
    """
    folder, name = os.path.split(os.path.abspath(path))
    _remove_stale(folder, name)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.{os.getpid()}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        if os.path.exists(path):
            mode = os.stat(path).st_mode & 0o7777
        else:
            umask = os.umask(0)      # mkstemp makes 0o600; a new file gets what open() would give it
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        _fsync_folder(folder)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _remove_stale(folder, name):
    """Remove temporary files of earlier saves to ``name`` whose process no longer runs."""
    prefix = f".{name}."
    for entry in os.listdir(folder):
        parts = entry[len(prefix):].split(".")
        if not (entry.startswith(prefix) and entry.endswith(".tmp") and len(parts) == 3 and parts[0].isdigit()):
            continue
        try:
            os.kill(int(parts[0]), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, entry))
        except OSError:            # alive, under another user: not ours to remove
            pass


def _fsync_folder(folder):
    """Make the rename itself durable (where the platform lets a folder be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
    try:
        with atomic_path(path) as tmp:
            with h5py.File(tmp, "w", userblock_size=_header_size(attrs, arrays)) as f:
                for key, value in attrs.items():
                    f.attrs[key] = value
                for key, value in arrays.items():
                    f.create_dataset(key, data=np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<")))
            _sign(tmp)
    except OSError as exc:       # no permission, a full disk, a read-only file system: say where and why
        raise CheckpointError(f"cannot save to {path}: {exc.strerror or exc}") from exc


def _header_size(attrs, arrays):
    """A user block that holds the header: the next power of two (>= 512) above its largest possible size."""
    index = {key: [2 ** 62, "<f8", list(value.shape)] for key, value in arrays.items()}
    need = len(MAGIC) + 200 + len(json.dumps({"attrs": attrs, "arrays": index}))
    size = HEADER_SIZE
    while size < need:
        size *= 2
    return size


def _sign(path):
    """Seal an HDF5 file with the current header: its attributes and the offset, dtype and shape of every
    dataset, and the SHA-256 of that index and of everything after the header.

    Seals any file the format can express: a user block large enough for the header, every dataset stored
    contiguously inside the file (no chunks, filters, external or virtual storage). Anything else is a
    :class:`CheckpointError`: the format cannot even say it. (Tests use it to forge hostile files.)
    """
    import h5py
    with h5py.File(path, "r") as f:
        size = f.userblock_size
        attrs = {str(key): _plain(value) for key, value in f.attrs.items()}
        arrays = {}

        def index(name, obj):
            if isinstance(obj, h5py.Dataset):
                contiguous = (obj.chunks is None and obj.external is None and not obj.is_virtual
                              and obj.compression is None)
                offset = obj.id.get_offset() if contiguous else None
                allocated = offset is not None and offset >= size and obj.id.get_storage_size() == obj.nbytes
                if not allocated or obj.dtype.str not in DTYPES:
                    raise CheckpointError(f"cannot seal {path}: dataset {name} is not a contiguous little-endian "
                                          f"float array inside the file, which the checkpoint format cannot express")
                arrays[name] = [int(offset), obj.dtype.str, list(obj.shape)]
        f.visititems(index)
    body = json.dumps({"attrs": attrs, "arrays": arrays}, sort_keys=True).encode()
    with open(path, "rb+") as f:
        f.seek(size)
        digest, length = _digest(f, body)
        header = MAGIC + (f"version {VERSION}\nheader {size}\nindex {len(body)}\nlength {length}\n"
                          f"sha256 {digest}\n\n").encode() + body
        if len(header) > size:
            raise CheckpointError(f"cannot seal {path}: its header needs {len(header):,} bytes and its user block "
                                  f"has {size:,}")
        f.seek(0)
        f.write(header.ljust(size, b"\0"))


def _plain(value):
    """An HDF5 attribute as JSON data (str, number or list)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value.tolist() if hasattr(value, "tolist") else value


def _digest(f, prefix=b""):
    """SHA-256 of ``prefix`` and the rest of ``f``, and the number of bytes read from ``f``."""
    digest, length = hashlib.sha256(prefix), 0
    for block in iter(lambda: f.read(1 << 20), b""):
        digest.update(block)
        length += len(block)
    return digest.hexdigest(), length


def _read(path, custom_layers=None, trust_old_format=False):
    """Verify, then read the attributes and the arrays the format defines for the declared model, from the
    raw bytes. Returns ``(attrs, arrays, model)``: the model is built from the config, then filled."""
    if not os.path.exists(path):
        raise CheckpointError(f"no checkpoint at {path}: the file does not exist")
    if not os.path.isfile(path):
        raise CheckpointError(f"{path} is not a file")
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            found = _header(f, size, path)
            if found in (1, 2):
                if not trust_old_format:
                    what = ("is an HDF5 file without minidl's header: not a minidl checkpoint, or one written by "
                            "minidl 0.1 (format 1)" if found == 1 else
                            "was written by an older minidl (checkpoint format 2)")
                    raise CheckpointError(
                        f"{path} {what}. Such a file can only be read through HDF5's parser, before anything in it "
                        f"can be checked, so it is not loaded by default. If you trust the file: model = "
                        f"mdl.load(path, trust_old_format=True); model.save(path) converts it")
                return _read_old(path, custom_layers)
            header_size, attrs, entries = found
            model, expected = _declared_model(attrs, size, custom_layers, path)
            unknown = sorted(set(entries) - set(expected))
            if unknown:
                raise CheckpointError(f"{path} holds the dataset {unknown[0]!r}, which is not part of a minidl "
                                      f"checkpoint of this model")
            arrays = _read_arrays(f, entries, expected, header_size, size, path)
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
    return attrs, arrays, model


def _header(f, size, path):
    """``(header size, attrs, array index)`` from a version-3 header, after checking its SHA-256 on the raw
    bytes; 1 or 2 for the older formats (an HDF5 signature first, or a header without an index)."""
    head = f.read(HEADER_SIZE)
    if head.startswith(HDF5_SIGNATURE):
        return 1
    if not head.startswith(MAGIC):
        raise CheckpointError(f"{path} is not an HDF5 file or not a minidl checkpoint (empty, truncated or another "
                              f"format)")
    text, blank, _ = head[len(MAGIC):].partition(b"\n\n")
    fields = dict(line.split(" ", 1) for line in text.decode("ascii", "replace").splitlines() if " " in line)
    if "version" not in fields:
        return 2
    if fields["version"] != str(VERSION):
        raise CheckpointError(f"{path} has checkpoint version {fields['version']!r}; this minidl reads {VERSION} "
                              f"(and 1 or 2 with trust_old_format=True)")
    corrupt = CheckpointError(f"{path} is corrupt or truncated: its content does not match its integrity header")
    try:
        header_size, index_size = int(fields["header"]), int(fields["index"])
    except (KeyError, ValueError):
        raise corrupt from None
    start = len(MAGIC) + len(text) + len(blank)
    if not blank or header_size not in _HEADER_SIZES or header_size > size \
            or not 0 <= index_size <= header_size - start:
        raise corrupt
    f.seek(start)
    body = f.read(index_size)
    f.seek(header_size)
    digest, length = _digest(f, body)
    if fields.get("length") != str(length) or fields.get("sha256") != digest:
        raise corrupt
    try:
        index = json.loads(body)
        attrs, entries = index["attrs"], index["arrays"]
        if not isinstance(attrs, dict) or not isinstance(entries, dict):
            raise TypeError("attrs and arrays must be objects")
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise CheckpointError(f"{path} holds an unreadable index ({type(exc).__name__}: {exc})") from None
    return header_size, attrs, entries


_HEADER_SIZES = {HEADER_SIZE << k for k in range(12) if HEADER_SIZE << k <= MAX_HEADER}


def _declared_model(attrs, size, custom_layers, path, versions=(VERSION,)):
    """The model a checkpoint's attributes declare, after checking what they are and that the file can hold
    it; and the shape of every array a checkpoint of it may hold."""
    if attrs.get("format") != FORMAT:
        raise CheckpointError(f"{path} is an HDF5 file but not a minidl checkpoint "
                              f"(attribute 'format' is {attrs.get('format')!r}, expected {FORMAT!r})")
    try:
        version = int(attrs.get("version", -1))
        config = json.loads(attrs["config"])
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path} holds an unreadable configuration ({type(exc).__name__}: {exc})") from None
    if version not in versions:
        raise CheckpointError(f"{path} has checkpoint version {attrs.get('version')!r}; this minidl reads {VERSION} "
                              f"(and 1 or 2 with trust_old_format=True)")
    _check_size(config, size, path)
    model = _build_model(config, custom_layers, path)
    return model, _expected_arrays(model, attrs)


def _read_arrays(f, entries, expected, header_size, size, path):
    """Read each expected array from its offset after checking dtype, shape and bounds; no two may overlap."""
    spans = []
    for key, shape in expected.items():
        if key not in entries:
            continue
        entry = entries[key]
        offset, dtype, stored = entry if isinstance(entry, list) and len(entry) == 3 else (None, None, None)
        if dtype not in DTYPES or not isinstance(stored, list) or tuple(stored) != shape:
            raise CheckpointError(f"{path}: dataset {key} has shape {_shape(stored)} and dtype {_dtype(dtype)}; "
                                  f"expected shape {shape} and a float dtype")
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if type(offset) is not int or offset < header_size or offset + nbytes > size:
            raise CheckpointError(f"{path}: dataset {key} would lie outside the file (offset {offset!r}, {nbytes:,} "
                                  f"bytes, file of {size:,} bytes)")
        spans.append((offset, offset + nbytes, key, dtype))
    spans.sort()
    for (_, end, key, _), (start, _, other, _) in zip(spans, spans[1:]):
        if start < end:
            raise CheckpointError(f"{path}: datasets {key} and {other} overlap; minidl never writes such a file")
    arrays = {}
    for start, end, key, dtype in spans:
        f.seek(start)
        arrays[key] = np.fromfile(f, dtype=dtype, count=(end - start) // np.dtype(dtype).itemsize).reshape(
            expected[key])
    return arrays


def _shape(stored):
    return tuple(stored) if isinstance(stored, list) else stored


def _dtype(dtype):
    try:
        return np.dtype(dtype).name
    except TypeError:
        return repr(dtype)


def _read_old(path, custom_layers):
    """A version-1 or -2 checkpoint, read through HDF5 (only when the caller trusts the file)."""
    import h5py
    size = os.path.getsize(path)
    version = _verify_old(path)
    try:
        with h5py.File(path, "r") as f:
            attrs = {str(key): (value.decode() if isinstance(value, bytes) else value)
                     for key, value in f.attrs.items()}
            model, expected = _declared_model(attrs, size, custom_layers, path, versions=(version,))
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


def _verify_old(path):
    """Version 1 (no header: its checksum attribute is checked after parsing) or 2 (length and SHA-256)."""
    with open(path, "rb") as f:
        head = f.read(HEADER_SIZE)
        if head.startswith(HDF5_SIGNATURE):
            return 1
        lines = head[len(MAGIC):].split(b"\0", 1)[0].decode("ascii", "replace").splitlines()
        fields = dict(line.split(" ", 1) for line in lines if " " in line)
        digest, length = _digest(f)
    if fields.get("length") != str(length) or fields.get("sha256") != digest or len(head) != HEADER_SIZE:
        raise CheckpointError(f"{path} is corrupt or truncated: its content does not match its integrity header")
    return 2


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
    if dataset.compression is not None or dataset.scaleoffset is not None or dataset.nbytes > size \
            or dataset.external is not None or dataset.is_virtual:
        raise CheckpointError(f"{path}: dataset {dataset.name.lstrip('/')} is compressed, stored outside the file or "
                              f"larger than it; minidl never writes such datasets")
    return dataset[()]


def _build_model(config, custom_layers, path):
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


def load_checkpoint(path, custom_layers=None, trust_old_format=False):
    """Read a checkpoint: ``{"model": Sequential, "optimizer": Optimizer or None, "trainer": dict or None,
    "trainer_arrays": dict}``.

    ``custom_layers`` maps class names to user-written Layer classes used in the model.
    ``trust_old_format=True`` reads checkpoints of minidl's older formats (versions 1 and 2) through HDF5's
    parser: only for files you trust (see the module docstring).
    """
    path = _path(path)
    if not isinstance(trust_old_format, bool):
        raise InputTypeError(f"trust_old_format must be True or False; received {type(trust_old_format).__name__}")
    if custom_layers is not None and (not isinstance(custom_layers, dict) or not all(
            isinstance(c, type) and issubclass(c, Layer) for c in custom_layers.values())):
        raise InputTypeError("custom_layers must be a dict mapping class names to Layer subclasses")
    attrs, arrays, model = _read(path, custom_layers, trust_old_format)
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


def load(path, custom_layers=None, trust_old_format=False):
    """Rebuild the Sequential saved at ``path`` (architecture, parameters, dropout RNG states).

    ``trust_old_format=True`` also reads the older formats, through HDF5: only for files you trust."""
    return load_checkpoint(path, custom_layers, trust_old_format)["model"]


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


def load_weights(model, path, trust_old_format=False):
    """Copy the parameters saved at ``path`` into ``model``, which must have the same architecture."""
    path = _path(path)
    attrs, arrays, _ = _read(path, _custom_classes(model), trust_old_format)
    saved = json.loads(attrs["config"])
    mine = model.get_config()
    if saved["layers"] != mine["layers"]:
        raise CheckpointError(f"{path} was saved from another architecture: it holds [{_describe(saved)}], "
                              f"the model is [{_describe(mine)}]")
    _copy_params(model, arrays, path)
    return model
