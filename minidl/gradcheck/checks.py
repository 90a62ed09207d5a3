"""The entry points: a whole model, one layer, any function. Each collects central differences
at epsilon, then hands every parameter to the shared verdict (:func:`verdict.judge`)."""
import contextlib
import copy
import numbers
import warnings

import numpy as np

with warnings.catch_warnings():      # in a notebook without ipywidgets tqdm.auto warns, then uses text bars
    warnings.simplefilter("ignore")
    from tqdm.auto import tqdm

from .. import contract
from ..errors import InputError, InputTypeError
from ..layers import Dense, Dropout, Layer
from ..model import Sequential
from ..validation import check_array, check_choice, check_float, check_int, check_labels, check_seed
from .diagnose import diagnose_groups, diagnose_model
from .engine import UNIT_ROUNDOFF, Evaluator, is_plain_dense, perturb_each, row_steps
from .scipy_check import SCIPY_ALL_DIRECTIONS_MAX, SCIPY_STEP, scipy_all_directions, scipy_one_direction
from .verdict import K_NOISE, SPOT_CHECK, judge, top_k
from .precision import (UNIT_ROUNDOFF_32, backward_magnitudes, dtype_check as dtype_check_of, float32_allowance,
                        layer_dtype_check, magnitudes as magnitudes_of)
from .report import GradCheckReport
from .result import ParameterCheck

CURVATURE_STEP = 1e-6      # scipy's curvature is measured at most this far from theta
CONFIRM_ALL_MAX = 10_000    # check_gradient confirms every coordinate up to this size


