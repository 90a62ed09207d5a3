"""ParameterCheck: one parameter's check, from its evaluations at epsilon to its verdict, the data that the
entry points, the verdict, the report, the diagnosis and the course adapter share."""
from dataclasses import dataclass, fields

import numpy as np


@dataclass
class ParameterCheck:
    """The check of one parameter (or of ``X``, or of one named array of a black box).

    Filled by the entry points (``minidl.gradcheck.checks``)
    ---------------------------------------------------------
    name : str
    shape : tuple
        The parameter's shape.
    index : ndarray of int (n,)
        Flat indices of the checked coordinates, in the order of every array below.
    analytic : ndarray (n,)
        The gradient being checked.
    fp, fm : ndarray (n,)
        Changes of J at +epsilon and -epsilon (per coordinate step when ``step`` is set).
    kink : ndarray of bool (n,)
        Coordinates whose perturbation crossed a non-differentiable point.
    slope : ndarray (n,)
        The L2 term's exact central difference where it is added in closed form (a broadcast view of 0 else).
    sigma : float or ndarray
        Rounding noise of one evaluated change of J.
    allowance : ndarray (n,)
        Rounding allowed in ``analytic`` itself (float32 gradients).
    step : ndarray (n,) or None
        A step per coordinate when one differs from epsilon (a Dense's W on large inputs).

    Filled by the verdict (:func:`minidl.gradcheck.verdict.judge`)
    --------------------------------------------------------------
    numeric, tolerance, error : ndarray (n,)
        The best numeric estimate, its error bar, and ``|analytic - numeric|``.
    flagged, confirmed, wrong : ndarray of bool (n,)
        Beyond the noise at epsilon; re-evaluated at other steps; confirmed wrong.

    Filled by the report
    --------------------
    difference : float
    noise_only : bool
        Every coordinate within its tolerance.
    """
    name: str
    shape: tuple
    index: np.ndarray
    analytic: np.ndarray
    fp: np.ndarray
    fm: np.ndarray
    kink: np.ndarray
    slope: np.ndarray
    sigma: object
    allowance: np.ndarray
    step: object = None
    numeric: object = None
    tolerance: object = None
    error: object = None
    flagged: object = None
    confirmed: object = None
    wrong: object = None
    difference: object = None
    noise_only: object = None

    def reordered(self, order, **changes):
        """A copy with every per-coordinate array taken in ``order`` (and ``changes`` applied)."""
        n = self.index.size
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for key, value in values.items():
            if isinstance(value, np.ndarray) and value.shape == (n,):
                values[key] = value[order]
        values.update(changes)
        return ParameterCheck(**values)
