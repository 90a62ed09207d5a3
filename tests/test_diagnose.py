"""The diagnosis (minidl/gradcheck/diagnose.py) and its battery: every mistake must be isolated to the right
function and named as the right kind; correct networks get no diagnosis at all."""
import sys
from pathlib import Path

import numpy as np
import pytest

import minidl as mdl
from test_gradcheck import Dropout     # its bugs: without 1/keep_prob, twice, mask ignored
from test_gradcheck import Tanh as MutantTanh

RNG = np.random.default_rng(10)
X = RNG.standard_normal((8, 5))
Y = np.array([[0], [1], [1], [0], [1], [0], [0], [1]])
M, L2, RATE = 8, 0.5, 0.25


class Dense(mdl.Dense):
    bug = None

    def backward(self, dZ):
        X_, W = self._cached("X"), self.params["W"]
        dW, db, dX = X_.T @ dZ, dZ.sum(axis=0), dZ @ W.T
        bug = self.bug
        if bug == "dW doubled":
            dW = 2 * dW
        elif bug == "db with 4/m":                 # the course's broken db1: 4/m where 1/m belongs
            db = 4 * db
        elif bug == "db averaged":
            db = dZ.mean(axis=0)
        elif bug == "dW transposed":
            dW = dW.T.copy()
        elif bug == "dX without the transpose":
            dX = dZ @ W
        elif bug == "db forgotten":
            db = np.zeros_like(db)
        elif bug == "dW one element":
            dW = dW.copy()
            dW[1, 2] += 0.05
        elif bug == "dW one row":
            dW = dW.copy()
            dW[2] *= 3
        elif bug == "dW one column":
            dW = dW.copy()
            dW[:, 1] = 0.1
        elif bug == "dX halved":
            dX = 0.5 * dX
        elif bug == "dW sign":
            dW = -dW
        self.grads["W"], self.grads["b"] = dW, db
        return dX


class ReLU(mdl.ReLU):
    bug = None

    def backward(self, dA):
        return dA if self.bug == "mask forgotten" else dA * (self._cached("Z") > 0)


class Tanh(MutantTanh):          # caches Z in forward
    def backward(self, dA):
        if self.bug == "zero where saturated":         # a shortcut: "the derivative is 0 for large |Z|"
            return np.where(np.abs(self.Z) > 1, 0.0, dA * (1 - self._cached("A") ** 2))
        return super().backward(dA)


class Loss(mdl.BinaryCrossEntropy):
    bug = None

    def dout(self, out, Y, from_logits):
        d = super().dout(out, Y, from_logits)
        if self.bug == "dout without 1/m":
            return d * Y.shape[0]
        if self.bug == "dout y - a":
            return -d
        return d

    def dpenalty(self, W, m):
        if self.bug == "L2 gradient missing":
            return np.zeros_like(W)
        if self.bug == "L2 gradient doubled":
            return 2 * super().dpenalty(W, m)
        if self.bug == "L2 with 1/(2m)":
            return super().dpenalty(W, m) / 2
        return super().dpenalty(W, m)


def network(where=None, bug=None, loss_bug=None):
    """0 Dense(5,4) 1 ReLU 2 Dropout 3 Dense(4,4) 4 Tanh 5 Dense(4,3) 6 Sigmoid 7 Dense(3,1) 8 Sigmoid."""
    layers = [Dense(5, 4), ReLU(), Dropout(RATE), Dense(4, 4), Tanh(), Dense(4, 3), mdl.Sigmoid(), Dense(3, 1),
              mdl.Sigmoid()]
    if where is not None:
        layers[where].bug = bug
    loss = Loss(L2)
    loss.bug = loss_bug
    model = mdl.Sequential(layers, loss=loss, seed=5)
    for name, value in model.named_parameters():
        if name.endswith(".b"):
            value[...] = np.random.default_rng(len(value)).normal(0, 0.3, value.shape)
    return model


DIAGNOSED = []      # one verdict per battery case: "named right", "named wrong", "not named" (printed by conftest)


