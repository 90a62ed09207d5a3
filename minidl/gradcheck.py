"""Gradient checking: backprop against central differences, coordinate by coordinate.

The recipe: flatten every parameter into ``theta``, perturb each coordinate by
``+-epsilon``, take ``g_num = (J(theta + e_i eps) - J(theta - e_i eps)) / (2 eps)`` and
compare with backprop's ``g`` through

    difference = ||g - g_num||_2 / (||g||_2 + ||g_num||_2).

Everything runs in float64 on a copy of the model, with dropout off (or one frozen mask)
and the L2 term in both the cost and the gradient.

How ``passed`` is decided
-------------------------
One number can hide a bug confined to one bias or one element, so three tests must all
hold, each with an allowance for the floating-point noise of central differences (the
cost is only known to about ``u * scale`` where ``u`` is float64's unit roundoff and
``scale`` the magnitude of the terms summed into J, so ``g_num`` carries noise near
``atol = NOISE_FACTOR * u * scale / epsilon``):

1. every coordinate: ``|g - g_num| <= atol + rtol * (|g| + |g_num|)`` with ``rtol = 1e-5``;
2. every parameter: its difference is <= 1e-5 (the top of the "look again" band), or its
   error norm ``||g - g_num||`` is within the noise allowance ``atol * sqrt(n)``;
3. the whole vector: the same test as 2 over all coordinates.

Coordinates whose perturbation crossed a kink (a ReLU input changed sign) are listed in
``report.kinks`` and left out of all three. Verdict bands, as people know them: a
difference <= 1e-7 is correct, up to 1e-5 worth a second look, beyond 1e-3 a bug.

Fast and exact
--------------
Perturbing a parameter of layer k leaves layers before k untouched: their activations are
computed once. For Dense's ``W[i, j]`` only column j of ``Z`` moves, by
``+-eps * A_prev[:, i]``; that column is pushed alone through the elementwise layers that
follow and enters the next Dense as a rank-one update. Many perturbations travel together
as a stack of batches, in chunks that bound memory. Examples a perturbation leaves unchanged
are skipped, and since example r sees ``W[i, j]`` only through ``A_prev[r, i]``, each distinct
(example, input value) pair of a column is evaluated once (images repeat pixel values a lot).
None of this approximates: every coordinate's cost is evaluated at theta +- epsilon as in
the plain loop (``method="loop"``), up to rounding order, and the tests compare the two. Other layers fall back to evaluating
their own forward once per coordinate; the rest of the network is still stacked.
"""
import copy
import math

import numpy as np
import scipy.optimize
from tqdm.auto import tqdm

from .errors import InputError, InputTypeError
from .layers import Dense, Dropout, Layer, ReLU, Sigmoid, Tanh
from .model import Sequential
from .validation import check_array, check_choice, check_float, check_int, check_labels, check_seed

CORRECT = 1e-7       # difference at or below: correct
LOOK_AGAIN = 1e-5    # up to here: worth a second look; beyond: the check fails
BUG = 1e-3           # at or beyond: a bug
RTOL = 1e-5          # per-coordinate relative tolerance
NOISE_FACTOR = 100   # atol = NOISE_FACTOR * u * scale / epsilon, u = float64 unit roundoff
UNIT_ROUNDOFF = np.finfo(np.float64).eps / 2
SCIPY_ALL_DIRECTIONS_MAX = 1000   # up to this many parameters scipy checks every direction


