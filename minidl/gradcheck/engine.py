"""The evaluation engine: J at theta +- h e_i for many coordinates i, exactly and fast.

Every path below evaluates the same function as the plain loop (``method="loop"``: copy the
parameter, move one coordinate, run the whole forward pass and the loss) and differs from it
only in rounding. They differ in what they avoid recomputing:

1. **Reuse.** Layers before the perturbed one are untouched: their activations are computed once.
   For Dense's ``W[i, j]`` only column j of ``Z`` moves, by ``+-h * A_prev[:, i]``, and ``b[j]``
   moves it by ``+-h``.
2. **Affine collapse** (:meth:`Evaluator.affine_block`, :meth:`Evaluator.affine_moves`). When
   everything after that column's ReLU is ReLUs and Dense layers (the usual case), the logit is
   an affine function of the move as long as no ReLU changes side, which is provable per example
   from each unit's distance to 0 (:meth:`Evaluator._affine_tail`). The logit of example r then
   moves by ``t = d * c[r, j]`` with ``c`` from one backward pass at theta, and its loss
   ``softplus(x + t)`` (``x`` the label-signed logit) changes by exactly
   ``log1p(sigmoid(x) * expm1(t))``: one column of every coordinate of a Dense costs two
   transcendental functions per live example, on long contiguous rows. Examples that could
   cross a kink go through the exact path below; dead units that stay dead change nothing.
3. **Exact column moves** (:meth:`Evaluator.column_pairs`). Otherwise the moved column is pushed
   through the elementwise layers after it and enters the next Dense as a rank-one update, one
   row per (perturbation, example) pair whose input moved; when inputs repeat (8-bit pixels), each
   distinct (example, input value) pair of a column is evaluated once (:meth:`Evaluator.exact_columns`).
   Layers that mix examples get whole copies of the batch instead (:meth:`Evaluator.stacked_columns`).
4. **Generic.** Other layers (a user's, a Dense subclass with its own forward) evaluate their own
   forward once per coordinate; everything after them is still stacked.

Both signs of a step travel together, and a check of every coordinate runs in blocks whose size
``chunk_size`` bounds (the memory in use does not grow with the number of parameters).

What the engine keeps between evaluations (inputs, activations, kink patterns) is read-only,
and a layer that is not one of minidl's own gets a copy of it: a user layer that writes into
its input (``np.maximum(Z, 0, out=Z)``) cannot corrupt what the checker holds.
"""
import contextlib
import copy
from typing import NamedTuple

import numpy as np
from scipy.special import expit

from .. import contract
from ..layers import BUILT_IN_LAYERS, Dense, Dropout, ReLU, Sigmoid, Tanh
from ..losses import BinaryCrossEntropy

UNIT_ROUNDOFF = np.finfo(np.float64).eps / 2
_OWN_LAYERS = tuple(BUILT_IN_LAYERS.values())      # never write into their input
BLOCK = 1 << 18           # values per block of the affine path (2 MB: stays in cache)
STACK_BYTES = 64 << 20    # stacked activations per chunk of the exact paths
JACOBIAN_VALUES = 1 << 22  # largest Jacobian of one example's unit against the later units (32 MB)
TRANSPOSE_BYTES = 16 << 20  # activations up to this size also get a transposed copy (contiguous columns)
MOVE_LIMIT = 1e3    # a step of a Dense's W moves a unit by at most this many epsilons (see row_steps)


class ParameterHandle(NamedTuple):
    """One parameter of the Evaluator's copy: its name (``"2.W"``), the index ``k`` of its layer in the body,
    the layer, the parameter's own name and the array itself (moved in place by the loop)."""
    name: str
    k: int
    layer: object
    pname: str
    array: np.ndarray