def _check_rng(seed):
    """The check's own random stream (frozen masks, R, sampled coordinates).

    Derived with a spawn key that no layer, model or ``default_rng(seed)`` uses, so a layer
    that re-draws its mask in backward cannot draw the check's mask by accident.
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0x6D696E69,)))


def _choose_coords(size, coords, k, rng):
    if coords == "all" or k >= size:
        return np.arange(size)
    return np.sort(rng.choice(size, size=k, replace=False))


def _group(name, shape, index, analytic, fp, fm, kink, slope, sigma, allowance):
    """One parameter's evaluations; a slope or allowance that is one number for every coordinate is kept
    as a read-only broadcast view (no memory per coordinate)."""
    size = np.shape(index)
    return ParameterCheck(name, tuple(shape), np.asarray(index, dtype=np.int64), np.asarray(analytic, dtype=np.float64),
                          fp, fm, np.asarray(kink, dtype=bool), np.broadcast_to(np.asarray(slope, dtype=float), size),
                          sigma, np.broadcast_to(np.asarray(allowance, dtype=float), size))


def _is_low_precision(array):
    return np.asarray(array).dtype in (np.float32, np.float16)


# ---------------------------------------------------------------------- model check
def gradcheck(model, X, Y, epsilon=1e-7, grads=None, dropout="off", coords="all", k=10, seed=0,
              method="fast", chunk_size=None, scipy_check=True, progress=False):
    """Check a Sequential's gradients against central differences of its cost.

    Parameters
    ----------
    model : Sequential
        The model to check. It is left exactly as it was (parameters, mode, RNG states):
        the check runs on a float64 copy. A float32 model is also checked in float32: its
        own float32 backprop against its float64 backprop at the same weights.
    X : ndarray of shape (m, n_features)
    Y : ndarray of shape (m, 1) or (m,)
    epsilon : float
        Perturbation of each coordinate (two-sided). Flagged coordinates are re-evaluated at
        larger steps before they are called wrong (see :mod:`minidl.gradcheck.verdict`).
    grads : dict, optional
        Gradients to check, keyed as ``model.named_parameters()``. Default: the model's own
        backprop (L2 included). float32 arrays are judged with float32 rounding allowed.
    dropout : {"off", "frozen"}
        "off" checks with Dropout as the identity. "frozen" draws one mask per Dropout layer
        (from this check's own random stream) and holds it for every evaluation and for
        backprop, so Dropout's backward is checked too.
    coords : {"all", "sample"}
        Every coordinate, or ``k`` seeded random coordinates per parameter.
    k : int
        Coordinates per parameter when ``coords="sample"``.
    seed : int
        Seeds the sampled coordinates, the frozen masks and scipy's random direction.
    method : {"fast", "loop"}
        "fast" reuses activations and stacks perturbations (see :mod:`minidl.gradcheck.engine`);
        "loop" is the plain recipe, one whole forward pass per perturbation.
    chunk_size : int, optional
        Coordinates evaluated together (both signs); it bounds the working memory, not the
        result. Default: blocks of about 2 MB where the affine collapse applies, about 64 MB of
        stacked activations otherwise. Beyond that working set the check holds no copy of ``X``
        (a read-only view of a float64 ``X``): on the cat network about 20 KiB per example.
    scipy_check : bool
        Also run ``scipy.optimize.check_grad`` and say whether it agrees (``report.scipy_info``).
    progress : bool
        Show a progress bar.

    Returns
    -------
    GradCheckReport
    """
    if not isinstance(model, Sequential):
        raise InputTypeError(f"model must be a minidl Sequential; received {type(model).__name__}")
    X = check_array(X, "X", ndim=2, n_columns=model.n_features)
    Y = check_labels(Y, X.shape[0])
    epsilon = check_float(epsilon, "epsilon", low=0.0, high=1.0, low_inclusive=False)
    dropout = check_choice(dropout, "dropout", ("off", "frozen"))
    coords = check_choice(coords, "coords", ("all", "sample"))
    k = check_int(k, "k", minimum=1)
    seed = check_seed(seed)
    method = check_choice(method, "method", ("fast", "loop"))
    if chunk_size is not None:
        chunk_size = check_int(chunk_size, "chunk_size", minimum=1)
    names = [name for name, _ in model.named_parameters()]
    low_grads = grads is not None and any(_is_low_precision(v) for v in grads.values()) \
        if isinstance(grads, dict) else False
    if grads is not None:
        grads = _check_grads(grads, model)

    rng = _check_rng(seed)
    masks = _frozen_masks(model, X.shape[0], rng) if dropout == "frozen" else None
    ev = Evaluator(model, X, Y, masks)
    own = ev.analytic()
    analytic = grads if grads is not None else own
    allowance, dtype_check = dict.fromkeys(names, 0.0), None
    if low_grads or model.dtype == np.float32:
        allowance32 = float32_allowance(own, magnitudes_of(ev))
        if low_grads:       # gradients handed in float32 carry float32 rounding, which is not a bug
            allowance = allowance32
        if model.dtype == np.float32:
            dtype_check = dtype_check_of(model, ev, own, masks, allowance32)

    plan = [(name, k_body, layer, pname, array, _choose_coords(array.size, coords, k, rng))
            for name, k_body, layer, pname, array in ev.named_params()]
    bar = tqdm(total=sum(p[-1].size for p in plan), desc="gradcheck", unit="coord", disable=not progress,
               leave=False)
    groups, paths = [], {}
    for name, k_body, layer, pname, array, flat in plan:
        paths[name] = ev.path(k_body, layer, method) + (" + penalty" if ev.penalty_evaluated(layer, pname) else "")
        every = flat.size == array.size
        rows = row_steps(ev.acts[k_body], epsilon) if pname == "W" and is_plain_dense(layer) else None
        step = None if rows is None else np.repeat(rows, array.shape[-1])[flat]     # per coordinate
        if every:                         # every coordinate, in the parameter's own order
            fp, fm, kink = ev.central_all(k_body, layer, pname, array, epsilon if rows is None else rows, method,
                                          chunk_size, bar.update)
        else:
            fp, fm, kink = ev.central(k_body, layer, pname, array, flat, epsilon if step is None else step, method,
                                      chunk_size, bar.update)
        recomputed = method == "loop" or not is_plain_dense(layer)
        given = np.asarray(analytic[name], dtype=np.float64).ravel()
        if not every or grads is not None:      # own gradients are a private copy already
            given = given[flat]
        group = _group(name, array.shape, flat, given,
                       fp, fm, kink, ev.penalty_slope(layer, pname, array, None if every else flat),
                       ev.noise(k_body, recomputed),
                       np.asarray(allowance[name]).ravel()[flat] if np.ndim(allowance[name]) else 0.0)
        if step is not None:
            group.step = step
        def evaluate(positions, h, k_body=k_body, layer=layer, pname=pname, array=array, flat=flat):
            return ev.central(k_body, layer, pname, array, flat[positions], h, method)

        spot = _spot(group, array) if pname == "W" and is_plain_dense(layer) else None   # same for both methods
        groups.append(judge(group, epsilon, evaluate, spot=spot))
    bar.close()

    scipy_info = _model_scipy_check(ev, plan, groups, analytic, names, epsilon, method, seed) if scipy_check else None
    title = f"{type(model).__name__} ({len(model.layers)} layers, {model.n_params:,} parameters, dropout {dropout})"
    report = GradCheckReport(groups, epsilon, scipy_info=scipy_info, title=title,
                             layer_names=[repr(layer) for layer in model.layers], dtype_check=dtype_check,
                             declarations=ev.notes, paths=paths)
    report.diagnosis, report.isolation = diagnose_model(ev, report, grads is not None, seed)
    return report


def _model_scipy_check(ev, plan, groups, analytic, names, epsilon, method, seed):
    """scipy's check_grad on the model's J(theta), judged by its own error model (see :mod:`.scipy_check`)."""
    g_flat = np.concatenate([np.asarray(analytic[n], dtype=np.float64).ravel() for n in names])
    penalty = UNIT_ROUNDOFF * ev.net.loss.penalty(ev.net.regularized_weights(), ev.m)
    passed = all(not grp.wrong.any() for grp in groups)
    if g_flat.size > SCIPY_ALL_DIRECTIONS_MAX:
        return scipy_one_direction(ev.along, g_flat, seed, ev.line_noise() + penalty, passed)
    sigma = ev.noise(0, True) + penalty
    theta = np.concatenate([a.ravel() for _, _, _, _, a in ev.named_params()])
    curvature = _curvature(ev, plan, groups, epsilon, method)
    jumps = _scipy_jumps(ev, plan, groups, epsilon, method)
    return scipy_all_directions(_at_theta_once(lambda t: ev.cost_at(t, names), theta), g_flat, theta, sigma,
                                curvature, passed, jumps=jumps)


def _at_theta_once(J, theta):
    """``J``, evaluated once at ``theta`` itself (scipy copies theta before it asks)."""
    memo = []

    def cached(t):
        if t is theta or np.array_equal(t, theta):
            if not memo:
                memo.append(J(t))
            return memo[0]
        return J(t)
    return cached


def _spot(group, array):
    """Spot-check positions of a Dense W: the largest gradients of the column holding the largest one."""
    g, kink = group.analytic, group.kink
    if kink.any():
        g = np.where(kink, 0.0, g)
    largest, smallest = int(np.argmax(g)), int(np.argmin(g))
    n_out, flat = array.shape[-1], group.index
    column = flat[largest if abs(g[largest]) >= abs(g[smallest]) else smallest] % n_out
    inside = np.arange(column, flat.size, n_out) if flat.size == array.size else np.flatnonzero(flat % n_out == column)
    return inside[top_k(np.abs(g[inside]), SPOT_CHECK)]


def _frozen_masks(model, m, rng):
    widths = [model.n_features] + model.widths
    return {i: rng.random((m, widths[i])) >= layer.rate for i, layer in enumerate(model.layers)
            if isinstance(layer, Dropout)}


def _curvature(ev, plan, groups, epsilon, method):
    """A bound on ``|d2J/dtheta_i^2|`` per coordinate for scipy's steps of 1.5e-8, from second differences
    at the check's steps, or at ``CURVATURE_STEP`` when those are larger: a second difference over a
    large step is a secant, which can be far below the curvature where scipy steps (a Tanh pushed
    through its bend)."""
    parts = []
    for (name, k_body, layer, pname, array, flat), grp in zip(plan, groups):
        step = epsilon if grp.step is None else grp.step
        fp, fm = grp.fp, grp.fm
        if np.max(step) > CURVATURE_STEP:
            fp, fm, _ = ev.central(k_body, layer, pname, array, flat, CURVATURE_STEP, method)
            step = CURVATURE_STEP
        parts.append(_every_coordinate((np.abs(fp + fm) + 2 * K_NOISE * grp.sigma) / step ** 2, grp.index, array.size))
    return np.concatenate(parts)


def _every_coordinate(bound, index, size):
    """A per-coordinate bound known at ``index`` spread over all ``size`` coordinates of its array (the largest
    one where a coordinate was not checked)."""
    full = np.full(size, bound.max(initial=0.0))
    full[index] = bound
    return full


def _scipy_jumps(ev, plan, groups, epsilon, method):
    """For scipy's forward differences along each coordinate: the jump in slope of the coordinates
    whose step of ``SCIPY_STEP`` crosses a kink (0 elsewhere), as one flat vector over theta.

    A forward difference whose step crosses a kink is off by up to the jump between the one-sided
    slopes; ``|fp + fm| / h`` measures it at a step h (twice that is allowed). Only coordinates
    that crossed a kink at their step can cross at a smaller one; all whose step was smaller (a small
    epsilon, or the per-row steps of large inputs) are tried.
    """
    parts = []
    for (name, k_body, layer, pname, array, flat), grp in zip(plan, groups):
        jumps = np.zeros(array.size)
        smaller = np.broadcast_to(np.asarray(epsilon if grp.step is None else grp.step) < SCIPY_STEP, grp.kink.shape)
        tried = np.flatnonzero(grp.kink | smaller)
        if tried.size:
            fp, fm, kink = ev.central(k_body, layer, pname, array, flat[tried], SCIPY_STEP, method)
            crossed = tried[kink]
            at_h = np.abs(fp[kink] + fm[kink]) / SCIPY_STEP
            step = grp.step
            at_eps = np.abs(grp.fp[crossed] + grp.fm[crossed]) / (epsilon if step is None else step[crossed])
            jumps[flat[crossed]] = 2 * np.maximum(at_h, at_eps)
        parts.append(jumps)
    return np.concatenate(parts)


def _check_grads(grads, model):
    if not isinstance(grads, dict):
        raise InputTypeError(f"grads must be a dict name -> array keyed as model.named_parameters(); "
                             f"received {type(grads).__name__}")
    expected = dict(model.named_parameters())
    missing = sorted(set(expected) - set(grads))
    extra = sorted(set(grads) - set(expected))
    if missing or extra:
        raise InputError(f"grads must have the keys of model.named_parameters() {sorted(expected)}; "
                         f"missing {missing}, unexpected {extra}")
    checked = {}
    for name, value in grads.items():
        shape = expected[name].shape
        array = check_array(value, f"grads[{name!r}]", ndim=len(shape), allow_empty=True)
        if array.shape != shape:
            raise InputError(f"grads[{name!r}] must have shape {shape} like the parameter; "
                             f"received shape {array.shape}")
        checked[name] = array
    return checked


# ---------------------------------------------------------------------- layer check
def gradcheck_layer(layer, X, epsilon=1e-7, seed=0, dropout="off"):
    """Check one layer's backward: ``dX`` and every parameter gradient.

    The layer's output is reduced to a scalar through a fixed random projection,
    ``J = sum(R * layer.forward(X))`` with ``R`` seeded, so ``backward(R)`` must give
    ``dJ/dX`` and ``dJ/dparam``. Runs on a float64 copy; the layer is left unchanged. When
    ``X`` or the layer's parameters are float32, the layer's float32 backward is also
    compared with its float64 backward (``report.dtype_check``).

    Parameters
    ----------
    layer : Layer
        Built-in or user-written.
    X : ndarray of shape (m, n_in)
        The input at which to check. Coordinates whose perturbation crosses one of the
        layer's kinks (see ``Layer.kink_pattern``) are reported as kinks.
    epsilon : float
    seed : int
        Seeds ``R`` and, with ``dropout="frozen"``, the mask of a Dropout layer (from a stream
        of the check's own, which no layer's generator reproduces).
    dropout : {"off", "frozen"}
        "frozen" runs the layer in training mode with one fixed Dropout mask.

    Returns
    -------
    GradCheckReport
        Parameters named ``"X"`` and the layer's own parameter names.
    """
    if not isinstance(layer, Layer):
        raise InputTypeError(f"layer must be a minidl Layer; received {type(layer).__name__}")
    where = contract.describe(layer)
    contract.check_setup(layer, where)
    contract.check_params(layer, where)
    low = _is_low_precision(X) or any(_is_low_precision(v) for v in layer.params.values())
    X = check_array(X, "X", ndim=2, n_columns=layer.n_in if isinstance(layer, Dense) else None)
    epsilon = check_float(epsilon, "epsilon", low=0.0, high=1.0, low_inclusive=False)
    rng = _check_rng(check_seed(seed))
    training = check_choice(dropout, "dropout", ("off", "frozen")) == "frozen"
    layer = _layer_copy(layer, np.float64)
    if training and isinstance(layer, Dropout):
        layer.fixed_mask = rng.random(X.shape) >= layer.rate
    X = X.copy()
    out = layer.forward(X.copy(), training)
    contract.check_forward(layer, X, out, where)
    R = rng.standard_normal(out.shape)
    dX = contract.run_backward(layer, R.copy(), X.shape, where)
    shortcuts = contract.probe(layer, X, out, training, where, structure=False)   # only kink_pattern is used here
    own = {"X": np.array(dX, dtype=np.float64), **{name: np.array(layer.grads[name], dtype=np.float64)
                                                   for name in layer.params}}
    if low:
        delta = np.abs(X.astype(np.float32) - X) / UNIT_ROUNDOFF_32
        dX_mag, param_mags = backward_magnitudes(layer, X, delta, np.abs(R), training)
        magnitudes = {"X": dX_mag, **param_mags}
    base_pattern = layer.kink_pattern(X) if shortcuts.kinks else None
    # J sums R * out: each term rounds by u of what it sums (|X| |W| + |b| for a Dense).
    magnitude = (np.abs(X) @ np.abs(layer.params["W"]) + np.abs(layer.params["b"])
                 if isinstance(layer, Dense) else np.abs(out))
    sigma = 2 * UNIT_ROUNDOFF * float(np.sum(np.abs(R) * magnitude))

    def J():
        return float(np.sum(R * layer.forward(X.copy(), training)))

    J0 = J()

    def evaluate(array, on_input, flat, h):
        h = np.broadcast_to(h, flat.shape)
        fp, fm, kink = np.empty(flat.size), np.empty(flat.size), np.zeros(flat.size, dtype=bool)
        for b, f in enumerate(flat):
            old = array.flat[f]
            for s, into in ((1, fp), (-1, fm)):
                array.flat[f] = old + s * h[b]
                into[b] = J() - J0
                if on_input and base_pattern is not None:
                    kink[b] |= bool(np.any(layer.kink_pattern(X) != base_pattern))
            array.flat[f] = old
        return fp, fm, kink

    groups = []
    for name, array in [("X", X)] + list(layer.params.items()):
        flat = np.arange(array.size)
        fp, fm, kink = evaluate(array, name == "X", flat, epsilon)
        group = _group(name, array.shape, flat, own[name].ravel(), fp, fm, kink, np.zeros(flat.size), sigma, 0.0)
        groups.append(judge(group, epsilon, lambda positions, h, array=array, name=name:
                            evaluate(array, name == "X", flat[positions], h)))
    dtype_check = None
    if low:
        layer32 = _layer_copy(layer, np.float32)
        if training and isinstance(layer, Dropout):
            layer32.fixed_mask = layer.fixed_mask
        dtype_check = layer_dtype_check(layer32, X, R, training, own, magnitudes)
    report = GradCheckReport(groups, epsilon, title=repr(layer), dtype_check=dtype_check,
                             declarations=shortcuts.notes)
    if not report.passed:
        context = {"X": X, "upstream": R, "m": X.shape[0], "dropout": isinstance(layer, Dropout),
                   "keep_prob": layer.keep_prob if isinstance(layer, Dropout) else None,
                   "W_layer": layer.params.get("W") if isinstance(layer, Dense) else None}
        report.diagnosis = diagnose_groups(groups, f"{layer!r} backward", context)
    return report


def _layer_copy(layer, dtype):
    layer = copy.deepcopy(layer)
    if isinstance(layer, Dense):
        layer.needs_dX = True      # a model's first layer skips dX; here dX is checked
    for name in layer.params:
        layer.params[name] = np.array(layer.params[name], dtype=dtype)
    return layer


# ------------------------------------------------------------------- function check
def check_gradient(J, dJ, theta, epsilon=1e-7, scipy_check=True, seed=0, coords="all", k=10, progress=None):
    """Check any scalar function against its gradient: ``J(theta) -> float``, ``dJ(theta) -> gradient``.

    The seed course's one-dimensional exercise, generalised to any shape of ``theta`` and to
    the parameters learners actually keep: a dict of named arrays (``{"W1": ..., "b1": ...}``),
    or nested dicts and lists of them. J is a black box, so its rounding noise is measured:
    every coordinate (up to 10,000) is evaluated at several steps, and a float32 result counts
    as float32 (see :mod:`minidl.gradcheck.verdict`).

    Parameters
    ----------
    J : callable
        ``J(theta)`` returning a real number. It receives a copy of ``theta``'s structure.
    dJ : callable
        ``dJ(theta)`` returning the gradient: an array of ``theta``'s shape, or the same structure
        as ``theta`` with the same keys or the course's ``d``-prefixed ones (``dW1``, ``db1``;
        other keys such as ``dZ1`` are ignored).
    theta : array_like, dict or list
        Where to check. Not modified.
    epsilon : float
    scipy_check : bool
        Also run ``scipy.optimize.check_grad`` on the flattened theta and say whether it agrees.
    seed : int
        Seeds the sampled coordinates and scipy's random direction.
    coords : {"all", "sample"}
        Every coordinate, or ``k`` seeded random coordinates per named array.
    k : int
    progress : bool, optional
        Show a progress bar; default: on for more than 2,000 coordinates (on a terminal).

    Returns
    -------
    GradCheckReport
        One row per named array (``"theta"`` for a plain array), with diagnosis on failure.

    Examples
    --------
    >>> report = check_gradient(lambda t: float(np.sum(t ** 3)), lambda t: 3 * t ** 2, np.arange(3.0))
    >>> report.passed
    True
    """
    if not callable(J) or not callable(dJ):
        raise InputTypeError(f"J and dJ must be callables; received {type(J).__name__} and {type(dJ).__name__}")
    epsilon = check_float(epsilon, "epsilon", low=0.0, high=1.0, low_inclusive=False)
    coords = check_choice(coords, "coords", ("all", "sample"))
    k = check_int(k, "k", minimum=1)
    seed = check_seed(seed)
    structured = isinstance(theta, (dict, list, tuple))
    number = not structured and np.ndim(theta) == 0         # the course's 1-D part: J and dJ take a number
    if structured:
        leaves = [(name, check_array(value, f"theta{_access(path)}", ndim=np.ndim(value) or 1).copy())
                  for name, path, value in _leaves(theta)]
    else:
        theta = np.atleast_1d(theta) if np.ndim(theta) == 0 else theta     # a number, as in the course's 1-D part
        leaves = [("theta", check_array(theta, "theta", ndim=np.ndim(theta)).copy())]
    if not leaves:
        raise InputError("theta must hold at least one array; received an empty structure")
    arrays = [array for _, array in leaves]
    paths = [path for _, path, _ in _leaves(theta)] if structured else None
    if structured:
        def rebuild():
            return _rebuild(theta, iter([a.copy() for a in arrays]))
    elif number:
        def rebuild():
            return float(arrays[0][0])
    else:
        def rebuild():
            return arrays[0].copy()
    roundoff = [UNIT_ROUNDOFF]

    def value(at_theta=False):
        """J at the current arrays; a non-finite value away from theta is a step to avoid (NaN), not an error."""
        with np.errstate(all="ignore") if not at_theta else contextlib.nullcontext():
            v = J(rebuild())
        if isinstance(v, np.ndarray) and v.size == 1:
            v = v.reshape(())[()]
        if isinstance(v, np.floating):
            roundoff[0] = max(roundoff[0], float(np.finfo(v.dtype).eps) / 2)
        if not at_theta and isinstance(v, numbers.Real) and not isinstance(v, bool) and not np.isfinite(v):
            return float("nan")
        return check_float(v, "J(theta)")

    gradient = dJ(rebuild())
    if structured:
        g_leaves = _gradient_leaves(gradient, theta, paths)
    else:
        g_leaves = [check_array(np.atleast_1d(gradient), "dJ(theta)", ndim=arrays[0].ndim)]
    for (name, array), g in zip(leaves, g_leaves):
        if g.shape != array.shape:
            what = "theta's" if not structured else f"theta{_access(paths[leaves.index((name, array))])}'s"
            raise InputError(f"dJ(theta) must have {what} shape {array.shape}; received shape {g.shape}")
    J0 = value(at_theta=True)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0x4A,)))
    # J is a black box: its own noise (a float32 computation behind a Python float, inputs quantized) is
    # measured from its values along a direction that moves every coordinate by epsilon, as the check does.
    measured, values = _measured_noise(arrays, value, J0, epsilon, rng)
    finite = values[np.isfinite(values)]
    if finite.size > 2 and np.all(finite.astype(np.float32) == finite):
        roundoff[0] = max(roundoff[0], UNIT_ROUNDOFF_32)     # float32 values behind a Python float: float32 work
    sigma = max(roundoff[0] * abs(J0), measured)
    plan = [_choose_coords(array.size, coords, k, rng) for array in arrays]
    total = sum(flat.size for flat in plan)
    show = progress if progress is not None else (total > 2000 and None)
    bar = tqdm(total=total, desc="check_gradient", unit="coord", disable=True if show is False else show, leave=False)

    def evaluator(array):
        def evaluate(positions, h):
            fp, fm = perturb_each(array, positions, h, lambda: value() - J0)
            return fp, fm, np.zeros(positions.size, dtype=bool)
        return evaluate

    groups = []
    for (name, array), g, flat in zip(leaves, g_leaves, plan):
        evaluate = evaluator(array)
        fp, fm, kink = evaluate(flat, epsilon)
        bar.update(flat.size)
        group = _group(name, array.shape, flat, g.ravel()[flat], fp, fm, kink, np.zeros(flat.size), sigma, 0.0)
        judge(group, epsilon, lambda positions, h, evaluate=evaluate, flat=flat: evaluate(flat[positions], h),
              confirm_all=total <= CONFIRM_ALL_MAX)
        groups.append(group)
    bar.close()
    scipy_info = _function_scipy_check(arrays, g_leaves, groups, value, sigma, epsilon, seed) \
        if scipy_check else None
    report = GradCheckReport(groups, epsilon, scipy_info=scipy_info, title="J(theta)")
    report.diagnosis = diagnose_groups(groups, "dJ") if not report.passed else []
    return report


def _function_scipy_check(arrays, g_leaves, groups, value, sigma, epsilon, seed):
    """scipy's check_grad on a black box's J over the flattened arrays, judged by its own error model."""
    sizes = [a.size for a in arrays]
    theta_flat = np.concatenate([a.ravel() for a in arrays])
    g_flat = np.concatenate([g.ravel() for g in g_leaves])

    def J_flat(t):
        saved = [a.copy() for a in arrays]
        for a, part in zip(arrays, np.split(t, np.cumsum(sizes)[:-1])):
            a[...] = part.reshape(a.shape)
        try:
            return value()
        finally:
            for a, old in zip(arrays, saved):
                a[...] = old

    passed = all(not grp.wrong.any() for grp in groups)
    if theta_flat.size > SCIPY_ALL_DIRECTIONS_MAX:
        def line(v):
            return lambda w, frozen=False: (None if frozen else J_flat(theta_flat + w * v), None)
        return scipy_one_direction(line, g_flat, seed, sigma, passed)
    curvature = np.concatenate([_every_coordinate((np.abs(grp.fp + grp.fm) + 2 * K_NOISE * sigma) / epsilon ** 2,
                                                  grp.index, size) for grp, size in zip(groups, sizes)])
    return scipy_all_directions(J_flat, g_flat, theta_flat, sigma, curvature, passed)


def _measured_noise(arrays, value, J0, epsilon, rng, points=8):
    """Moré and Wild's estimate of a function's noise: the spread of the fourth differences of J at
    ``theta + i epsilon d`` (``d`` random signs on every coordinate, i = 0..points-1); 0 when too few are
    finite. Returns ``(noise, the values)``."""
    direction = [rng.choice([-1.0, 1.0], size=a.shape) for a in arrays]
    saved = [a.copy() for a in arrays]
    values = [J0]
    try:
        for i in range(1, points):
            for a, old, d in zip(arrays, saved, direction):
                np.add(old, i * epsilon * d, out=a)
            values.append(value())
    finally:
        for a, old in zip(arrays, saved):
            a[...] = old
    values = np.array(values)
    with np.errstate(all="ignore"):
        fourth = values[4:] - 4 * values[3:-1] + 6 * values[2:-2] - 4 * values[1:-3] + values[:-4]
    fourth = fourth[np.isfinite(fourth)]
    return (float(np.sqrt(np.mean(fourth ** 2) / 70)) if fourth.size else 0.0), values


def _leaves(obj, path=()):
    """``(name, path, array)`` for every array in a dict / list / tuple structure, in order."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _leaves(value, path + (key,))
    elif isinstance(obj, (list, tuple)) and not (obj and all(isinstance(v, (int, float)) for v in obj)):
        for i, value in enumerate(obj):
            yield from _leaves(value, path + (i,))
    else:
        yield _name(path), path, obj