# ---------------------------------------------------------------------------- the report
class GradCheckReport:
    """The result of a gradient check.

    Attributes
    ----------
    difference : float
        ``||g - g_num|| / (||g|| + ||g_num||)`` over every checked coordinate except kinks.
    passed : bool
        No parameter and no coordinate beyond the thresholds (see the module docstring).
    per_parameter : dict
        Parameter name -> difference over that parameter's checked coordinates.
    kinks : list of (name, index tuple)
        Coordinates whose perturbation crossed a non-differentiable point; not in the verdict.
    scipy : float or None
        ``scipy.optimize.check_grad`` on the same J(theta) and gradient: the absolute norm
        ``||g - g_fd||_2`` with forward differences (see ``scipy_info``).
    atol, rtol : float
        The per-coordinate tolerances used.
    """

    def __init__(self, groups, epsilon, atol, rtol=RTOL, scipy=None, scipy_info=None, title="model",
                 layer_names=None):
        self.groups = groups
        self.layer_names = layer_names
        self.epsilon = epsilon
        self.atol = atol
        self.rtol = rtol
        self.scipy = scipy
        self.scipy_info = scipy_info or {}
        self.title = title
        for group in groups:
            g, n, keep = group["analytic"], group["numeric"], ~group["kink"]
            group["error"] = np.abs(g - n)
            group["tolerance"] = atol + rtol * (np.abs(g) + np.abs(n))
            group["wrong"] = keep & (group["error"] > group["tolerance"])
            group["difference"] = _difference(g[keep], n[keep])
            group["noise_only"] = self._noise_only(g[keep], n[keep])
        self.per_parameter = {grp["name"]: grp["difference"] for grp in groups}
        keep = [~grp["kink"] for grp in groups]
        g = np.concatenate([grp["analytic"][k] for grp, k in zip(groups, keep)])
        g_num = np.concatenate([grp["numeric"][k] for grp, k in zip(groups, keep)])
        self.difference = _difference(g, g_num)
        self.noise_only = self._noise_only(g, g_num)
        self.kinks = [(grp["name"], _unravel(i, grp["shape"])) for grp in groups
                      for i in grp["index"][grp["kink"]]]
        self.n_checked = int(sum(grp["index"].size for grp in groups))
        self.passed = bool((self.difference <= LOOK_AGAIN or self.noise_only)
                           and all(self.parameter_ok(grp["name"]) for grp in groups))

    def _noise_only(self, g, g_num):
        """True when the error norm is within what floating-point noise explains for these coordinates."""
        return bool(np.linalg.norm(g - g_num) <= self.atol * math.sqrt(max(g.size, 1)))

    def _group(self, name):
        for grp in self.groups:
            if grp["name"] == name:
                return grp
        raise KeyError(name)

    def parameter_ok(self, name):
        """True when the parameter passes both its group test and every coordinate test."""
        grp = self._group(name)
        return (grp["difference"] <= LOOK_AGAIN or grp["noise_only"]) and not grp["wrong"].any()

    def wrong(self, name=None):
        """Coordinates beyond tolerance: ``[(name, index tuple)]``, of one parameter or all."""
        groups = self.groups if name is None else [self._group(name)]
        return [(grp["name"], _unravel(i, grp["shape"])) for grp in groups for i in grp["index"][grp["wrong"]]]

    @property
    def failed_parameters(self):
        """Names of the parameters that fail, in network order."""
        return [grp["name"] for grp in self.groups if not self.parameter_ok(grp["name"])]

    @property
    def suspects(self):
        """Where the error most likely enters backprop: a list of layer indices, or None.

        Backprop runs from the loss towards the input, so a wrong derivative in layer j
        spoils the gradients of every parameter before j and none after. The suspects are
        the deepest layer with a failing parameter, every layer after it up to and including
        the next layer whose parameters pass (its own gradients can be right while the ``dX``
        it sends back is wrong), or up to the loss when no later parameter passes.
        """
        if self.passed or self.layer_names is None:
            return None
        failing = {int(name.split(".")[0]) for name in self.failed_parameters}
        if not failing:
            return None
        deepest = max(failing)
        later_ok = [int(g["name"].split(".")[0]) for g in self.groups if int(g["name"].split(".")[0]) > deepest]
        stop = min(later_ok) + 1 if later_ok else len(self.layer_names)
        return list(range(deepest, stop))

    def _suspects_text(self):
        layers = self.suspects
        if not layers:
            return None
        names = ", ".join(f"{i}: {self.layer_names[i]}" for i in layers)
        end = "" if layers[-1] + 1 < len(self.layer_names) else ", or the loss's gradient"
        return (f"where to look: parameters up to layer {layers[0]} fail and none after, so the error enters "
                f"in the backward of layers [{names}]{end}, or in the gradients passed as grads=")

    def verdict(self, name=None):
        """The band of one parameter's difference (or the global one): ok, look again, likely bug, BUG."""
        if name is None:
            diff, noise_only = self.difference, self.noise_only
            n_wrong = sum(int(grp["wrong"].sum()) for grp in self.groups)
        else:
            grp = self._group(name)
            diff, noise_only, n_wrong = grp["difference"], grp["noise_only"], int(grp["wrong"].sum())
        if n_wrong:
            return f"BUG ({n_wrong:,} wrong)"
        if diff <= CORRECT:
            return "ok"
        if noise_only:
            return "ok (noise)"
        if diff <= LOOK_AGAIN:
            return "look again"
        return "likely bug" if diff < BUG else "BUG"

    def worst(self, k=5):
        """The ``k`` worst coordinates, worst first.

        Rows are ``(name, index tuple, analytic, numeric, relative error)`` where the relative
        error is ``|g - g_num| / (|g| + |g_num|)``. They are ordered by how far the error goes
        beyond the coordinate's tolerance, so a wrong coordinate always ranks above a tiny
        gradient whose relative error is only noise. Kinks are left out.
        """
        k = check_int(k, "k", minimum=0)
        rows = []
        for grp in self.groups:
            score = np.where(grp["kink"], -np.inf, grp["error"] / grp["tolerance"])
            top = np.argsort(-score, kind="stable")[:k]
            rows += [(score[i], grp["name"], grp["index"][i], grp["analytic"][i], grp["numeric"][i])
                     for i in top if np.isfinite(score[i])]
        rows.sort(key=lambda r: -r[0])
        shapes = {grp["name"]: grp["shape"] for grp in self.groups}
        return [(name, _unravel(i, shapes[name]), float(g), float(n), _relative(g, n))
                for _, name, i, g, n in rows[:k]]

    def summary(self):
        """One line: the verdict, the difference, and where the worst coordinate is."""
        status = "passed" if self.passed else "FAILED"
        line = (f"gradcheck {status}: difference {self.difference:.2e} over {self.n_checked:,} coordinates"
                f" ({len(self.kinks)} kinks)")
        if not self.passed:
            worst = self.worst(1)
            line += f"; failing: {', '.join(self.failed_parameters)}"
            if worst:
                name, index, g, n, _ = worst[0]
                line += f"; worst {name}{list(index)}: analytic {g:.6g}, numeric {n:.6g}"
        return line

    def __repr__(self):
        return f"<GradCheckReport {self.summary()}>"

    def __str__(self):
        status = "PASSED" if self.passed else "FAILED"
        out = [f"Gradient check of {self.title}: {status}   difference {self.difference:.2e} "
               f"({self.verdict()}) over {self.n_checked:,} coordinates, epsilon {self.epsilon:g}, float64"]
        rows = [("parameter", "shape", "checked", "difference", "wrong", "verdict")]
        for grp in self.groups:
            rows.append((grp["name"], str(grp["shape"]), f"{grp['index'].size:,}",
                         f"{self.per_parameter[grp['name']]:.2e}", f"{int(grp['wrong'].sum()):,}",
                         self.verdict(grp["name"])))
        out += _table(rows)
        worst = self.worst(5)
        if worst:
            out.append("worst coordinates (by error beyond tolerance):")
            out += _table([("parameter", "index", "analytic", "numeric", "rel. error")] +
                          [(n, str(list(i)), f"{g: .6e}", f"{gn: .6e}", f"{r:.2e}") for n, i, g, gn, r in worst])
        suspects = self._suspects_text()
        if suspects:
            out.append(suspects)
        if self.kinks:
            shown = ", ".join(f"{n}{list(i)}" for n, i in self.kinks[:5])
            more = f" and {len(self.kinks) - 5} more" if len(self.kinks) > 5 else ""
            out.append(f"kinks: {len(self.kinks)} coordinates crossed a non-differentiable point "
                       f"(e.g. a ReLU input changed sign) and are left out of the verdict: {shown}{more}")
        if self.scipy is not None:
            info = self.scipy_info
            out.append(f"scipy.optimize.check_grad: {self.scipy:.2e}. This is an absolute norm "
                       f"||g - g_fd||_2 from one-sided forward differences (epsilon {info.get('epsilon', 0):.1e}, "
                       f"{info.get('directions', '')}); relative to ||g|| = {info.get('norm', 0):.3g} it is "
                       f"{info.get('relative', 0):.1e}. Forward differences are less accurate than the "
                       f"central ones above: expect about 1e-7 relative when gradients are right.")
        out.append(f"bands: difference <= {CORRECT:g} ok, <= {LOOK_AGAIN:g} look again, >= {BUG:g} bug; "
                   f"'ok (noise)': above 1e-7 but no more than floating-point noise explains; a "
                   f"coordinate is wrong when |g - g_num| > {self.atol:.1e} + {self.rtol:g} (|g| + |g_num|), "
                   f"the first term being the floating-point noise of J at this epsilon.")
        return "\n".join(out)


