"""The mutation battery: realistic backprop bugs, each of which gradcheck must catch and locate.

Every mutant is a correct network with one bug, written as a custom layer (a wrong backward) or
as a wrong gradient dict handed to ``grads=``. A mutant is caught when the check fails and the
failing parameters are exactly the ones the bug spoils. The catch rate is printed at the end
of the test session (see conftest.py).
"""
import numpy as np
import pytest

import minidl as mdl

RESULTS = {}
RNG = np.random.default_rng(11)
X = RNG.standard_normal((8, 5))
Y = np.array([[0], [1], [1], [0], [1], [0], [0], [1]])
L2 = 0.5
M = X.shape[0]


class Dense(mdl.Dense):
    bug = None

    def backward(self, dZ):
        X_, W = self.X, self.params["W"]
        dW, db, dX = X_.T @ dZ, dZ.sum(axis=0), dZ @ W.T
        if self.bug == "dW doubled":
            dW = 2 * dW
        elif self.bug == "dW from summed inputs":
            dW = np.outer(X_.sum(axis=0), dZ.sum(axis=0)) / len(X_)
        elif self.bug == "dW transposed":
            dW = dW.T.copy()
        elif self.bug == "db averaged":
            db = dZ.mean(axis=0)
        elif self.bug == "db forgotten":
            db = np.zeros_like(db)
        elif self.bug == "dX halved":
            dX = 0.5 * dX
        elif self.bug == "dX without the transpose":
            dX = dZ @ W
        self.grads["W"], self.grads["b"] = dW, db
        return dX


class ReLU(mdl.ReLU):
    bug = None

    def backward(self, dA):
        if self.bug == "mask forgotten":
            return dA
        if self.bug == "mask inverted":
            return dA * (self.Z < 0)
        if self.bug == "mask taken from dA":
            return dA * (dA > 0)
        return dA * (self.Z > 0)


class Tanh(mdl.Tanh):
    bug = None

    def forward(self, Z, training=False):
        self.Z = Z
        return super().forward(Z, training)

    def backward(self, dA):
        if self.bug == "1 - A instead of 1 - A^2":
            return dA * (1 - self.A)
        if self.bug == "1 - Z^2 (right only near zero)":
            return dA * (1 - self.Z ** 2)
        if self.bug == "1 + A^2":
            return dA * (1 + self.A ** 2)
        return dA * (1 - self.A ** 2)


class Sigmoid(mdl.Sigmoid):
    bug = None

    def forward(self, Z, training=False):
        self.Z = Z
        return super().forward(Z, training)

    def backward(self, dA):
        if self.bug == "A instead of A (1 - A)":
            return dA * self.A
        if self.bug == "Z (1 - Z) instead of A (1 - A)":
            return dA * self.Z * (1 - self.Z)
        return dA * self.A * (1 - self.A)


class Dropout(mdl.Dropout):
    bug = None

    def backward(self, dA):
        if self.mask is None:
            return dA
        if self.bug == "backward without 1/keep_prob":
            return dA * (self.mask > 0)
        if self.bug == "backward divides by keep_prob twice":
            return dA * self.mask / self.keep_prob
        if self.bug == "backward ignores the mask":
            return dA
        return dA * self.mask


def network(where=None, bug=None):
    """0 Dense(5,4) 1 ReLU 2 Dropout 3 Dense(4,4) 4 Tanh 5 Dense(4,3) 6 Sigmoid 7 Dense(3,1) 8 Sigmoid."""
    layers = [Dense(5, 4), ReLU(), Dropout(0.3), Dense(4, 4), Tanh(), Dense(4, 3), Sigmoid(), Dense(3, 1),
              mdl.Sigmoid()]
    if where is not None:
        layers[where].bug = bug
    model = mdl.Sequential(layers, loss=mdl.BinaryCrossEntropy(L2), seed=5)
    for name, value in model.named_parameters():
        if name.endswith(".b"):                # away from initialization, where biases are no longer 0
            value[...] = np.random.default_rng(len(value)).normal(0, 0.3, value.shape)
    return model


BEFORE = {1: {"0.W", "0.b"}, 2: {"0.W", "0.b"}, 3: {"0.W", "0.b"}, 4: {"0.W", "0.b", "3.W", "3.b"},
          6: {"0.W", "0.b", "3.W", "3.b", "5.W", "5.b"}}
ALL = {"0.W", "0.b", "3.W", "3.b", "5.W", "5.b", "7.W", "7.b"}
WEIGHTS = {"0.W", "3.W", "5.W", "7.W"}

