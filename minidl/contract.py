"""The layer contract: what minidl relies on from every layer, and the checks that hold a user's layer to it.

A layer maps ``X`` ``(m, n_in)`` to ``A`` ``(m, n_out)`` with ``n_out = output_width(n_in)``, in a float
dtype; ``backward(dA)`` returns ``dX`` of ``X``'s shape and stores in ``self.grads`` one float array of
each parameter's exact shape. minidl's own layers keep it by construction. A layer of the user's is held
to it wherever a model runs it (:func:`check_forward`, :func:`check_backward`): a break is a
:class:`~minidl.errors.LayerContractError` that names the layer, instead of a NumPy error three modules
later.

What a layer *declares* about itself (``elementwise``, ``rowwise``, ``kink_pattern``) lets the gradient
checker take shortcuts, and a shortcut taken on a false declaration computes the numeric gradient under
the same false assumption a wrong backward makes. So before the checker relies on a declaration it
probes it on the data of the check (:func:`probe`): one or two extra forward passes of the layer, and
its shortcut is dropped, with a sentence for the report, where the data contradicts it.
"""
from dataclasses import dataclass, field

import numpy as np

from .errors import LayerContractError
from .layers import BUILT_IN_LAYERS

_BUILT_IN = tuple(BUILT_IN_LAYERS.values())
# Outputs computed from the same values in another arrangement agree to rounding; a layer that mixes
# rows or positions moves them by a share of the probe's O(1) change, many orders of magnitude more.
PROBE_RTOL = 1e-9


def is_built_in(layer):
    """True for minidl's own layers (exact class, not a subclass): their contract and declarations hold."""
    return type(layer) in _BUILT_IN


def describe(layer, index=None):
    """``"layer 3 (CenterBatch)"``, or ``"CenterBatch"`` for a layer on its own."""
    name = type(layer).__name__
    return name if index is None else f"layer {index} ({name})"


# ---------------------------------------------------------------------------------- the contract
def check_setup(layer, where):
    """``params`` and ``grads`` are dicts (``super().__init__()`` ran) and ``regularized`` names parameters."""
    if not isinstance(getattr(layer, "params", None), dict) or not isinstance(getattr(layer, "grads", None), dict):
        raise LayerContractError(f"{where} has no self.params / self.grads dicts: its __init__ must call "
                                 f"super().__init__() first, which creates them")
    unknown = [name for name in layer.regularized if name not in layer.params]
    if unknown:
        raise LayerContractError(f"{where} declares regularized = {tuple(layer.regularized)!r}, but has no "
                                 f"parameter {unknown[0]!r}; its params are {sorted(layer.params)}")


def check_params(layer, where):
    """Every parameter is a float NumPy array (what the gradient checker perturbs in place)."""
    for name, value in layer.params.items():
        if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
            raise LayerContractError(f"{where}: params[{name!r}] must be a float NumPy array; received "
                                     f"{_what(value)}")


def check_forward(layer, X, A, where, width=None):
    """``A = layer.forward(X)`` is a float array of shape ``(m, output_width(n_in))`` (``width`` when known)."""
    m, n_in = X.shape
    if width is None:
        width = layer.output_width(n_in)
    if not isinstance(A, np.ndarray) or A.dtype.kind != "f":
        raise LayerContractError(f"{where}.forward must return a float NumPy array of shape (m, n_out) = "
                                 f"({m}, {width}); received {_what(A)}")
    if A.shape != (m, width):
        hint = ""
        if A.ndim == 2 and A.shape[0] == m:
            hint = (f": output_width({n_in}) says {width}; if the layer changes the width, define "
                    f"output_width(self, n_in) to return the width forward returns")
        elif A.shape == (width, m):
            hint = ": transposed? rows are examples"
        raise LayerContractError(f"{where}.forward must return shape ({m}, {width}) for an input of shape "
                                 f"{X.shape}; received shape {A.shape}{hint}")


