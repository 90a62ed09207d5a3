"""Input checks used at every public entry point.

Each helper validates one argument, converts it to the form the internals expect, and
raises an :mod:`minidl.errors` exception whose message names the argument, what was
expected and what came. Internals trust their inputs and do not check again.
"""
import numbers
import warnings

import numpy as np

from .errors import InputError, InputTypeError


def _describe(value):
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    return f"{type(value).__name__} {value!r}"


def check_array(value, name, ndim=2, n_columns=None, dtype=np.float64, allow_empty=False):
    """Return ``value`` as a finite float array with ``ndim`` dimensions.

    Parameters
    ----------
    value : array_like
        What the user passed.
    name : str
        The argument's name, used in error messages.
    ndim : int
        Required number of dimensions.
    n_columns : int, optional
        Required size of the last axis (for ``X``: the number of features).
    dtype : numpy dtype
        Float dtype of the returned array.
    """
    if isinstance(value, (str, bytes)) or value is None:
        raise InputTypeError(f"{name} must be a numeric array; received {_describe(value)}")
    try:
        with warnings.catch_warnings():      # NumPy < 1.24 warns and makes an object array of a ragged list
            warnings.simplefilter("error")
            array = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise InputTypeError(f"{name} must be a numeric array; received {type(value).__name__} "
                             f"that NumPy cannot convert ({exc})") from None
    if array.dtype == bool or array.dtype.kind not in "iuf":
        raise InputTypeError(f"{name} must hold real numbers (int or float dtype); received dtype "
                             f"{array.dtype}" + (" (cast it with .astype(float) if that is meant)"
                                                 if array.dtype == bool else ""))
    if array.ndim != ndim:
        hint = ""
        if ndim == 2 and array.ndim == 1:
            hint = (f"; reshape with {name}.reshape(-1, 1) for a single feature or "
                    f"{name}.reshape(1, -1) for a single example")
        raise InputError(f"{name} must be a {ndim}-D array (rows are examples); received shape "
                         f"{array.shape}{hint}")
    if not allow_empty and array.size == 0:
        raise InputError(f"{name} must not be empty; received shape {array.shape}")
    if n_columns is not None and array.shape[-1] != n_columns:
        raise InputError(f"{name} has {array.shape[-1]} features per example, but {n_columns} "
                         f"were expected; received shape {array.shape}")
    array = array.astype(dtype, copy=False)
    if not np.all(np.isfinite(array)):
        bad = np.argwhere(~np.isfinite(array))[0]
        raise InputError(f"{name} must be finite; received NaN or inf, first at index "
                         f"{tuple(int(i) for i in bad)}")
    return array


def check_labels(Y, m, name="Y"):
    """Return labels as a float array of shape ``(m, 1)`` with values in {0, 1}.

    A 1-D vector of length ``m`` is accepted and reshaped.
    """
    Y = np.asarray(Y) if not isinstance(Y, (str, bytes)) else Y
    if isinstance(Y, np.ndarray) and Y.ndim == 1:
        Y = Y.reshape(-1, 1)
    Y = check_array(Y, name, ndim=2)
    if Y.shape != (m, 1):
        raise InputError(f"{name} must have shape ({m}, 1) to match X's {m} examples; "
                         f"received shape {Y.shape}")
    bad = (Y != 0) & (Y != 1)
    if np.any(bad):
        values = np.unique(Y[bad])[:5]
        raise InputError(f"{name} must hold labels in {{0, 1}}; received values {values.tolist()}")
    return Y


def check_int(value, name, minimum=None):
    """Return ``value`` as an int, checking its type and lower bound."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputTypeError(f"{name} must be an integer; received {_describe(value)}")
    if minimum is not None and value < minimum:
        raise InputError(f"{name} must be >= {minimum}; received {name}={value}")
    return int(value)


def check_float(value, name, low=None, high=None, low_inclusive=True, high_inclusive=True):
    """Return ``value`` as a finite float inside the given interval."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputTypeError(f"{name} must be a real number; received {_describe(value)}")
    value = float(value)
    below = low is not None and (value < low if low_inclusive else value <= low)
    above = high is not None and (value > high if high_inclusive else value >= high)
    if not np.isfinite(value) or below or above:
        # an infinite end is never part of the interval: "(0, inf)", not "(0, inf]"
        interval = (("(-inf" if low is None else ("[" if low_inclusive else "(") + f"{low:g}") + ", "
                    + ("inf)" if high is None else f"{high:g}" + ("]" if high_inclusive else ")")))
        raise InputError(f"{name} must be a finite number in {interval}; received {name}={value!r}")
    return value


def check_choice(value, name, choices):
    """Return ``value`` if it is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise InputError(f"{name} must be one of {', '.join(map(repr, choices))}; "
                         f"received {name}={value!r}")
    return value


def check_seed(value, name="seed"):
    """Return a seed usable by :func:`numpy.random.default_rng` (a non-negative int)."""
    return check_int(value, name, minimum=0)


def check_bool(value, name):
    """Return ``value`` as a bool; only True or False (a NumPy bool too) are accepted."""
    if not isinstance(value, (bool, np.bool_)):
        raise InputTypeError(f"{name} must be True or False; received {_describe(value)}")
    return bool(value)
