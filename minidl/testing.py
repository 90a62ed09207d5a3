"""Testing helpers for layer authors: :func:`check_layer` holds one layer to the whole layer contract.

What scikit-learn's ``check_estimator`` is to estimators, for layers. One call runs every check on a layer
instance with seeded inputs and raises a single AssertionError listing every check that failed, so a
pytest run shows all of them at once::

    from minidl.testing import check_layer, layer_checks

    def test_my_layer():
        print(check_layer(LeakyReLU(0.1)))        # a summary table when every check holds

    @pytest.mark.parametrize("check", layer_checks(LeakyReLU(0.1)), ids=str)
    def test_my_layer_check_by_check(check):     # one test per check, as parametrize_with_checks does
        check()

The checks, each on a fresh copy of the layer:

``setup``          ``super().__init__()`` ran, parameters are float arrays, ``regularized`` names parameters
``forward``        a float array of shape ``(m, output_width(n_in))`` in the input's dtype
``backward``       dX of the input's shape, ``grads`` with every parameter's key and exact shape
``gradients``      dX and every parameter gradient against central differences (kinks left out)
``float32``        the same with float32 inputs and parameters: float32 out, float32 backward within rounding
``declarations``   ``elementwise``, ``rowwise`` and ``kink_pattern`` hold on the data (see :mod:`minidl.contract`)
``no mutation``    forward leaves its input and backward its upstream gradient unchanged
``deterministic``  the same input twice gives the same output
``get_config``     plain data, and ``type(layer)(**config)`` rebuilds a layer with the same config
``checkpoint``     ``save``/``load`` with ``custom_layers`` gives back the same parameters and outputs
``repr``           a repr of its own, starting with the class name
"""
import copy
import json
import os
import tempfile

import numpy as np

from . import contract
from .errors import InputError, InputTypeError
from .gradcheck import gradcheck_layer
from .io import load, save
from .layers import Dense, Dropout, Layer, Sigmoid
from .model import Sequential
from .validation import check_array, check_seed

DEFAULT_EXAMPLES = 6     # rows of the seeded input
DEFAULT_WIDTH = 4        # width for a layer whose parameters do not fix one (ReLU, a parameter-free layer)


class LayerCheck:
    """One check of :func:`check_layer`: call it to run it (raises AssertionError on failure); ``str`` is its name."""

    def __init__(self, name, layer, X, run):
        self.name, self._layer, self._X, self._run = name, layer, X, run

    def __call__(self):
        """Run the check on a fresh copy of the layer; returns what was verified, raises AssertionError if not."""
        return self._run(copy.deepcopy(self._layer), self._X.copy())

    def __str__(self):
        return self.name

    def __repr__(self):
        return f"<LayerCheck {self.name} of {self._layer!r}>"


class LayerCheckSummary:
    """What :func:`check_layer` verified: ``rows`` of ``(check, message)``; printed as a table."""

    def __init__(self, layer, X, rows):
        self.layer, self.input_shape, self.rows = repr(layer), X.shape, rows

    def __str__(self):
        width = max(len(name) for name, _ in self.rows)
        lines = [f"check_layer({self.layer}) on X of shape {self.input_shape}: all {len(self.rows)} checks passed"]
        lines += [f"  {name.ljust(width)}  ok  {message}" for name, message in self.rows]
        return "\n".join(lines)

    def __repr__(self):
        return f"<LayerCheckSummary {self.layer}: {len(self.rows)} checks passed>"


def check_layer(layer, X=None, seed=0):
    """Run the whole layer contract on ``layer``; raise one AssertionError listing every failed check.

    Parameters
    ----------
    layer : Layer
        An instance, built-in or user-written. It is not changed: every check runs on a copy.
    X : ndarray of shape (m, n_in), optional
        The input to check at. Default: seeded standard-normal values of shape ``(6, n_in)``, with
        ``n_in`` taken from the layer (``n_in``, ``get_config()["n_in"]``, the first axis of a 2-D ``W``,
        the length of its 1-D parameters; 4 for a layer whose parameters fix no width).
    seed : int
        Seeds the input and the checks' random upstream gradients.

    Returns
    -------
    LayerCheckSummary
        ``print`` it for a table of the checks and what each verified.

    Raises
    ------
    AssertionError
        Listing every check that failed, each with its reason.
    """
    checks = layer_checks(layer, X, seed)
    rows, failures, seen = [], [], {}
    for check in checks:
        try:
            rows.append((check.name, check()))
        except AssertionError as exc:
            reason = str(exc).replace(f"layer 1 ({type(layer).__name__})", type(layer).__name__)
            # a broken setup or forward breaks the checks after it the same way: say it once
            failures.append(f"- {check.name}: " + (f"fails as {seen[reason]} does" if reason in seen else reason))
            seen.setdefault(reason, check.name)
            if check.name == "setup":       # every other check needs params and grads
                failures.append(f"- the other {len(checks) - 1} checks need a layer that passes setup: not run")
                break
    if failures:
        failed = sum(not line.endswith("not run") for line in failures)
        raise AssertionError(f"check_layer({layer!r}) failed {failed} of {len(checks)} checks:\n"
                             + "\n".join(failures))
    return LayerCheckSummary(layer, checks[0]._X, rows)


