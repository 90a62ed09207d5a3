"""The course's conventions, both ways: its ``parameters`` dicts as a minidl model, and a drop-in
``gradient_check_n`` for a learner's own NumPy code.

The course keeps an L-layer network in a dict: ``W1, b1, ..., WL, bL`` with ``W_l`` of shape
``(n_l, n_{l-1})`` and ``b_l`` of shape ``(n_l, 1)``; examples are columns (``X`` is ``(n_x, m)``,
``Y`` is ``(1, m)``); gradients are a dict ``dW1, db1, ...`` (with extra ``dA``/``dZ`` entries, ignored
here). minidl puts examples in rows (``Z = X @ W + b``, ``W`` of shape ``(n_{l-1}, n_l)``), so a
course ``W_l`` is a minidl ``W`` transposed.

>>> import numpy as np
>>> parameters = {"W1": np.ones((3, 2)), "b1": np.zeros((3, 1)), "W2": np.ones((1, 3)), "b2": np.zeros((1, 1))}
>>> model_from_parameters(parameters, hidden="tanh")
Sequential([Dense(2, 3), Tanh(), Dense(3, 1), Sigmoid()], loss=BinaryCrossEntropy(l2=0), seed=0)
"""
import numpy as np

from .errors import InputError, InputTypeError
from .gradcheck.diagnose import Finding, diagnose_gradients
from .gradcheck.report import GradCheckReport
from .layers import Dense, Dropout, ReLU, Sigmoid, Tanh
from .losses import BinaryCrossEntropy
from .model import Sequential
from .validation import check_array, check_choice, check_float

ACTIVATIONS = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid}


def _dims(parameters):
    """The layer widths ``[n_0, ..., n_L]`` of a course ``parameters`` dict, with every shape checked."""
    if not isinstance(parameters, dict):
        raise InputTypeError(f"parameters must be a dict W1, b1, ..., WL, bL as in the course; received "
                             f"{type(parameters).__name__}")
    numbers = sorted({int(key[1:]) for key in parameters if key[:1] in "Wb" and key[1:].isdigit()})
    if not numbers:
        raise InputError(f"parameters must hold W1, b1, ..., WL, bL as in the course; received keys "
                         f"{sorted(parameters)}")
    L = numbers[-1]
    missing = [f"{name}{l}" for l in range(1, L + 1) for name in "Wb" if f"{name}{l}" not in parameters]
    if missing:
        raise InputError(f"parameters must hold W1, b1, ..., WL, bL with no layer skipped; missing "
                         f"{', '.join(missing)}")
    dims = []
    for l in range(1, L + 1):
        W = check_array(parameters[f"W{l}"], f"W{l}", ndim=2)
        if l == 1:
            dims.append(W.shape[1])
        elif W.shape[1] != dims[-1]:
            raise InputError(f"W{l} must have shape ({W.shape[0]}, {dims[-1]}) = (n_{l}, n_{l - 1}): its columns "
                             f"must match the {dims[-1]} rows of W{l - 1}; received {W.shape}")
        dims.append(W.shape[0])
        b = np.asarray(parameters[f"b{l}"])
        if b.shape != (W.shape[0], 1):
            raise InputError(f"b{l} must have shape ({W.shape[0]}, 1) as in the course (a column, one entry per unit "
                             f"of layer {l}); received {b.shape}" +
                             (f": use b{l}.reshape(-1, 1)" if b.size == W.shape[0] else ""))
    if dims[-1] != 1:
        raise InputError(f"W{L} must have 1 row: the last layer outputs one probability per example; received "
                         f"shape {np.shape(parameters[f'W{L}'])}")
    return dims


def model_from_parameters(parameters, hidden="relu", lambd=0.0, keep_prob=1.0, seed=0):
    """A minidl Sequential with the course's L-layer architecture and these parameters.

    Parameters
    ----------
    parameters : dict
        ``W1, b1, ..., WL, bL`` in the course's shapes.
    hidden : {"relu", "tanh", "sigmoid"}
        The activation of every hidden layer; the output is a Sigmoid.
    lambd : float
        The course's L2 strength (``lambd``): ``BinaryCrossEntropy(l2=lambd)``.
    keep_prob : float in (0, 1]
        Below 1, a Dropout with ``rate = 1 - keep_prob`` follows every hidden activation.
    seed : int
        The model's seed (dropout masks).
    """
    dims = _dims(parameters)
    hidden = check_choice(hidden, "hidden", tuple(ACTIVATIONS))
    lambd = check_float(lambd, "lambd", low=0.0)
    keep_prob = check_float(keep_prob, "keep_prob", low=0.0, high=1.0, low_inclusive=False)
    layers = []
    for l in range(1, len(dims)):
        layers.append(Dense(dims[l - 1], dims[l]))
        if l < len(dims) - 1:
            layers.append(ACTIVATIONS[hidden]())
            if keep_prob < 1:
                layers.append(Dropout(1 - keep_prob))
    layers.append(Sigmoid())
    model = Sequential(layers, loss=BinaryCrossEntropy(lambd), seed=seed)
    for l, dense in enumerate(_denses(model), start=1):
        dense.params["W"][...] = np.asarray(parameters[f"W{l}"], dtype=np.float64).T
        dense.params["b"][...] = np.asarray(parameters[f"b{l}"], dtype=np.float64).ravel()
    return model