def check_backward(layer, dX, x_shape, where):
    """``dX = layer.backward(dA)`` has the input's shape and ``layer.grads`` one float array per parameter,
    of the parameter's exact shape. ``dX`` may be None only for a Dense told to skip it (``needs_dX``)."""
    if dX is None:
        if getattr(layer, "needs_dX", True):
            raise LayerContractError(f"{where}.backward returned None; it must return dX, the gradient with "
                                     f"respect to its input, of shape {x_shape}")
    elif not isinstance(dX, np.ndarray) or dX.dtype.kind != "f":
        raise LayerContractError(f"{where}.backward must return dX as a float NumPy array of shape {x_shape}; "
                                 f"received {_what(dX)}")
    elif dX.shape != tuple(x_shape):
        hint = ": transposed? dX has the shape of the layer's input X" if dX.shape == tuple(x_shape)[::-1] else ""
        raise LayerContractError(f"{where}.backward must return dX of its input's shape {tuple(x_shape)}; "
                                 f"received shape {dX.shape}{hint}")
    if not isinstance(layer.grads, dict):
        raise LayerContractError(f"{where}.grads must be a dict name -> gradient; received {_what(layer.grads)}")
    for name, param in layer.params.items():
        if name not in layer.grads:
            raise LayerContractError(f"{where}.backward must store self.grads[{name!r}], the gradient of "
                                     f"params[{name!r}]; it stored {sorted(layer.grads)}")
        grad = layer.grads[name]
        if not isinstance(grad, np.ndarray) or grad.dtype.kind != "f":
            raise LayerContractError(f"{where}: grads[{name!r}] must be a float NumPy array of shape "
                                     f"{param.shape}; received {_what(grad)}")
        if grad.shape != param.shape:
            hint = ""
            if grad.size == param.size:
                hint = " (same values, another shape: a keepdims=True, or a transpose?)"
            raise LayerContractError(f"{where}: grads[{name!r}] must have the parameter's shape {param.shape}; "
                                     f"received shape {grad.shape}{hint}")


def run_backward(layer, dA, x_shape, where):
    """``layer.backward(dA)`` held to the contract: its grads cleared first (a gradient left from an earlier
    call must not stand in for a missing one), then dX and every gradient checked. Returns dX."""
    layer.grads.clear()
    dX = layer.backward(dA)
    check_backward(layer, dX, x_shape, where)
    return dX


def _what(value):
    if isinstance(value, np.ndarray):
        return f"an array of dtype {value.dtype} and shape {value.shape}"
    return "None" if value is None else type(value).__name__


# ---------------------------------------------------------------------------------- declarations
@dataclass
class Shortcuts:
    """What the gradient checker may rely on for one layer, after probing its declarations.

    ``elementwise`` and ``rowwise`` as declared unless the data contradicts them; ``kinks`` False when
    ``kink_pattern`` cannot be trusted (then the layer is checked as if it had none); ``contradictions``
    says what the data contradicted, ``notes`` the same with what the check does instead.
    """
    elementwise: bool
    rowwise: bool
    kinks: bool = True
    contradictions: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def contradict(self, sentence, instead):
        self.contradictions.append(sentence)
        self.notes.append(f"{sentence}: {instead}")