def record(report, function, quantity, kind):
    """How the diagnosis named a case: right when a finding has the expected function, quantity and kind;
    wrong when any finding names another function, or a kind (not None) the case does not have."""
    findings = report.diagnosis
    if any(f.function != function or (f.kind is not None and f.kind != kind) for f in findings
           if f.kind != "in place"):
        verdict = "named wrong"
    elif any((f.quantity, f.kind) == (quantity, kind) for f in findings):
        verdict = "named right"
    else:
        verdict = "not named"
    DIAGNOSED.append(verdict)
    if verdict != "named right":
        print(f"diagnosis {verdict}: expected {function}: {quantity} {kind}; found "
              f"{[(f.function, f.quantity, f.kind) for f in findings]}")
    return verdict


def assert_diagnosed(report, function, quantity, kind, **numbers):
    record(report, function, quantity, kind)
    assert not report.passed
    assert report.diagnosis, str(report)
    assert {f.function for f in report.diagnosis} == {function}, str(report)
    finding = report.diagnosis[0]
    assert (finding.quantity, finding.kind) == (quantity, kind), str(report)
    for key, value in numbers.items():
        assert finding.numbers[key] == pytest.approx(value, rel=1e-5) if isinstance(value, float) \
            else finding.numbers[key] == value, (key, finding.numbers)
    assert finding.message.startswith(function) and finding.message in str(report)
    return finding


LAYER_CASES = [
    (3, "dW doubled", "layer 3 (Dense) backward", "W", "factor", {"factor": 2.0}),
    (0, "db with 4/m", "layer 0 (Dense) backward", "b", "factor", {"factor": 4.0}),
    (5, "db averaged", "layer 5 (Dense) backward", "b", "factor", {"factor": 1 / M, "name": "1/m = 1/8"}),
    (3, "dW transposed", "layer 3 (Dense) backward", "W", "transposed", {}),
    (3, "dX without the transpose", "layer 3 (Dense) backward", "dX", "untransposed W", {}),
    (5, "db forgotten", "layer 5 (Dense) backward", "b", "zero", {}),
    (5, "dW one element", "layer 5 (Dense) backward", "W", "element", {"index": (1, 2)}),
    (5, "dW one row", "layer 5 (Dense) backward", "W", "row", {"row": 2}),
    (5, "dW one column", "layer 5 (Dense) backward", "W", "column", {"column": 1}),
    (3, "dX halved", "layer 3 (Dense) backward", "dX", "factor", {"factor": 0.5}),
    (7, "dW sign", "layer 7 (Dense) backward", "W", "factor", {"factor": -1.0}),
    (1, "mask forgotten", "layer 1 (ReLU) backward", "dX", "range", {"where": "where the input is negative"}),
    (4, "zero where saturated", "layer 4 (Tanh) backward", "dX", "range", {"where": "large"}),
    (2, "backward without 1/keep_prob", "layer 2 (Dropout) backward", "dX", "factor", {"factor": 1 - RATE}),
    (2, "backward divides by keep_prob twice", "layer 2 (Dropout) backward", "dX", "factor",
     {"factor": 1 / (1 - RATE)}),
    (2, "backward ignores the mask", "layer 2 (Dropout) backward", "dX", "mask not applied", {}),
]


@pytest.mark.parametrize("where, bug, function, quantity, kind, numbers", LAYER_CASES, ids=[c[1] for c in LAYER_CASES])
def test_a_layer_mistake_is_isolated_and_named(where, bug, function, quantity, kind, numbers):
    report = network(where, bug).gradcheck(X, Y, dropout="frozen", scipy_check=False)
    finding = assert_diagnosed(report, function, quantity, kind, **numbers)
    assert finding.layer == where


