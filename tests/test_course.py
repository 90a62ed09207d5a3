"""Issue 11: the code learners actually write. A course-style L-layer network, written here with the course's
conventions (parameters W1, b1, ..., W of shape (n_l, n_{l-1}), b of shape (n_l, 1), X of shape (n_x, m),
Y of shape (1, m), gradients dW1, db1, ...), checked by the drop-in gradient_check_n and by check_gradient."""
import numpy as np
import pytest

import minidl as mdl
from minidl import course


# ------------------------------------------------------------------ a learner's implementation
def initialize_parameters(layer_dims, seed=3):
    rng = np.random.default_rng(seed)
    parameters = {}
    for l in range(1, len(layer_dims)):
        parameters[f"W{l}"] = rng.standard_normal((layer_dims[l], layer_dims[l - 1])) / np.sqrt(layer_dims[l - 1])
        parameters[f"b{l}"] = rng.standard_normal((layer_dims[l], 1)) * 0.1
    return parameters


def L_model_forward(X, parameters, hidden="relu"):
    L = len(parameters) // 2
    A, caches = X, []
    for l in range(1, L + 1):
        Z = parameters[f"W{l}"] @ A + parameters[f"b{l}"]
        if l < L:
            A_next = np.maximum(Z, 0) if hidden == "relu" else np.tanh(Z)
        else:
            A_next = 1 / (1 + np.exp(-Z))
        caches.append((A, Z))
        A = A_next
    return A, caches


def compute_cost(AL, Y, parameters, lambd=0.0):
    m = Y.shape[1]
    cross_entropy = -np.sum(Y * np.log(AL) + (1 - Y) * np.log(1 - AL)) / m
    L = len(parameters) // 2
    l2 = lambd / (2 * m) * sum(np.sum(np.square(parameters[f"W{l}"])) for l in range(1, L + 1))
    return float(cross_entropy + l2)


def L_model_backward(AL, Y, caches, parameters, lambd=0.0, hidden="relu", mistake=None):
    grads, m, L = {}, Y.shape[1], len(caches)
    dZ = AL - Y
    for l in range(L, 0, -1):
        A_prev, Z = caches[l - 1]
        W = parameters[f"W{l}"]
        dW = (dZ @ A_prev.T) / m + lambd / m * W
        db = np.sum(dZ, axis=1, keepdims=True) / m
        if mistake == "dW2 doubled" and l == 2:
            dW = 2 * dW
        if mistake == "db1 with 4/m" and l == 1:
            db = 4 * np.sum(dZ, axis=1, keepdims=True) / m
        if mistake == "dW1 without 1/m" and l == 1:
            dW = dZ @ A_prev.T + lambd / m * W
        if mistake == "dW2 transposed" and l == 2:
            dW = dW.T
        grads[f"dW{l}"], grads[f"db{l}"] = dW, db
        grads[f"dZ{l}"] = dZ
        if l > 1:
            dA = W.T @ dZ
            grads[f"dA{l - 1}"] = dA
            _, Z_prev = caches[l - 2]
            dZ = dA * (Z_prev > 0) if hidden == "relu" else dA * (1 - np.tanh(Z_prev) ** 2)
    return grads


DIMS = [5, 4, 4, 1]         # W2 is square, so a transposed dW2 keeps its shape
RNG = np.random.default_rng(11)
X = RNG.standard_normal((5, 7))           # (n_x, m), as in the course
Y = (RNG.random((1, 7)) > 0.5).astype(float)


def learner(mistake=None, lambd=0.7, hidden="relu"):
    parameters = initialize_parameters(DIMS)
    AL, caches = L_model_forward(X, parameters, hidden)
    gradients = L_model_backward(AL, Y, caches, parameters, lambd, hidden, mistake)
    return parameters, gradients, compute_cost(AL, Y, parameters, lambd)


# ------------------------------------------------------------------ the drop-in check
@pytest.mark.parametrize("hidden", ["relu", "tanh"])
def test_a_correct_course_implementation_passes(hidden):
    parameters, gradients, cost = learner(hidden=hidden)
    report = course.gradient_check_n(parameters, gradients, X, Y, hidden=hidden, lambd=0.7, cost=cost)
    assert report.passed, str(report)
    assert set(report.per_parameter) == {"W1", "b1", "W2", "b2", "W3", "b3"}
    assert report.difference < 1e-7 and report.diagnosis == []


