"""Diagnosis: from "these parameters fail" to "this function is wrong, and this is the mistake".

Isolation. When a model's own backprop fails the check, every function backprop is made of is
checked on its own, at the inputs the model actually gave it: each layer's ``backward`` (its
``dX`` and every parameter gradient) on ``J_k = sum(dA_k * layer.forward(A_k))`` with the cached
input ``A_k`` and the upstream gradient ``dA_k`` the model sent, the loss's gradient with respect
to its input, and the L2 term's gradient. A wrong function is wrong there whatever the rest does.

Classification. From a wrong quantity's analytic and numeric values the mistake is named when
the evidence fits one exactly (the kinds below, each an exact transformation of the right
value, so fits are judged to 1e-6 relative), with the fitted numbers; otherwise the finding
only says which function is wrong. Kinds: ``zero``, ``factor`` (2, 1/2, -1, m, 1/m, keep_prob,
1/keep_prob or any fitted constant), ``l2`` (``g - g_num`` proportional to W), ``transposed``,
``untransposed W`` (``dZ @ W`` where ``dZ @ W.T`` belongs), ``mask not applied``, ``element``,
``row``, ``column`` and ``range`` (an elementwise derivative wrong only where the input is
negative, positive, or beyond / within some magnitude).

Nothing runs unless a check failed.
"""
from dataclasses import dataclass, field

import numpy as np

from ..layers import Dense, Dropout
from .engine import UNIT_ROUNDOFF, perturb_each
from .result import ParameterCheck
from .verdict import K_NOISE, RTOL, confirm, judge

FIT = 1e-6          # relative residual below which a kind of mistake fits
L2_FUNCTION = "the L2 term's gradient"
SAMPLE = 400        # coordinates per array checked one by one (generic layers)
STEP = 1e-4         # relative step of the batched position-wise checks


@dataclass
class Finding:
    """One diagnosed mistake.

    Attributes
    ----------
    layer : int or None
        Index in ``model.layers``; None for the loss, the L2 term, gradients handed in or J.
    function : str
        What is wrong, e.g. ``"layer 3 (BadTanh) backward"``, ``"the loss's gradient"``.
    quantity : str
        The wrong output: ``"dX"``, a parameter name (``"W"``, ``"0.b"``), ``"dout"``, ...
    kind : str or None
        The kind of mistake (see the module docstring), or None when none fits.
    numbers : dict
        The fitted numbers (``factor``, ``index``, ``where``, counts, ...).
    message : str
        One sentence for a person.
    """
    layer: object
    function: str
    quantity: str
    kind: object
    numbers: dict = field(default_factory=dict)
    message: str = ""

    def __str__(self):
        return self.message


# ------------------------------------------------------------------ comparing one quantity
class Quantity:
    """Analytic and numeric values of one output of one function, and where they disagree."""

    def __init__(self, name, analytic, numeric, wrong, positions=None, shape=None):
        self.name, self.analytic, self.numeric, self.wrong = name, analytic, numeric, wrong
        self.positions = positions          # flat indices when only a sample was checked
        self.shape = shape if shape is not None else np.shape(analytic)

    @property
    def full(self):
        return self.positions is None


def _exact(name, A, N, magnitude):
    """Compare with a numeric value that is exact up to the rounding of the sums in ``magnitude``."""
    A, N = np.asarray(A, dtype=float), np.asarray(N, dtype=float)
    bar = K_NOISE * UNIT_ROUNDOFF * magnitude + RTOL * (np.abs(A) + np.abs(N))
    return Quantity(name, A, N, np.abs(A - N) > bar)