LOSS_CASES = [
    ("dout without 1/m", "the loss's gradient", "dout", "factor", {"factor": float(M)}),
    ("dout y - a", "the loss's gradient", "dout", "factor", {"factor": -1.0}),
    ("L2 gradient missing", "the L2 term's gradient", "0.W", "l2", {"factor": 0.0}),
    ("L2 gradient doubled", "the L2 term's gradient", "0.W", "l2", {"factor": 2.0}),
    ("L2 with 1/(2m)", "the L2 term's gradient", "0.W", "l2", {"factor": 0.5}),
]


@pytest.mark.parametrize("bug, function, quantity, kind, numbers", LOSS_CASES, ids=[c[0] for c in LOSS_CASES])
def test_a_loss_or_l2_mistake_is_isolated_and_named(bug, function, quantity, kind, numbers):
    report = network(loss_bug=bug).gradcheck(X, Y, scipy_check=False)
    finding = assert_diagnosed(report, function, quantity, kind, **numbers)
    assert finding.layer is None


def _grads(mutate):
    model = network()
    grads = model.gradients(X, Y)
    mutate(model, grads)
    return model.gradcheck(X, Y, grads=grads, scipy_check=False)


def _forget_l2(model, grads):
    for i, layer in enumerate(model.layers):
        if "W" in layer.params:
            grads[f"{i}.W"] = grads[f"{i}.W"] - L2 / M * layer.params["W"]


def _one_element(model, grads):
    grads["5.W"][0, 1] += 0.01


GRADS_CASES = [
    ("L2 forgotten", _forget_l2, "l2", {"factor": -1.0}),
    ("dW2 doubled", lambda mo, g: g.__setitem__("3.W", 2 * g["3.W"]), "factor", {"factor": 2.0}),
    ("db1 with 4/m", lambda mo, g: g.__setitem__("0.b", 4 * g["0.b"]), "factor", {"factor": 4.0}),
    ("dW never updated", lambda mo, g: g.__setitem__("3.W", np.zeros_like(g["3.W"])), "zero", {}),
    ("one element", _one_element, "element", {"index": (0, 1)}),
]


@pytest.mark.parametrize("bug, mutate, kind, numbers", GRADS_CASES, ids=[c[0] for c in GRADS_CASES])
def test_a_mistake_in_gradients_handed_in_is_named(bug, mutate, kind, numbers):
    report = _grads(mutate)
    assert_diagnosed(report, "grads", report.diagnosis[0].quantity, kind, **numbers)
    assert len(report.diagnosis) == 1


class Scale(mdl.Layer):
    """A user layer with a parameter per column: A = s * X, with ds doubled."""
    rowwise = True

    def __init__(self, n=1):
        super().__init__()
        self.params = {"s": np.full(n, 1.5)}

    def forward(self, X, training=False):
        self.X = X
        return self.params["s"] * X

    def backward(self, dA):
        self.grads["s"] = 2 * (dA * self.X).sum(axis=0)
        return dA * self.params["s"]


class LeakyReLU(mdl.Layer):
    """A user activation whose negative slope is wrong in backward (2 alpha)."""
    elementwise = rowwise = True

    def forward(self, X, training=False):
        self.X = X
        return np.where(X > 0, X, 0.1 * X)

    def backward(self, dA):
        return dA * np.where(self.X > 0, 1.0, 0.2)

    def kink_pattern(self, X):
        return X > 0


def test_a_user_layer_parameter_mistake_is_named():
    model = mdl.Sequential([mdl.Dense(5, 3), Scale(3), mdl.Tanh(), mdl.Dense(3, 1), mdl.Sigmoid()], seed=2)
    report = model.gradcheck(X, Y, scipy_check=False)
    finding = assert_diagnosed(report, "layer 1 (Scale) backward", "s", "factor", factor=2.0)
    assert finding.layer == 1


def test_a_user_activation_wrong_for_negative_inputs_is_named():
    model = mdl.Sequential([mdl.Dense(5, 6), LeakyReLU(), mdl.Dense(6, 1), mdl.Sigmoid()], seed=3)
    report = model.gradcheck(X, Y, scipy_check=False)
    assert_diagnosed(report, "layer 1 (LeakyReLU) backward", "dX", "range", where="where the input is negative")
    assert "every other function is right" in report.isolation


