"""The evaluation engine: J at theta +- h e_i for many coordinates i, exactly and fast.

Perturbing a parameter of layer k leaves layers before k untouched: their activations are
computed once. For Dense's ``W[i, j]`` only column j of ``Z`` moves, by ``+-h * A_prev[:, i]``.

When everything after that column's ReLU is ReLUs and Dense layers (the usual case), the logit is
an affine function of the move as long as no later ReLU changes side, which is provable per
example from each unit's distance to 0 (``_affine_tail``): the logit then moves by ``d * c[r, j]``
with ``c`` from one backward pass at theta, and only the loss is evaluated, a whole column in a few
passes over its live examples (``affine_full_column``); examples that could cross go through the
exact path below. Otherwise the column is pushed alone through the elementwise layers that follow and enters the next
Dense as a rank-one update. Many perturbations travel together as a stack of batches, in
chunks that bound memory. Examples a perturbation leaves unchanged are skipped, and since
example r sees ``W[i, j]`` only through ``A_prev[r, i]``, each distinct (example, input value)
pair of a column is evaluated once (images repeat pixel values a lot). None of this
approximates: every coordinate's cost is evaluated at theta +- h as in the plain loop
(``method="loop"``), up to rounding order. Other layers fall back to evaluating their own
forward once per coordinate; the rest of the network is still stacked.

What the engine keeps between evaluations (inputs, activations, kink patterns) is read-only,
and a layer that is not one of minidl's own gets a copy of it: a user layer that writes into
its input (``np.maximum(Z, 0, out=Z)``) cannot corrupt what the checker holds.
"""
import copy

import numpy as np

from ..layers import Dense, Dropout, ReLU, Sigmoid, Tanh
from ..losses import BinaryCrossEntropy

UNIT_ROUNDOFF = np.finfo(np.float64).eps / 2
_OWN_LAYERS = (Dense, ReLU, Sigmoid, Tanh, Dropout)      # never write into their input


def perturb_each(array, flat, h, change):
    """The plain recipe for a black box: ``(fp, fm)`` with ``fp[b] = change()`` after ``array.flat[flat[b]] += h[b]``
    and ``fm[b]`` after ``-= h[b]``, each coordinate restored after."""
    h = np.broadcast_to(h, flat.shape)
    fp, fm = np.empty(flat.size), np.empty(flat.size)
    for b, f in enumerate(flat):
        old = array.flat[f]
        array.flat[f] = old + h[b]
        fp[b] = change()
        array.flat[f] = old - h[b]
        fm[b] = change()
        array.flat[f] = old
    return fp, fm


def _softplus(t):
    """``log(1 + e^t)`` in place, as ``max(t, 0) + log1p(exp(-|t|))``: the loss's own form, no temporaries."""
    positive = np.maximum(t, 0)
    np.abs(t, out=t)
    np.negative(t, out=t)
    np.exp(t, out=t)
    np.log1p(t, out=t)
    t += positive
    return t


def _is_plain_dense(layer):
    return isinstance(layer, Dense) and type(layer).forward is Dense.forward


def _call(layer, A, training):
    """``layer.forward(A)``, with a copy of ``A`` when it is a cache and the layer is not minidl's own."""
    if not A.flags.writeable and type(layer) not in _OWN_LAYERS:
        A = A.copy()
    return layer.forward(A, training)


def _frozen(A):
    A.flags.writeable = False
    return A


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