def parameters_from_model(model):
    """The course's ``parameters`` dict of a minidl Sequential of Dense layers (copies)."""
    out = {}
    for l, dense in enumerate(_denses(model), start=1):
        out[f"W{l}"] = dense.params["W"].T.copy()
        out[f"b{l}"] = dense.params["b"].reshape(-1, 1).copy()
    return out


def gradients_to_minidl(gradients, model):
    """A course ``gradients`` dict (``dW1, db1, ...``) as minidl's, keyed like ``model.named_parameters()``."""
    if not isinstance(gradients, dict):
        raise InputTypeError(f"gradients must be a dict dW1, db1, ... as in the course; received "
                             f"{type(gradients).__name__}")
    out = {}
    for l, (index, dense) in enumerate(_indexed_denses(model), start=1):
        for name, course_shape, to_minidl in (("W", dense.params["W"].T.shape, lambda g: g.T),
                                              ("b", (dense.n_out, 1), lambda g: g.ravel())):
            key = f"d{name}{l}"
            if key not in gradients:
                raise InputError(f"gradients must hold dW1, db1, ..., dW{len(_denses(model))}, "
                                 f"db{len(_denses(model))}; missing {key}")
            g = np.asarray(gradients[key])
            if g.shape != course_shape:
                raise InputError(f"gradients[{key!r}] must have the shape of {name}{l}, {course_shape}; received "
                                 f"{g.shape}")
            out[f"{index}.{name}"] = np.array(to_minidl(g), dtype=np.float64)
    return out


def gradients_from_minidl(grads, model):
    """minidl gradients (keyed like ``model.named_parameters()``) as a course dict ``dW1, db1, ...``."""
    out = {}
    for l, (index, _) in enumerate(_indexed_denses(model), start=1):
        out[f"dW{l}"] = np.asarray(grads[f"{index}.W"]).T.copy()
        out[f"db{l}"] = np.asarray(grads[f"{index}.b"]).reshape(-1, 1).copy()
    return out


def _indexed_denses(model):
    return [(i, layer) for i, layer in enumerate(model.layers) if isinstance(layer, Dense)]


def _denses(model):
    return [layer for _, layer in _indexed_denses(model)]


def _course_X_Y(X, Y, n_x):
    X = check_array(X, "X", ndim=2)
    if X.shape[0] != n_x:
        hint = ": pass X.T" if X.shape[1] == n_x else ""
        raise InputError(f"X must have shape (n_x, m) = ({n_x}, m) as in the course (one column per example); "
                         f"received {X.shape}{hint}")
    Y = check_array(Y, "Y", ndim=np.ndim(Y) if np.ndim(Y) in (1, 2) else 2)
    if Y.shape != (1, X.shape[1]):
        raise InputError(f"Y must have shape (1, m) = (1, {X.shape[1]}) as in the course; received {Y.shape}" +
                         (": use Y.reshape(1, -1)" if Y.size == X.shape[1] else ""))
    return X, Y


