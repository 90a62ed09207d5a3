"""The verdict: what rounding and truncation can explain, and what only a bug can.

A central difference ``D(h) = (J(theta + h e_i) - J(theta - h e_i)) / (2h)`` differs from the
true derivative by two things besides a bug:

* rounding noise ``<= sigma / h``, where ``sigma`` bounds the rounding error of one evaluated
  change of J (:meth:`Evaluator.noise` builds it from the magnitudes actually summed: the
  loss terms, the activations recomputed after the perturbed unit, the dtype of the inputs);
* truncation ``~ c h^2``, which grows with the step.

**Screen.** Coordinate i is flagged when ``|g_i - D_i(eps)|`` exceeds
``bar_i = K sigma / eps + allowance_i + rtol (|g_i| + |D_i|)``, where ``allowance_i`` covers the
rounding of ``g`` itself (float32 gradients) and ``rtol = 1e-7`` the float64 rounding of
backprop. A parameter whose error norm exceeds the root-sum-square of its bars, with no
coordinate flagged, has its worst coordinates flagged too.

**Confirmation.** Each flagged coordinate (at most ``CONFIRM_MAX`` per parameter, the worst
first), and each parameter's ``SPOT_CHECK`` largest gradients whatever the screen says (so an
error hidden under the noise at epsilon, in tiny gradients or a uniform scale, meets the finer
bars of larger steps), is evaluated again at steps ``h = eps, 10 eps, 100 eps, ...`` (up to ``MAX_STEP``;
steps below eps down to ``MIN_STEP`` too when eps is larger, and then the coordinates that crossed a kink
at eps as well, up to ``CONFIRM_MAX``) and
``2h``. From each pair, the fourth-order estimate ``D4(h) = (4 D(h) - D(2h)) / 3`` has noise
``<= 1.5 s / h`` and a truncation error far below ``|D(2h) - D(h)| / 3``, which is measured, so
its error bar is honest without knowing any derivative; ``s`` is the larger of ``sigma`` and
the noise measured from the fourth difference of the five values (Moré and Wild's estimate
of computational noise). A real bug's discrepancy stays put as the step changes; noise
shrinks like 1/h and truncation is measured. A coordinate is *wrong* only when the most precise
estimate that crossed no kink disagrees with ``g`` beyond its bar and the next most precise one
agrees with it (the discrepancy stays put); when no step avoids a kink it is reported as a kink.
``passed`` means no coordinate is wrong.
"""
import math

import numpy as np

K_NOISE = 10          # safety factor on every noise bound
RTOL = 1e-7           # relative rounding allowed in float64 backprop
CONFIRM_MAX = 256     # flagged coordinates re-evaluated per parameter, worst first
SPOT_CHECK = 16       # largest gradients of each parameter, re-evaluated whatever the screen says
MAX_STEP = 1e-2       # largest confirmation step h (2h is evaluated too)
MIN_STEP = 1e-7       # smallest confirmation step below epsilon (when epsilon is larger)
BELOW = 3             # powers of ten below the ladder tried before a coordinate is called wrong


def steps(epsilon, below=0):
    """The confirmation steps: epsilon, up to five powers of ten above it (at most MAX_STEP) and,
    when epsilon is large, the powers of ten below it down to MIN_STEP: its truncation error can
    hide a bug or fake one, and a smaller step then gives the most precise estimate. ``below`` adds
    that many more powers of ten under the smallest (for coordinates the ladder called wrong)."""
    up = [epsilon * 10.0 ** k for k in range(1, 6) if epsilon * 10.0 ** k <= MAX_STEP]
    down = [epsilon * 10.0 ** -k for k in range(1, 13) if epsilon * 10.0 ** -k >= MIN_STEP]
    lowest = min([epsilon] + down)
    return [epsilon] + up + down + [lowest * 10.0 ** -k for k in range(1, below + 1)]


def central(fp, fm, h, slope):
    """``(J(+h) - J(-h)) / (2h)`` from the changes ``fp``, ``fm`` of J, plus the closed-form slope."""
    D = fp - fm
    D /= 2 * h
    D += _constant(slope)
    return D