def _difference(g, g_num):
    denominator = np.linalg.norm(g) + np.linalg.norm(g_num)
    return float(np.linalg.norm(g - g_num) / denominator) if denominator > 0 else 0.0


def _relative(g, g_num):
    denominator = abs(g) + abs(g_num)
    return float(abs(g - g_num) / denominator) if denominator > 0 else 0.0


def _unravel(flat_index, shape):
    return tuple(int(i) for i in np.unravel_index(int(flat_index), shape))


def _table(rows):
    sizes = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["  " + "  ".join(cell.ljust(size) for cell, size in zip(row, sizes)).rstrip() for row in rows]
    lines.insert(1, "  " + "  ".join("-" * size for size in sizes))
    return lines


def _noise_atol(scale, epsilon):
    return NOISE_FACTOR * UNIT_ROUNDOFF * max(scale, np.finfo(np.float64).tiny) / epsilon


def _make_group(name, shape, index, analytic, numeric, kink):
    return {"name": name, "shape": tuple(shape), "index": np.asarray(index, dtype=np.int64),
            "analytic": np.asarray(analytic, dtype=np.float64), "numeric": np.asarray(numeric, dtype=np.float64),
            "kink": np.asarray(kink, dtype=bool)}


def _choose_coords(size, coords, k, rng):
    if coords == "all" or k >= size:
        return np.arange(size)
    return np.sort(rng.choice(size, size=k, replace=False))