def layer_checks(layer, X=None, seed=0):
    """The checks of :func:`check_layer` as a list of :class:`LayerCheck`, one pytest test each.

    >>> import pytest
    >>> @pytest.mark.parametrize("check", layer_checks(mdl.ReLU()), ids=str)   # doctest: +SKIP
    ... def test_relu(check):
    ...     check()
    """
    if not isinstance(layer, Layer):
        raise InputTypeError(f"layer must be a minidl Layer instance; received {type(layer).__name__}")
    seed = check_seed(seed)
    contract_error = None
    try:
        contract.check_setup(layer, contract.describe(layer))
    except InputError as exc:         # the setup check reports it; the input cannot be inferred from the layer
        contract_error = exc
    if X is None:
        X = _default_input(layer, seed) if contract_error is None else np.zeros((DEFAULT_EXAMPLES, DEFAULT_WIDTH))
    else:
        X = check_array(X, "X", ndim=2)
    runs = [("setup", _setup), ("forward", _forward), ("backward", _backward), ("gradients", _gradients),
            ("float32", _float32), ("declarations", _declarations), ("no mutation", _no_mutation),
            ("deterministic", _deterministic), ("get_config", _get_config), ("checkpoint", _checkpoint),
            ("repr", _repr)]
    return [LayerCheck(name, layer, X, _guarded(run, seed)) for name, run in runs]


def _default_input(layer, seed):
    params = {name: np.shape(value) for name, value in layer.params.items()}
    n_in = getattr(layer, "n_in", None) or _config(layer).get("n_in")
    if n_in is None and len(params.get("W", ())) == 2:
        n_in = params["W"][0]
    lengths = {shape[0] for shape in params.values() if len(shape) == 1}
    if n_in is None and len(lengths) == 1 and all(len(shape) <= 1 for shape in params.values()):
        n_in = lengths.pop()                     # one value per unit
    if n_in is None and all(int(np.prod(shape)) == 1 for shape in params.values()):
        n_in = DEFAULT_WIDTH                     # nothing in the layer fixes a width
    if not isinstance(n_in, (int, np.integer)) or n_in < 1:
        raise InputError(f"check_layer cannot tell the input width of {type(layer).__name__} from n_in, its "
                         f"parameters {params} or get_config(): pass X, an array of shape (m, n_in)")
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0x7E57,)))
    return rng.standard_normal((DEFAULT_EXAMPLES, int(n_in)))


def _config(layer):
    try:
        config = layer.get_config()
    except Exception:                 # reported by the get_config check
        return {}
    return config if isinstance(config, dict) else {}


def _guarded(run, seed):
    """A check whose unexpected exception (a raw error from the layer's code) is a failure, not a crash."""
    def guarded(layer, X):
        try:
            return run(layer, X, seed)
        except AssertionError:
            raise
        except Exception as exc:
            raise AssertionError(f"{type(exc).__name__}: {exc}") from exc
    return guarded


def _upstream(shape, seed):
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0xDA,))).standard_normal(shape)


def _training(layer):
    return isinstance(layer, Dropout)     # a Dropout is the identity unless training, with a fixed mask


def _prepare(layer, X):
    """The layer ready to run on X: a Dense computes dX, a Dropout holds one fixed mask."""
    if isinstance(layer, Dense):
        layer.needs_dX = True
    if isinstance(layer, Dropout):
        layer.fixed_mask = np.random.default_rng(0).random(X.shape) >= layer.rate
    return layer


def _setup(layer, X, seed):
    where = contract.describe(layer)
    contract.check_setup(layer, where)
    contract.check_params(layer, where)
    return f"params {sorted(layer.params)} and grads are dicts; regularized = {tuple(layer.regularized)}"


def _forward(layer, X, seed):
    A = _prepare(layer, X).forward(X.copy(), _training(layer))
    contract.check_forward(layer, X, A, contract.describe(layer))
    assert A.dtype == X.dtype, f"forward returned {A.dtype} for a {X.dtype} input"
    return f"shape {A.shape} for an input of shape {X.shape}, {A.dtype}"


def _backward(layer, X, seed):
    _prepare(layer, X)
    A = layer.forward(X.copy(), _training(layer))
    dX = contract.run_backward(layer, _upstream(A.shape, seed), X.shape, contract.describe(layer))
    return f"dX of shape {dX.shape}; grads {sorted(layer.grads)} of their parameters' shapes"


def _gradcheck(layer, X, seed):
    dropout = "frozen" if isinstance(layer, Dropout) else "off"
    report = gradcheck_layer(layer, X, seed=seed, dropout=dropout)
    assert report.passed, report.summary() + "".join(f"\n    {f.message}" for f in report.diagnosis[1:])
    return report