def screen_bar(g, numeric, sigma, epsilon, allowance, numeric_abs=False):
    """Largest ``|g - D(eps)|`` that rounding explains at the step epsilon (``numeric_abs``: ``numeric``
    is already ``|D|``)."""
    bar = np.abs(g)
    bar += numeric if numeric_abs else np.abs(numeric)
    bar *= RTOL
    bar += K_NOISE * _constant(sigma) / epsilon
    bar += _constant(allowance)
    return bar


def _constant(a):
    """A value that is the same for every coordinate (a scalar or a broadcast view) as one number."""
    a = np.asarray(a)
    return float(a.flat[0]) if a.size and not any(a.strides) else a


def top_k(score, k):
    """Indices of the ``k`` largest scores, largest first (a partition, not a full sort)."""
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    top = np.argpartition(-score, k - 1)[:k] if k < score.size else np.arange(score.size)
    return top[np.argsort(-score[top], kind="stable")]


def judge(group, epsilon, evaluate, confirm_all=False, spot=None):
    """Screen and confirm one parameter's coordinates; fills the group's verdict fields.

    Parameters
    ----------
    group : dict
        ``analytic``, ``fp``, ``fm``, ``kink``, ``slope``, ``sigma``, ``allowance`` (arrays over the
        checked coordinates; ``sigma``, ``slope`` and ``allowance`` may be one number or a
        broadcast view of one).
    evaluate : callable
        ``evaluate(positions, h) -> (fp, fm, kink)`` for the coordinates at ``positions``, each moved
        by its own step ``h[b]`` (positions repeat when several steps of one coordinate are asked).
    confirm_all : bool
        Confirm every coordinate (cheap functions), not only the flagged ones.
    spot : array of int, optional
        Positions to confirm whatever the screen says; default the ``SPOT_CHECK`` largest ``|g|``.

    Adds ``numeric`` (the best estimate), ``tolerance`` (its bar), ``error``, ``flagged``,
    ``confirmed`` (re-evaluated) and ``wrong`` (confirmed wrong). ``kink`` is updated for every
    re-evaluated coordinate: set where no step of the ladder avoids a kink, cleared where one does.
    Everything but the screen itself is work over the re-evaluated positions only.
    """
    g, kink = group.analytic, group.kink
    step = group.step                  # a step per coordinate (scaled to the inputs it meets), or epsilon
    h0 = epsilon if step is None else step
    numeric = central(group.fp, group.fm, h0, group.slope)
    error = np.abs(numeric)            # first the buffer of the bar's |D| term: no temporary
    bar = screen_bar(g, error, group.sigma, h0, group.allowance, numeric_abs=True)
    np.subtract(g, numeric, out=error)
    np.abs(error, out=error)
    flagged = error > bar
    smooth = None if not kink.any() else ~kink          # None: no kink, every coordinate counts
    if smooth is not None:
        flagged &= smooth
    n_flagged = int(np.count_nonzero(flagged))
    if confirm_all:
        positions = np.flatnonzero(~kink)
    elif n_flagged:
        positions = top_k(np.where(flagged, error / np.maximum(bar, np.finfo(float).tiny), -np.inf),
                         min(n_flagged, CONFIRM_MAX))
    elif _norm(error, smooth) > _norm(bar, smooth):
        # no coordinate alone, but all together beyond noise
        candidates = np.flatnonzero(~kink)
        positions = candidates[top_k(error[candidates] / np.maximum(bar[candidates], np.finfo(float).tiny),
                                    min(candidates.size, CONFIRM_MAX))]
    else:
        positions = np.empty(0, dtype=np.int64)
    # Spot check: the largest gradients are confirmed whatever the screen says, so an error below
    # the noise at epsilon (tiny gradients, a uniform scale error) meets the finer bars of larger steps.
    if spot is None:
        spot = top_k(np.where(kink, -np.inf, np.abs(g)), min(SPOT_CHECK, int((~kink).sum())))
    positions = np.union1d(positions, np.asarray(spot, dtype=np.int64)[~kink[spot]])
    # A kink at a large epsilon may be smooth at the ladder's smaller steps: the largest such are tried there.
    if smooth is not None and min(steps(epsilon)) < epsilon:
        kinked = np.flatnonzero(kink)
        positions = np.union1d(positions, kinked[top_k(np.abs(g[kinked]), min(kinked.size, CONFIRM_MAX))])
    wrong = np.zeros(g.shape, dtype=bool)
    confirmed = np.zeros(g.shape, dtype=bool)
    sigma = np.broadcast_to(np.asarray(group.sigma, dtype=float), g.shape)

    def reconfirm(at, below):
        """Confirm the coordinates at ``at`` (with ``below`` extra powers of ten below the ladder) and
        record the verdict; returns which of them are wrong."""
        def at_steps(hs):       # every step of every position in one call: (len(hs), n) arrays
            hs = np.broadcast_to(np.asarray(hs, dtype=float).reshape(len(hs), -1), (len(hs), at.size))
            out = evaluate(np.tile(at, len(hs)), hs.ravel())
            return tuple(a.reshape(len(hs), at.size) for a in out)
        found_wrong, new_kink, numeric[at], bar[at] = confirm(
            g[at], group.slope[at], sigma[at], epsilon, group.allowance[at],
            (group.fp[at], group.fm[at], kink[at]), at_steps,
            scale=None if step is None else step[at] / epsilon, below=below)
        kink[at] = new_kink          # a kink only where no step of the ladder avoids one
        wrong[at] = found_wrong & ~kink[at]
        flagged[at] &= ~kink[at]
        error[at] = np.abs(g[at] - numeric[at])
        confirmed[at] = True
        return wrong[at]

    if positions.size:
        suspect = positions[reconfirm(positions, 0)]
        # Truncation can outlast the whole ladder (a step that moves a unit far): a coordinate is called
        # wrong only after steps below the ladder, whose smaller truncation the best-bar choice takes up.
        if suspect.size:
            reconfirm(suspect, BELOW)
    group.numeric, group.tolerance, group.flagged, group.confirmed = numeric, bar, flagged, confirmed
    group.wrong, group.kink, group.error = wrong, kink, error
    return group