def gradient_check_n(parameters, gradients, X, Y, epsilon=1e-7, hidden="relu", lambd=0.0, keep_prob=1.0,
                     cost=None, forward=None, **options):
    """The course's ``gradient_check_n``, exact and fast: a learner's gradients against minidl's numeric ones.

    Every coordinate's central difference of the standard L-layer cost (cross-entropy plus
    ``lambd / (2m) sum ||W||^2``) is computed by minidl's fast engine (the cat network in a
    fraction of a second, where the course's loop takes minutes) and judged by its noise
    model; the report has one row per course name (``W1``, ``b1``, ...) and, on failure, a
    diagnosis in the course's terms (``dW2 is 2 times the right value``).

    Parameters
    ----------
    parameters : dict
        ``W1, b1, ..., WL, bL``, shapes ``(n_l, n_{l-1})`` and ``(n_l, 1)``.
    gradients : dict
        The learner's ``dW1, db1, ...`` (other keys ignored), in the same shapes.
    X : ndarray of shape (n_x, m)
    Y : ndarray of shape (1, m)
    epsilon : float
    hidden : {"relu", "tanh", "sigmoid"}
    lambd : float
        The L2 strength the gradients were computed with.
    keep_prob : float
        Must be 1: as the course says, gradient checking runs without dropout.
    cost : float, optional
        The learner's cost at ``parameters``; compared with the standard cost first.
    forward : callable, optional
        The learner's ``L_model_forward(X, parameters)`` (returning ``AL`` or ``(AL, caches)``); its
        probabilities' cost is compared with the standard cost first.
    **options
        Passed to :func:`minidl.gradcheck` (``coords``, ``k``, ``seed``, ``scipy_check``, ``progress``).

    Returns
    -------
    GradCheckReport
    """
    dims = _dims(parameters)
    keep_prob = check_float(keep_prob, "keep_prob", low=0.0, high=1.0, low_inclusive=False)
    if keep_prob < 1:
        raise InputError(f"gradient checking with dropout needs the same masks in J and in the gradients; check with "
                         f"keep_prob=1, as the course does (received keep_prob={keep_prob:g})")
    X, Y = _course_X_Y(X, Y, dims[0])
    model = model_from_parameters(parameters, hidden, lambd)
    grads = gradients_to_minidl(gradients, model)
    report = model.gradcheck(X.T, Y.T, epsilon=epsilon, grads=grads, **options)
    course_report = _in_course_terms(report, model, parameters, lambd, X.shape[1], dims, hidden)
    finding = _cost_finding(model, X, Y, parameters, lambd, cost, forward)
    if finding is not None:
        course_report.diagnosis.insert(0, finding)
        course_report.passed = False
    return course_report


def _in_course_terms(report, model, parameters, lambd, m, dims, hidden):
    """The report with course names (``W1``, ``b1``), shapes and indices, and its diagnosis redone in them."""
    names = {}
    for l, (index, dense) in enumerate(_indexed_denses(model), start=1):
        names[f"{index}.W"] = (f"W{l}", dense.params["W"].shape)
        names[f"{index}.b"] = (f"b{l}", None)
    groups = []
    for group in report.groups:
        course_name, minidl_shape = names[group["name"]]
        group = dict(group, name=course_name)
        if minidl_shape is not None:      # W: (n_in, n_out) row-major -> (n_out, n_in)
            i, j = np.unravel_index(group["index"], minidl_shape)
            index = j * minidl_shape[0] + i
            order = np.argsort(index, kind="stable")
            for key, value in group.items():
                if isinstance(value, np.ndarray) and value.shape == index.shape:
                    group[key] = value[order]
            group["index"], group["shape"] = index[order], (minidl_shape[1], minidl_shape[0])
        else:
            group["shape"] = (group["shape"][0], 1)
        groups.append(group)
    title = f"the course's {len(dims) - 1}-layer network {dims} ({hidden}, lambd={lambd:g})"
    out = GradCheckReport(groups, report.epsilon, scipy_info=report.scipy_info, title=title)
    if not out.passed:
        renamed = [dict(g, name="d" + g["name"]) for g in groups]
        params = {f"d{key}": np.asarray(value, dtype=np.float64) for key, value in parameters.items()}
        regularized = {f"dW{l}" for l in range(1, len(dims))}
        out.diagnosis = diagnose_gradients(renamed, params, regularized, lambd, m)
    return out


def _cost_finding(model, X, Y, parameters, lambd, cost, forward):
    """A finding when the learner's cost (given, or from their forward pass) is not the standard one."""
    if cost is None and forward is None:
        return None
    standard = model.cost(X.T, Y.T)
    if forward is not None:
        AL = forward(X, parameters)
        AL = AL[0] if isinstance(AL, tuple) else AL
        AL = check_array(AL, "forward(X, parameters)", ndim=2)
        if AL.shape != Y.shape:
            raise InputError(f"forward(X, parameters) must return AL of shape {Y.shape}; received {AL.shape}")
        data = float(np.mean(model.loss.losses(AL.T, Y.T, from_logits=False)))     # from probabilities
        cost = data + model.loss.penalty(model._weights(), X.shape[1])
        what = "the cost of your forward pass's AL"
    else:
        cost = check_float(cost, "cost")
        what = "your cost"
    if abs(cost - standard) <= 1e-7 * max(1.0, abs(standard)):
        return None
    return Finding(None, "cost", "J", "cost", {"yours": cost, "standard": standard},
                   f"{what} J = {cost:.10g} differs from the standard L-layer cost {standard:.10g} (cross-entropy "
                   f"plus lambd/(2m) sum ||W||^2): your forward pass or cost is wrong; fix it first, since the "
                   f"gradients are checked against the standard cost")