def _gradients(layer, X, seed):
    report = _gradcheck(layer, X.astype(np.float64), seed)
    return (f"dX and {len(layer.params)} parameter gradients match central differences: difference "
            f"{report.difference:.1e} over {report.n_checked} coordinates ({len(report.kinks)} kinks)")


def _float32(layer, X, seed):
    X32 = X.astype(np.float32)
    for name in layer.params:
        layer.params[name] = layer.params[name].astype(np.float32)
    A = _prepare(layer, X32).forward(X32.copy(), _training(layer))
    assert isinstance(A, np.ndarray) and A.dtype == np.float32, \
        f"forward returned {getattr(A, 'dtype', type(A).__name__)} for float32 inputs and parameters"
    report = _gradcheck(layer, X32, seed)
    return f"float32 forward; float32 backward within float32 rounding of float64 ({report.dtype_check['dtype']})"


def _declarations(layer, X, seed):
    A = _prepare(layer, X).forward(X.copy(), _training(layer))     # a Dropout with its fixed mask declares neither
    shortcuts = contract.probe(layer, X, A, _training(layer), contract.describe(layer))
    assert not shortcuts.contradictions, "; ".join(shortcuts.contradictions)
    declared = [name for name in ("elementwise", "rowwise") if getattr(layer, name)]
    kinks = "kink_pattern" if layer.kink_pattern(X.copy()) is not None else "no kink_pattern"
    return f"{' and '.join(declared) or 'nothing declared'}, {kinks}: consistent with the data"


def _no_mutation(layer, X, seed):
    _prepare(layer, X)
    before = X.copy()
    A = layer.forward(X, _training(layer))
    assert np.array_equal(X, before), "forward wrote into its input X (the caller's array)"
    dA = _upstream(A.shape, seed)
    upstream = dA.copy()
    layer.backward(dA)
    assert np.array_equal(dA, upstream), "backward wrote into its upstream gradient dA (the caller's array)"
    return "forward leaves X and backward leaves dA as they were"


def _deterministic(layer, X, seed):
    _prepare(layer, X)
    first = np.array(layer.forward(X.copy(), _training(layer)))
    second = np.array(layer.forward(X.copy(), _training(layer)))
    assert np.array_equal(first, second, equal_nan=True), "forward gave two different outputs for the same input"
    return "the same input twice gives the same output"


def _get_config(layer, X, seed):
    config = layer.get_config()
    assert isinstance(config, dict), f"get_config() must return a dict; received {type(config).__name__}"
    try:
        json.dumps(config)
    except TypeError as exc:
        raise AssertionError(f"get_config() must return plain data (JSON): {exc}") from None
    rebuilt = type(layer)(**config)
    assert rebuilt.get_config() == config, \
        f"type(layer)(**get_config()) has config {rebuilt.get_config()}, not {config}"
    shapes = {name: np.shape(v) for name, v in layer.params.items()}
    rebuilt_shapes = {name: np.shape(v) for name, v in rebuilt.params.items()}
    assert rebuilt_shapes == shapes, f"the rebuilt layer's parameters have shapes {rebuilt_shapes}, not {shapes}"
    for name, value in layer.params.items():
        rebuilt.params[name] = value.copy()
    same = np.array_equal(rebuilt.forward(X.copy(), False), layer.forward(X.copy(), False), equal_nan=True)
    assert same, (f"type(layer)(**{config}) with the same parameters computes another output: get_config() "
                  f"leaves out a constructor argument that forward uses")
    return f"{config} rebuilds a layer that computes the same output"


def _checkpoint(layer, X, seed):
    n_in = X.shape[1]
    width = layer.output_width(n_in)
    model = Sequential([Dense(n_in, n_in), layer, Dense(width, 1), Sigmoid()], seed=seed)
    custom = {} if contract.is_built_in(layer) else {type(layer).__name__: type(layer)}
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "layer.h5")
        save(model, path)
        loaded = load(path, custom_layers=custom)
    again = loaded.layers[1]
    assert type(again) is type(layer), f"loaded as {type(again).__name__}"
    for name, value in layer.params.items():
        assert np.array_equal(again.params[name], value), f"params[{name!r}] changed through save/load"
    assert np.array_equal(loaded.forward(X), model.forward(X)), "the loaded model computes another output"
    return "save/load " + (f"with custom_layers={{{type(layer).__name__!r}: ...}}" if custom else "as a built-in") \
        + " gives back the same parameters and outputs"


def _repr(layer, X, seed):
    text = repr(layer)
    name = type(layer).__name__
    assert isinstance(text, str) and " object at 0x" not in text, \
        f"repr is Python's default {text!r}: define get_config() (Layer's repr shows it) or __repr__"
    assert text.startswith(name), f"repr should start with {name!r}; received {text!r}"
    return text


__all__ = ["check_layer", "layer_checks", "LayerCheck", "LayerCheckSummary"]