def _positionwise(name, layer, X, dA, analytic, training, kinks=True):
    """dX of a layer whose output [r, c] depends on X[r, c] alone: every coordinate in a few forwards.

    Moving X[r, c] by h changes J_k by ``dA[r, c] (f(X + h)[r, c] - f(X)[r, c])``, so shifting the
    whole array at once gives every coordinate's change; the shared confirmation does the rest.
    """
    base = layer.forward(X.copy(), training)
    pattern = layer.kink_pattern(X) if kinks else None
    scale = 1 + np.abs(X)        # steps relative to each entry's size

    def evaluate(h):
        out = []
        for s in (1, -1):
            moved = X + s * h * scale
            change = dA * (layer.forward(moved.copy(), training) - base)
            kink = np.zeros(X.shape, bool) if pattern is None else layer.kink_pattern(moved) != pattern
            out.append((change, kink))
        (fp, kp), (fm, km) = out
        return fp.ravel(), fm.ravel(), (kp | km).ravel()

    g = np.asarray(analytic, dtype=float).ravel()
    sigma = (2 * UNIT_ROUNDOFF * np.abs(dA) * (np.abs(base) + 1)).ravel()
    fp, fm, kink = evaluate(STEP)
    # In units of the relative step the derivative is dJ/dX (1 + |X|); divided back below.
    flat_scale = scale.ravel()
    def at_steps(hs):
        out = [evaluate(h) for h in hs]
        return tuple(np.array([o[i] for o in out]) for i in range(3))

    wrong, kink2, numeric, _ = confirm(g * flat_scale, 0.0, sigma, STEP, 0.0, (fp, fm, kink), at_steps)
    keep = ~(kink | kink2)
    return Quantity(name, np.asarray(analytic, dtype=float), (numeric / flat_scale).reshape(X.shape),
                    (wrong & keep).reshape(X.shape))


def _sampled(name, array, J, analytic, rng, epsilon=1e-6):
    """A quantity checked coordinate by coordinate through the shared verdict (a sample when large)."""
    size = array.size
    positions = np.arange(size) if size <= SAMPLE else np.sort(rng.choice(size, SAMPLE, replace=False))
    J0 = J()

    def evaluate(pos, h):
        fp, fm = perturb_each(array, positions[pos], h, lambda: J() - J0)
        return fp, fm, np.zeros(pos.size, dtype=bool)

    all_pos = np.arange(positions.size)
    fp, fm, kink = evaluate(all_pos, epsilon)
    g = np.asarray(analytic, dtype=float).ravel()[positions]
    group = ParameterCheck(name, array.shape, positions, g, fp, fm, kink, np.zeros(g.size),
                           2 * UNIT_ROUNDOFF * (abs(J0) + 1e-300), np.zeros(g.size))
    judge(group, epsilon, evaluate, confirm_all=True)
    if size <= SAMPLE:
        return Quantity(name, np.asarray(analytic, dtype=float), group.numeric.reshape(array.shape),
                        group.wrong.reshape(array.shape))
    return Quantity(name, g, group.numeric, group.wrong, positions=positions, shape=array.shape)


# ------------------------------------------------------------------ isolation
def isolate(ev, seed=0):
    """Check every function of the network on its own: ``[(function, layer, quantities, upstream)]``.

    ``quantities`` lists the :class:`Quantity` of each output; a function is wrong when any of
    them has a wrong coordinate. Layers are listed from the loss backwards, as backprop runs.
    """
    net, training = ev.net, ev.training
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0xD1A9,)))
    out = net.run_layers(ev.X.copy(), ev.body, training)
    Y, m = ev.Y, ev.m
    dout = net.loss.dout(out, Y, net.logit_head)
    checked = []

    # the loss's gradient: example r's loss depends on out[r] alone, so it is position-wise too
    def loss_of(o):
        return net.loss.losses(o, Y, net.logit_head) / m

    loss_layer = _FunctionLayer(loss_of)
    checked.append(("the loss's gradient", None, [_positionwise("dout", loss_layer, out, np.ones_like(out), dout,
                                                                False)], None))
    # the L2 term's gradient, for every regularized parameter
    l2_quantities = []
    for i, layer in enumerate(net.layers):
        for pname in layer.regularized:
            W = layer.params[pname]
            analytic = net.loss.dpenalty(W, m)
            if ev.closed_form_l2:
                l2_quantities.append(_exact(f"{i}.{pname}", analytic, net.loss.l2 / m * W, net.loss.l2 / m * np.abs(W)))
            else:
                l2_quantities.append(_sampled(f"{i}.{pname}", W, lambda: net.loss.penalty(net.regularized_weights(), m),
                                              analytic, rng))
    if l2_quantities:
        checked.append((L2_FUNCTION, None, l2_quantities, None))
    # each layer's backward at what the model gave it
    dA = dout
    for k in reversed(range(len(ev.body))):
        layer, A = ev.body[k], ev.acts[k]
        upstream = dA
        given = A.copy()
        layer.forward(given, training)
        cached, sent = given.copy(), upstream.copy()     # the backward's own copies: it may write into them
        dX = layer.backward(sent)
        writes = [what for what, before, after in (("its upstream gradient dA", upstream, sent),
                                                   ("its cached input X", cached, given))
                  if not np.array_equal(before, after, equal_nan=True)]
        grads = {name: np.array(layer.grads[name], dtype=float) for name in layer.params}
        quantities = _layer_quantities(layer, A, upstream, dX, grads, training, rng, ev.shortcuts[k])
        index = net.layers.index(layer)
        function = f"layer {index} ({type(layer).__name__}) backward"
        if writes and any(np.any(q.wrong) for q in quantities):
            quantities.append(InPlace(" and ".join(writes)))
        checked.append((function, index, quantities, upstream))
        if dX is None:
            break
        dA = dX
    return checked