def _scipy_check(J, g_flat, theta, seed):
    """``scipy.optimize.check_grad`` on J(theta): every direction for small models, one random one otherwise."""
    direction = "all" if theta.size <= SCIPY_ALL_DIRECTIONS_MAX else "random"
    try:
        value = scipy.optimize.check_grad(J, lambda t: g_flat, theta, direction=direction,
                                          rng=np.random.default_rng(seed))
    except TypeError:  # SciPy < 1.15 has seed= instead of rng=
        value = scipy.optimize.check_grad(J, lambda t: g_flat, theta, direction=direction, seed=seed)
    norm = float(np.linalg.norm(g_flat))
    what = (f"all {theta.size:,} directions" if direction == "all"
            else "one seeded random direction (the model is too large for all)")
    info = {"directions": what, "direction": direction, "norm": norm,
            "epsilon": float(np.sqrt(np.finfo(np.float64).eps)),
            "relative": float(value) / norm if norm > 0 else float(value)}
    return float(value), info


# ---------------------------------------------------------------------- model check
def _is_plain_dense(layer):
    return isinstance(layer, Dense) and type(layer).forward is Dense.forward


def _value_table(A):
    """``(rows, values, codes)``: each example's distinct values in ``A`` ``(m, n)``, flattened,
    and for every entry its index among them; None when values repeat too little to pay."""
    m, n = A.shape
    rows, values, codes, offset = [], [], np.empty((m, n), dtype=np.int64), 0
    for r in range(m):
        unique, inverse = np.unique(A[r], return_inverse=True)
        rows.append(np.full(unique.size, r))
        values.append(unique)
        codes[r] = inverse.ravel() + offset
        offset += unique.size
    if offset > m * n // 4:
        return None
    return np.concatenate(rows), np.concatenate(values), codes