@pytest.mark.parametrize("mistake, lambd, key, kind, numbers", [
    ("dW2 doubled", 0.7, "W2", "factor", {"factor": 2.0}),
    ("db1 with 4/m", 0.7, "b1", "factor", {"factor": 4.0}),
    ("dW1 without 1/m", 0.0, "W1", "factor", {"factor": 7.0}),       # m = 7
    ("dW1 without 1/m", 0.7, "W1", None, {}),       # its L2 part keeps the 1/m: no single factor fits
    ("dW2 transposed", 0.7, "W2", "transposed", {}),
])
def test_the_courses_classic_mistakes_are_located_to_the_right_key(mistake, lambd, key, kind, numbers):
    parameters, gradients, cost = learner(mistake, lambd=lambd)
    report = course.gradient_check_n(parameters, gradients, X, Y, lambd=lambd, cost=cost)
    assert not report.passed and report.failed_parameters == [key], str(report)
    finding = report.diagnosis[0]
    assert finding.quantity == "d" + key and finding.kind == kind, str(report)
    for name, value in numbers.items():
        assert finding.numbers[name] == pytest.approx(value)
    assert f"d{key}" in finding.message and "W1" not in finding.message.replace(f"d{key}", "")


def test_a_missing_l2_gradient_is_named_in_course_terms():
    parameters, gradients, cost = learner(lambd=0.7)
    for l in (1, 2, 3):
        gradients[f"dW{l}"] = gradients[f"dW{l}"] - 0.7 / X.shape[1] * parameters[f"W{l}"]
    report = course.gradient_check_n(parameters, gradients, X, Y, lambd=0.7)
    assert report.failed_parameters == ["W1", "W2", "W3"]
    assert report.diagnosis[0].kind == "l2" and "dW1, dW2, dW3" in report.diagnosis[0].message


def test_a_wrong_cost_is_reported_first():
    parameters, gradients, cost = learner()
    report = course.gradient_check_n(parameters, gradients, X, Y, lambd=0.7, cost=cost * 1.01)
    assert not report.passed
    assert report.diagnosis[0].kind == "cost" and "your forward pass or cost is wrong" in report.diagnosis[0].message
    assert str(report).index("your forward pass or cost") < str(report).index("parameter  shape")
    forward = lambda X_, p: (L_model_forward(X_, p)[0] * 0.99, None)       # a forward pass with a slip
    report = course.gradient_check_n(parameters, gradients, X, Y, lambd=0.7, forward=forward)
    assert report.diagnosis[0].kind == "cost"


def test_the_adapters_gradients_equal_minidls_backprop():
    parameters, gradients, _ = learner(lambd=0.7)
    model = course.model_from_parameters(parameters, hidden="relu", lambd=0.7)
    mine = model.gradients(X.T, Y.T)
    theirs = course.gradients_to_minidl(gradients, model)
    assert set(mine) == set(theirs)
    assert max(float(np.max(np.abs(mine[k] - theirs[k]))) for k in mine) < 1e-12


def test_conversions_round_trip():
    parameters = initialize_parameters([6, 3, 2, 1])
    model = course.model_from_parameters(parameters, hidden="tanh", lambd=0.1, keep_prob=0.8)
    assert [type(layer).__name__ for layer in model.layers] == ["Dense", "Tanh", "Dropout", "Dense", "Tanh",
                                                                 "Dropout", "Dense", "Sigmoid"]
    back = course.parameters_from_model(model)
    assert set(back) == set(parameters)
    assert all(np.array_equal(back[k], parameters[k]) and back[k].shape == parameters[k].shape for k in parameters)
    grads = course.gradients_from_minidl(course.gradients_to_minidl(
        {f"d{k}": v * 2 for k, v in parameters.items()}, model), model)
    assert all(np.array_equal(grads[f"d{k}"], 2 * parameters[k]) for k in parameters)


@pytest.mark.parametrize("edit, message", [
    (lambda p, X_: (p.__setitem__("W2", np.zeros((4, 3))), X_)[1],
     r"W2 must have shape \(4, 4\) = \(n_2, n_1\) as in the course \(n_1 = 4 from the rows of W1 and b1, n_2 = 4 "
     r"from b2 and the columns of W3\); received \(4, 3\)"),
    (lambda p, X_: (p.__setitem__("b1", np.zeros(4)), X_)[1],
     r"b1 must have shape \(4, 1\) as in the course .*; received \(4,\).*reshape\(-1, 1\)"),
    (lambda p, X_: (p.pop("W2"), p.pop("b2"), X_)[2],
     r"parameters must hold W1, b1, \.\.\., WL, bL with no layer skipped; missing W2, b2"),
    (lambda p, X_: X_.T,
     r"X must have shape \(n_x, m\) = \(5, m\) as in the course \(one column per example\); received \(7, 5\): "
     r"pass X\.T"),
])
def test_conversion_mistakes_get_course_worded_errors(edit, message):
    parameters, gradients, _ = learner()
    X_ = edit(parameters, X.copy())
    with pytest.raises(mdl.InputError, match=message):
        course.gradient_check_n(parameters, gradients, X_, Y, lambd=0.7)