class _FunctionLayer:
    """A position-wise function seen as a layer (the loss as a function of what it sees)."""

    elementwise = True

    def __init__(self, f):
        self.f = f

    def forward(self, X, training=False):
        return self.f(X)

    def kink_pattern(self, X):
        return None


def _layer_quantities(layer, A, upstream, dX, grads, training, rng, shortcuts):
    """The outputs of ``layer.backward(upstream)`` at input ``A``, each against its numeric value.

    ``shortcuts`` (:class:`minidl.contract.Shortcuts`) says whether the layer is elementwise and its
    kink pattern usable, as probed on the data of the check."""
    quantities = []
    if isinstance(layer, Dense) and type(layer).forward is Dense.forward:
        # minidl's own affine forward: its central differences are these sums, exact up to rounding
        W = layer.params["W"]
        if dX is not None:
            quantities.append(_exact("dX", dX, upstream @ W.T, np.abs(upstream) @ np.abs(W).T))
        quantities.append(_exact("W", grads["W"], A.T @ upstream, np.abs(A).T @ np.abs(upstream)))
        quantities.append(_exact("b", grads["b"], upstream.sum(axis=0), np.abs(upstream).sum(axis=0)))
        return quantities
    positionwise = shortcuts.elementwise or isinstance(layer, Dropout)
    if dX is not None:
        if positionwise and np.shape(dX) == A.shape:
            quantities.append(_positionwise("dX", layer, A, upstream, dX, training, shortcuts.kinks))
        else:
            X = A.copy()
            quantities.append(_sampled("dX", X, lambda: float(np.sum(upstream * layer.forward(X.copy(), training))),
                                       dX, rng))
    for name, g in grads.items():
        quantities.append(_sampled(name, layer.params[name],
                                   lambda: float(np.sum(upstream * layer.forward(A.copy(), training))), g, rng))
    layer.forward(A.copy(), training)      # leave the cache at theta
    return quantities


class InPlace:
    """A backward that wrote into an array it was given: a finding of its own, beside the wrong quantities."""

    def __init__(self, what):
        self.name, self.what, self.wrong = "in place", what, np.ones(1, dtype=bool)


