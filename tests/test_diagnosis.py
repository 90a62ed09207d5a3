"""Issue 10: the diagnosis battery. Every mistake must be isolated to the right function and named
as the right kind; correct networks get no diagnosis at all."""
import numpy as np
import pytest

import minidl as mdl
from test_mutations import Dropout     # its bugs: without 1/keep_prob, twice, mask ignored
from test_mutations import Tanh as MutantTanh

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


def assert_diagnosed(report, function, quantity, kind, **numbers):
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