LAYER_MUTANTS = [
    (3, "dW doubled", {"3.W"}),
    (5, "dW from summed inputs", {"5.W"}),
    (3, "dW transposed", {"3.W"}),
    (3, "db averaged", {"3.b"}),
    (7, "db forgotten", {"7.b"}),
    (3, "dX halved", BEFORE[3]),
    (3, "dX without the transpose", BEFORE[3]),
    (1, "mask forgotten", BEFORE[1]),
    (1, "mask inverted", BEFORE[1]),
    (1, "mask taken from dA", BEFORE[1]),
    (4, "1 - A instead of 1 - A^2", BEFORE[4]),
    (4, "1 - Z^2 (right only near zero)", BEFORE[4]),
    (4, "1 + A^2", BEFORE[4]),
    (6, "A instead of A (1 - A)", BEFORE[6]),
    (6, "Z (1 - Z) instead of A (1 - A)", BEFORE[6]),
    (2, "backward without 1/keep_prob", BEFORE[2]),
    (2, "backward divides by keep_prob twice", BEFORE[2]),
    (2, "backward ignores the mask", BEFORE[2]),
]


def _other_batch_grads(model, grads):
    other = np.random.default_rng(99).standard_normal(X.shape)
    grads.update(model.gradients(other, Y))


def _scaled_weights(factor):
    def mutate(model, grads):
        for name, W in model.named_parameters():
            if name.endswith(".W"):
                grads[name] = grads[name] + factor * (L2 / M) * W
    return mutate


GRADS_MUTANTS = [
    ("L2 term missing from dW", _scaled_weights(-1.0), WEIGHTS),
    ("L2 term with l2/(2m) instead of l2/m", _scaled_weights(-0.5), WEIGHTS),
    ("L2 term counted twice", _scaled_weights(1.0), WEIGHTS),
    ("L2 applied to the biases too", lambda mo, g: [g.__setitem__(n, g[n] + L2 / M * v)
                                                    for n, v in mo.named_parameters() if n.endswith(".b")],
     {"0.b", "3.b", "5.b", "7.b"}),
    ("one wrong element (+1%)", lambda mo, g: g["3.W"].__setitem__((2, 1), g["3.W"][2, 1] * 1.01 + 1e-6), {"3.W"}),
    ("wrong last bias only", lambda mo, g: g.__setitem__("7.b", g["7.b"] * 0.9), {"7.b"}),
    ("sign flipped", lambda mo, g: [g.__setitem__(n, -g[n]) for n in list(g)], ALL),
    ("1/m forgotten", lambda mo, g: [g.__setitem__(n, M * g[n]) for n in list(g)], ALL),
    ("two same-shape gradients swapped", lambda mo, g: g.update({"0.b": g["3.b"], "3.b": g["0.b"]}), {"0.b", "3.b"}),
    ("gradients of another batch", _other_batch_grads, ALL),
]


def record(name, caught):
    RESULTS[name] = caught
    return caught


def test_the_unmutated_network_passes():
    model = network()
    assert model.gradcheck(X, Y, dropout="frozen").passed
    assert model.gradcheck(X, Y, grads=model.gradients(X, Y)).passed


@pytest.mark.parametrize("where, bug, expected", LAYER_MUTANTS, ids=[m[1] for m in LAYER_MUTANTS])
def test_layer_mutant_is_caught_and_located(where, bug, expected):
    report = network(where, bug).gradcheck(X, Y, dropout="frozen", scipy_check=False)
    # located twice: by the failing parameters, and by the diagnosis isolating exactly this layer
    caught = (not report.passed and set(report.failed_parameters) == expected
              and {finding.layer for finding in report.diagnosis} == {where})
    assert record(f"layer {where}: {bug}", caught), str(report)
    assert report.suspects[0] <= where <= report.suspects[-1]


@pytest.mark.parametrize("bug, mutate, expected", GRADS_MUTANTS, ids=[m[0] for m in GRADS_MUTANTS])
def test_gradient_dict_mutant_is_caught_and_located(bug, mutate, expected):
    model = network()
    grads = model.gradients(X, Y)
    mutate(model, grads)
    report = model.gradcheck(X, Y, grads=grads, scipy_check=False)
    caught = not report.passed and set(report.failed_parameters) == expected
    assert record(f"grads: {bug}", caught), str(report)


def test_the_battery_has_at_least_twenty_mutants():
    assert len(LAYER_MUTANTS) + len(GRADS_MUTANTS) >= 20