def test_gradcheck_layer_and_check_gradient_name_the_mistake_too():
    report = mdl.gradcheck_layer(LeakyReLU(), RNG.standard_normal((4, 3)))
    assert report.diagnosis[0].kind == "range" and report.diagnosis[0].quantity == "X"
    theta = np.linspace(0.5, 2.0, 4)
    report = mdl.check_gradient(lambda t: float(np.sum(t ** 3)), lambda t: 6 * t ** 2, theta)
    assert report.diagnosis[0].kind == "factor" and report.diagnosis[0].numbers["factor"] == pytest.approx(2)


def test_the_seeds_two_mistakes_are_both_named():
    """The course's broken backward pass: dW2 doubled and db1 with 4/m, in one network."""
    model = network()
    model.layers[3].bug = "dW doubled"
    model.layers[0].bug = "db with 4/m"
    report = model.gradcheck(X, Y, scipy_check=False)
    found = {(f.layer, f.quantity, f.kind, round(f.numbers["factor"], 6)) for f in report.diagnosis}
    assert found == {(3, "W", "factor", 2.0), (0, "b", "factor", 4.0)}
    assert report.summary().count("diagnosis:") == 1
    assert "layer 3 (Dense) backward: W is wrong" in report.isolation
    assert "layer 0 (Dense) backward: b is wrong" in report.isolation


def test_the_battery_has_at_least_twenty_distinct_mistakes():
    assert len(LAYER_CASES) + len(LOSS_CASES) + len(GRADS_CASES) + 4 >= 20


def test_three_hundred_correct_networks_get_no_diagnosis():
    clean = 0
    for trial in range(300):
        rng = np.random.default_rng(3000 + trial)
        width = int(rng.integers(2, 7))
        act = [mdl.ReLU, mdl.Tanh, mdl.Sigmoid][trial % 3]
        model = mdl.Sequential([mdl.Dense(4, width), act(), mdl.Dense(width, 1), mdl.Sigmoid()],
                               loss=mdl.BinaryCrossEntropy(float(rng.choice([0, 0.3]))), seed=trial)
        m = int(rng.integers(1, 9))
        report = model.gradcheck(rng.standard_normal((m, 4)), rng.integers(0, 2, (m, 1)), scipy_check=False)
        clean += report.passed and report.diagnosis == [] and report.isolation is None
    assert clean == 300


def test_the_trainer_debug_line_carries_the_first_finding():
    import io
    log = io.StringIO()
    model = network(3, "dW doubled")
    with pytest.raises(mdl.GradientCheckError) as error:
        mdl.Trainer(model, epochs=1, debug=True, progress=False, log=log).fit(X, Y)
    line = log.getvalue()
    assert "gradcheck FAILED" in line and "diagnosis: layer 3 (Dense) backward: W is 2 times the right value" in line
    assert "isolated: layer 3 (Dense) backward: W is wrong" in str(error.value)


def test_an_l2_mistake_is_no_longer_blamed_on_the_last_layer_and_the_loss():
    report = network(loss_bug="L2 gradient missing").gradcheck(X, Y, scipy_check=False)
    assert report.suspects is None and "where to look" not in str(report)
    report = _grads(_forget_l2)
    assert report.suspects is None and "where to look" not in str(report)
    assert network(3, "dW doubled").gradcheck(X, Y, scipy_check=False).suspects == [3]


# ------------------------------------------------------------------ round two: never the wrong function or kind
class InplaceScale(mdl.Layer):
    """``A = X * s``; its backward writes into the upstream gradient, so ds reads dA * s: dX right, ds wrong."""
    rowwise = True

    def __init__(self, n=3):
        super().__init__()
        self.params["s"] = np.linspace(0.5, 1.5, n)

    def forward(self, X, training=False):
        self.X = X
        return X * self.params["s"]

    def backward(self, dA):
        dX = dA
        dX *= self.params["s"]
        self.grads["s"] = (dA * self.X).sum(axis=0)
        return dX