# ------------------------------------------------------------------ classification
def classify(quantity, function, layer_index=None, context=None):
    """Name the mistake in a wrong quantity when one kind fits; returns a :class:`Finding`."""
    context = context or {}
    if isinstance(quantity, InPlace):
        return Finding(layer_index, function, "in place", "in place", {"wrote": quantity.what},
                       f"{function} writes into {quantity.what} in place (e.g. dX = dA; dX *= s): whatever it "
                       f"computes after that reads the changed values; work on a copy")
    A, N, wrong = quantity.analytic, quantity.numeric, quantity.wrong
    where = f"{function}: {quantity.name}"
    n_wrong, n = int(np.sum(wrong)), int(np.size(wrong))

    def finding(kind, message, **numbers):
        return Finding(layer_index, function, quantity.name, kind, dict(numbers, wrong=n_wrong, checked=n),
                       f"{where} {message}")

    norm_N, norm_A = float(np.linalg.norm(N)), float(np.linalg.norm(A))
    if norm_A == 0 and norm_N > 0:
        return finding("zero", "is zero everywhere: never computed, or never stored")
    rounded = _rounding(A, N, wrong)
    if rounded:
        dtype, worst = rounded
        return finding("rounding", f"agrees with the right value rounded to {dtype} (relative errors up to "
                       f"{worst:.1e}, {dtype}'s rounding): it was computed or stored in {dtype}, too coarse to "
                       f"check or to train with", dtype=dtype)
    if norm_N > 0:
        c = float(np.vdot(A, N) / np.vdot(N, N))
        residual = float(np.linalg.norm(A - c * N))
        # a factor is a finding only when it differs from 1 beyond its own error bar (the fit's residual)
        if c != 0 and residual <= FIT * max(norm_A, norm_N) and abs(c - 1) > 10 * max(FIT, residual / norm_N):
            name = _name_factor(c, context)
            return finding("factor", f"is {name} times the right value (fitted factor {c:.6g})", factor=c, name=name)
    W, l2, m = context.get("W"), context.get("l2", 0.0), context.get("m")
    if W is not None and l2 and m and np.shape(W) == np.shape(A) and quantity.full:
        diff = A - N
        c = float(np.vdot(diff, W) / max(np.vdot(W, W), 1e-300))
        if c != 0 and _explains(np.linalg.norm(diff - c * W), diff, max(norm_A, norm_N)):
            times = c * m / l2
            if abs(times + 1) < 1e-3:
                text = "lacks the L2 term's gradient: g - g_num = -(l2/m) W"
            elif abs(times - 1) < 1e-3:
                text = "has the L2 term's gradient twice: g - g_num = +(l2/m) W"
            else:
                text = f"has the L2 gradient with a wrong factor: g - g_num = {times:.4g} (l2/m) W"
            return finding("l2", text, factor=times)
    if quantity.full and np.ndim(A) == 2 and A.shape[0] == A.shape[1] and norm_N > 0 \
            and np.linalg.norm(A.T - N) <= FIT * norm_N:
        return finding("transposed", "is the transpose of the right matrix")
    if quantity.full and np.ndim(A) == 2 and A.shape[0] != A.shape[1] and norm_N > 0 \
            and np.linalg.norm(A - N.T.reshape(A.shape)) <= FIT * norm_N:
        return finding("transposed", f"holds the transpose of the right matrix reshaped to {A.shape}: a "
                                     f"(n_out, n_in) gradient where (n_in, n_out) belongs, or the other way")
    upstream, weights = context.get("upstream"), context.get("W_layer")
    if quantity.name == "dX" and upstream is not None and weights is not None and weights.shape[0] == weights.shape[1] \
            and np.linalg.norm(A - upstream @ weights) <= FIT * max(norm_A, 1e-300):
        return finding("untransposed W", "uses W where W.T belongs: dX = dZ @ W.T, not dZ @ W")
    if quantity.name == "dX" and context.get("dropout") and upstream is not None:
        if np.linalg.norm(A - upstream) <= FIT * max(norm_A, 1e-300):
            return finding("mask not applied", "equals the incoming gradient: Dropout's backward does not apply "
                                               "the mask")
        keep = context.get("keep_prob")
        if keep and np.linalg.norm(A - upstream / keep) <= FIT * max(norm_A, 1e-300):
            return finding("mask not applied", f"equals the incoming gradient divided by keep_prob = {keep:g}: "
                                               f"Dropout's backward rescales but does not apply the mask")
    if quantity.full and 0 < n_wrong < n:
        found = _where_kind(A, N, wrong, n_wrong, n, context.get("X"))
        if found:
            return finding(*found[:2], **found[2])
    return finding(None, f"is wrong ({n_wrong:,} of {n:,} checked entries); none of the known mistakes fits")


def _explains(residual, diff, scale):
    """A model of the discrepancy ``diff = g - g_num`` fits: what it leaves is within the fit tolerance of
    the gradient's scale, and it accounts for nearly all of the discrepancy (not a sliver of a larger one)."""
    return residual <= FIT * scale and residual <= 0.01 * float(np.linalg.norm(diff))


ROUNDINGS = (("float32", 2.0 ** -24), ("float16", 2.0 ** -11))