class _Evaluator:
    """A float64 copy of a model, its activations at theta, and J at perturbed theta."""

    def __init__(self, model, X, Y, frozen, rng):
        net = copy.deepcopy(model)
        for layer in net.layers:
            for name in layer.params:
                layer.params[name] = np.array(layer.params[name], dtype=np.float64)
        net.dtype = np.dtype(np.float64)
        self.net, self.X, self.Y = net, X, Y
        self.m = X.shape[0]
        self.training = frozen
        self.body = net.body
        if frozen:
            widths = [net.n_features] + net.widths
            for i, layer in enumerate(net.layers):
                if isinstance(layer, Dropout):
                    layer.fixed_mask = rng.random((self.m, widths[i])) >= layer.rate
        # acts[k] is the input of body[k]; acts[-1] what the loss sees.
        self.acts = [X]
        for layer in self.body:
            self.acts.append(layer.forward(self.acts[-1], frozen))
        self.patterns = [layer.kink_pattern(A) for layer, A in zip(self.body, self.acts)]
        # Column j of an activation is row j of its transpose: contiguous to gather.
        self.actsT = [np.ascontiguousarray(A.T) for A in self.acts]
        self.patternsT = [None if P is None else np.ascontiguousarray(P.T) for P in self.patterns]
        # Per example, how close a layer's input comes to 0 (where ReLU's kink is).
        self.margins = [np.abs(A).min(axis=1, initial=np.inf) for A in self.acts]
        losses = net.loss.losses(self.acts[-1], Y, net.logit_head)
        self.base_losses = losses[:, 0]
        self.rowwise_from = [all(layer.rowwise for layer in self.body[k:]) for k in range(len(self.body) + 1)]
        # Distinct input values per example, for Dense layers whose inputs repeat a lot (see column_table).
        self.tables = {k: _value_table(self.acts[k]) for k, layer in enumerate(self.body)
                       if _is_plain_dense(layer) and self.rowwise_from[k + 1]}
        self._table_results = {}
        if net.logit_head:
            scale = np.mean(np.abs(np.logaddexp(0, self.acts[-1])) + np.abs(Y * self.acts[-1]))
        else:
            scale = np.mean(np.abs(losses))
        self.scale = float(scale) + net.loss.penalty(net._weights(), self.m)

    def stack_width(self, k, layer):
        """The widest activation the perturbations of body[k]'s parameters are stacked in."""
        k2 = k + 1
        while _is_plain_dense(layer) and k2 < len(self.body) and self.body[k2].elementwise:
            k2 += 1       # Dense: one column travels alone through elementwise layers
        if _is_plain_dense(layer) and k2 < len(self.body) and _is_plain_dense(self.body[k2]):
            k2 += 1       # ... and enters the next Dense as a rank-one update
        return max([A.shape[1] for A in self.acts[k2:]] + [1])

    def named_params(self):
        """(name, index in body, layer, param name, array) for every parameter."""
        # Only the final Sigmoid is outside the body, and it has no parameters.
        return [(f"{i}.{p}", i, layer, p, layer.params[p])
                for i, layer in enumerate(self.net.layers) for p in layer.params]

    def analytic(self):
        self.net._backprop(self.X, self.Y, training=self.training)
        return dict(self.net.named_gradients())

    def cost_at(self, theta, names):
        """J at a flattened theta (used by scipy's check_grad); the copy is restored after."""
        saved = {}
        offset = 0
        params = dict((n, a) for n, _, _, _, a in self.named_params())
        for name in names:
            array = params[name]
            saved[name] = array.copy()
            array[...] = theta[offset:offset + array.size].reshape(array.shape)
            offset += array.size
        try:
            return self.net._cost(self.X, self.Y, self.training)
        finally:
            for name, value in saved.items():
                params[name][...] = value

    # -- the downstream pass shared by every path
    def downstream(self, start, A, B, rows=None, bound=None):
        """Loss changes ``(B,)`` and kink flags ``(B,)`` for perturbed inputs of body[start].

        ``A`` has shape ``(B * n, width)``: for each of B perturbations, the ``n`` examples
        ``rows`` (default: all m), one block after another. Examples left out keep their loss at
        theta exactly and add nothing. The loss change of perturbation b is
        ``sum_r (L_r(theta + delta_b) - L_r(theta))``.
        """
        rows = np.arange(self.m) if rows is None else rows
        change, kink = self.rows_downstream(start, A, np.tile(rows, B), bound)
        return change.reshape(B, -1).sum(axis=1), kink.reshape(B, -1).any(axis=1)

    def rows_downstream(self, start, A, rows, bound=None):
        """Per-row loss changes ``(N,)`` and kink flags ``(N,)``: row i of ``A`` is a perturbed
        input of body[start] for example ``rows[i]``.

        ``bound``, when given, bounds how far any entry of ``A`` is from its value at theta. It
        is carried through the layers (Lipschitz constants), and a ReLU whose inputs all sit
        farther than twice the bound from 0 cannot have crossed its kink: its check is skipped.
        Layers that mix examples need ``rows`` to be whole copies of the batch (0..m-1 repeated).
        """
        m = self.m
        kink = np.zeros(len(rows), dtype=bool)
        for k in range(start, len(self.body)):
            layer = self.body[k]
            if self.patterns[k] is not None and not (bound is not None and type(layer) is ReLU
                                                     and 2 * bound < self.margins[k][rows].min(initial=np.inf)):
                kink |= (layer.kink_pattern(A) != self.patterns[k][rows]).any(axis=1)
            if layer.rowwise:
                A = layer.forward(A, self.training)
            else:   # mixes examples (or a frozen dropout mask): one perturbed copy at a time
                A = np.concatenate([layer.forward(A[b:b + m], self.training) for b in range(0, len(rows), m)])
            bound = self._carry(layer, bound)
        losses = self.net.loss.losses(A[:, 0], self.Y[rows, 0], self.net.logit_head)
        return losses - self.base_losses[rows], kink

    def _carry(self, layer, bound):
        """A bound on the change of ``layer``'s output from a bound on its input's, or None."""
        if bound is None:
            return None
        if type(layer) in (ReLU, Tanh) or (type(layer) is Dropout and not self.training):
            return bound
        if type(layer) is Sigmoid:
            return bound / 4
        if _is_plain_dense(layer):
            return bound * float(np.abs(layer.params["W"]).sum(axis=0).max(initial=0.0))
        return None

    # -- Dense: one column of Z moves
    def _walk_elementwise(self, k, col, pick):
        """Push a moved column of body[k]'s output through the elementwise layers after it.

        ``pick(T)`` selects, from a transposed activation or pattern ``T``, the entries ``col``
        stands for. Returns the moved column, its value at theta, a kink mask of ``col``'s shape
        and the index of the first layer that is not elementwise.
        """
        base = pick(self.actsT[k + 1])
        col = base + col
        kink = np.zeros(col.shape, dtype=bool)
        k2 = k + 1
        while k2 < len(self.body) and self.body[k2].elementwise:
            layer = self.body[k2]
            if self.patterns[k2] is not None:
                kink |= layer.kink_pattern(col) != pick(self.patternsT[k2])
            col = layer.forward(col, self.training)
            base = pick(self.actsT[k2 + 1])
            k2 += 1
        return col, base, kink, k2

    def column_pairs(self, k, j, rows, dvalues):
        """Per-pair loss changes and kinks: pair t moves ``Z[rows[t], j]`` of body[k] by ``dvalues[t]``.

        The loss of example r depends on a move of column j only through that example's entry, so
        each pair is evaluated alone, and pairs that leave the example unchanged (a ReLU that stays
        off, a zero input) keep its loss exactly. Needs every layer after body[k] to be rowwise.
        """
        col, base, kink, k2 = self._walk_elementwise(k, dvalues, lambda T: T[j][rows])
        change = np.zeros(rows.size)
        if k2 < len(self.body) and _is_plain_dense(self.body[k2]):
            d = col - base
            moved = np.flatnonzero(d)
            w = self.body[k2].params["W"][j]
            # (A + d e_j^T) @ W2 + b2 = Z2 + d (outer) W2[j, :]
            A = np.multiply.outer(d[moved], w)
            A += np.take(self.acts[k2 + 1], rows[moved], axis=0)
            bound = float(np.abs(d).max(initial=0.0) * np.abs(w).max(initial=0.0))
            change[moved], more = self.rows_downstream(k2 + 1, A, rows[moved], bound)
            kink[moved] |= more
        else:
            A = self.acts[k2][rows].copy()
            A[:, j] = col
            change, more = self.rows_downstream(k2, A, rows)
            kink |= more
        return change, kink

    def column_table(self, k, j, sign_eps):
        """:meth:`column_pairs` for every distinct (example, input value) of ``self.tables[k]``.

        Moving ``W[i, j]`` moves ``Z[r, j]`` by ``sign_eps * A_prev[r, i]``, so when the inputs repeat
        (8-bit pixels, one-hot or binary features) every coordinate ``(i, j)`` reads its
        per-example changes from one evaluation per distinct value: the same floating-point
        operations on the same numbers as evaluating each coordinate, done once.
        """
        key = (k, j, sign_eps)
        if key not in self._table_results:     # a column split across chunks is evaluated once
            rows, values, _ = self.tables[k]
            self._table_results = {key: self.column_pairs(k, j, rows, sign_eps * values)}
        return self._table_results[key]

    def dense_column(self, k, cols, dcol):
        """Loss changes and kinks when column ``cols[b]`` of body[k]'s output moves by ``dcol[b]``.

        ``dcol`` has shape ``(B, m)``; ``cols`` is an int array ``(B,)`` or one int for all. Used
        for biases and when a later layer mixes examples; whole copies of the batch are stacked.
        """
        B, m = dcol.shape
        one = np.ndim(cols) == 0
        pick = (lambda T: T[cols][None]) if one else (lambda T: T[cols])    # (1 or B, m)
        col, base, kink, k2 = self._walk_elementwise(k, dcol, pick)
        if k2 < len(self.body) and _is_plain_dense(self.body[k2]):
            W2 = self.body[k2].params["W"]
            W2rows = W2[cols][None] if one else W2[cols][:, None, :]
            start, A = k2 + 1, (self.acts[k2 + 1][None] + (col - base)[:, :, None] * W2rows).reshape(B * m, -1)
        else:
            A = np.repeat(self.acts[k2][None], B, axis=0)
            A[np.arange(B), :, cols] = col
            start, A = k2, A.reshape(B * m, -1)
        delta, more = self.downstream(start, A, B)
        return delta, kink.any(axis=1) | more

    def generic(self, k, layer, array, flat, sign_eps):
        """Loss changes and kinks with ``array.flat[flat[b]] += sign_eps``, one forward of body[k] each."""
        outs = []
        for f in flat:
            old = array.flat[f]
            array.flat[f] = old + sign_eps
            outs.append(layer.forward(self.acts[k], self.training))
            array.flat[f] = old
        return self.downstream(k + 1, np.concatenate(outs), len(flat))

    def loop(self, array, flat, sign_eps):
        """Loss changes, penalties and kinks by the plain recipe: one whole forward per coordinate."""
        deltas, penalties, kinks = [], [], []
        for f in flat:
            old = array.flat[f]
            array.flat[f] = old + sign_eps
            delta, kink = self.downstream(0, self.X, 1)
            deltas.append(delta[0])
            penalties.append(self.net.loss.penalty(self.net._weights(), self.m))
            kinks.append(kink[0])
            array.flat[f] = old
        return np.array(deltas), np.array(penalties), np.array(kinks)