def test_a_backward_that_writes_into_its_upstream_gradient_is_named_not_blamed_on_dx():
    model = mdl.Sequential([mdl.Dense(5, 3), InplaceScale(), mdl.Tanh(), mdl.Dense(3, 1), mdl.Sigmoid()], seed=2)
    report = model.gradcheck(X, Y, scipy_check=False)
    record(report, "layer 1 (InplaceScale) backward", "s", None)       # main: "dX is wrong (s right)"
    assert report.isolation.startswith("layer 1 (InplaceScale) backward: s is wrong (dX right)")
    assert [(f.quantity, f.kind) for f in report.diagnosis] == [("s", None), ("in place", "in place")]
    assert report.diagnosis[1].message == (
        "layer 1 (InplaceScale) backward writes into its upstream gradient dA in place (e.g. dX = dA; dX *= s): "
        "whatever it computes after that reads the changed values; work on a copy")


def test_a_tiny_error_in_one_element_is_an_element_not_a_factor_of_one():
    for size in (1e-5, 1e-3):
        report = _grads(lambda mo, g: g["3.W"].__setitem__((1, 2), g["3.W"][1, 2] * (1 + size)))
        finding = assert_diagnosed(report, "grads", "3.W", "element", index=(1, 2))    # main: "1 times"
        assert "times the right value" not in str(report)
        assert len(report.diagnosis) == 1 and finding.message.endswith("an indexing slip")


def test_gradients_rounded_to_float16_are_named_rounding_whatever_their_dtype():
    model = network()
    for cast in (lambda g: g.astype(np.float16), lambda g: g.astype(np.float16).astype(np.float64)):
        grads = {name: cast(g) for name, g in model.gradients(X, Y).items()}
        report = model.gradcheck(X, Y, grads=grads, scipy_check=False)
        assert not report.passed
        record(report, "grads", report.diagnosis[0].quantity, "rounding")
        assert {f.kind for f in report.diagnosis} == {"rounding"}, str(report)     # main: "indexing slip", "0.99 times"
        assert "agrees with the right value rounded to float16" in report.diagnosis[0].message


class Float16Dense(mdl.Dense):
    """Rounds its dW through float16 (in a float64 model too)."""

    def backward(self, dZ):
        dX = super().backward(dZ)
        self.grads["W"] = self.grads["W"].astype(np.float16).astype(self.grads["W"].dtype)
        return dX


def test_a_layer_that_rounds_its_gradient_through_float16_is_named():
    model = mdl.Sequential([mdl.Dense(5, 4), mdl.Tanh(), Float16Dense(4, 3), mdl.Tanh(), mdl.Dense(3, 1),
                            mdl.Sigmoid()], seed=4)
    report = model.gradcheck(X, Y, scipy_check=False)
    finding = assert_diagnosed(report, "layer 2 (Float16Dense) backward", "W", "rounding", dtype="float16")
    assert finding.message.startswith("layer 2 (Float16Dense) backward: W agrees with the right value rounded to "
                                      "float16")            # main: "none of the known mistakes fits"


class SlipDense(mdl.Dense):
    """Rounds its dW through float16 only when the model runs in float32."""

    def backward(self, dZ):
        dX = super().backward(dZ)
        if self.params["W"].dtype == np.float32:
            self.grads["W"] = self.grads["W"].astype(np.float16).astype(np.float32)
        return dX


def test_a_float16_slip_inside_a_float32_model_is_caught_and_named_in_every_seed():
    caught = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        X_, Y_ = rng.standard_normal((8, 5)), rng.integers(0, 2, 8)
        model = mdl.Sequential([SlipDense(5, 6), mdl.Tanh(), mdl.Dense(6, 4), mdl.ReLU(), mdl.Dense(4, 1),
                                mdl.Sigmoid()], loss=mdl.BinaryCrossEntropy(0.3 * (seed % 2)), seed=seed,
                               dtype=np.float32)
        report = model.gradcheck(X_, Y_, scipy_check=False)
        caught += not report.passed
        if seed == 0:
            assert_diagnosed(report, "layer 0 (SlipDense) backward", "W", "rounding", dtype="float16")
            assert report.isolation == ("in float64 every function is right; in float32, layer 0 (SlipDense) "
                                        "backward: W is wrong")
            assert "float32 backprop: every entry of 0.W lies on float16's grid" in str(report)
    assert caught == 10                        # main: 5 of 10 (and 0 with an L2 term)