#: The paths of :meth:`Evaluator.path`, each the same function as the loop, differing only in rounding.
PATHS = {
    "loop": "the plain recipe: the parameter moved, one whole forward pass per coordinate",
    "affine": "the affine collapse: behind ReLUs and Dense layers the logit moves linearly, so only the loss "
              "is evaluated, exactly; examples that could cross a kink go the exact way",
    "exact columns": "the moved column through the elementwise layers after it, into the next Dense as a "
                     "rank-one update, one row per moved example",
    "stacked columns": "whole perturbed copies of the batch, for a later layer that mixes examples",
    "generic": "the layer's own forward once per coordinate (a user's layer, a Dense subclass), the rest stacked",
}


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
                layer.params[name] = np.asarray(layer.params[name], dtype=np.float64)    # the copy's own
        net.dtype = np.dtype(np.float64)
        frozen = masks is not None
        for i, mask in (masks or {}).items():
            net.layers[i].fixed_mask = mask
        # a read-only view of the caller's float64 X (a copy only for another dtype): X is the largest array here
        self.net, self.X, self.Y = net, _frozen(np.asarray(X, dtype=np.float64).view()), Y
        self.m = X.shape[0]
        self.training = frozen
        self.body = net.body
        # acts[k] is the input of body[k]; acts[-1] what the loss sees.
        self.acts = [self.X]
        for k, layer in enumerate(self.body):
            out = _call(layer, self.acts[-1], frozen)
            if not contract.is_built_in(layer):
                contract.check_forward(layer, self.acts[-1], out, contract.describe(layer, k), net.widths[k])
            self.acts.append(_frozen(out))
        # What each layer declares (elementwise, rowwise, kink_pattern), as far as the data bears it out:
        # a shortcut taken on a false declaration would share the false assumption of a wrong backward.
        self.shortcuts = [contract.probe(layer, self.acts[k], self.acts[k + 1], frozen, contract.describe(layer, k))
                          for k, layer in enumerate(self.body)]
        self.notes = [note for shortcut in self.shortcuts for note in shortcut.notes]
        self.elementwise = [s.elementwise for s in self.shortcuts]
        self.rowwise = [s.rowwise for s in self.shortcuts]
        self.patterns = [layer.kink_pattern(A) if s.kinks else None
                         for layer, A, s in zip(self.body, self.acts, self.shortcuts)]
        # Column j of an activation is row j of its transpose: contiguous to gather. Not for an activation as
        # large as TRANSPOSE_BYTES (the input of a wide first layer): its columns are gathered where needed.
        self.actsT = [_frozen(np.ascontiguousarray(A.T)) if A.nbytes <= TRANSPOSE_BYTES else None for A in self.acts]
        self.patternsT = [None if P is None else np.ascontiguousarray(P.T) for P in self.patterns]
        # Per example, how close a layer's input comes to 0 (where ReLU's kink is), a block of rows at a time.
        self.margins = [_row_margins(A) for A in self.acts]
        self.base_losses = net.loss.losses(self.acts[-1], Y, net.logit_head)[:, 0]
        self.rowwise_from = [all(self.rowwise[k:]) for k in range(len(self.body) + 1)]
        self.affine = {k: tail for k in range(len(self.body)) if (tail := self._affine_tail(k)) is not None}
        self._tables = {}          # layer -> distinct input values per example (exact_columns), built when asked
        self._noise = {}           # (k, recomputed) -> noise(k, recomputed), computed when asked
        # The L2 term's central difference is exact in closed form, (l2/m) w, unless a loss subclass
        # changes the penalty: then it is evaluated like the rest of J.
        loss_type = type(net.loss)
        self.closed_form_l2 = (loss_type.penalty is BinaryCrossEntropy.penalty
                               and loss_type.dpenalty is BinaryCrossEntropy.dpenalty)

    def columns(self, k, index):
        """Columns ``index`` of ``acts[k]`` as rows ``(len(index), m)``."""
        if self.actsT[k] is not None:
            return self.actsT[k][index]
        return np.take(self.acts[k], index, axis=1).T

    def _input_for(self, layer):
        """X for a forward pass from the start: the read-only X itself for minidl's own layers (which never
        write into their input), a copy for a layer of the user's."""
        return self.X if type(layer) in _OWN_LAYERS else self.X.copy()

    # -- what the checks ask for
    def named_params(self):
        """A :class:`ParameterHandle` for every parameter, in the model's order."""
        # Only the final Sigmoid is outside the body, and it has no parameters.
        return [ParameterHandle(f"{i}.{p}", i, layer, p, layer.params[p])
                for i, layer in enumerate(self.net.layers) for p in layer.params]

    def analytic(self):
        """The copy's own backprop at theta: ``{name: gradient}``, arrays no later call writes into
        (minidl's layers assign fresh arrays in every backward; a user's layer's are copied)."""
        self.net.trusted_backprop(self._input_for(self.body[0]), self.Y, training=self.training)
        own = {id(layer) for layer in self.net.layers if type(layer) in _OWN_LAYERS}
        return {f"{i}.{p}": layer.grads[p] if id(layer) in own else layer.grads[p].copy()
                for i, layer in enumerate(self.net.layers) for p in layer.params}

    @contextlib.contextmanager
    def at(self, theta, names):
        """The copy's parameters ``names`` taken from a flattened ``theta`` for the duration: minidl's own layers
        get views of ``theta`` in place of their arrays (no copy of theta's size), a user's layer a copy; the
        arrays themselves are put back after."""
        saved, offset = [], 0
        handles = {n: (layer, p) for n, _, layer, p, _ in self.named_params()}
        theta = np.asarray(theta, dtype=np.float64)
        for name in names:
            layer, pname = handles[name]
            array = layer.params[pname]
            part = theta[offset:offset + array.size].reshape(array.shape)
            saved.append((layer, pname, array))
            layer.params[pname] = part if type(layer) in _OWN_LAYERS else part.copy()
            offset += array.size
        try:
            yield
        finally:
            for layer, pname, array in saved:
                layer.params[pname] = array

    def cost_at(self, theta, names):
        """J at a flattened theta (used by scipy's check_grad)."""
        with self.at(theta, names):
            return self.net.trusted_cost(self._input_for(self.body[0]), self.Y, self.training)

    def along(self, v):
        """J on the line ``theta + w v``, as a function of the number ``w``: scipy's check along one direction.

        ``v`` is flattened in the order of :meth:`named_params`. The function, ``J_v(w, frozen=False)``,
        returns ``(J, crossed)``: ``crossed`` says whether some layer's kink pattern at that point differs
        from theta's (the straight step crosses a kink). With ``frozen=True`` every ReLU keeps the units it
        lets through at theta (J without its kinks, smooth along the line, with J's slope at theta); the
        value is None when a layer of the user's has kinks (there is no freezing them).

        It is the J of :meth:`cost_at`, computed with less work: a plain Dense first layer's
        ``Z = X W + b`` moves linearly, by ``w (X V + v_b)``, so that product is taken once and each point
        costs only the later layers; the built-in L2 term is a quadratic in w,
        ``sum ||W||^2 + 2 w sum W.V + w^2 sum ||V||^2`` (times ``l2 / 2m``).
        """
        handles = self.named_params()
        moves, offset = {}, 0
        for handle in handles:
            moves[handle.name] = v[offset:offset + handle.array.size].reshape(handle.array.shape)
            offset += handle.array.size
        first = self.body[0]
        linear = is_plain_dense(first)
        dZ = self.X @ moves["0.W"] + moves["0.b"] if linear else None
        start = 1 if linear else 0
        later = [h for h in handles if h.k >= start]
        kinked = [k for k, pattern in enumerate(self.patterns) if pattern is not None]
        freezable = all(type(self.body[k]) is ReLU for k in kinked)
        weights = [(f"{i}.{p}", layer.params[p]) for i, layer in enumerate(self.net.layers) for p in layer.regularized]
        if self.closed_form_l2:
            terms = [sum(float(np.vdot(a, b)) for a, b in pairs) for pairs in (
                [(W, W) for _, W in weights], [(W, moves[n]) for n, W in weights],
                [(moves[n], moves[n]) for n, _ in weights])]
            scale = self.net.loss.l2 / (2 * self.m)

        def penalty(w):
            if self.closed_form_l2:
                return scale * (terms[0] + 2 * w * terms[1] + w * w * terms[2])
            return self.net.loss.penalty([W + w * moves[n] for n, W in weights], self.m)

        def J_v(w, frozen=False):
            if frozen and not freezable:
                return None, False
            A = self.acts[1] + w * dZ if linear else self._input_for(first)
            crossed = False
            for h in later:
                h.layer.params[h.pname] = h.array + w * moves[h.name]
            try:
                for k in range(start, len(self.body)):
                    layer, pattern = self.body[k], self.patterns[k]
                    if pattern is not None:
                        crossed = crossed or bool(np.any(layer.kink_pattern(A) != pattern))
                    A = np.where(pattern, A, 0.0) if frozen and pattern is not None else _call(layer, A, self.training)
            finally:
                for h in later:
                    h.layer.params[h.pname] = h.array
            data = float(np.mean(self.net.loss.losses(A, self.Y, self.net.logit_head), dtype=np.float64))
            return data + penalty(w), crossed
        return J_v

    def line_noise(self):
        """Rounding noise of one value of :meth:`along`'s J: a plain Dense first layer's output is only
        updated there (``Z + w dZ``), anything else is evaluated whole."""
        return self.noise(0, not is_plain_dense(self.body[0]))

    # -- which path evaluates a parameter: chosen here, and only here
    def path(self, k, layer, method="fast"):
        """The name of the path (see :data:`PATHS`) that evaluates the parameters of body[k]."""
        if method == "loop":
            return "loop"
        if not is_plain_dense(layer):
            return "generic"
        if k in self.affine:
            return "affine"
        return "exact columns" if self.rowwise_from[k + 1] else "stacked columns"

    def penalty_evaluated(self, layer, pname):
        """True when a loss subclass's own L2 penalty of this parameter is evaluated like the rest of J
        (the built-in one's central difference is exact in closed form: :meth:`penalty_slope`)."""
        return not self.closed_form_l2 and pname in layer.regularized

    def central(self, k, layer, pname, array, flat, h, method="fast", chunk_size=None, progress=None):
        """Changes of the data term of J at theta + h e_i and theta - h e_i, and kink flags.

        ``flat`` are flat indices into ``array`` (a parameter of body[k]); ``h`` is one step or one
        step per coordinate (confirmation sends several steps of the same coordinates in one
        call). Returns ``(fp, fm, kink)``, each of shape ``(len(flat),)``, in units of J (the L2
        term is left to :meth:`penalty_slope` when it is the built-in one). ``chunk_size``
        coordinates are evaluated together (default: about ``STACK_BYTES`` of activations);
        ``progress(n)`` is called after each chunk.
        """
        h = np.broadcast_to(np.asarray(h, dtype=float), flat.shape)
        per = chunk_size or self.stacked_chunk(k, layer)
        fp, fm, kink = np.empty(flat.size), np.empty(flat.size), np.empty(flat.size, dtype=bool)
        for start in range(0, flat.size, per):
            part = slice(start, start + per)
            f, steps = flat[part], h[part]
            if method == "loop":
                (fp[part], kp), (fm[part], km) = [self.loop(array, f, s * steps) for s in (1, -1)]
                kink[part] = kp | km
            else:
                # both signs in one pass
                delta, kinks = self._perturbed(k, layer, pname, array, np.concatenate([f, f]),
                                               np.concatenate([steps, -steps]))
                fp[part], fm[part], kink[part] = delta[:f.size], delta[f.size:], kinks[:f.size] | kinks[f.size:]
                if self.penalty_evaluated(layer, pname):
                    fp[part] += self._penalty_change(array, f, steps)
                    fm[part] += self._penalty_change(array, f, -steps)
            if progress is not None:
                progress(f.size)
        return fp / self.m, fm / self.m, kink

    def central_all(self, k, layer, pname, array, h, method="fast", chunk_size=None, progress=None):
        """:meth:`central` for every coordinate of ``array``, in its flat (C) order.

        A plain Dense goes in blocks of whole columns (all ``W[:, j]`` or ``b[j]`` of a few j):
        through :meth:`affine_block` when its tail is affine, else (W, rowwise tail) through
        :meth:`exact_columns`; ``chunk_size`` coordinates per block at most. Anything else through
        :meth:`central`. ``h`` is one step, or for a Dense's W one step per row (per input feature,
        see :func:`row_steps`).
        """
        path = self.path(k, layer, method)
        affine = path == "affine"
        # whole columns: every coordinate of an affine layer, a W on the exact path (b goes pair by pair)
        blocks = affine or (path == "exact columns" and pname == "W")
        if not blocks or self.penalty_evaluated(layer, pname):
            steps = h if np.ndim(h) == 0 else np.repeat(h, array.shape[-1])
            return self.central(k, layer, pname, array, np.arange(array.size), steps, method, chunk_size, progress)
        inputs = self.acts[k] if pname == "W" else np.ones((self.m, 1))
        if np.ndim(h):      # a step per input feature: each one's moves, h_i * inputs[:, i], as inputs of step 1
            inputs, h = _frozen(inputs * h), 1.0
        n_in, n_out = inputs.shape[1], array.shape[-1]
        table = None
        if affine:      # a block's values stay in cache
            per = chunk_size or max(1, BLOCK // (2 * self.m))
        else:           # a value table (inputs that repeat) serves whole columns, unless chunk_size is smaller
            if (chunk_size is None or chunk_size >= n_in) and inputs is self.acts[k]:
                if k not in self._tables:
                    self._tables[k] = _value_table(inputs)
                table = self._tables[k]
            per = n_in if table is not None else chunk_size or self.stacked_chunk(k, layer)
        piece = min(n_in, max(1, per))                                # rows i of a block
        width = max(1, per // piece)                                  # columns j of a block
        fp, fm, kink = np.empty((n_in, n_out)), np.empty((n_in, n_out)), np.empty((n_in, n_out), dtype=bool)
        for i0 in range(0, n_in, piece):
            rows = slice(i0, i0 + piece)
            part = inputs[:, rows]
            if affine:
                reach = h * np.abs(part).max(axis=1)                  # each example's largest move
            for j0 in range(0, n_out, width):
                cols = np.arange(j0, min(n_out, j0 + width))
                if affine:
                    block = self.affine_block(k, part, cols, h, reach)
                else:
                    block = self.exact_columns(k, part, cols, h, table)
                fp[rows, j0:j0 + width], fm[rows, j0:j0 + width], kink[rows, j0:j0 + width] = (x.T for x in block)
                if progress is not None:
                    progress(part.shape[1] * cols.size)
        fp /= self.m
        fm /= self.m
        return fp.ravel(), fm.ravel(), kink.ravel()

    def exact_columns(self, k, inputs, cols, h, table=None):
        """``(fp, fm, kink)`` of shape ``(J, n)``: coordinate ``(i, j)`` moves unit j of example r by
        ``+-h * inputs[r, i]``, for each j of ``cols``.

        Every (example, coordinate) pair through :meth:`column_pairs`, both signs in one pass. With
        a value table (``(rows, values, codes)`` of :func:`_value_table` for all of ``inputs``),
        each distinct (example, input value) pair is evaluated once and every coordinate reads its
        per-example changes from it: the same floating-point operations on the same numbers, done
        once (8-bit pixels, one-hot or binary features repeat a lot).
        """
        m, n = inputs.shape
        rows, values = (np.repeat(np.arange(m), n), inputs.ravel()) if table is None else table[:2]
        P = rows.size
        out = np.empty((3, cols.size, n))
        for jj, j in enumerate(cols):
            change, kinks = self.column_pairs(k, j, np.concatenate([rows, rows]),
                                              np.concatenate([h * values, -h * values]))
            kinks = kinks[:P] | kinks[P:]
            if table is None:
                parts = change[:P].reshape(m, n), change[P:].reshape(m, n), kinks.reshape(m, n)
            else:
                parts = change[:P][table[2]], change[P:][table[2]], kinks[table[2]]
            out[0, jj], out[1, jj], out[2, jj] = parts[0].sum(axis=0), parts[1].sum(axis=0), parts[2].any(axis=0)
        return out[0], out[1], out[2] > 0

    def penalty_slope(self, layer, pname, array, flat=None):
        """The L2 term's exact central difference ``(l2/m) w`` (0 where it is evaluated with J)."""
        if pname not in layer.regularized or not self.closed_form_l2 or self.net.loss.l2 == 0:
            return 0.0
        w = array.ravel() if flat is None else array.flat[flat]
        return self.net.loss.l2 / self.m * w

    def _penalty_change(self, array, flat, h):
        """``m (P(theta + h e_i) - P(theta))`` for a loss subclass's own penalty, coordinate by coordinate."""
        base = self.net.loss.penalty(self.net.regularized_weights(), self.m)
        out = np.empty(flat.size)
        for b, f in enumerate(flat):
            old = array.flat[f]
            array.flat[f] = old + h[b]
            out[b] = (self.net.loss.penalty(self.net.regularized_weights(), self.m) - base) * self.m
            array.flat[f] = old
        return out

    def stacked_chunk(self, k, layer):
        """Coordinates of body[k] evaluated together by the exact paths: about STACK_BYTES of stacked activations
        per sign (m rows of the widest activation per coordinate, some 8 temporaries of 8 bytes)."""
        return max(1, STACK_BYTES // (8 * 8 * self.m * self.stack_width(k, layer)))

    def stack_width(self, k, layer):
        """The widest activation the perturbations of body[k]'s parameters are stacked in."""
        k2 = k + 1
        while is_plain_dense(layer) and k2 < len(self.body) and self.elementwise[k2]:
            k2 += 1       # Dense: one column travels alone through elementwise layers
        if is_plain_dense(layer) and k2 < len(self.body) and is_plain_dense(self.body[k2]):
            k2 += 1       # ... and enters the next Dense as a rank-one update
        return max([A.shape[1] for A in self.acts[k2:]] + [1])

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
        if (k, recomputed) not in self._noise:
            self._noise[k, recomputed] = self._rounding(k, recomputed)
        return self._noise[k, recomputed]

    def _rounding(self, k, recomputed):
        """:meth:`noise`, computed."""
        u = UNIT_ROUNDOFF
        delta = None           # no error yet in body[k]'s input
        for k2 in range(k, len(self.body)):
            layer, A, out = self.body[k2], self.acts[k2], self.acts[k2 + 1]
            if is_plain_dense(layer):
                absW = np.abs(layer.params["W"])
                rounding = _abs_product(A, absW) + np.abs(layer.params["b"]) if k2 > k or recomputed else np.abs(out)
                delta = u * rounding if delta is None else delta @ absW + u * rounding
            elif delta is None:    # body[k] itself, evaluated whole: its output rounds
                delta = u * np.abs(out)
            else:                  # carried through the layer: half the spread of f(A + delta) and f(A - delta)
                delta = np.abs(_call(layer, A + delta, self.training) - _call(layer, A - delta, self.training)) / 2
                delta += u * np.abs(out)
        out = self.acts[-1]
        slope = np.abs(self.net.loss.dout(out, self.Y, self.net.logit_head))       # |dL_r/dout_r| / m
        return float(np.sum(slope * delta) + u * np.sum(np.abs(self.base_losses)) / self.m)

    # -- which path evaluates a set of coordinates
    def _perturbed(self, k, layer, pname, array, flat, steps):
        """Loss changes ``(B,)`` and kinks ``(B,)`` with each coordinate ``flat[b]`` moved by ``steps[b]``."""
        path = self.path(k, layer)
        if path == "generic":
            return self.generic(k, layer, array, flat, steps)
        n_out = array.shape[-1]
        cols = flat % n_out
        # W[i, j] moves column j of Z by steps * A_prev[:, i]; b[j] by steps
        moves = steps[:, None] * (self.columns(k, flat // n_out) if pname == "W" else np.ones(self.m))
        if path == "affine":
            return self.affine_moves(k, cols, moves)
        if path == "exact columns":
            b, r = np.nonzero(moves)               # an input that does not move changes nothing
            change, kink = self.column_pairs(k, cols[b], r, moves[b, r])
            return (np.bincount(b, weights=change, minlength=flat.size),
                    np.bincount(b, weights=kink, minlength=flat.size) > 0)
        return self.stacked_columns(k, cols, moves)

    # -- the affine collapse
    def _affine_tail(self, k):
        """For a plain Dense body[k] whose output reaches the logit through ReLUs and plain Dense layers
        only: ``(c, T, p, relu_first)`` with ``c[r, j] = dx_r / dA[r, j]`` (``x = s z`` the label-signed
        logit, ``s = 1 - 2y``; A the output of the first ReLU after body[k], or of body[k] itself when
        none follows), ``T[r, j]`` how far ``A[r, j]`` may move before any later ReLU could change side,
        ``p = sigmoid(x)`` and whether that first ReLU is there. None when the network does not qualify
        (a smooth activation, dropout in training mode, a layer of the user's, a loss subclass)."""
        net = self.net
        if not (is_plain_dense(self.body[k]) and net.logit_head and not self.training
                and type(net.loss).losses is BinaryCrossEntropy.losses):
            return None
        start = k + 2 if k + 1 < len(self.body) and type(self.body[k + 1]) is ReLU else k + 1
        tail = self.body[start:]
        if not all(type(layer) is ReLU or is_plain_dense(layer) or type(layer) is Dropout for layer in tail):
            return None
        width = self.acts[start].shape[1]
        widest = max(A.shape[1] for A in self.acts[start:])
        if width * widest > JACOBIAN_VALUES:
            return None       # one example's Jacobian below would not be small
        per = max(1, JACOBIAN_VALUES // (width * widest))                 # examples at a time
        c, T = np.ones((self.m, width)), np.full((self.m, width), np.inf)
        for r0 in range(0, self.m, per):
            rows = slice(r0, r0 + per)
            J = None          # dA_later / dA[r, j] so far; None: the identity
            for index, layer in enumerate(tail, start=start):
                if is_plain_dense(layer):
                    J = layer.params["W"] if J is None else J @ layer.params["W"]
                elif type(layer) is ReLU:
                    Z = self.acts[index][rows][:, None, :]               # (examples, 1, n): the ReLU's input
                    if J is None:
                        J = np.eye(width)
                    with np.errstate(divide="ignore", invalid="ignore"):
                        room = np.abs(Z) / np.abs(J)
                    T[rows] = np.minimum(T[rows], np.where(np.isnan(room), np.inf, room).min(axis=2, initial=np.inf))
                    J = J * (Z > 0)
            if J is not None:
                c[rows] = J[..., 0]
        s = 1.0 - 2.0 * self.Y[:, :1]
        c = s * c
        return c, T, expit(s[:, 0] * self.acts[-1][:, 0]), start > k + 1

    @staticmethod
    def _safe(Z, move, c, T, relu_first):
        """Which (example, unit) moves the affine formula evaluates exactly, which change nothing.

        ``Z`` is the unit's value at theta, ``move`` how far it moves (``|move|`` when both signs
        are meant), ``c`` and ``T`` the tail's slope and room, all of one shape. Safe: the unit is
        live and stays live, every later ReLU keeps its side (``|move| < T / 2``) and the logit
        moves by at most 1. Still: the unit is off and stays off. The rest needs the exact path.
        """
        size = np.abs(move)
        safe = (size < T / 2) & (size * np.abs(c) <= 1)
        if not relu_first:
            return safe, np.zeros(safe.shape, dtype=bool)
        live = Z > 0
        return safe & live & (Z > size), ~live & (Z + size <= 0)

    def affine_block(self, k, inputs, cols, h, reach):
        """``(fp, fm, kink)`` of shape ``(J, n)`` for every coordinate of columns ``cols`` (J of them).

        Coordinate ``(i, j)`` moves unit j of example r by ``+-h * inputs[r, i]`` (``inputs`` is
        ``A_prev`` for W, ones for b); ``reach[r] = h * max_i |inputs[r, i]|`` bounds every move.
        Whether example r may take the affine formula in column j is decided once from ``reach``;
        the formula then runs over ``(examples, 2J, n)`` at once, both signs, and the examples that
        could cross a kink go through :meth:`column_pairs`, every coordinate of their column.
        """
        c, T, p, relu_first = self.affine[k]
        c, Z = c[:, cols], self.acts[k + 1][:, cols]                          # (m, J)
        safe, still = self._safe(Z, reach[:, None], c, T[:, cols], relu_first)
        live = np.flatnonzero(safe.any(axis=1))
        q = np.where(safe, c * h, 0.0)                                        # the logit's move per unit input
        J, n = cols.size, inputs.shape[1]
        t = np.empty((live.size, 2 * J, n))
        np.multiply(inputs[live, None, :], q[live, :, None], out=t[:, :J])
        np.negative(t[:, :J], out=t[:, J:])
        change = _loss_change(t, p[live, None, None]).sum(axis=0)            # (2J, n)
        fp, fm, kink = change[:J], change[J:], np.zeros((J, n), dtype=bool)
        for r, jj in zip(*np.nonzero(~safe & ~still)):
            d = h * inputs[r]
            more, more_kink = self.column_pairs(k, cols[jj], np.full(2 * n, r), np.concatenate([d, -d]))
            fp[jj] += more[:n]
            fm[jj] += more[n:]
            kink[jj] |= more_kink[:n] | more_kink[n:]
        return fp, fm, kink

    def affine_moves(self, k, cols, moves):
        """Loss changes ``(B,)`` and kinks ``(B,)`` when column ``cols[b]`` of body[k]'s output moves by
        ``moves[b]`` ``(B, m)``: the same formula as :meth:`affine_block`, decided per (move, example)."""
        c, T, p, relu_first = self.affine[k]
        c, Z = c.T[cols], self.actsT[k + 1][cols]                             # (B, m)
        safe, still = self._safe(Z, moves, c, T.T[cols], relu_first)
        t = np.where(safe, c * moves, 0.0)
        delta = _loss_change(t, p).sum(axis=1)
        b, r = np.nonzero(~safe & ~still)
        more, more_kink = self.column_pairs(k, cols[b], r, moves[b, r])
        return delta + np.bincount(b, weights=more, minlength=delta.size), \
            np.bincount(b, weights=more_kink, minlength=delta.size) > 0

    # -- exact moves of one column
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
        while k2 < len(self.body) and self.elementwise[k2]:
            layer = self.body[k2]
            if self.patterns[k2] is not None:
                kink |= layer.kink_pattern(col) != pick(self.patternsT[k2])
            col = layer.forward(col, self.training)
            base = pick(self.actsT[k2 + 1])
            k2 += 1
        return col, base, kink, k2

    def column_pairs(self, k, cols, rows, dvalues):
        """Per-pair loss changes and kinks: pair t moves ``Z[rows[t], cols[t]]`` of body[k] by ``dvalues[t]``
        (``cols`` one int for every pair, or one per pair).

        The loss of example r depends on a move of one unit only through that example's entry, so
        each pair is evaluated alone, and pairs that leave the example unchanged (a ReLU that stays
        off, a zero input) keep its loss exactly. Needs every layer after body[k] to be rowwise.
        """
        col, base, kink, k2 = self._walk_elementwise(k, dvalues, lambda T: T[cols, rows])
        change = np.zeros(rows.size)
        if k2 < len(self.body) and is_plain_dense(self.body[k2]):
            d = col - base
            moved = np.flatnonzero(d)
            W2 = self.body[k2].params["W"]
            w = W2[cols[moved]] if np.ndim(cols) else W2[cols]
            # (A + d e_j^T) @ W2 + b2 = Z2 + d W2[j, :]
            A = d[moved, None] * w
            A += np.take(self.acts[k2 + 1], rows[moved], axis=0)
            bound = float(np.abs(d).max(initial=0.0) * np.abs(w).max(initial=0.0))
            change[moved], more = self.rows_downstream(k2 + 1, A, rows[moved], bound)
            kink[moved] |= more
        else:
            A = self.acts[k2][rows].copy()
            A[np.arange(rows.size), cols] = col
            change, more = self.rows_downstream(k2, A, rows)
            kink |= more
        return change, kink

    def stacked_columns(self, k, cols, dcol):
        """Loss changes and kinks when column ``cols[b]`` of body[k]'s output moves by ``dcol[b]``
        ``(B, m)``, for layers that mix examples: whole copies of the batch are stacked."""
        B, m = dcol.shape
        col, base, kink, k2 = self._walk_elementwise(k, dcol, lambda T: T[cols])
        if k2 < len(self.body) and is_plain_dense(self.body[k2]):
            W2rows = self.body[k2].params["W"][cols][:, None, :]
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
        penalty = lambda: self.net.loss.penalty(self.net.regularized_weights(), self.m) * self.m
        base = 0.0 if self.closed_form_l2 else penalty()
        for f, step in zip(flat, steps):
            old = array.flat[f]
            array.flat[f] = old + step
            delta, kink = self.downstream(0, self.X, 1)
            deltas.append(delta[0] + (0.0 if self.closed_form_l2 else penalty() - base))
            kinks.append(kink[0])
            array.flat[f] = old
        return np.array(deltas), np.array(kinks)

    # -- the downstream pass shared by the exact paths
    def downstream(self, start, A, B):
        """Loss changes ``(B,)`` and kink flags ``(B,)`` for B perturbed copies of body[start]'s
        input, stacked: ``A`` has shape ``(B * m, width)``."""
        change, kink = self.rows_downstream(start, A, np.tile(np.arange(self.m), B))
        return change.reshape(B, -1).sum(axis=1), kink.reshape(B, -1).any(axis=1)

    def rows_downstream(self, start, A, rows, bound=None):
        """Per-row loss changes ``(N,)`` and kink flags ``(N,)``: row i of ``A`` is a perturbed
        input of body[start] for example ``rows[i]``; the change is ``L_r(perturbed) - L_r(theta)``.

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
                if self.rowwise[k]:
                    kink |= (layer.kink_pattern(A) != self.patterns[k][rows]).any(axis=1)
                else:
                    kink |= np.concatenate([layer.kink_pattern(A[b:b + m]) != self.patterns[k]
                                            for b in range(0, len(rows), m)]).any(axis=1)
            if self.rowwise[k]:
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
        if is_plain_dense(layer):
            return bound * float(np.abs(layer.params["W"]).sum(axis=0).max(initial=0.0))
        return None


# ------------------------------------------------------------------ helpers the Evaluator calls
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


def row_steps(inputs, epsilon):
    """The step of each row of a Dense's W (one per input feature), or None when epsilon suits every row.

    ``W[i, j] +- h`` moves unit j of example r by ``h * inputs[r, i]``: with features of 1e6 a step of
    1e-7 moves a unit by 0.1, and truncation, not the backward, decides the difference. Rows whose
    largest input is beyond ``MOVE_LIMIT`` get ``h_i = epsilon * MOVE_LIMIT / max_r |inputs[r, i]|``, so
    no unit moves by more than ``MOVE_LIMIT * epsilon``; the rest keep epsilon.
    """
    largest = np.maximum(inputs.max(axis=0, initial=0.0), -inputs.min(axis=0, initial=0.0))   # no |inputs| copy
    if largest.max(initial=0.0) <= MOVE_LIMIT:
        return None
    return epsilon * (MOVE_LIMIT / np.maximum(largest, MOVE_LIMIT))


def _loss_change(t, p):
    """``softplus(x + t) - softplus(x)`` in place, given ``p = sigmoid(x)``.

    ``log((1 + e^(x + t)) / (1 + e^x)) = log1p(p expm1(t))``: an identity, not an approximation,
    and free of the cancellation between two nearly equal losses. Callers keep ``|t| <= 1``, where
    ``1 + p expm1(t) >= 1 - (1 - 1/e)`` is never close to 0.
    """
    np.expm1(t, out=t)
    t *= p
    np.log1p(t, out=t)
    return t


def is_plain_dense(layer):
    return isinstance(layer, Dense) and type(layer).forward is Dense.forward


def _call(layer, A, training):
    """``layer.forward(A)``, with a copy of ``A`` when it is a cache and the layer is not minidl's own."""
    if not A.flags.writeable and type(layer) not in _OWN_LAYERS:
        A = A.copy()
    return layer.forward(A, training)


def _row_margins(A, values=1 << 20):
    """``min_c |A[r, c]|`` per row, computed a block of rows at a time (no temporary the size of A)."""
    out = np.empty(A.shape[0])
    rows = max(1, values // max(1, A.shape[1]))
    for r0 in range(0, A.shape[0], rows):
        np.min(np.abs(A[r0:r0 + rows]), axis=1, initial=np.inf, out=out[r0:r0 + rows])
    return out


def _abs_product(A, absW, values=1 << 20):
    """``|A| @ absW`` a block of rows at a time (no temporary the size of A)."""
    out = np.empty((A.shape[0], absW.shape[1]))
    rows = max(1, values // max(1, A.shape[1]))
    for r0 in range(0, A.shape[0], rows):
        np.matmul(np.abs(A[r0:r0 + rows]), absW, out=out[r0:r0 + rows])
    return out


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