def _rounding(A, N, wrong):
    """``(dtype, worst relative error)`` when A is N rounded to a lower precision: every entry of A is
    representable in that dtype and every wrong one is within its rounding of N; None otherwise."""
    A, N = np.asarray(A, dtype=float), np.asarray(N, dtype=float)
    wrong = np.asarray(wrong, dtype=bool)
    if not wrong.any():
        return None
    scale = float(np.max(np.abs(N), initial=0.0))
    for dtype, u in ROUNDINGS:
        with np.errstate(over="ignore"):
            representable = np.array_equal(A.astype(dtype).astype(float), A)
        if not representable:
            continue
        error = np.abs(A - N)[wrong]
        info = np.finfo(dtype)
        # round to nearest (subnormals: half their fixed spacing), and the numeric value's own error
        bound = 2 * u * np.abs(N[wrong]) + float(info.tiny) * float(info.eps) + FIT * scale
        if np.all(error <= bound):
            return dtype, float(np.max(error / np.maximum(np.abs(N[wrong]), np.finfo(float).tiny)))
    return None


def _where_kind(A, N, wrong, n_wrong, n, X):
    """``(kind, message, numbers)`` when the wrong entries lie in one element, row or column, or one part of
    the input range; None otherwise."""
    index = [tuple(int(i) for i in ix) for ix in np.argwhere(wrong)]
    if n_wrong == 1:
        return ("element", f"is wrong in one element only, {list(index[0])} (analytic {A[index[0]]:.6g}, numeric "
                           f"{N[index[0]]:.6g}): an indexing slip", {"index": index[0]})
    if np.ndim(A) == 2:
        rows, cols = {ix[0] for ix in index}, {ix[1] for ix in index}
        if len(rows) == 1 and A.shape[0] > 1:
            return ("row", f"is wrong only in row {rows.pop()} ({n_wrong} of {A.shape[1]} entries): an indexing or "
                           f"broadcasting slip", {"row": index[0][0]})
        if len(cols) == 1 and A.shape[1] > 1:
            return ("column", f"is wrong only in column {cols.pop()} ({n_wrong} of {A.shape[0]} entries): an "
                              f"indexing or broadcasting slip", {"column": index[0][1]})
    if X is not None and np.shape(X) == np.shape(A):
        found = _input_range(X, wrong, np.abs(A - N) > 0)
        if found:
            text, numbers = found
            return ("range", f"is wrong only {text} ({n_wrong} of {n} entries) and right elsewhere: the "
                             f"derivative's formula is wrong on that part of the input range", numbers)
    return None


def _name_factor(c, context):
    """The constant's names: ``2``, ``1/m = 1/8``; every name that fits (``4 = m`` when m is 4)."""
    m, keep = context.get("m"), context.get("keep_prob")
    names = [(2.0, "2"), (0.5, "1/2"), (-1.0, "-1"), (4.0, "4"), (0.25, "1/4"), (-2.0, "-2")]
    if m:
        names += [(float(m), "m" if float(m) in (2.0, 4.0) else f"m = {m}"),
                  (1.0 / m, "1/m" if 1.0 / m in (0.5, 0.25) else f"1/m = 1/{m}")]
    if keep:
        names += [(keep, f"keep_prob = {keep:g}"), (1.0 / keep, f"1/keep_prob = {1 / keep:g}")]
    fitting = [name for value, name in names if abs(c - value) <= 1e-6 * abs(value)]
    return " = ".join(fitting) if fitting else f"{c:.6g}"


def _input_range(X, wrong, differs):
    """Where on the input range the wrong entries lie: sign, or a magnitude threshold; None if neither."""
    X = np.asarray(X, dtype=float)
    for text, region in (("where the input is negative", X < 0), ("where the input is positive", X > 0)):
        # every wrong entry in the region, and most of the region's differing entries wrong (tiny ones
        # can stay within their bars)
        if wrong.any() and not (wrong & ~region).any() and wrong.sum() >= 0.5 * (region & differs).sum():
            return text, {"where": text}
    magnitude = np.abs(X)
    if wrong.any() and (~wrong).any():
        low_wrong, high_right = magnitude[wrong].min(), magnitude[~wrong].max()
        if low_wrong > high_right:
            return f"where |input| >= {low_wrong:.3g}", {"where": "large", "threshold": float(low_wrong)}
        high_wrong, low_right = magnitude[wrong].max(), magnitude[~wrong].min()
        if high_wrong < low_right:
            return f"where |input| <= {high_wrong:.3g}", {"where": "small", "threshold": float(high_wrong)}
    return None