def test_gradients_with_the_wrong_shape_name_the_key():
    parameters, gradients, _ = learner()
    gradients["db2"] = gradients["db2"].ravel()
    with pytest.raises(mdl.InputError,
                       match=r"gradients\['db2'\] must have the shape of b2, \(4, 1\); received \(4,\)"):
        course.gradient_check_n(parameters, gradients, X, Y, lambd=0.7)


def test_dropout_is_refused_with_the_course_advice():
    parameters, gradients, _ = learner()
    with pytest.raises(mdl.InputError, match="keep_prob=1"):
        course.gradient_check_n(parameters, gradients, X, Y, keep_prob=0.8)


# ------------------------------------------------------------------ check_gradient on dicts
def test_check_gradient_takes_a_dict_of_named_arrays_with_course_keys():
    parameters, _, _ = learner()

    def J(p):
        return compute_cost(L_model_forward(X, p)[0], Y, p, 0.7)

    def dJ(p):
        AL, caches = L_model_forward(X, p)
        return L_model_backward(AL, Y, caches, p, 0.7)       # d-prefixed keys, extra dZ and dA entries ignored

    report = mdl.check_gradient(J, dJ, parameters)
    assert report.passed and set(report.per_parameter) == {"W1", "b1", "W2", "b2", "W3", "b3"}

    def wrong(p):
        grads = dJ(p)
        grads["db1"] = 4 * grads["db1"]
        return grads

    report = mdl.check_gradient(J, wrong, parameters)
    assert report.failed_parameters == ["b1"] and report.diagnosis[0].kind == "factor"
    assert report.worst(1)[0][0] == "b1"


def test_check_gradient_takes_nested_structures_and_samples():
    theta = {"layer": [np.arange(1.0, 4.0), {"w": np.ones((2, 2))}], "c": np.array([0.5])}

    def J(t):
        return float(np.sum(t["layer"][0] ** 2) + np.sum(np.sin(t["layer"][1]["w"])) + t["c"][0] ** 3)

    def dJ(t):
        return {"layer": [2 * t["layer"][0], {"w": np.cos(t["layer"][1]["w"])}], "c": 3 * t["c"] ** 2}

    report = mdl.check_gradient(J, dJ, theta)
    assert report.passed and set(report.per_parameter) == {"layer[0]", "layer[1].w", "c"}
    sampled = mdl.check_gradient(J, dJ, theta, coords="sample", k=2)
    assert sampled.n_checked == 2 + 2 + 1 and sampled.passed


def test_check_gradient_rejects_mismatched_gradient_structures():
    theta = {"a": np.ones(2), "b": np.ones(3)}
    with pytest.raises(mdl.InputError, match=r"dJ\(theta\) must return the keys of theta \['a', 'b'\] \(or "
                                             r"'d'-prefixed ones\); missing \['b'\]"):
        mdl.check_gradient(lambda t: 0.0, lambda t: {"a": np.ones(2)}, theta)


def test_the_drop_in_check_of_the_cat_network(cat_dir):
    """Every coordinate of the course's 4-layer cat network (benchmarks/course_speed.py times it)."""
    X_train, Y_train, *_ = mdl.datasets.load_cat(cat_dir)
    X_, Y_ = X_train[:8].T, Y_train[:8].T
    parameters = initialize_parameters([12288, 20, 7, 5, 1], seed=1)
    AL, caches = L_model_forward(X_, parameters)
    gradients = L_model_backward(AL, Y_, caches, parameters)
    report = course.gradient_check_n(parameters, gradients, X_, Y_)
    assert report.passed and report.n_checked == 245_973, report.summary()
    gradients["dW3"] = 2 * gradients["dW3"]
    assert course.gradient_check_n(parameters, gradients, X_, Y_).failed_parameters == ["W3"]


