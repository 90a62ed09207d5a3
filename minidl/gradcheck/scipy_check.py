"""scipy's cross-check: ``scipy.optimize.check_grad`` on the same J(theta) and gradient, judged by the error model
of its own method (forward differences at a fixed step), so that its number can be said to agree with the verdict
of :mod:`minidl.gradcheck.verdict` or not.
"""
import math

import numpy as np
import scipy.optimize

from .verdict import K_NOISE

SCIPY_STEP = math.sqrt(np.finfo(np.float64).eps)     # check_grad's forward-difference step
SCIPY_ALL_DIRECTIONS_MAX = 1000                     # up to this many parameters scipy checks every direction


def scipy_cross_check(J, g_flat, theta, seed, sigma, curvature, passed, jumps=None, crosses=None):
    """``scipy.optimize.check_grad`` on J(theta), judged by the error model of its own method.

    check_grad takes forward differences at ``h = 1.5e-8``: each carries truncation
    ``h/2 |J''|`` and rounding ``2 sigma / h``, and a step that crosses a kink is off by up to
    the jump in slope there. Its number is consistent with right gradients when it is within
    ``K`` times the norm of the first two plus the norm of the jumps; ``agrees`` says whether
    that matches minidl's verdict.

    Parameters
    ----------
    sigma : float
        Rounding noise of one evaluation of J.
    curvature : ndarray or None
        A bound on ``|d2J/dtheta_i^2|`` per coordinate (needed when every direction is checked).
    jumps : ndarray, optional
        Per coordinate, the jump in slope where scipy's step along it crosses a kink (all directions).
    crosses : callable, optional
        ``crosses(theta') -> bool``: whether a kink lies between theta and theta' (one random direction).
    """
    direction = "all" if theta.size <= SCIPY_ALL_DIRECTIONS_MAX else "random"
    h = SCIPY_STEP
    stepped = []          # where scipy evaluated J other than at theta: theta + h v, with its random direction v

    def J_seen(t):
        if direction == "random" and not stepped and t is not theta and not np.array_equal(t, theta):
            stepped.append(t)
        return J(t)
    try:
        value = scipy.optimize.check_grad(J_seen, lambda t: g_flat, theta, direction=direction,
                                          rng=np.random.default_rng(seed))
    except TypeError:  # SciPy < 1.15 has seed= instead of rng=
        value = scipy.optimize.check_grad(J_seen, lambda t: g_flat, theta, direction=direction, seed=seed)
    if direction == "all":
        expected = float(np.linalg.norm(h / 2 * curvature + 2 * sigma / h))
        kinks = 0.0 if jumps is None else float(np.linalg.norm(jumps))
        what = f"all {theta.size:,} directions"
    else:   # one direction v: truncation h/2 |v^T H v|, measured by a second difference along v
        v = (stepped[0] - theta) / h          # scipy's own draw, recovered (to ~1e-8) rather than drawn again
        s = 1e-4 / max(float(np.linalg.norm(v)), 1e-300)
        J0 = J(theta)
        difference = abs(J(theta + s * v) + J(theta - s * v) - 2 * J0)
        second = difference / s ** 2 + 4 * sigma / s ** 2
        expected = h / 2 * second + 2 * sigma / h
        # a kink on scipy's step: off by up to the jump in slope along v, measured at s (one more
        # forward pass, only when it matters)
        beyond = float(value) > K_NOISE * expected
        kinks = 2 * difference / s if beyond and crosses is not None and crosses(theta + h * v) else 0.0
        what = "one seeded random direction (the model is too large for all)"
    value = float(value)
    allowed = K_NOISE * expected + kinks
    consistent = value <= allowed
    return {"value": value, "expected": allowed, "kinks": kinks, "directions": what, "direction": direction,
            "consistent": bool(consistent), "agrees": bool(consistent == passed), "epsilon": h,
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