def _norm(a, keep):
    return np.linalg.norm(a if keep is None else a[keep])


def confirm(g, slope, sigma, epsilon, allowance, base, at_steps, scale=None, below=0):
    """Re-evaluate coordinates at several steps; returns ``(wrong, kink, best estimate, its bar)``.

    ``at_steps(hs)`` returns ``(fp, fm, kink)`` of shape ``(len(hs), n)``: every step in one call (``hs``
    one step per row, or a row of steps, one per coordinate). ``scale`` (per coordinate) scales the
    whole ladder of a coordinate whose screen step was ``scale * epsilon``.
    """
    ladder = np.array(steps(epsilon, below))[:, None] * (1.0 if scale is None else np.asarray(scale)[None, :])
    L = ladder.shape[0]
    fp, fm, kink = at_steps(np.concatenate([ladder[1:], 2 * ladder]))     # epsilon itself is the screen's
    fp1, fm1, k1 = (np.concatenate([b[None], a[:L - 1]]) for b, a in zip(base, (fp, fm, kink)))   # (L, n) at h
    fp2, fm2, k2 = fp[L - 1:], fm[L - 1:], kink[L - 1:]                                           # ... at 2h
    h = ladder
    D1, D2 = central(fp1, fm1, h, slope), central(fp2, fm2, 2 * h, slope)
    estimates = (4 * D1 - D2) / 3
    measured = np.abs(fp2 - 4 * fp1 - 4 * fm1 + fm2) / math.sqrt(70)       # 4th difference: noise only
    s = np.maximum(sigma, measured)
    bars = K_NOISE * 1.5 * s / h + np.abs(D2 - D1) / 3 + allowance + RTOL * (np.abs(g) + np.abs(estimates))
    bars[k1 | k2 | ~np.isfinite(bars)] = np.inf      # a kink, or a step where J was not finite: avoided
    order = np.argsort(bars, axis=0, kind="stable")
    cols = np.arange(g.size)
    best, second = order[0], order[min(1, len(order) - 1)]
    usable = np.isfinite(bars)
    kink = ~usable[best, cols]
    only_one = ~usable[second, cols] | (len(order) == 1)
    # The discrepancy must stay put: the next estimate agrees with the best one within both bars.
    steady = np.abs(estimates[second, cols] - estimates[best, cols]) <= bars[second, cols] + bars[best, cols]
    wrong = ~kink & (np.abs(g - estimates[best, cols]) > bars[best, cols]) & (steady | only_one)
    numeric = np.where(kink, estimates[0], estimates[best, cols])
    bar = np.where(kink, np.inf, bars[best, cols])
    return wrong, kink, numeric, bar