# ------------------------------------------------------------------ round two: the course's own conventions
def test_correct_float32_learner_code_passes_and_a_float32_bug_is_still_named():
    failures = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        X32 = rng.standard_normal((5, 9)).astype(np.float32)
        Y32 = (rng.random((1, 9)) > 0.5).astype(np.float32)
        parameters = {k: v.astype(np.float32) for k, v in initialize_parameters(DIMS, seed=seed).items()}
        AL, caches = L_model_forward(X32, parameters)
        gradients = L_model_backward(AL, Y32, caches, parameters, 0.7)
        assert gradients["dW1"].dtype == np.float32
        result = course.gradient_check_n(parameters, gradients, X32, Y32, lambd=0.7,
                                         cost=compute_cost(AL, Y32, parameters, 0.7))
        if not result.passed:                  # main: 20 of 20 fail, "dW1 is 1 times the right value"
            failures.append((seed, result.summary()))
    assert failures == []
    gradients = L_model_backward(AL, Y32, caches, parameters, 0.7, mistake="dW2 doubled")
    result = course.gradient_check_n(parameters, gradients, X32, Y32, lambd=0.7)
    assert result.failed_parameters == ["W2"] and result.diagnosis[0].numbers["factor"] == pytest.approx(2.0, 1e-5)


def test_the_result_is_the_courses_number_and_carries_the_report(capsys):
    parameters, gradients, _ = learner(mistake="dW2 doubled")
    difference = course.gradient_check_n(parameters, gradients, X, Y, lambd=0.7)
    assert isinstance(difference, float) and float(difference) == difference.report.difference
    assert difference > 2e-7 and not difference < 2e-7           # main: TypeError
    assert f"{difference:.2e}" == f"{difference.report.difference:.2e}"
    assert not difference.passed and difference.failed_parameters == ["W2"]
    import copy
    assert copy.deepcopy(difference) == difference and copy.deepcopy(difference).report.difference == difference
    assert str(difference).startswith("Gradient check of the course's 3-layer network")
    assert "<table>" in difference._repr_html_() and "FAILED" in difference._repr_html_()
    course.gradient_check_n(parameters, gradients, X, Y, 1e-7, True, lambd=0.7)   # the course's positional form
    out = capsys.readouterr().out                                  # main: "unexpected keyword argument 'print_msg'"
    assert f"There is a mistake in the backward propagation! difference = {float(difference)}" in out
    assert "dW2 is 2 times the right value" in out
    parameters, gradients, _ = learner()
    course.gradient_check_n(parameters, gradients, X, Y, lambd=0.7, print_msg=True)
    assert "Your backward propagation works perfectly fine! difference = " in capsys.readouterr().out


def forward_propagation_n(X_, Y_, parameters):
    """The course's signature: (X, Y, parameters) -> (cost, cache)."""
    AL, caches = L_model_forward(X_, parameters)
    return compute_cost(AL, Y_.reshape(1, -1), parameters), caches


def test_both_of_the_courses_forward_signatures_are_accepted_and_others_named():
    parameters, gradients, _ = learner(lambd=0.0)
    assert course.gradient_check_n(parameters, gradients, X, Y, forward=forward_propagation_n).passed
    assert course.gradient_check_n(parameters, gradients, X, Y, forward=L_model_forward).passed
    broken = lambda X_, Y_, p: (forward_propagation_n(X_, Y_, p)[0] * 1.01, None)     # noqa: E731
    assert course.gradient_check_n(parameters, gradients, X, Y, forward=broken).diagnosis[0].kind == "cost"
    with pytest.raises(mdl.InputTypeError, match=r"forward must be the course's L_model_forward\(X, parameters\) -> "
                                                 r"\(AL, caches\) or forward_propagation_n\(X, Y, parameters\) -> "
                                                 r"\(cost, cache\); received a function of 1 required arguments"):
        course.gradient_check_n(parameters, gradients, X, Y, forward=lambda X_: None)


def test_shape_messages_blame_the_array_that_disagrees():
    parameters, gradients, _ = learner()
    wrong = dict(parameters, W1=parameters["W1"].T)        # main: "b1 must have shape (4, 1) ... received (5, 1)"... or
    with pytest.raises(mdl.InputError, match=r"W1 must have shape \(4, 5\) = \(n_1, n_0\) .*; received \(5, 4\): "
                                             r"transposed\? use W1\.T"):
        course.gradient_check_n(wrong, gradients, X, Y)
    dims = [5, 4, 3, 1]
    parameters = initialize_parameters(dims)
    AL, caches = L_model_forward(X, parameters)
    gradients = L_model_backward(AL, Y, caches, parameters)
    wrong = dict(parameters, W2=parameters["W2"].T)        # main: "W2 must have shape (5, 5)"
    with pytest.raises(mdl.InputError, match=r"W2 must have shape \(3, 4\) = \(n_2, n_1\) .*; received \(4, 3\): "
                                             r"transposed\? use W2\.T"):
        course.gradient_check_n(wrong, gradients, X, Y)
    with pytest.raises(mdl.InputError, match=r"layers_dims must match the arrays: parameters and X give "
                                             r"\[5, 4, 3, 1\]; "
                                             r"received \[5, 4, 4, 1\]"):
        course.gradient_check_n(parameters, gradients, X, Y, layers_dims=[5, 4, 4, 1])
    assert course.gradient_check_n(parameters, gradients, X, Y, layers_dims=dims).passed