# ------------------------------------------------------------------ the whole diagnosis
def diagnose_model(ev, report, grads_given, seed=0):
    """``(findings, isolation sentence or None)`` for a failed model check; ``([], None)`` when it passed."""
    if report.passed:
        return [], None
    net, m = ev.net, ev.m
    if not any(grp.wrong.any() for grp in report.groups):       # right in float64: only float32 differs
        return _float32_findings(net, report.dtype_check)
    if grads_given:
        regularized = {f"{i}.{p}" for i, layer in enumerate(net.layers) for p in layer.regularized}
        return diagnose_gradients(report.groups, dict(net.named_parameters()), regularized, net.loss.l2, m), None
    checked = isolate(ev, seed)
    findings = []
    for function, index, quantities, upstream in checked:
        layer = None if index is None else net.layers[index]
        for quantity in quantities:
            if not np.any(quantity.wrong):
                continue
            context = {"m": m, "l2": net.loss.l2}
            if index is not None:
                k = ev.body.index(layer)
                context.update(X=ev.acts[k], upstream=upstream, dropout=isinstance(layer, Dropout),
                               keep_prob=getattr(layer, "keep_prob", None) if isinstance(layer, Dropout) else None,
                               W_layer=layer.params.get("W") if isinstance(layer, Dense) else None)
            finding = classify(quantity, function, index, context)
            if function == L2_FUNCTION:
                finding = _l2_finding(finding, quantity)
            findings.append(finding)
    if not findings:
        return [], ("every function is right on its own at the inputs the model gave it, so no function is "
                    "named: only the whole network's gradients differ from its numeric ones (see the worst "
                    "coordinates); a backward that reads state another call overwrote would do that")
    return findings, _isolation_sentence(checked)


def _float32_findings(net, check):
    """Findings for a model right in float64 whose own float32 gradients differ beyond float32 rounding."""
    findings = []
    for name, count in check["wrong"].items():
        if not count:
            continue
        index, pname = name.split(".", 1)
        layer = net.layers[int(index)]
        function = f"layer {index} ({type(layer).__name__}) backward"
        coarser = check.get("rounded", {}).get(name)
        if coarser:
            findings.append(Finding(int(index), function, pname, "rounding", {"dtype": coarser, "wrong": count},
                                    f"{function}: {pname} in {check['dtype']} is rounded to {coarser} ({count:,} "
                                    f"entries on {coarser}'s grid): a {coarser} slip inside the {check['dtype']} "
                                    f"computation"))
        else:
            findings.append(Finding(int(index), function, pname, None, {"wrong": count},
                                    f"{function}: {pname} in {check['dtype']} differs from its float64 value beyond "
                                    f"{check['dtype']} rounding in {count:,} entries (a dtype mix-up, an overflow)"))
    names = "; ".join(f"{f.function}: {f.quantity}" for f in findings)
    return findings, f"in float64 every function is right; in {check['dtype']}, {names} is wrong"


def _isolation_sentence(checked):
    """``layer 3 (BadTanh) backward: dX is wrong; its parameters and every other function are right``."""
    wrong = [(function, [q.name for q in quantities if np.any(q.wrong) and not isinstance(q, InPlace)],
              [q.name for q in quantities if not np.any(q.wrong)]) for function, _, quantities, _ in checked]
    wrong = [w for w in wrong if w[1]]
    parts = []
    for function, bad, good in wrong:
        text = f"{function}: {', '.join(bad)} {'is' if len(bad) == 1 else 'are'} wrong"
        if good:
            text += f" ({', '.join(good)} right)"
        parts.append(text)
    others = "every other function is right" if len(checked) > len(wrong) else "nothing else was checked"
    return "; ".join(parts) + f"; {others}"