class Evaluator:
    """A float64 copy of a model, its activations at theta, and J at perturbed theta.

    Parameters
    ----------
    model : Sequential
    X : ndarray (m, n_features), Y : ndarray (m, 1)
    masks : dict or None
        Layer index -> boolean keep mask ``(m, width)`` for Dropout layers ("frozen" dropout);
        None checks with dropout off.
    """

    def __init__(self, model, X, Y, masks=None):
        net = copy.deepcopy(model)
        for layer in net.layers:
            for name in layer.params:
                layer.params[name] = np.array(layer.params[name], dtype=np.float64)
        net.dtype = np.dtype(np.float64)
        frozen = masks is not None
        for i, mask in (masks or {}).items():
            net.layers[i].fixed_mask = mask
        self.net, self.X, self.Y = net, _frozen(np.array(X, dtype=np.float64)), Y
        self.m = X.shape[0]
        self.training = frozen
        self.body = net.body
        # acts[k] is the input of body[k]; acts[-1] what the loss sees.
        self.acts = [self.X]
        for layer in self.body:
            self.acts.append(_frozen(_call(layer, self.acts[-1], frozen)))
        self.patterns = [layer.kink_pattern(A) for layer, A in zip(self.body, self.acts)]
        # Column j of an activation is row j of its transpose: contiguous to gather.
        self.actsT = [_frozen(np.ascontiguousarray(A.T)) for A in self.acts]
        self.patternsT = [None if P is None else np.ascontiguousarray(P.T) for P in self.patterns]
        # Per example, how close a layer's input comes to 0 (where ReLU's kink is).
        self.margins = [np.abs(A).min(axis=1, initial=np.inf) for A in self.acts]
        self.base_losses = net.loss.losses(self.acts[-1], Y, net.logit_head)[:, 0]
        self.rowwise_from = [all(layer.rowwise for layer in self.body[k:]) for k in range(len(self.body) + 1)]
        self.affine = {k: tail for k in range(len(self.body)) if (tail := self._affine_tail(k)) is not None}
        # Distinct input values per example, for Dense layers whose inputs repeat a lot (see column_table);
        # layers with an affine tail never use them.
        self.tables = {k: _value_table(self.acts[k]) for k, layer in enumerate(self.body)
                       if _is_plain_dense(layer) and self.rowwise_from[k + 1] and k not in self.affine}
        self._table_results = {}
        self.input_range = {k: (self.acts[k].min(axis=1), self.acts[k].max(axis=1))
                            for k in set(self.affine) | set(self.tables)}
        # The L2 term's central difference is exact in closed form, (l2/m) w, unless a loss subclass
        # changes the penalty: then it is evaluated like the rest of J.
        loss_type = type(net.loss)
        self.closed_form_l2 = (loss_type.penalty is BinaryCrossEntropy.penalty
                               and loss_type.dpenalty is BinaryCrossEntropy.dpenalty)

    # -- the affine collapse
    def _affine_tail(self, k):
        """For a plain Dense body[k] whose output reaches the logit through ReLUs and plain Dense layers
        only: ``(c, T, s, base, relu_first)`` with ``c[r, j] = dz_r / dA[r, j]`` (A the output of the
        first ReLU after body[k], or of body[k] itself when none follows), ``T[r, j]`` how far ``A[r, j]``
        may move before any later ReLU could change side, the label signs ``s = 1 - 2y``, the base
        losses ``softplus(s z)`` and whether that first ReLU is there. None when the network does not qualify (a smooth activation, dropout in
        training mode, a layer of the user's, a loss subclass)."""
        net = self.net
        if not (_is_plain_dense(self.body[k]) and net.logit_head and not self.training
                and type(net.loss).losses is BinaryCrossEntropy.losses):
            return None
        start = k + 2 if k + 1 < len(self.body) and type(self.body[k + 1]) is ReLU else k + 1
        tail = self.body[start:]
        if not all(type(layer) is ReLU or _is_plain_dense(layer) or type(layer) is Dropout for layer in tail):
            return None
        width = self.acts[start].shape[1]
        if self.m * width * max([A.shape[1] for A in self.acts[start:]] + [1]) > 2_000_000:
            return None       # the Jacobians below would not be small
        J = np.broadcast_to(np.eye(width), (self.m, width, width))
        T = np.full((self.m, width), np.inf)
        for index, layer in enumerate(tail, start=start):
            if _is_plain_dense(layer):
                J = J @ layer.params["W"]
            elif type(layer) is ReLU:
                Z = self.acts[index]                                    # (m, n): the ReLU's input
                with np.errstate(divide="ignore", invalid="ignore"):
                    room = np.abs(Z)[:, None, :] / np.abs(J)
                T = np.minimum(T, np.where(np.isnan(room), np.inf, room).min(axis=2, initial=np.inf))
                J = J * (Z > 0)[:, None, :]
        s = 1.0 - 2.0 * self.Y[:, 0]
        z = self.acts[-1][:, 0]
        return J[:, :, 0], T, s, _softplus(s * z), start > k + 1

    def moving_rows(self, k, j, h):
        """Examples whose unit j after body[k] can move when ``W[:, j]`` moves by ``h`` times the inputs:
        all of them, unless a ReLU follows and the unit is off with every possible move short of 0."""
        if not (k + 1 < len(self.body) and type(self.body[k + 1]) is ReLU):
            return np.arange(self.m)
        lo, hi = self.input_range[k]
        Z = self.actsT[k + 1][j]
        return np.flatnonzero(Z + np.maximum(h * lo, h * hi) > 0)

    def affine_full_column(self, k, j, h):
        """:meth:`affine_column` for every ``W[:, j]`` at one step ``h``: ``(delta, kink)``.

        Whether an example's unit can cross a kink or leave the proven range is decided from the
        extremes of its inputs, so the usual column costs a few passes over its live examples; the
        few risky examples go through :meth:`column_pairs`, exactly.
        """
        c, T, s, base, relu_first = self.affine[k]
        Z = self.actsT[k + 1][j]
        lo, hi = self.input_range[k]
        low, high = np.minimum(h * lo, h * hi), np.maximum(h * lo, h * hi)          # the moves' range
        live = Z > 0 if relu_first else np.ones(self.m, dtype=bool)
        risky = (live & (np.maximum(-low, high) >= T[:, j] / 2)) | (live & relu_first & (low <= -Z)) | \
            (~live & (high > -Z))
        L = np.flatnonzero(live & ~risky)
        A = self.acts[k]                                               # (m, n_in): long rows, one per example
        t = A[L] * (s * c[:, j] * h)[L, None]
        t += (s * self.acts[-1][:, 0])[L, None]
        change = _softplus(t)
        change -= base[L, None]
        delta, kink = change.sum(axis=0), np.zeros(A.shape[1], dtype=bool)
        for r in np.flatnonzero(risky):
            more, more_kink = self.column_pairs(k, j, np.full(A.shape[1], r), h * A[r])
            delta += more
            kink |= more_kink
        return delta, kink

    def affine_column(self, k, j, moves):
        """Loss changes ``(B,)`` and kinks ``(B,)`` when column j of body[k]'s output moves by ``moves`` ``(B, m)``.

        Through the first ReLU the move is exact, ``d = relu(Z + move) - relu(Z)``, and its kink is
        checked exactly; from there on every layer is linear while no ReLU changes side, so the
        logit moves by ``d * c[r, j]`` and only the loss is evaluated: ``softplus(s (z + d c))``. An
        example that provably keeps every later ReLU on its side (``|d| < T / 2``) takes this path;
        the rare others, and dead units that do not move, are evaluated exactly or skipped.
        """
        c, T, s, base, relu_first = self.affine[k]
        Z = self.actsT[k + 1][j]                                     # (m,)
        B = moves.shape[0]
        kink = np.zeros(B, dtype=bool)
        delta = np.zeros(B)
        if relu_first:
            # a dead unit stays dead (and its loss unchanged) unless the move reaches 0: a kink
            reach = (Z + moves > 0) & (Z <= 0)
            kink |= reach.any(axis=1)
            live = np.flatnonzero(Z > 0)
            crossing = (Z[live] + moves[:, live] <= 0)
            kink |= crossing.any(axis=1)
        else:
            live, crossing, reach = np.arange(self.m), np.zeros((B, self.m), dtype=bool), None
        d = moves[:, live]                         # a live unit that stays live moves by exactly its input's move
        t = (s[live] * c[live, j]) * d
        t += (s * self.acts[-1][:, 0])[live]
        change = _softplus(t)
        change -= base[live]
        exact = crossing | ~(np.abs(d) < T[live, j] / 2)               # rare: those pairs go through the tail
        if reach is not None and reach.any():
            b, r = np.nonzero(reach)
            more, more_kink = self.column_pairs(k, j, r, moves[b, r])
            np.add.at(delta, b, more)
        if exact.any():
            b, r = np.nonzero(exact)
            change[b, r], more_kink = self.column_pairs(k, j, live[r], moves[b, live[r]])
            kink[b] |= more_kink
        delta += change.sum(axis=1)
        return delta, kink

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
        self.net._backprop(self.X.copy(), self.Y, training=self.training)
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
            return self.net._cost(self.X.copy(), self.Y, self.training)
        finally:
            for name, value in saved.items():
                params[name][...] = value

    # -- what rounding does to J
    def noise(self, k, recomputed):
        """Rounding noise of one evaluated change of J when a parameter of body[k] moves.

        First-order error analysis: every value computed anew rounds by about ``u`` times
        the magnitude of what it sums (``|A| @ |W| + |b|`` for a Dense, its own size for
        other layers), and an error ``delta`` at the loss's input changes example r's loss by
        ``|dL_r/dout_r| delta_r``. Values computed once at theta cancel between the two
        sides of a difference and add nothing. ``recomputed`` says whether body[k] itself
        is evaluated whole (loop, user layers) or only its moved column is updated. Large
        inputs that later cancel, saturated probabilities (rounding ``u a / (1 - a)``) and
        large losses all show up here. Returns an absolute noise in units of J.
        """
        u = UNIT_ROUNDOFF
        delta = np.zeros_like(self.acts[k])
        for k2 in range(k, len(self.body)):
            layer, A, out = self.body[k2], self.acts[k2], self.acts[k2 + 1]
            if _is_plain_dense(layer):
                delta = delta @ np.abs(layer.params["W"])
                if k2 > k or recomputed:
                    delta += u * (np.abs(A) @ np.abs(layer.params["W"]) + np.abs(layer.params["b"]))
                else:
                    delta += u * np.abs(out)
            else:
                if k2 > k:       # carried through the layer: half the spread of f(A + delta) and f(A - delta)
                    delta = np.abs(_call(layer, A + delta, self.training)
                                   - _call(layer, A - delta, self.training)) / 2
                delta += u * np.abs(out)
        out = self.acts[-1]
        slope = np.abs(self.net.loss.dout(out, self.Y, self.net.logit_head))       # |dL_r/dout_r| / m
        return float(np.sum(slope * delta) + u * np.sum(np.abs(self.base_losses)) / self.m)

    # -- J at theta +- h e_i
    def central(self, k, layer, pname, array, flat, h, method):
        """Changes of the data term of J at theta + h e_i and theta - h e_i, and kink flags.

        ``h`` is one step or one step per coordinate (confirmation sends several steps of the
        same coordinates in one pass). Returns ``(fp, fm, kink)``, each of shape ``(len(flat),)``,
        in units of J (the L2 term is left to :meth:`penalty_slope` when it is the built-in one).
        """
        h = np.broadcast_to(np.asarray(h, dtype=float), flat.shape)
        if method == "loop":
            (fp, kp), (fm, km) = [self.loop(array, flat, s * h) for s in (1, -1)]
        else:
            (fp, kp), (fm, km) = [_perturbed(self, k, layer, pname, array, flat, s * h) for s in (1, -1)]
            if not self.closed_form_l2 and pname in layer.regularized:
                fp, fm = fp + self._penalty_change(array, flat, h), fm + self._penalty_change(array, flat, -h)
        return fp / self.m, fm / self.m, kp | km

    def penalty_slope(self, layer, pname, array, flat):
        """The L2 term's exact central difference ``(l2/m) w`` (zero where it is evaluated with J)."""
        if pname not in layer.regularized or not self.closed_form_l2:
            return np.zeros(flat.size)
        return self.net.loss.l2 / self.m * array.flat[flat]

    def _penalty_change(self, array, flat, h):
        """``m (P(theta + h e_i) - P(theta))`` for a loss subclass's own penalty, coordinate by coordinate."""
        base = self.net.loss.penalty(self.net._weights(), self.m)
        out = np.empty(flat.size)
        for b, f in enumerate(flat):
            old = array.flat[f]
            array.flat[f] = old + h[b]
            out[b] = (self.net.loss.penalty(self.net._weights(), self.m) - base) * self.m
            array.flat[f] = old
        return out

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
                A = _call(layer, A, self.training)
            else:   # mixes examples (or a frozen dropout mask): one perturbed copy at a time
                A = np.concatenate([_call(layer, A[b:b + m], self.training) for b in range(0, len(rows), m)])
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

    def generic(self, k, layer, array, flat, steps):
        """Loss changes and kinks with ``array.flat[flat[b]] += steps[b]``, one forward of body[k] each."""
        outs = []
        for f, step in zip(flat, steps):
            old = array.flat[f]
            array.flat[f] = old + step
            outs.append(_call(layer, self.acts[k], self.training))
            array.flat[f] = old
        return self.downstream(k + 1, np.concatenate(outs), len(flat))

    def loop(self, array, flat, steps):
        """Loss changes and kinks by the plain recipe: one whole forward per coordinate."""
        deltas, kinks = [], []
        penalty = lambda: self.net.loss.penalty(self.net._weights(), self.m) * self.m
        base = 0.0 if self.closed_form_l2 else penalty()
        for f, step in zip(flat, steps):
            old = array.flat[f]
            array.flat[f] = old + step
            delta, kink = self.downstream(0, self.X, 1)
            deltas.append(delta[0] + (0.0 if self.closed_form_l2 else penalty() - base))
            kinks.append(kink[0])
            array.flat[f] = old
        return np.array(deltas), np.array(kinks)