def test_the_hidden_activation_is_inferred_from_the_cost_or_named():
    parameters, gradients, cost = learner(hidden="tanh")
    result = course.gradient_check_n(parameters, gradients, X, Y, lambd=0.7, cost=cost)    # hidden not given
    assert result.passed and "(tanh, lambd=0.7)" in str(result)            # main: "your forward pass or cost is wrong"
    result = course.gradient_check_n(parameters, gradients, X, Y, lambd=0.7, cost=cost, hidden="relu")
    finding = result.diagnosis[0]
    assert finding.kind == "hidden" and finding.message == ("checked as ReLU hidden layers (hidden='relu'); your cost "
                                                            "matches Tanh hidden layers: pass hidden='tanh'")


# The course notebook's own test case (gradient_check_n_test_case, np.random.seed(1)) and its broken
# backward_propagation_n (dW2 doubled, db1 with 4/m), written here from the course's conventions.
def notebook_test_case():
    np.random.seed(1)
    x = np.random.randn(4, 3)
    y = np.array([1, 1, 0])
    parameters = {"W1": np.random.randn(5, 4), "b1": np.random.randn(5, 1), "W2": np.random.randn(3, 5),
                  "b2": np.random.randn(3, 1), "W3": np.random.randn(1, 3), "b3": np.random.randn(1, 1)}
    return x, y, parameters


def notebook_backward(x, y, parameters, broken=True):
    m = x.shape[1]
    AL, caches = L_model_forward(x, parameters)
    (A0, Z1), (A1, Z2), (A2, Z3) = caches
    dZ3 = AL - y
    grads = {"dW3": dZ3 @ A2.T / m, "db3": dZ3.sum(axis=1, keepdims=True) / m}
    dZ2 = (parameters["W3"].T @ dZ3) * (A2 > 0)
    grads["dW2"] = dZ2 @ A1.T / m * (2 if broken else 1)
    grads["db2"] = dZ2.sum(axis=1, keepdims=True) / m
    dZ1 = (parameters["W2"].T @ dZ2) * (A1 > 0)
    grads["dW1"] = dZ1 @ A0.T / m
    grads["db1"] = dZ1.sum(axis=1, keepdims=True) * ((4 if broken else 1) / m)
    return grads


def test_the_courses_own_test_case_gives_its_published_number_and_names_both_mistakes():
    x, y, parameters = notebook_test_case()
    gradients = notebook_backward(x, y, parameters)
    difference = course.gradient_check_n(parameters, gradients, x, y)   # y of shape (m,), as the notebook passes it
    assert abs(difference - 0.2850931567761624) < 1e-6                   # the notebook prints 0.2850931567761624
    assert difference > 2e-7
    named = {(f.quantity, f.kind, round(f.numbers["factor"], 6)) for f in difference.diagnosis}
    assert named == {("dW2", "factor", 2.0), ("db1", "factor", 4.0)}
    assert course.gradient_check_n(parameters, notebook_backward(x, y, parameters, broken=False), x, y) < 2e-7


def test_the_one_dimensional_exercise_is_check_gradient():
    """The notebook's first part: J(theta) = theta * x, dJ/dtheta = x, checked as the README shows."""
    def forward_propagation(x, theta):
        return theta * x

    def backward_propagation(x, theta):
        return x

    x, theta = 2.0, 4.0           # numbers, as in the notebook
    report = mdl.check_gradient(lambda t: forward_propagation(x, t), lambda t: backward_propagation(x, t), theta)
    assert report.passed and report.difference < 2e-7
    assert not mdl.check_gradient(lambda t: forward_propagation(x, t), lambda t: x + 1, theta).passed
    # J and dJ receive a number, as the notebook's functions expect (float() of an array would fail)
    assert mdl.check_gradient(lambda t: float(t) ** 2, lambda t: 2 * float(t), theta).passed