def _l2_finding(finding, quantity):
    """The L2 function's own mistakes, in its own words: missing, doubled, or another factor."""
    if finding.kind == "zero":
        factor, text = 0.0, "is missing: the gradient of (l2 / 2m) ||W||^2, (l2/m) W, is never added"
    elif finding.kind == "factor":
        factor = finding.numbers["factor"]
        text = ("is added twice" if abs(factor - 2) < 1e-6 else
                f"has a wrong factor: {factor:.6g} (l2/m) W instead of (l2/m) W")
    else:
        return finding
    finding.kind, finding.numbers["factor"] = "l2", factor
    finding.message = f"{L2_FUNCTION} of {quantity.name} {text}"
    return finding


def diagnose_gradients(groups, params, regularized, l2, m):
    """Gradients handed in: classify each failing parameter, and an L2 mistake across every W at once.

    ``params`` maps each group's name to its parameter array (same layout as the group's shape),
    ``regularized`` names the ones in the L2 term.
    """
    failing = [g for g in groups if g.wrong.any()]
    findings = []
    if failing and l2 and {g.name for g in failing} == set(regularized) and all(
            g.index.size == params[g.name].size for g in failing):
        diff = np.concatenate([g.analytic - g.numeric for g in failing])
        W = np.concatenate([params[g.name].ravel()[g.index] for g in failing])
        c = float(np.vdot(diff, W) / max(np.vdot(W, W), 1e-300))
        scale = np.linalg.norm(np.concatenate([g.numeric for g in failing]))
        if c != 0 and _explains(np.linalg.norm(diff - c * W), diff, max(scale, 1e-300)):
            times = c * m / l2
            text = ("lack the L2 term's gradient: g - g_num = -(l2/m) W" if abs(times + 1) < 1e-3 else
                    "have the L2 term's gradient twice: g - g_num = +(l2/m) W" if abs(times - 1) < 1e-3 else
                    f"have the L2 gradient with a wrong factor: g - g_num = {times:.4g} (l2/m) W")
            names = ", ".join(g.name for g in failing)
            return [Finding(None, "grads", names, "l2", {"factor": times},
                            f"grads: the gradients passed for every weight ({names}) {text}; every bias is right")]
    swapped = _swapped(failing, params)
    for g in failing:
        if g.name in swapped:
            other = swapped[g.name]
            findings.append(Finding(None, "grads", g.name, "swapped", {"with": other},
                                    f"grads: {g.name} holds the gradient of {other}, and {other} the gradient of "
                                    f"{g.name}: two gradients of the same shape were exchanged"))
            continue
        full = g.index.size == params[g.name].size
        shape = params[g.name].shape
        A = g.analytic.reshape(shape) if full else g.analytic
        N = g.numeric.reshape(shape) if full else g.numeric
        wrong = g.wrong.reshape(shape) if full else g.wrong
        quantity = Quantity(g.name, A, N, wrong, positions=None if full else g.index, shape=shape)
        findings.append(classify(quantity, "grads", None, {"m": m, "l2": l2, "W": params[g.name]
                                                             if g.name in regularized else None}))
    return findings


def _swapped(failing, params):
    """``{name: other}`` for pairs of failing gradients of one shape, each matching the other's numeric value."""
    full = [g for g in failing if g.index.size == params[g.name].size]
    pairs = {}
    for i, a in enumerate(full):
        for b in full[i + 1:]:
            if a.name in pairs or b.name in pairs or params[a.name].shape != params[b.name].shape:
                continue
            if all(np.linalg.norm(x.analytic - y.numeric) <= FIT * max(np.linalg.norm(y.numeric), 1e-300)
                   for x, y in ((a, b), (b, a))):
                pairs[a.name], pairs[b.name] = b.name, a.name
    return pairs


def diagnose_groups(groups, function, context=None):
    """Findings for a failed layer or function check: one per failing quantity."""
    findings = []
    for g in groups:
        if not g.wrong.any():
            continue
        shape = g.shape
        full = g.index.size == int(np.prod(shape))
        A = g.analytic.reshape(shape) if full else g.analytic
        N = g.numeric.reshape(shape) if full else g.numeric
        quantity = Quantity(g.name, A, N, g.wrong.reshape(shape) if full else g.wrong,
                            positions=None if full else g.index, shape=shape)
        ctx = dict(context or {})
        if g.name != "X":
            ctx.pop("X", None)
        findings.append(classify(quantity, function, None, ctx))
    return findings