def test_two_exchanged_gradients_of_one_shape_are_named_as_exchanged():
    report = _grads(lambda mo, g: g.update({"0.b": g["3.b"], "3.b": g["0.b"]}))
    record(report, "grads", "0.b", "swapped")       # main: "none of the known mistakes fits", twice
    assert [(f.quantity, f.kind, f.numbers["with"]) for f in report.diagnosis] == [("0.b", "swapped", "3.b"),
                                                                                  ("3.b", "swapped", "0.b")]
    assert report.diagnosis[0].message == ("grads: 0.b holds the gradient of 3.b, and 3.b the gradient of 0.b: two "
                                           "gradients of the same shape were exchanged")


class RescalingDropout(mdl.Dropout):
    def backward(self, dA):
        return dA if self.mask is None else dA / self.keep_prob


def test_a_dropout_backward_that_rescales_without_the_mask_is_named():
    layers = network().layers
    layers[2] = RescalingDropout(RATE)
    model = mdl.Sequential(layers, loss=mdl.BinaryCrossEntropy(L2), seed=5)
    report = model.gradcheck(X, Y, dropout="frozen", scipy_check=False)
    finding = assert_diagnosed(report, "layer 2 (RescalingDropout) backward", "dX", "mask not applied")
    assert "divided by keep_prob = 0.75: Dropout's backward rescales but does not apply the mask" in finding.message


class MeanDense(mdl.Dense):
    def backward(self, dZ):
        dX = super().backward(dZ)
        self.grads["b"] = dZ.mean(axis=0)
        return dX


def test_the_same_mistake_has_the_same_words_in_gradcheck_layer_and_in_a_model():
    layer_report = mdl.gradcheck_layer(MeanDense(5, 3), X)
    model = mdl.Sequential([mdl.Dense(5, 3), mdl.Tanh(), MeanDense(3, 1), mdl.Sigmoid()], seed=1)
    model_report = model.gradcheck(X, Y, scipy_check=False)
    for report in (layer_report, model_report):      # main: "0.125 times" for the layer alone
        assert report.diagnosis[0].numbers["name"] == "1/m = 1/8"
        assert "b is 1/m = 1/8 times the right value (fitted factor 0.125)" in report.diagnosis[0].message


def test_gradients_handed_in_get_a_where_to_look_line():
    model = mdl.Sequential([mdl.Dense(5, 4), mdl.Tanh(), mdl.Dense(4, 3), mdl.Tanh(), mdl.Dense(3, 1),
                            mdl.Sigmoid()], seed=3)
    grads = model.gradients(X, Y)
    grads["2.W"] = grads["2.W"].T.reshape(4, 3).copy()       # a (n_out, n_in) gradient laid out as (n_in, n_out)
    report = model.gradcheck(X, Y, grads=grads, scipy_check=False)
    assert_diagnosed(report, "grads", "2.W", "transposed")    # main: "none of the known mistakes fits"
    assert report.suspects == [2, 3, 4]                       # main: None
    assert "where to look: parameters up to layer 2 fail and none after" in str(report)


def test_the_table_explains_its_two_counts_and_its_order():
    report = _grads(lambda mo, g: g.__setitem__("3.W", g["3.W"] * (1 + 1e-6)))
    text = str(report)
    assert "'wrong' can exceed 'flagged': the largest gradients of every parameter are re-evaluated" in text
    assert "worst coordinates (wrong ones first, then by error / tolerance):" in text
    header = next(line for line in text.splitlines() if "rel. error" in line)
    assert header.rstrip().endswith("rel. error  error / tol.")
    rows = report._worst(5)
    assert [r[5] for r in rows if (r[0], r[1]) in report.wrong()] == sorted(
        [r[5] for r in rows if (r[0], r[1]) in report.wrong()], reverse=True)


