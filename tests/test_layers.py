import numpy as np
import pytest

import minidl as mdl
from conftest import numeric_grad


def backward_vs_numeric(layer, X, training=False):
    """dX and every param gradient of sum(R * forward(X)) against central differences."""
    out = layer.forward(X, training)
    R = np.random.default_rng(3).standard_normal(out.shape)
    dX = layer.backward(R)
    f = lambda: float(np.sum(R * layer.forward(X, training)))
    np.testing.assert_allclose(dX, numeric_grad(f, X), rtol=1e-6, atol=1e-8)
    for name, value in layer.params.items():
        np.testing.assert_allclose(layer.grads[name], numeric_grad(f, value), rtol=1e-6, atol=1e-8)


def test_dense_forward_hand_computed():
    layer = mdl.Dense(2, 3)
    layer.params["W"][...] = [[1.0, 0.0, -1.0], [2.0, 1.0, 0.0]]
    layer.params["b"][...] = [0.5, 0.0, -1.0]
    Z = layer.forward(np.array([[1.0, 2.0], [0.0, -1.0]]))
    np.testing.assert_array_equal(Z, [[5.5, 2.0, -2.0], [-1.5, -1.0, -1.0]])


def test_dense_backward_hand_computed():
    layer = mdl.Dense(2, 1)
    layer.params["W"][...] = [[3.0], [-1.0]]
    X = np.array([[1.0, 2.0], [3.0, 4.0]])
    layer.forward(X)
    dX = layer.backward(np.array([[1.0], [2.0]]))
    np.testing.assert_array_equal(layer.grads["W"], [[7.0], [10.0]])   # X^T dZ
    np.testing.assert_array_equal(layer.grads["b"], [3.0])
    np.testing.assert_array_equal(dX, [[3.0, -1.0], [6.0, -2.0]])       # dZ W^T


@pytest.mark.parametrize("layer_factory", [lambda: mdl.Dense(4, 3), mdl.ReLU, mdl.Sigmoid, mdl.Tanh,
                                           lambda: mdl.Dropout(0.3)])
def test_backward_matches_central_differences(layer_factory):
    X = np.random.default_rng(0).standard_normal((5, 4))
    X[np.abs(X) < 1e-3] = 0.5  # keep ReLU inputs off the kink
    backward_vs_numeric(layer_factory(), X)


def test_dropout_backward_in_training_with_fixed_mask():
    layer = mdl.Dropout(0.4)
    X = np.random.default_rng(0).standard_normal((5, 4))
    layer.fixed_mask = np.random.default_rng(1).random(X.shape) >= 0.4
    backward_vs_numeric(layer, X, training=True)


@pytest.mark.parametrize("layer", [mdl.Dense(4, 3), mdl.ReLU(), mdl.Sigmoid(), mdl.Tanh(), mdl.Dropout(0.3)],
                         ids=repr)
@pytest.mark.parametrize("dropout", ["off", "frozen"])
def test_every_builtin_layer_passes_gradcheck_layer(layer, dropout):
    X = np.random.default_rng(1).standard_normal((6, 4))
    report = mdl.gradcheck_layer(layer, X, dropout=dropout)
    assert report.passed, str(report)
    assert report.difference < 1e-7
    assert set(report.per_parameter) == {"X", *layer.params}


def test_relu_values_and_kink_pattern():
    layer = mdl.ReLU()
    Z = np.array([[-1.0, 0.0, 2.0]])
    np.testing.assert_array_equal(layer.forward(Z), [[0.0, 0.0, 2.0]])
    np.testing.assert_array_equal(layer.backward(np.ones((1, 3))), [[0.0, 0.0, 1.0]])
    np.testing.assert_array_equal(layer.kink_pattern(Z), [[False, False, True]])


def test_sigmoid_values_and_saturation_without_warnings():
    layer = mdl.Sigmoid()
    np.testing.assert_allclose(layer.forward(np.array([[0.0, np.log(3.0)]])), [[0.5, 0.75]])
    A = layer.forward(np.array([[-1e4, -50.0, 50.0, 1e4]]))   # RuntimeWarnings are errors in this suite
    assert A[0, 0] == 0.0 and A[0, 3] == 1.0
    assert np.all(np.isfinite(layer.backward(np.ones((1, 4)))))


def test_tanh_values():
    layer = mdl.Tanh()
    np.testing.assert_allclose(layer.forward(np.array([[np.arctanh(0.5), 0.0]])), [[0.5, 0.0]])
    np.testing.assert_allclose(layer.backward(np.ones((1, 2))), [[0.75, 1.0]])


def test_dropout_is_identity_in_eval_and_inverted_in_training():
    layer = mdl.Dropout(0.25, seed=3)
    X = np.ones((2000, 10))
    assert layer.forward(X, training=False) is X
    A = layer.forward(X, training=True)
    assert set(np.unique(A)) == {0.0, 1 / 0.75}
    assert abs((A == 0).mean() - 0.25) < 0.01
    assert abs(A.mean() - 1.0) < 0.02               # inverted dropout keeps the expectation
    np.testing.assert_array_equal(layer.backward(np.ones_like(X)), A)


