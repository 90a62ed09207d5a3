"""float32: the gradients a model trains with, against its float64 gradients, judged by float32 rounding.

The check itself runs in float64, so a backward that is wrong only for float32 arrays (a dtype
mix-up, an overflow) would pass it. Here a float32 model's own float32 backprop is compared with
its float64 backprop at the same weights, each coordinate allowed ``K_DTYPE`` times a first-order
bound of float32 rounding: the magnitudes backprop sums into it (``backward_magnitudes``) and the
rounding the forward pass brings (``forward_magnitudes``). The same allowance covers float32
gradients handed to ``gradcheck(grads=...)``.
"""
import copy

import numpy as np

from ..layers import Dense, Dropout
from .engine import Evaluator

K_DTYPE = 100         # safety factor on the rounding of float32 backprop (first-order bound)
SHIFT = 2.0 ** -24    # relative shift used to measure first-order sensitivities
UNIT_ROUNDOFF_32 = float(np.finfo(np.float32).eps) / 2


def forward_magnitudes(layer, A, delta, out, training):
    """The rounding carried by ``layer``'s output, in units of u, from ``delta`` carried by its input ``A``.

    A Dense rounds by about ``u (|A| |W| + |b|)`` (measured: up to 1.6 times that on float32 sums
    of 5 to 12,288 terms) and passes its input's errors on as ``sqrt(delta^2 W^2)``: they come
    from independent roundings, so their signs mix. Other layers pass ``delta`` on through their
    own forward (half the spread of ``f(A +- s delta)`` over ``s``) and round their ``out``.
    """
    if isinstance(layer, Dense):
        W = layer.params["W"]
        return np.sqrt(np.square(delta) @ np.square(W)) + np.abs(A) @ np.abs(W) + np.abs(layer.params["b"])
    spread = np.abs(layer.forward(A + SHIFT * delta, training) - layer.forward(A - SHIFT * delta, training))
    return spread / (2 * SHIFT) + np.abs(out)


def backward_magnitudes(layer, A, delta, M, training=False, needs_dX=True):
    """Magnitudes of what ``layer``'s backward sums, from the magnitude ``M`` of its incoming gradient.

    For a Dense: ``(|A| + delta)^T M`` for dW, ``sum M`` for db, ``M |W|^T`` for dX: the sums whose
    rounding a gradient carries (cancellation included), and the rounding ``delta`` (units of u)
    that its input brings from the forward pass. Other layers: ``|backward(M)| + M`` (the
    derivative's formula, ``1 - A**2`` or ``A (1 - A)``, rounds by about u absolute, which is all
    that is left of a saturated unit's derivative), plus how much backward moves when its input
    moves by ``delta``, measured by running it again at ``A + s delta`` (zero for ReLU, whose
    derivative does not move unless the unit crosses its kink). Leaves the layer's cache at ``A``.
    Returns ``(magnitude of dX or None, {param: magnitude})``.
    """
    if isinstance(layer, Dense):
        W = np.abs(layer.params["W"])
        return (M @ W.T if needs_dX else None), {"W": (np.abs(A) + delta).T @ M, "b": M.sum(axis=0)}
    layer.forward(A.copy(), training)
    dX = layer.backward(M)
    grads = {name: np.array(layer.grads[name]) for name in layer.params}
    shifted = A + SHIFT * delta
    layer.forward(shifted.copy(), training)
    dX2 = layer.backward(M)
    pattern, pattern2 = layer.kink_pattern(A), layer.kink_pattern(shifted)
    same = np.ones(A.shape, dtype=bool) if pattern is None else pattern == pattern2
    params = {name: np.abs(g) + np.abs(np.asarray(layer.grads[name]) - g) / SHIFT for name, g in grads.items()}
    layer.forward(A.copy(), training)
    if dX is None:
        return None, params
    moved = np.abs(dX2 - dX) / SHIFT
    if moved.shape == same.shape:
        moved = np.where(same, moved, 0.0)     # a unit crossing its kink is left out of the comparison
    return np.abs(dX) + moved + (M if dX.shape == M.shape else 0.0), params


def dtype_allowance(g, magnitude, dtype):
    """How far a gradient computed in ``dtype`` may stray from ``g`` by rounding alone.

    ``K_DTYPE`` times the unit roundoff of what was summed, plus the dtype's smallest normal
    number (values below it underflow). A float16 slip inside a float32 computation is ~8,000
    times the unit roundoff, so it stays far beyond.
    """
    info = np.finfo(dtype)
    return K_DTYPE * (float(info.eps) / 2 * (np.abs(g) + magnitude) + float(info.tiny))


def magnitudes(ev):
    """Per parameter, the magnitudes of what backprop sums into its gradient, forward rounding included.

    See ``forward_magnitudes`` and ``backward_magnitudes`` (which run each layer's forward at the
    cached activations before reading its cache).
    """
    net = ev.net
    deltas = [np.abs(ev.X.astype(np.float32) - ev.X) / UNIT_ROUNDOFF_32]   # the input's own rounding
    for layer, A, out in zip(ev.body, ev.acts, ev.acts[1:]):
        deltas.append(forward_magnitudes(layer, A.copy(), deltas[-1], out, ev.training))
    out = ev.acts[-1]
    # The loss's gradient rounds by u of itself and moves with the logit's rounding.
    dout = lambda o: net.loss.dout(o, ev.Y, net.logit_head)
    M = np.abs(dout(out)) + np.abs(dout(out + SHIFT * deltas[-1]) - dout(out)) / SHIFT
    found = {}
    for i in reversed(range(len(ev.body))):
        M, params = backward_magnitudes(ev.body[i], ev.acts[i], deltas[i], M, ev.training, needs_dX=i > 0)
        found.update({f"{i}.{pname}": value for pname, value in params.items()})
        if M is None:
            break
    for i, layer in enumerate(net.layers):
        for pname in layer.regularized:
            found[f"{i}.{pname}"] = found[f"{i}.{pname}"] + net.loss.l2 / ev.m * np.abs(layer.params[pname])
    return found