def probe(layer, X, A, training, where, structure=True):
    """Probe ``layer``'s declarations at input ``X`` (where its output is ``A``); returns :class:`Shortcuts`.

    ``rowwise``: one row of ``X`` moved must move no other row of the output, and the rows reordered
    with a moved copy of the batch stacked below (as the checker stacks perturbed copies) must give the
    same rows. ``elementwise``: the input's values sent as one 1-D array, in reverse order, must give
    the same values (as the checker sends single columns). ``kink_pattern``: the input's shape, the
    same answer twice, and the same structure as the shortcuts it is used with. minidl's own layers are
    not probed. Costs three to five forward passes (and kink patterns) of the layer on ``X``.
    ``structure=False`` probes ``kink_pattern`` alone (for a check that takes no other shortcut).
    """
    shortcuts = Shortcuts(bool(layer.elementwise), bool(layer.rowwise))
    if is_built_in(layer):
        return shortcuts

    def forward(Z):
        return layer.forward(Z, training)

    pattern = layer.kink_pattern(X.copy())
    if pattern is not None:
        pattern = np.asarray(pattern)
        again = layer.kink_pattern(X.copy())
        if pattern.shape != X.shape:
            reason = f"returned shape {pattern.shape} for an input of shape {X.shape}"
        elif not np.array_equal(np.asarray(again), pattern):
            reason = "gave two different answers for the same input"
        else:
            reason = None
        if reason:
            shortcuts.kinks, pattern = False, None
            shortcuts.contradict(f"{where}.kink_pattern {reason}", "checked as if the layer had no kinks")
    probes = (("rowwise", _rowwise_contradiction, "one copy of the batch at a time"),
              ("elementwise", _elementwise_contradiction, "whole rows through its forward"))
    for name, contradiction, instead in probes if structure else ():
        if not getattr(shortcuts, name):
            continue
        reason = contradiction(forward, X, A) or (
            pattern is not None and contradiction(layer.kink_pattern, X, pattern, "kink_pattern"))
        if reason:
            setattr(shortcuts, name, False)
            shortcuts.contradict(f"{where} declares {name} = True, but {reason}",
                                 f"checked without that shortcut ({instead})")
    return shortcuts


def _differ(got, expected):
    """Entries where two results of the same values differ beyond rounding (NaN meets NaN)."""
    got, expected = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
    scale = max(float(np.max(np.abs(expected), initial=0.0, where=np.isfinite(expected))), np.finfo(float).tiny)
    same = (np.abs(got - expected) <= PROBE_RTOL * scale) | (np.isnan(got) & np.isnan(expected)) | (got == expected)
    return ~same


def _attempt(f, Z):
    try:
        return np.asarray(f(Z)), None
    except Exception as exc:      # a user's forward that cannot take the shape: the shortcut cannot be used
        return None, f"{type(exc).__name__}: {exc}"


def _rowwise_contradiction(f, X, out, what="output"):
    m = X.shape[0]
    step = 0.5 * (1.0 + float(np.max(np.abs(X), initial=0.0)))
    if m > 1:
        moved = X.copy()
        moved[-1] += step
        got, error = _attempt(f, moved)
        if error is None and got.shape == out.shape:
            rows = np.flatnonzero(_differ(got[:-1], out[:-1]).any(axis=1))
            if rows.size:
                return f"its {what} at row {rows[0]} moved when row {m - 1} of its input did"
    stacked = np.concatenate([X[::-1], X + step])
    got, error = _attempt(f, stacked)
    if error is not None:
        return f"its {what} failed on {2 * m} rows stacked ({error})"
    if got.shape != (2 * m,) + out.shape[1:]:
        return f"its {what} had shape {got.shape} for {2 * m} rows stacked"
    rows = np.flatnonzero(_differ(got[:m], out[::-1]).reshape(m, -1).any(axis=1))
    if rows.size:
        return (f"its {what} at row {m - 1 - rows[0]} changed when the rows were reordered and a moved copy of "
                f"the batch was stacked below them")
    return None


def _elementwise_contradiction(f, X, out, what="output"):
    order = np.arange(X.size)[::-1]
    got, error = _attempt(f, X.ravel()[order])
    if error is not None:
        return f"its {what} failed on a 1-D array of its input's values ({error})"
    expected = np.asarray(out).ravel()[order]
    if got.shape != expected.shape:
        return f"its {what} had shape {got.shape} for a 1-D array of {X.size} of its input's values"
    wrong = np.flatnonzero(_differ(got, expected))
    if wrong.size:
        r, c = np.unravel_index(order[wrong[0]], X.shape)
        return (f"its {what} for the value at row {r}, column {c} changed when that value was sent alone in "
                f"another position")
    return None