def test_dropout_masks_are_seeded():
    X = np.ones((4, 5))
    a = mdl.Dropout(0.5, seed=7).forward(X, training=True)
    b = mdl.Dropout(0.5, seed=7).forward(X, training=True)
    c = mdl.Dropout(0.5, seed=8).forward(X, training=True)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_dropout_rate_zero_is_identity_when_training():
    X = np.arange(6.0).reshape(2, 3)
    assert np.array_equal(mdl.Dropout(0.0).forward(X, training=True), X)


def test_he_and_xavier_scales():
    he = mdl.Dense(2000, 200, init="he").params["W"]
    xavier = mdl.Dense(2000, 200, init="xavier").params["W"]
    assert abs(he.std() - np.sqrt(2 / 2000)) < 1e-3
    assert abs(xavier.std() - np.sqrt(1 / 2000)) < 1e-3
    assert np.all(mdl.Dense(3, 2).params["b"] == 0)


def test_auto_init_is_he_before_relu_and_xavier_otherwise():
    model = mdl.Sequential([mdl.Dense(3000, 100), mdl.ReLU(), mdl.Dense(100, 1), mdl.Sigmoid()])
    assert abs(model.layers[0].params["W"].std() - np.sqrt(2 / 3000)) < 1e-3
    assert abs(model.layers[2].params["W"].std() - np.sqrt(1 / 100)) < 0.03


def test_reprs():
    assert repr(mdl.Dense(12288, 20)) == "Dense(12288, 20)"
    assert repr(mdl.Dense(2, 4, init="he")) == "Dense(2, 4, init='he')"
    assert repr(mdl.ReLU()) == "ReLU()"
    assert repr(mdl.Dropout(0.2)) == "Dropout(rate=0.2)"


@pytest.mark.parametrize("args, message", [
    ((0, 3), "n_in must be >= 1; received n_in=0"),
    ((3, -1), "n_out must be >= 1; received n_out=-1"),
    ((2.5, 3), "n_in must be an integer; received float 2.5"),
    ((2, 3, "glorot"), "init must be one of 'auto', 'he', 'xavier'; received init='glorot'"),
])
def test_dense_rejects_bad_arguments(args, message):
    with pytest.raises((ValueError, TypeError), match=message.replace("(", r"\(").replace(")", r"\)")):
        mdl.Dense(*args)


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, float("nan")])
def test_dropout_rejects_rate_outside_unit_interval(rate):
    with pytest.raises(mdl.InputError, match=r"rate must be a finite number in \[0, 1\); received rate="):
        mdl.Dropout(rate)


def test_dropout_rejects_non_numeric_rate():
    with pytest.raises(mdl.InputTypeError, match="rate must be a real number; received str '0.5'"):
        mdl.Dropout("0.5")


class LeakyReLU(mdl.Layer):
    """A user-written layer without parameters."""
    elementwise = rowwise = True

    def __init__(self, alpha=0.01):
        super().__init__()
        self.alpha = alpha

    def forward(self, X, training=False):
        self.X = X
        return np.where(X > 0, X, self.alpha * X)

    def backward(self, dA):
        return dA * np.where(self.X > 0, 1.0, self.alpha)

    def kink_pattern(self, X):
        return X > 0

    def get_config(self):
        return {"alpha": self.alpha}


def test_custom_layer_works_in_a_model_and_in_gradcheck_layer():
    X = np.random.default_rng(0).standard_normal((6, 3))
    assert mdl.gradcheck_layer(LeakyReLU(0.1), X).passed
    model = mdl.Sequential([mdl.Dense(3, 4), LeakyReLU(0.1), mdl.Dense(4, 1), mdl.Sigmoid()], seed=2)
    Y = np.array([0, 1, 1, 0, 1, 0])
    assert model.forward(X).shape == (6, 1)
    assert model.gradcheck(X, Y).passed
    assert repr(model.layers[1]) == "LeakyReLU(alpha=0.1)"


def test_layer_base_class_requires_forward_and_backward():
    class Incomplete(mdl.Layer):
        pass
    with pytest.raises(NotImplementedError, match="Incomplete must implement forward"):
        Incomplete().forward(np.ones((1, 1)))


# ------------------------------------------------------------------ misuse
@pytest.mark.parametrize("layer", [mdl.Tanh(), mdl.Sigmoid(), mdl.ReLU(), mdl.Dense(2, 2)])
def test_backward_before_forward_says_what_to_do(layer):
    with pytest.raises(mdl.InputError, match=rf"{type(layer).__name__}.backward was called before forward"):
        layer.backward(np.ones((3, 2)))