def float32_allowance(own, magnitudes):
    return {name: dtype_allowance(g, magnitudes[name], np.float32) for name, g in own.items()}


def dtype_check(model, ev, own, masks, allowance):
    """The model's own float32 backprop against its float64 backprop at the same weights.

    Examples whose float32 forward puts a unit on the other side of a kink (a ReLU input that
    rounds across 0) are left out of both: their gradients differ by a slope, not by a bug.
    """
    net = copy.deepcopy(model)
    X32, Y32 = ev.X.astype(np.float32), ev.Y.astype(np.float32)
    A, crossed = X32, np.zeros(ev.m, dtype=bool)
    for k, layer in enumerate(net.body):
        if isinstance(layer, Dropout) and masks is not None:
            layer.fixed_mask = masks[net.layers.index(layer)]
        pattern = layer.kink_pattern(A)
        if pattern is not None:
            crossed |= (pattern != ev.patterns[k]).reshape(ev.m, -1).any(axis=1)
        A = layer.forward(A, masks is not None)
    keep = ~crossed
    if crossed.any():
        if not keep.any():
            return {"dtype": "float32", "wrong": {}, "passed": True, "left_out": ev.m}
        masks = None if masks is None else {i: mask[keep] for i, mask in masks.items()}
        ev = Evaluator(model, ev.X[keep], ev.Y[keep], masks)
        own = ev.analytic()
        allowance = float32_allowance(own, magnitudes(ev))
        for i, mask in (masks or {}).items():
            net.layers[i].fixed_mask = mask
    layer_grads = _layer_gradients(net, X32[keep], Y32[keep], masks is not None)
    net.trusted_backprop(X32[keep], Y32[keep], training=masks is not None)
    wrong, rounded = {}, {}
    for name, g32 in net.named_gradients():
        wrong[name] = int(np.sum(~(np.abs(g32.astype(np.float64) - own[name]) <= allowance[name])))
        coarser = rounded_to(layer_grads[name], own[name])
        if coarser:
            rounded[name] = coarser
            wrong[name] = max(wrong[name], int(np.sum(g32.astype(np.float64) != own[name])))
    return {"dtype": "float32", "wrong": wrong, "passed": not any(wrong.values()), "left_out": int(crossed.sum()),
            "rounded": rounded}


def _layer_gradients(net, X, Y, training):
    """The float32 gradients as the layers' backward left them, before the L2 term is added (the sum would
    take them off a coarser grid): a backprop with the built-in penalty's l2 set to 0 for the call."""
    l2 = net.loss.l2
    net.loss.l2 = 0.0
    try:
        net.trusted_backprop(X, Y, training=training)
    finally:
        net.loss.l2 = l2
    return {name: np.array(g) for name, g in net.named_gradients()}


COARSER = ("float16", "bfloat16")
FINGERPRINT = 4       # entries that must all land on the coarser grid: by chance, 2^-13 (2^-16) each


def rounded_to(g32, g64):
    """The coarser float type a float32 gradient was rounded through (a float16 slip), or None.

    A float32 sum lands on float16's grid (13 trailing mantissa bits zero) with probability 2^-13 per
    entry; when every entry whose float64 value is not on that grid itself lands on it, and there are
    at least ``FINGERPRINT`` of them, the gradient went through float16. Per-coordinate bounds cannot
    see this where cancellation makes the float32 allowance as large as float16's rounding.
    """
    g32 = np.asarray(g32, dtype=np.float32).ravel()
    g64 = np.asarray(g64, dtype=np.float64).ravel()
    bits = g32.view(np.uint32)
    with np.errstate(over="ignore"):
        on_grid = {"float16": g32.astype(np.float16).astype(np.float32) == g32, "bfloat16": (bits & 0xFFFF) == 0}
        exact = {"float16": g64.astype(np.float16).astype(np.float64) == g64,
                 "bfloat16": (g64.astype(np.float32).view(np.uint32) & 0xFFFF) == 0}
    for dtype in COARSER:
        telling = (g32 != 0) & ~exact[dtype]
        if telling.sum() >= FINGERPRINT and on_grid[dtype][telling].all():
            return dtype
    return None


def layer_dtype_check(layer32, X, R, training, own, magnitudes):
    """The layer's float32 backward against its float64 backward at the same input and parameters."""
    layer32.forward(X.astype(np.float32), training)
    low = {"X": layer32.backward(R.astype(np.float32)), **layer32.grads}
    wrong = {}
    for name, g in own.items():
        allowance = dtype_allowance(g, magnitudes[name], np.float32)
        wrong[name] = int(np.sum(~(np.abs(np.asarray(low[name], dtype=np.float64) - g) <= allowance)))
    return {"dtype": "float32", "wrong": wrong, "passed": not any(wrong.values())}