def gradcheck(model, X, Y, epsilon=1e-7, grads=None, dropout="off", coords="all", k=10, seed=0,
              method="fast", chunk_size=None, scipy_check=True, progress=False):
    """Check a Sequential's gradients against central differences of its cost.

    Parameters
    ----------
    model : Sequential
        The model to check. It is left exactly as it was (parameters, mode, RNG states):
        the check runs on a float64 copy.
    X : ndarray of shape (m, n_features)
    Y : ndarray of shape (m, 1) or (m,)
    epsilon : float
        Perturbation of each coordinate (two-sided).
    grads : dict, optional
        Gradients to check, keyed as ``model.named_parameters()``. Default: the model's own
        backprop (L2 included).
    dropout : {"off", "frozen"}
        "off" checks with Dropout as the identity. "frozen" draws one mask per Dropout layer
        (from this check's own seed) and holds it for every evaluation and for backprop,
        so Dropout's backward is checked too.
    coords : {"all", "sample"}
        Every coordinate, or ``k`` seeded random coordinates per parameter.
    k : int
        Coordinates per parameter when ``coords="sample"``.
    seed : int
        Seeds the sampled coordinates, the frozen masks and scipy's random direction.
    method : {"fast", "loop"}
        "fast" reuses activations and stacks perturbations (see the module docstring);
        "loop" is the plain recipe, one whole forward pass per perturbation.
    chunk_size : int, optional
        Perturbations evaluated together; default: as many as fit in about 64 MB.
    scipy_check : bool
        Also run ``scipy.optimize.check_grad`` (``report.scipy``).
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
    if grads is not None:
        grads = _check_grads(grads, model)

    rng = np.random.default_rng(seed)
    ev = _Evaluator(model, X, Y, dropout == "frozen", rng)
    analytic = grads if grads is not None else ev.analytic()
    m, l2 = ev.m, ev.net.loss.l2

    plan = []
    for name, k_body, layer, pname, array in ev.named_params():
        plan.append((name, k_body, layer, pname, array, _choose_coords(array.size, coords, k, rng)))
    total = sum(p[-1].size for p in plan)
    bar = tqdm(total=total, desc="gradcheck", unit="coord", disable=not progress, leave=False)
    groups = []
    for name, k_body, layer, pname, array, flat in plan:
        numeric = np.empty(flat.size)
        kink = np.zeros(flat.size, dtype=bool)
        # Dense's W goes column by column: the perturbations of one column j share everything
        # downstream but the moved values, so they need no gathering.
        by_column = method == "fast" and pname == "W" and _is_plain_dense(layer)
        if not by_column:
            order = np.arange(flat.size)
        elif flat.size == array.size:           # every coordinate: column-major order, no sort needed
            order = np.arange(array.size).reshape(array.shape).T.ravel()
        else:
            order = np.argsort(flat % array.shape[-1], kind="stable")
        # About 64 MB of stacked activations per chunk, unless chunk_size says otherwise.
        per_chunk = chunk_size or max(1, (64 << 20) // (8 * 8 * m * ev.stack_width(k_body, layer)))
        for start in range(0, flat.size, per_chunk):
            where = order[start:start + per_chunk]
            chunk = flat[where]
            if method == "loop":
                (lp, pp, kp), (lm, pm, km) = [ev.loop(array, chunk, s * epsilon) for s in (1, -1)]
                penalty = pp - pm
            else:
                (lp, kp), (lm, km) = [_perturbed(ev, k_body, layer, pname, array, chunk, s * epsilon)
                                      for s in (1, -1)]
                w = array.flat[chunk]
                penalty = (l2 / (2 * m) * ((w + epsilon) ** 2 - (w - epsilon) ** 2)
                           if pname in layer.regularized else 0.0)
            numeric[where] = ((lp - lm) / m + penalty) / (2 * epsilon)
            kink[where] = kp | km
            bar.update(chunk.size)
        groups.append(_make_group(name, array.shape, flat, np.asarray(analytic[name], dtype=np.float64).ravel()[flat],
                                  numeric, kink))
    bar.close()

    scipy_value, scipy_info = None, None
    if scipy_check:
        theta = np.concatenate([a.ravel() for _, _, _, _, a in ev.named_params()])
        g_flat = np.concatenate([np.asarray(analytic[n], dtype=np.float64).ravel() for n in names])
        scipy_value, scipy_info = _scipy_check(lambda t: ev.cost_at(t, names), g_flat, theta, seed)
    title = f"{type(model).__name__} ({len(model.layers)} layers, {model.n_params:,} parameters, dropout {dropout})"
    return GradCheckReport(groups, epsilon, _noise_atol(ev.scale, epsilon), scipy=scipy_value,
                           scipy_info=scipy_info, title=title, layer_names=[repr(layer) for layer in model.layers])


def _perturbed(ev, k, layer, pname, array, flat, sign_eps):
    """Loss changes ``(B,)`` and kinks ``(B,)`` with each coordinate in ``flat`` moved."""
    if not _is_plain_dense(layer):
        return ev.generic(k, layer, array, flat, sign_eps)
    n_out = array.shape[-1]
    cols = flat % n_out
    if pname == "b":
        return ev.dense_column(k, cols, np.full((flat.size, ev.m), sign_eps))
    # W[i, j] moves column j of Z by sign_eps * A_prev[:, i]; runs of one column j share it all.
    rows = flat // n_out
    table = ev.tables.get(k)
    m = ev.m
    delta, kink = np.empty(flat.size), np.empty(flat.size, dtype=bool)
    bounds = np.flatnonzero(np.diff(cols)) + 1
    for run in np.split(np.arange(flat.size), bounds):
        j = int(cols[run[0]])
        if table is not None:
            change, kinks = ev.column_table(k, j, sign_eps)
            codes = table[2][:, rows[run]]                                 # (m, B)
            delta[run], kink[run] = change[codes].sum(axis=0), kinks[codes].any(axis=0)
        elif ev.rowwise_from[k + 1]:
            examples = np.tile(np.arange(m), run.size)                     # pair b * m + r
            change, kinks = ev.column_pairs(k, j, examples, (sign_eps * ev.actsT[k][rows[run]]).ravel())
            delta[run], kink[run] = change.reshape(-1, m).sum(axis=1), kinks.reshape(-1, m).any(axis=1)
        else:
            delta[run], kink[run] = ev.dense_column(k, j, sign_eps * ev.actsT[k][rows[run]])
    return delta, kink


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
    ``dJ/dX`` and ``dJ/dparam``. Runs on a float64 copy; the layer is left unchanged.

    Parameters
    ----------
    layer : Layer
        Built-in or user-written.
    X : ndarray of shape (m, n_in)
        The input at which to check. Coordinates whose perturbation crosses one of the
        layer's kinks (see ``Layer.kink_pattern``) are reported as kinks.
    epsilon : float
    seed : int
        Seeds ``R`` and, with ``dropout="frozen"``, the mask of a Dropout layer.
    dropout : {"off", "frozen"}
        "frozen" runs the layer in training mode with one fixed Dropout mask.

    Returns
    -------
    GradCheckReport
        Parameters named ``"X"`` and the layer's own parameter names.
    """
    if not isinstance(layer, Layer):
        raise InputTypeError(f"layer must be a minidl Layer; received {type(layer).__name__}")
    X = check_array(X, "X", ndim=2, n_columns=layer.n_in if isinstance(layer, Dense) else None)
    epsilon = check_float(epsilon, "epsilon", low=0.0, high=1.0, low_inclusive=False)
    rng = np.random.default_rng(check_seed(seed))
    training = check_choice(dropout, "dropout", ("off", "frozen")) == "frozen"
    layer = copy.deepcopy(layer)
    if isinstance(layer, Dense):
        layer.needs_dX = True      # a model's first layer skips dX; here dX is checked
    for name in layer.params:
        layer.params[name] = np.array(layer.params[name], dtype=np.float64)
    if training and isinstance(layer, Dropout):
        layer.fixed_mask = rng.random(X.shape) >= layer.rate
    X = X.copy()
    out = layer.forward(X, training)
    R = rng.standard_normal(out.shape)
    scale = float(np.sum(np.abs(R * out)))
    dX = layer.backward(R)
    analytic = {"X": dX, **{name: layer.grads[name] for name in layer.params}}
    base_pattern = layer.kink_pattern(X)

    def J():
        return float(np.sum(R * layer.forward(X, training)))

    def numeric_of(array, on_input):
        numeric = np.empty(array.size)
        kink = np.zeros(array.size, dtype=bool)
        for f in range(array.size):
            old = array.flat[f]
            values = []
            for s in (1, -1):
                array.flat[f] = old + s * epsilon
                values.append(J())
                if on_input and base_pattern is not None:
                    kink[f] |= bool(np.any(layer.kink_pattern(X) != base_pattern))
            array.flat[f] = old
            numeric[f] = (values[0] - values[1]) / (2 * epsilon)
        return numeric, kink

    groups = []
    for name, array in [("X", X)] + list(layer.params.items()):
        numeric, kink = numeric_of(array, name == "X")
        groups.append(_make_group(name, array.shape, np.arange(array.size),
                                  np.asarray(analytic[name], dtype=np.float64).ravel(), numeric, kink))
    return GradCheckReport(groups, epsilon, _noise_atol(scale, epsilon), title=repr(layer))


