"""scipy's cross-check: ``scipy.optimize.check_grad`` on the same J(theta) and gradient, judged by the error model
of its own method (forward differences at a fixed step), so that its number can be said to agree with the verdict
of :mod:`minidl.gradcheck.verdict` or not.

Up to :data:`SCIPY_ALL_DIRECTIONS_MAX` parameters scipy checks every direction. Beyond, it checks one
seeded random direction ``v``, drawn by minidl (:func:`random_direction`: uniform, a third of the time of
scipy's own normal draw): check_grad is handed J restricted to the line ``theta + w v``, exactly the
function its random mode builds, and compares ``g . v`` with a forward difference in w. J on the line is
evaluated without moving the whole of theta (:meth:`Evaluator.along`).
"""
import math

import numpy as np
import scipy.optimize

from .verdict import K_NOISE

SCIPY_STEP = math.sqrt(np.finfo(np.float64).eps)     # check_grad's forward-difference step
SCIPY_ALL_DIRECTIONS_MAX = 1000                     # up to this many parameters scipy checks every direction


def random_direction(seed, size):
    """A seeded random direction of ``size`` coordinates, each uniform in [-1, 1) (no atoms, unlike random
    signs, where an error in two coordinates of opposite signs cancels half the time)."""
    v = np.random.default_rng(seed).random(size)
    v *= 2.0
    v -= 1.0
    return v


def scipy_all_directions(J, g_flat, theta, sigma, curvature, passed, jumps=None):
    """``scipy.optimize.check_grad`` on J(theta) in every direction, judged by the error model of its method.

    check_grad takes forward differences at ``h = 1.5e-8``: each carries truncation
    ``h/2 |J''|`` and rounding ``2 sigma / h``, and a step that crosses a kink is off by up to
    the jump in slope there. Its number is consistent with right gradients when it is within
    ``K`` times the norm of the first two plus the norm of the jumps; ``agrees`` says whether
    that matches minidl's verdict.

    Parameters
    ----------
    J : callable
        ``J(theta') -> float`` on a flat theta.
    g_flat, theta : ndarray (P,)
    sigma : float
        Rounding noise of one evaluation of J.
    curvature : ndarray (P,)
        A bound on ``|d2J/dtheta_i^2|`` per coordinate.
    passed : bool
        minidl's verdict.
    jumps : ndarray (P,), optional
        Per coordinate, the jump in slope where scipy's step along it crosses a kink.
    """
    value = float(scipy.optimize.check_grad(J, lambda t: g_flat, theta))
    expected = float(np.linalg.norm(SCIPY_STEP / 2 * curvature + 2 * sigma / SCIPY_STEP))
    kinks = 0.0 if jumps is None else float(np.linalg.norm(jumps))
    return _info(value, expected, kinks, passed, "all", f"all {theta.size:,} directions", g_flat)


def scipy_one_direction(line, g_flat, seed, sigma, passed):
    """``scipy.optimize.check_grad`` along one seeded random direction ``v``, judged by its error model.

    Truncation along v is ``h/2 |v^T H v|``, measured by a second difference along v at a step of
    ``1e-4 / |v|``. A kink on scipy's step makes its difference off by exactly
    ``(J(h) - J_smooth(h)) / h``, ``J_smooth`` the J whose ReLUs keep theta's units (no kinks, the same
    slope at theta); that is measured when scipy's step crosses a kink, and the second difference is
    taken on ``J_smooth`` too. Without a J_smooth (a layer of the user's has kinks), the jump in slope is
    estimated from the second difference of J itself.

    Parameters
    ----------
    line : callable
        ``line(v)`` returns ``J_v(w, frozen=False) -> (value, crossed)``: J at ``theta + w v`` (with
        ``frozen``, J_smooth there, or None when there is none), and whether a kink lies between theta and
        that point (None when unknown: no allowance for kinks).
    g_flat : ndarray (P,)
    seed : int
        Seeds v (:func:`random_direction`).
    sigma : float
        Rounding noise of one evaluation of J.
    passed : bool
        minidl's verdict.
    """
    v = random_direction(seed, g_flat.size)
    J_v, memo = line(v), {}

    def at(w, frozen=False):
        if (w, frozen) not in memo:
            memo[w, frozen] = J_v(w, frozen)
        return memo[w, frozen]
    h = SCIPY_STEP
    slope = np.array([np.dot(g_flat, v)])
    value = float(scipy.optimize.check_grad(lambda w: at(float(w[0]))[0], lambda w: slope, np.zeros(1)))
    s = 1e-4 / max(float(np.linalg.norm(v)), 1e-300)
    smooth = at(s, True)[0] is not None
    difference = abs(at(s, smooth)[0] + at(-s, smooth)[0] - 2 * at(0.0)[0])
    second = difference / s ** 2 + 4 * sigma / s ** 2
    expected = h / 2 * second + 2 * sigma / h
    kinks = 0.0
    if at(h)[1]:
        if smooth:
            kinks = abs(at(h)[0] - at(h, True)[0]) / h
        elif value > K_NOISE * expected:
            kinks = 2 * difference / s
    return _info(value, expected, kinks, passed, "random",
                 "one seeded random direction (the model is too large for all)", g_flat)


def _info(value, expected, kinks, passed, direction, what, g_flat):
    allowed = K_NOISE * expected + kinks
    consistent = value <= allowed
    return {"value": value, "expected": allowed, "kinks": kinks, "directions": what, "direction": direction,
            "consistent": bool(consistent), "agrees": bool(consistent == passed), "epsilon": SCIPY_STEP,
            "norm": float(np.linalg.norm(g_flat))}


def scipy_sentence(info, passed):
    """One sentence: scipy's number, what its method allows, and whether it agrees with minidl."""
    value, allowed = info["value"], info["expected"]
    if info["consistent"]:
        seen = f"{value:.2e} is within the {allowed:.1e} its forward differences explain"
    else:
        seen = f"{value:.2e} is beyond the {allowed:.1e} its forward differences explain"
    if info.get("kinks"):
        seen += f" ({info['kinks']:.1e} of it because its steps cross kinks, where the slope jumps)"
    if info["agrees"]:
        return f"scipy.optimize.check_grad agrees: {seen}"
    if passed:
        return (f"scipy.optimize.check_grad DISAGREES: {seen}, while every coordinate minidl checked "
                f"passes; compare report.scipy with report.worst()")
    where = "below what its one-sided differences resolve" if info["direction"] == "all" else \
        "below what its differences resolve or nearly orthogonal to its one random direction"
    return f"scipy.optimize.check_grad DISAGREES: {seen}; the errors minidl confirmed are {where}"