def test_a_black_box_that_overflows_at_a_larger_step_is_not_the_users_error():
    def J(t):
        return float(np.sum(t ** 2)) if np.all(np.abs(t) < 1) else float("inf")

    for seed in range(5):
        rng = np.random.default_rng(seed)
        theta = rng.uniform(-0.5, 0.5, 6)
        theta[0] = 1 - rng.uniform(1e-3, 8e-3)        # a step of 1e-2 leaves the domain: J = inf there
        assert mdl.check_gradient(J, lambda t: 2 * t, theta).passed       # main: "J(theta) must be finite"
        assert not mdl.check_gradient(J, lambda t: 2.01 * t, theta).passed


def test_a_black_box_computed_in_float32_is_judged_by_its_own_noise():
    for seed in range(10):
        rng = np.random.default_rng(seed)
        theta = rng.standard_normal(int(rng.integers(5, 300))) * rng.choice([0.1, 1, 10])
        J = lambda t: float(np.sum(t.astype(np.float32) ** 2))     # noqa: E731  (a Python float of float32 work)
        report = mdl.check_gradient(J, lambda t: 2 * t, theta)
        assert report.passed, report.summary()              # main: 10 of 10 fail, "indexing slip" or no kind
        assert not mdl.check_gradient(J, lambda t: 4 * t, theta).passed     # dJ doubled: still caught


def test_features_spanning_many_decades_raise_no_false_alarm_and_a_bug_is_still_caught():
    """The trust sweep's many_decades family (features from 1e-6 to 1e6): these seeds all failed on main."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import trust_sweep
    for seed in (15004, 15027, 15042, 15047, 15050, 15065, 15077):
        model, X_, Y_, _ = trust_sweep.many_decades(np.random.default_rng(seed), mdl.Dense)
        report = model.gradcheck(X_, Y_, scipy_check=False)
        assert report.passed, report.summary()
        text = str(report)
        assert "steps: " in text and "instead of epsilon, so that no unit moves by more than 1e-04" in text
        grads = model.gradients(X_, Y_)
        grads["0.W"] = grads["0.W"] * (1 + 1e-4)
        assert not model.gradcheck(X_, Y_, grads=grads, scipy_check=False).passed


def test_rounding_is_never_named_as_another_kind():
    """Correct networks with correct gradients rounded to float32 and float16 (handed in as such or cast back
    to float64): every check passes or names rounding, never a factor, element, row, column or L2 kind."""
    kinds, checks = [], 0
    for seed in range(12):
        rng = np.random.default_rng(seed)
        X_ = rng.standard_normal((8, 5)) * rng.choice([0.1, 1, 5])
        Y_ = rng.integers(0, 2, 8)
        act = [mdl.Tanh, mdl.ReLU, mdl.Sigmoid][seed % 3]
        model = mdl.Sequential([mdl.Dense(5, 4), act(), mdl.Dense(4, 3), mdl.Tanh(), mdl.Dense(3, 1), mdl.Sigmoid()],
                               loss=mdl.BinaryCrossEntropy(float(rng.choice([0, 0.5]))), seed=seed)
        exact = model.gradients(X_, Y_)
        for dtype in (np.float32, np.float16):
            for back in (False, True):
                grads = {n: g.astype(dtype).astype(np.float64) if back else g.astype(dtype) for n, g in exact.items()}
                report = model.gradcheck(X_, Y_, grads=grads, scipy_check=False)
                checks += 1
                kinds += [f.kind for f in report.diagnosis]
                assert report.passed or report.diagnosis, str(report)
    print(f"rounding sweep: {checks} checks, findings by kind {dict((k, kinds.count(k)) for k in set(kinds))}")
    assert set(kinds) <= {"rounding"}