# ------------------------------------------------------------------- function check
def check_gradient(J, dJ, theta, epsilon=1e-7, scipy_check=True, seed=0):
    """Check any scalar function against its gradient: ``J(theta) -> float``, ``dJ(theta) -> array``.

    The seed course's one-dimensional exercise, generalised to any shape of ``theta``.

    Parameters
    ----------
    J : callable
        ``J(theta)`` returning a real number.
    dJ : callable
        ``dJ(theta)`` returning an array of ``theta``'s shape.
    theta : array_like
        Where to check. Not modified.

    Returns
    -------
    GradCheckReport
        One parameter, named ``"theta"``.

    Examples
    --------
    >>> report = check_gradient(lambda t: float(np.sum(t ** 3)), lambda t: 3 * t ** 2, np.arange(3.0))
    >>> report.passed
    True
    """
    if not callable(J) or not callable(dJ):
        raise InputTypeError(f"J and dJ must be callables; received {type(J).__name__} and {type(dJ).__name__}")
    theta = np.atleast_1d(check_array(theta, "theta", ndim=np.ndim(theta) or 1)).copy()
    epsilon = check_float(epsilon, "epsilon", low=0.0, high=1.0, low_inclusive=False)

    def value(t):
        v = J(t.copy())
        if isinstance(v, np.ndarray) and v.size == 1:
            v = v.item()
        return check_float(v, "J(theta)")

    g = check_array(np.atleast_1d(dJ(theta.copy())), "dJ(theta)", ndim=theta.ndim)
    if g.shape != theta.shape:
        raise InputError(f"dJ(theta) must have theta's shape {theta.shape}; received shape {g.shape}")
    numeric = np.empty(theta.size)
    for f in range(theta.size):
        old = theta.flat[f]
        theta.flat[f] = old + epsilon
        plus = value(theta)
        theta.flat[f] = old - epsilon
        minus = value(theta)
        theta.flat[f] = old
        numeric[f] = (plus - minus) / (2 * epsilon)
    group = _make_group("theta", theta.shape, np.arange(theta.size), g.ravel(), numeric, np.zeros(theta.size, bool))
    scipy_value, scipy_info = None, None
    if scipy_check:
        scipy_value, scipy_info = _scipy_check(lambda t: value(t.reshape(theta.shape)), g.ravel(), theta.ravel(),
                                               check_seed(seed))
    return GradCheckReport([group], epsilon, _noise_atol(abs(value(theta)), epsilon), scipy=scipy_value,
                           scipy_info=scipy_info, title="J(theta)")
