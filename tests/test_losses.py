import numpy as np
import pytest

import minidl as mdl
from conftest import SETTINGS
from hypothesis import given
from hypothesis import strategies as st


def one_weight_model(l2, w=2.0):
    model = mdl.Sequential([mdl.Dense(1, 1), mdl.Sigmoid()], loss=mdl.BinaryCrossEntropy(l2=l2))
    model.layers[0].params["W"][...] = w
    model.layers[0].params["b"][...] = 0.0
    return model


X = np.array([[1.0], [-1.0]])
Y = np.array([[1.0], [0.0]])


def test_cost_hand_computed_without_l2():
    # z = [2, -2]; both examples are right with loss log(1 + e^-2)
    assert one_weight_model(0.0).cost(X, Y) == pytest.approx(np.log1p(np.exp(-2.0)), rel=1e-15)


def test_cost_hand_computed_with_l2():
    # + l2 / (2m) * W^2 = 0.5 / 4 * 4 = 0.5; the bias is not regularized
    model = one_weight_model(0.5)
    model.layers[0].params["b"][...] = 3.0
    expected = np.mean([np.log1p(np.exp(-5.0)), np.log1p(np.exp(1.0))]) + 0.5
    assert model.cost(X, Y) == pytest.approx(expected, rel=1e-14)


def test_gradient_hand_computed_with_l2():
    model = one_weight_model(0.5)
    grads = model.gradients(X, Y)
    s = 1 / (1 + np.exp(-2.0))
    dZ = np.array([s - 1, (1 - s) - 0]) / 2          # (a - y) / m with a = sigmoid(z)
    assert grads["0.W"][0, 0] == pytest.approx(dZ @ X[:, 0] + 0.5 / 2 * 2.0, rel=1e-14)
    assert grads["0.b"][0] == pytest.approx(dZ.sum(), abs=1e-16)


@pytest.mark.parametrize("z", [50.0, 1000.0])
def test_saturated_logits_give_finite_cost_and_exact_gradients(z):
    model = one_weight_model(0.0, w=z)
    Xs = np.array([[1.0], [1.0], [-1.0], [-1.0]])
    Ys = np.array([[1.0], [0.0], [0.0], [1.0]])
    # right with confidence z: loss log(1 + e^-z); wrong: z + log(1 + e^-z)
    expected = (2 * np.log1p(np.exp(-z)) + 2 * (z + np.log1p(np.exp(-z)))) / 4
    assert model.cost(Xs, Ys) == pytest.approx(expected, rel=1e-15)
    grads = model.gradients(Xs, Ys)
    s = 1 / (1 + np.exp(-z))
    dZ = np.array([s - 1, s, 1 - s, -s]) / 4
    assert grads["0.W"][0, 0] == pytest.approx(dZ @ Xs[:, 0], rel=1e-12)
    assert np.all(np.isfinite(grads["0.W"]))


def test_losses_from_probabilities_are_clipped_not_infinite():
    loss = mdl.BinaryCrossEntropy()
    A = np.array([[0.0], [1.0], [0.5]])
    Yp = np.array([[1.0], [0.0], [1.0]])
    values = loss.losses(A, Yp, from_logits=False)
    assert np.all(np.isfinite(values))
    assert values[2, 0] == pytest.approx(np.log(2))
    assert np.all(np.isfinite(loss.dout(A, Yp, from_logits=False)))


def test_from_logits_equals_from_probabilities_where_both_are_accurate():
    loss = mdl.BinaryCrossEntropy()
    Z = np.linspace(-5, 5, 11).reshape(-1, 1)
    Yl = (Z > 0.5).astype(float)
    A = 1 / (1 + np.exp(-Z))
    np.testing.assert_allclose(loss.losses(Z, Yl, True), loss.losses(A, Yl, False), rtol=1e-12)
    # dJ/dZ = dJ/dA * A (1 - A)
    np.testing.assert_allclose(loss.dout(Z, Yl, True), loss.dout(A, Yl, False) * A * (1 - A), rtol=1e-10)


@pytest.mark.parametrize("l2", [-0.1, float("inf"), float("nan")])
def test_l2_must_be_non_negative_and_finite(l2):
    with pytest.raises(mdl.InputError, match=r"l2 must be a finite number in \[0, inf\); received l2="):
        mdl.BinaryCrossEntropy(l2=l2)


def test_repr():
    assert repr(mdl.BinaryCrossEntropy(0.7)) == "BinaryCrossEntropy(l2=0.7)"


# ------------------------------------------------------------------ properties
@SETTINGS
@given(st.floats(-1e4, 1e4), st.integers(0, 1))
def test_cost_and_gradient_are_finite_for_any_logit(z, y):
    model = mdl.Sequential([mdl.Dense(1, 1), mdl.Sigmoid()])
    model.layers[0].params["W"][...] = z
    X, Y = np.ones((1, 1)), np.array([[y]])
    cost = model.cost(X, Y)
    grads = model.gradients(X, Y)
    assert np.isfinite(cost) and cost >= 0
    assert np.isfinite(grads["0.W"]).all() and abs(grads["0.W"][0, 0]) <= 1