def _name(path):
    name = ""
    for part in path:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "theta"


def _access(path):
    return "".join(f"[{part!r}]" for part in path)


def _rebuild(obj, arrays):
    """The structure of ``obj`` with its arrays replaced, in order, by ``arrays``."""
    if isinstance(obj, dict):
        return {key: _rebuild(value, arrays) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)) and not (obj and all(isinstance(v, (int, float)) for v in obj)):
        return type(obj)(_rebuild(value, arrays) for value in obj)
    return next(arrays)


def _gradient_leaves(gradient, theta, paths):
    """The gradient's array for every leaf path of theta: same keys, or the course's ``d``-prefixed ones."""
    found = []
    for path in paths:
        node, where = gradient, ()
        for part in path:
            if isinstance(node, dict):
                key = part if part in node else f"d{part}" if isinstance(part, str) and f"d{part}" in node else None
                if key is None:
                    level = theta
                    for p in where:
                        level = level[p]
                    expected = sorted(map(str, level))
                    missing = sorted(str(p) for p in level if p not in node and f"d{p}" not in node)
                    raise InputError(f"dJ(theta) must return the keys of theta{_access(where)} {expected} (or "
                                     f"'d'-prefixed ones); missing {missing}")
                node = node[key]
            elif isinstance(node, (list, tuple)) and isinstance(part, int) and part < len(node):
                node = node[part]
            else:
                raise InputError(f"dJ(theta) must have theta's structure; nothing at {_access(path)}")
            where += (part,)
        found.append(check_array(np.atleast_1d(node), f"dJ(theta){_access(path)}", ndim=np.ndim(node) or 1))
    return found