def _perturbed(ev, k, layer, pname, array, flat, steps):
    """Loss changes ``(B,)`` and kinks ``(B,)`` with each coordinate ``flat[b]`` moved by ``steps[b]``."""
    if not _is_plain_dense(layer):
        return ev.generic(k, layer, array, flat, steps)
    n_out = array.shape[-1]
    cols = flat % n_out
    table = ev.tables.get(k)
    one_step = steps.size > 0 and bool(np.all(steps == steps[0]))
    if k in ev.affine:
        # one batched pass per column: every W[:, j], b[j] and step together
        delta, kink = np.empty(flat.size), np.empty(flat.size, dtype=bool)
        n_in = array.shape[0] if pname == "W" else 0
        for run in np.split(np.arange(flat.size), np.flatnonzero(np.diff(cols)) + 1):
            j = int(cols[run[0]])
            if run.size == n_in and one_step and np.array_equal(flat[run] // n_out, np.arange(n_in)):
                delta[run], kink[run] = ev.affine_full_column(k, j, float(steps[0]))   # a whole column, in order
                continue
            moves = (np.repeat(steps[run][:, None], ev.m, axis=1) if pname == "b"
                     else steps[run][:, None] * ev.actsT[k][flat[run] // n_out])
            delta[run], kink[run] = ev.affine_column(k, j, moves)
        return delta, kink
    if pname == "b":
        return ev.dense_column(k, cols, np.repeat(steps[:, None], ev.m, axis=1))
    # W[i, j] moves column j of Z by steps * A_prev[:, i]; runs of one column j share it all.
    rows = flat // n_out
    m = ev.m
    delta, kink = np.empty(flat.size), np.empty(flat.size, dtype=bool)
    bounds = np.flatnonzero(np.diff(cols)) + 1
    for run in np.split(np.arange(flat.size), bounds):
        j = int(cols[run[0]])
        # the value table pays when the run has more (example, coordinate) pairs than the column has
        # distinct (example, value) pairs; a few coordinates (confirmation) go pair by pair
        if table is not None and one_step and run.size * m >= table[0].size:
            change, kinks = ev.column_table(k, j, float(steps[0]))
            moving = ev.moving_rows(k, j, float(steps[0]))                # the others change nothing
            codes = table[2][moving][:, rows[run]]                         # (examples, B)
            delta[run] = change[codes].sum(axis=0)
            kink[run] = kinks[codes].any(axis=0) if kinks.any() else False
        elif ev.rowwise_from[k + 1]:
            examples = np.tile(np.arange(m), run.size)                     # pair b * m + r
            moves = steps[run][:, None] * ev.actsT[k][rows[run]]            # (B, m)
            change, kinks = ev.column_pairs(k, j, examples, moves.ravel())
            delta[run], kink[run] = change.reshape(-1, m).sum(axis=1), kinks.reshape(-1, m).any(axis=1)
        else:
            delta[run], kink[run] = ev.dense_column(k, j, steps[run][:, None] * ev.actsT[k][rows[run]])
    return delta, kink
