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
import dataclasses
import inspect

import numpy as np

from .errors import InputError, InputTypeError
from .gradcheck.diagnose import Finding, diagnose_gradients
from .gradcheck.report import GradCheckReport
from .layers import Dense, Dropout, ReLU, Sigmoid, Tanh
from .losses import BinaryCrossEntropy
from .model import Sequential
from .validation import check_array, check_bool, check_choice, check_float

ACTIVATIONS = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid}
ACTIVATION_NAMES = {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid"}


def _dims(parameters, n_x=None):
    """The layer widths ``[n_0, ..., n_L]`` of a course ``parameters`` dict, with every shape checked.

    Each width is inferred from the arrays that agree before any one is blamed: ``n_l`` from the rows of
    ``W_l``, the entries of ``b_l`` and the columns of ``W_{l+1}`` (1 for the output), ``n_0`` from the
    columns of ``W1`` and the rows of ``X``; the majority wins, so a transposed ``W2`` is named as such,
    not blamed on the ``b`` beside it.
    """
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
    W = {l: check_array(parameters[f"W{l}"], f"W{l}", ndim=2) for l in range(1, L + 1)}
    b = {l: np.asarray(parameters[f"b{l}"]) for l in range(1, L + 1)}
    dims = []
    for l in range(L + 1):
        votes = ([] if l == 0 else [W[l].shape[0], b[l].size]) + ([W[l + 1].shape[1]] if l < L else [1]) + \
                ([n_x] if l == 0 and n_x is not None else [])
        trusted = votes[-1] if l in (0, L) else votes[1]        # on a tie: X's rows, b_l's size, one output
        dims.append(max(votes, key=lambda n: (votes.count(n), n == trusted)))
    for l in range(1, L + 1):
        expected = (dims[l], dims[l - 1])
        if W[l].shape != expected:
            hint = f": transposed? use W{l}.T" if W[l].shape == expected[::-1] else ""
            raise InputError(f"W{l} must have shape {expected} = (n_{l}, n_{l - 1}) as in the course "
                             f"({_said(l, dims, L)}); received {W[l].shape}{hint}")
        if b[l].shape != (dims[l], 1):
            raise InputError(f"b{l} must have shape ({dims[l]}, 1) as in the course (a column, one entry per unit "
                             f"of layer {l}); received {b[l].shape}" +
                             (f": use b{l}.reshape(-1, 1)" if b[l].size == dims[l] else ""))
    if dims[-1] != 1:
        raise InputError(f"W{L} must have 1 row: the last layer outputs one probability per example; received "
                         f"shape {W[L].shape}")
    return dims


def _said(l, dims, L):
    """Where the widths of layer l come from, in words."""
    before = "the rows of X" if l == 1 else f"the rows of W{l - 1} and b{l - 1}"
    after = "one output" if l == L else f"b{l} and the columns of W{l + 1}"
    return f"n_{l - 1} = {dims[l - 1]} from {before}, n_{l} = {dims[l]} from {after}"


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
            # float32 (or float16) gradients keep their dtype: the check allows for their rounding
            dtype = g.dtype if g.dtype in (np.float32, np.float16) else np.float64
            out[f"{index}.{name}"] = np.array(to_minidl(g), dtype=dtype)
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
    if Y.shape == (X.shape[1],):       # the course's own test case passes labels as a vector
        Y = Y.reshape(1, -1)
    if Y.shape != (1, X.shape[1]):
        raise InputError(f"Y must have shape (1, m) = (1, {X.shape[1]}) or (m,) as in the course; received {Y.shape}" +
                         (": use Y.reshape(1, -1)" if Y.size == X.shape[1] else ""))
    return X, Y


def gradient_check_n(parameters, gradients, X, Y, epsilon=1e-7, print_msg=False, hidden=None, lambd=0.0,
                     keep_prob=1.0, cost=None, forward=None, layers_dims=None, **options):
    """The course's ``gradient_check_n``, exact and fast: a learner's gradients against minidl's numeric ones.

    Every coordinate's central difference of the standard L-layer cost (cross-entropy plus
    ``lambd / (2m) sum ||W||^2``) is computed by minidl's fast engine (the cat network in a
    fraction of a second, where the course's loop takes minutes) and judged by its noise
    model; the report has one row per course name (``W1``, ``b1``, ...) and, on failure, a
    diagnosis in the course's terms (``dW2 is 2 times the right value``). Gradients computed in
    float32 are judged with float32's rounding allowed.

    Parameters
    ----------
    parameters : dict
        ``W1, b1, ..., WL, bL``, shapes ``(n_l, n_{l-1})`` and ``(n_l, 1)``.
    gradients : dict
        The learner's ``dW1, db1, ...`` (other keys ignored), in the same shapes.
    X : ndarray of shape (n_x, m)
    Y : ndarray of shape (1, m) or (m,)
    epsilon : float
    print_msg : bool
        Print the course's verdict line ("There is a mistake in the backward propagation!" or "Your
        backward propagation works perfectly fine!", with the difference), and the findings.
    hidden : {"relu", "tanh", "sigmoid"}, optional
        The activation of every hidden layer. Default: the one whose standard cost matches ``cost`` or
        ``forward`` when one is given, else "relu".
    lambd : float
        The L2 strength the gradients were computed with.
    keep_prob : float
        Must be 1: as the course says, gradient checking runs without dropout.
    cost : float, optional
        The learner's cost at ``parameters``; compared with the standard cost first.
    forward : callable, optional
        The learner's forward pass, either ``L_model_forward(X, parameters) -> (AL, caches)`` (or ``AL``)
        or ``forward_propagation_n(X, Y, parameters) -> (cost, cache)``; its cost is compared with the
        standard cost first.
    layers_dims : list of int, optional
        The widths ``[n_x, n_1, ..., 1]`` (as some versions of the exercise pass them); checked against
        the arrays.
    **options
        Passed to :func:`minidl.gradcheck` (``coords``, ``k``, ``seed``, ``scipy_check``, ``progress``).

    Returns
    -------
    CourseCheck
        The course's number, ``difference``, as a float (``difference < 2e-7``, ``float(...)``,
        ``f"{difference:.2e}"`` all work) that also carries the whole report: ``print`` it for the table,
        ``.passed``, ``.diagnosis``, ``.report``.
    """
    X = check_array(X, "X", ndim=2)
    dims = _dims(parameters, n_x=_n_x(parameters, X))
    if layers_dims is not None and [int(n) for n in np.ravel(layers_dims)] != dims:
        raise InputError(f"layers_dims must match the arrays: parameters and X give {dims}; received "
                         f"{np.ravel(layers_dims).tolist()}")
    keep_prob = check_float(keep_prob, "keep_prob", low=0.0, high=1.0, low_inclusive=False)
    if keep_prob < 1:
        raise InputError(f"gradient checking with dropout needs the same masks in J and in the gradients; check with "
                         f"keep_prob=1, as the course does (received keep_prob={keep_prob:g})")
    given_Y = Y
    X, Y = _course_X_Y(X, Y, dims[0])
    yours = _learner_cost(parameters, X, Y, given_Y, cost, forward)
    hidden = check_choice(hidden, "hidden", tuple(ACTIVATIONS)) if hidden is not None else _inferred_hidden(
        parameters, X, Y, lambd, yours)
    model = model_from_parameters(parameters, hidden, lambd)
    grads = gradients_to_minidl(gradients, model)
    report = model.gradcheck(X.T, Y.T, epsilon=epsilon, grads=grads, **options)
    course_report = _in_course_terms(report, model, parameters, lambd, X.shape[1], dims, hidden)
    if yours is not None:
        low_precision = _low_precision(parameters, X, gradients, cost)
        finding = _cost_finding(parameters, X, Y, lambd, hidden, yours, low_precision)
        if finding is not None:
            course_report.diagnosis.insert(0, finding)
            course_report.passed = False
    result = CourseCheck(course_report)
    if check_bool(print_msg, "print_msg"):
        result.print_msg()
    return result


class CourseCheck(float):
    """The course's ``difference`` as a float, carrying minidl's full report.

    A notebook uses it as the course's number (``if difference > 2e-7``, ``assert difference < 2e-7``,
    ``float(difference)``, ``f"{difference:.2e}"``); ``print`` shows the report's table, and the report's
    attributes are the object's (``.passed``, ``.diagnosis``, ``.per_parameter``, ...; ``.report`` is
    the report itself).
    """

    def __new__(cls, report):
        value = super().__new__(cls, report.difference)
        value.report = report
        return value

    def __getattr__(self, name):
        if name == "report":            # not set yet (copying, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.report, name)

    def __reduce__(self):              # copy and pickle rebuild it from its report
        return CourseCheck, (self.report,)

    def __str__(self):
        return str(self.report)

    def __repr__(self):
        return f"<CourseCheck difference={float(self)!r}: {self.report.summary()}>"

    def _repr_html_(self):
        return self.report._repr_html_()

    def print_msg(self):
        """The course's two messages (by minidl's verdict, which allows for rounding), then the findings."""
        if self.report.passed:
            print(f"\033[92mYour backward propagation works perfectly fine! difference = {float(self)}\033[0m")
        else:
            print(f"\033[93mThere is a mistake in the backward propagation! difference = {float(self)}\033[0m")
        for finding in self.report.diagnosis:
            print(f"  - {finding.message}")


def _n_x(parameters, X):
    """X's rows as n_0, after refusing an X given with examples in rows (the course puts them in columns)."""
    W1 = np.shape(parameters.get("W1")) if isinstance(parameters, dict) else ()
    if len(W1) == 2 and X.shape[0] != W1[1] and X.shape[1] == W1[1]:
        raise InputError(f"X must have shape (n_x, m) = ({W1[1]}, m) as in the course (one column per example); "
                         f"received {X.shape}: pass X.T")
    return X.shape[0]


def _learner_cost(parameters, X, Y, given_Y, cost, forward):
    """The learner's cost, given or from their forward pass (either of the course's two signatures)."""
    if forward is not None:
        kind = _forward_kind(forward)
        if kind == "forward_propagation_n":
            out = forward(X, given_Y, parameters)
            return check_float(out[0] if isinstance(out, tuple) else out, "the cost forward_propagation_n returned")
        out = forward(X, parameters)
        AL = check_array(out[0] if isinstance(out, tuple) else out, "the AL forward(X, parameters) returned", ndim=2)
        if AL.shape != Y.shape:
            raise InputError(f"forward(X, parameters) must return AL of shape {Y.shape}; received {AL.shape}")
        return ("AL", AL)
    return None if cost is None else check_float(cost, "cost")


def _forward_kind(forward):
    """Which of the course's forward functions ``forward`` is, from its required positional parameters."""
    if not callable(forward):
        raise InputTypeError(f"forward must be a function; received {type(forward).__name__}")
    try:
        signature = inspect.signature(forward)
    except (TypeError, ValueError):
        return "L_model_forward"
    required = [p for p in signature.parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    if len(required) == 2:
        return "L_model_forward"
    if len(required) == 3:
        return "forward_propagation_n"
    raise InputTypeError(f"forward must be the course's L_model_forward(X, parameters) -> (AL, caches) or "
                         f"forward_propagation_n(X, Y, parameters) -> (cost, cache); received a function of "
                         f"{len(required)} required arguments {signature}")


def _standard_cost(parameters, X, Y, lambd, hidden, yours):
    """The standard L-layer cost with these hidden layers; from the learner's AL when that is what they gave."""
    model = model_from_parameters(parameters, hidden, lambd)
    if isinstance(yours, tuple):      # ("AL", AL): the cost of their probabilities, the standard way
        AL = yours[1]
        data = float(np.mean(model.loss.losses(AL.T, Y.T, from_logits=False)))
        return model.cost(X.T, Y.T), data + model.loss.penalty(model.regularized_weights(), X.shape[1])
    return model.cost(X.T, Y.T), yours


def _inferred_hidden(parameters, X, Y, lambd, yours):
    """The hidden activation whose standard cost matches the learner's; "relu" when none or nothing to match."""
    return "relu" if yours is None else _matching_hidden(parameters, X, Y, lambd, yours, 1e-5) or "relu"


def _matching_hidden(parameters, X, Y, lambd, yours, relative, skip=None):
    """The first hidden activation (other than ``skip``) whose standard cost is the learner's within
    ``relative``; None when none is."""
    for hidden in ACTIVATIONS:
        if hidden != skip:
            standard, theirs = _standard_cost(parameters, X, Y, lambd, hidden, yours)
            if abs(theirs - standard) <= relative * max(1.0, abs(standard)):
                return hidden
    return None


def _low_precision(*things):
    arrays = [v for thing in things for v in (thing.values() if isinstance(thing, dict) else [thing])]
    return any(np.asarray(a).dtype in (np.float32, np.float16) for a in arrays if a is not None)


def _in_course_terms(report, model, parameters, lambd, m, dims, hidden):
    """The report with course names (``W1``, ``b1``), shapes and indices, and its diagnosis redone in them."""
    names = {}
    for l, (index, dense) in enumerate(_indexed_denses(model), start=1):
        names[f"{index}.W"] = (f"W{l}", dense.params["W"].shape)
        names[f"{index}.b"] = (f"b{l}", None)
    groups = []
    for group in report.groups:
        course_name, minidl_shape = names[group.name]
        if minidl_shape is not None:      # W: (n_in, n_out) row-major -> (n_out, n_in)
            i, j = np.unravel_index(group.index, minidl_shape)
            index = j * minidl_shape[0] + i
            order = np.argsort(index, kind="stable")
            group = group.reordered(order, name=course_name, index=index[order],
                                    shape=(minidl_shape[1], minidl_shape[0]))
        else:
            group = dataclasses.replace(group, name=course_name, shape=(group.shape[0], 1))
        groups.append(group)
    title = f"the course's {len(dims) - 1}-layer network {dims} ({hidden}, lambd={lambd:g})"
    out = GradCheckReport(groups, report.epsilon, scipy_info=report.scipy_info, title=title)
    if not out.passed:
        renamed = [dataclasses.replace(g, name="d" + g.name) for g in groups]
        params = {f"d{key}": np.asarray(value, dtype=np.float64) for key, value in parameters.items()}
        regularized = {f"dW{l}" for l in range(1, len(dims))}
        out.diagnosis = diagnose_gradients(renamed, params, regularized, lambd, m)
    return out


def _cost_finding(parameters, X, Y, lambd, hidden, yours, low_precision):
    """A finding when the learner's cost (given, or from their forward pass) is not the standard one; when it
    is the standard cost of other hidden layers, the finding says which and how to ask for them."""
    relative = 1e-5 if low_precision else 1e-7
    standard, theirs = _standard_cost(parameters, X, Y, lambd, hidden, yours)
    if abs(theirs - standard) <= relative * max(1.0, abs(standard)):
        return None
    what = "the cost of your forward pass" if isinstance(yours, tuple) or yours is None else "your cost"
    other = _matching_hidden(parameters, X, Y, lambd, yours, relative, skip=hidden)
    if other is not None:
        return Finding(None, "cost", "J", "hidden", {"assumed": hidden, "matches": other},
                       f"checked as {ACTIVATION_NAMES[hidden]} hidden layers (hidden={hidden!r}); {what} "
                       f"matches {ACTIVATION_NAMES[other]} hidden layers: pass hidden={other!r}")
    return Finding(None, "cost", "J", "cost", {"yours": theirs, "standard": standard},
                   f"{what} J = {theirs:.10g} differs from the standard L-layer cost {standard:.10g} with "
                   f"{ACTIVATION_NAMES[hidden]} hidden layers (cross-entropy plus lambd/(2m) sum ||W||^2), and "
                   f"from the standard cost with any other hidden activation: your forward pass or cost is wrong; "
                   f"fix it first, since the gradients are checked against the standard cost")
