import numpy as np
import pytest

import minidl as mdl
from conftest import SETTINGS, assert_unchanged, models_and_data, small_model, snapshot
from hypothesis import given


def test_xor_network_of_the_api(data):
    X, Y = mdl.datasets.xor()
    model = mdl.Sequential([mdl.Dense(2, 4), mdl.Tanh(), mdl.Dense(4, 1), mdl.Sigmoid()],
                           loss=mdl.BinaryCrossEntropy(l2=0.0), seed=0)
    A = model.forward(X)
    assert A.shape == (4, 1) and np.all((A > 0) & (A < 1))
    assert model.predict(X).shape == (4, 1) and set(np.unique(model.predict(X))) <= {0, 1}
    assert model.predict(X).dtype == np.int64
    assert isinstance(model.cost(X, Y), float)
    assert [n for n, _ in model.named_parameters()] == ["0.W", "0.b", "2.W", "2.b"]
    grads = model.gradients(X, Y)
    assert {n: g.shape for n, g in grads.items()} == {"0.W": (2, 4), "0.b": (4,), "2.W": (4, 1), "2.b": (1,)}


def test_shapes_end_to_end(data):
    X, Y = data
    model = small_model(dropout=0.5)
    assert model.forward(X).shape == (8, 1)
    assert model.widths == [6, 6, 6, 4, 4, 1, 1]
    assert model.n_params == 5 * 6 + 6 + 6 * 4 + 4 + 4 + 1
    assert model.gradients(X, Y.ravel())["0.W"].shape == (5, 6)   # 1-D labels are accepted


def test_named_parameters_are_the_arrays_themselves():
    model = small_model()
    name, W = model.named_parameters()[0]
    assert name == "0.W" and W is model.layers[0].params["W"]


def test_gradients_equal_central_differences_of_cost(data):
    X, Y = data
    model = small_model(l2=0.7)
    grads = model.gradients(X, Y)
    for name, value in model.named_parameters():
        flat = value.ravel()
        for i in range(0, flat.size, 7):
            old = flat[i]
            flat[i] = old + 1e-6
            plus = model.cost(X, Y)
            flat[i] = old - 1e-6
            minus = model.cost(X, Y)
            flat[i] = old
            assert grads[name].flat[i] == pytest.approx((plus - minus) / 2e-6, rel=1e-5, abs=1e-9)


def test_train_and_eval_switch_dropout(data):
    X, _ = data
    model = small_model(dropout=0.5)
    assert model.training is False
    np.testing.assert_array_equal(model.forward(X), model.forward(X))
    model.train()
    a, b = model.forward(X), model.forward(X)
    assert not np.array_equal(a, b)                       # a fresh mask each time
    assert not np.array_equal(a, model.forward(X, training=False))
    assert model.eval() is model and model.training is False
    np.testing.assert_array_equal(model.forward(X), model.forward(X, training=False))


def test_one_seed_gives_bitwise_identical_models(data):
    X, _ = data
    a, b, c = small_model(seed=5, dropout=0.3), small_model(seed=5, dropout=0.3), small_model(seed=6, dropout=0.3)
    for (_, va), (_, vb), (_, vc) in zip(a.named_parameters(), b.named_parameters(), c.named_parameters()):
        assert np.array_equal(va, vb)
    assert not np.array_equal(a.layers[0].params["W"], c.layers[0].params["W"])
    assert np.array_equal(a.forward(X, training=True), b.forward(X, training=True))


def test_float32_model(data):
    X, Y = data
    model = small_model(dtype=np.float32)
    assert all(v.dtype == np.float32 for _, v in model.named_parameters())
    assert model.forward(X).dtype == np.float32
    assert all(g.dtype == np.float32 for g in model.gradients(X, Y).values())
    reference = small_model(dtype=np.float64)
    np.testing.assert_allclose(model.cost(X, Y), reference.cost(X, Y), rtol=1e-5)


def test_summary_table():
    model = small_model(dropout=0.2)
    text = str(model)
    assert "Dense(5, 6)" in text and "Dropout(rate=0.2)" in text
    assert "(m, 6)" in text and "total parameters: 69" in text
    assert repr(model).startswith("Sequential([Dense(5, 6), ReLU(), Dropout(rate=0.2)")


@pytest.mark.parametrize("layers, message", [
    ([mdl.Dense(3, 4), mdl.Dense(5, 1)], r"layers\[1\] is Dense\(5, 1\) with n_in=5, but the layer before it outputs width 4"),
    ([mdl.Dense(3, 2)], "the last layer must output width 1"),
    ([mdl.ReLU()], "layers must include a Dense layer"),
    ([], "layers must hold at least one layer"),
])
def test_inconsistent_architectures_are_rejected(layers, message):
    with pytest.raises(mdl.InputError, match=message):
        mdl.Sequential(layers)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"layers": mdl.Dense(2, 1)}, mdl.InputTypeError, "layers must be a list of Layer objects; received Dense"),
    ({"layers": [mdl.Dense(2, 1), "relu"]}, mdl.InputTypeError, r"layers\[1\] must be a minidl Layer; received str"),
    ({"layers": [mdl.Dense(2, 1)], "loss": "bce"}, mdl.InputTypeError, "loss must be a BinaryCrossEntropy"),
    ({"layers": [mdl.Dense(2, 1)], "seed": -1}, mdl.InputError, "seed must be >= 0; received seed=-1"),
    ({"layers": [mdl.Dense(2, 1)], "dtype": np.int32}, mdl.InputTypeError, "dtype must be np.float32 or np.float64"),
])
def test_bad_constructor_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        mdl.Sequential(**kwargs)


BAD_X = [
    (np.ones((8, 4)), mdl.InputError, r"X has 4 features per example, but 5 were expected; received shape \(8, 4\)"),
    (np.ones(5), mdl.InputError, r"X must be a 2-D array .* received shape \(5,\); reshape with X.reshape"),
    (np.ones((2, 8, 5)), mdl.InputError, r"X must be a 2-D array \(rows are examples\); received shape \(2, 8, 5\)"),
    (np.ones((0, 5)), mdl.InputError, r"X must not be empty; received shape \(0, 5\)"),
    (np.full((8, 5), np.nan), mdl.InputError, r"X must be finite; received NaN or inf, first at index \(0, 0\)"),
    (np.full((8, 5), "a"), mdl.InputTypeError, "X must hold real numbers .* received dtype <U1"),
    (np.ones((8, 5), dtype=complex), mdl.InputTypeError, "received dtype complex128"),
    (np.ones((8, 5), dtype=bool), mdl.InputTypeError, r"received dtype bool \(cast it with .astype\(float\)"),
    ("data.csv", mdl.InputTypeError, "X must be a numeric array; received str 'data.csv'"),
]


@pytest.mark.parametrize("X, error, message", BAD_X)
def test_bad_X_is_rejected_and_model_unchanged(data, X, error, message):
    _, Y = data
    model = small_model(dropout=0.3)
    snap = snapshot(model)
    for call in (lambda: model.forward(X), lambda: model.predict(X), lambda: model.cost(X, Y),
                 lambda: model.gradients(X, Y), lambda: model.gradcheck(X, Y)):
        with pytest.raises(error, match=message):
            call()
    assert_unchanged(model, snap)


BAD_Y = [
    (np.ones((7, 1)), r"Y must have shape \(8, 1\) to match X's 8 examples; received shape \(7, 1\)"),
    (np.ones((8, 2)), r"Y must have shape \(8, 1\) to match X's 8 examples; received shape \(8, 2\)"),
    (np.full((8, 1), 2.0), r"Y must hold labels in \{0, 1\}; received values \[2.0\]"),
    (np.array([0, 1, -1, 0, 1, 0, 0, 1]), r"Y must hold labels in \{0, 1\}; received values \[-1.0\]"),
    (np.full((8, 1), np.inf), r"Y must be finite"),
]


@pytest.mark.parametrize("Y, message", BAD_Y)
def test_bad_Y_is_rejected_and_model_unchanged(data, Y, message):
    X, _ = data
    model = small_model()
    snap = snapshot(model)
    for call in (lambda: model.cost(X, Y), lambda: model.gradients(X, Y), lambda: model.gradcheck(X, Y)):
        with pytest.raises(mdl.InputError, match=message):
            call()
    assert_unchanged(model, snap)


def test_layers_before_the_first_dense_take_its_input_width():
    model = mdl.Sequential([mdl.Dropout(0.2), mdl.Dense(3, 2), mdl.ReLU(), mdl.Dense(2, 1), mdl.Sigmoid()])
    assert model.widths == [3, 2, 2, 1, 1] and "(m, None)" not in str(model)


def test_backward_fills_grads_for_a_hand_written_loop(data):
    X, Y = data
    model = small_model(l2=0.2, dropout=0.3)
    cost = model.backward(X, Y)
    assert cost == pytest.approx(model.cost(X, Y), rel=1e-14)
    grads = model.gradients(X, Y)
    model.backward(X, Y)
    for name, grad in model.named_gradients():
        assert np.array_equal(grad, grads[name])
    optimizer = mdl.SGD(0.5)
    costs = []
    for _ in range(20):
        costs.append(model.backward(X, Y, training=True))
        optimizer.step(model)
    assert costs[-1] < costs[0]


class L1(mdl.BinaryCrossEntropy):
    """A loss subclass with a penalty of its own that does not depend on l2."""

    def penalty(self, weights, m):
        return 0.1 / m * float(sum(np.abs(W).sum() for W in weights))

    def dpenalty(self, W, m):
        return 0.1 / m * np.sign(W)


def test_a_loss_subclass_penalty_is_added_even_with_l2_zero(data):
    X, Y = data
    layers = lambda: [mdl.Dense(X.shape[1], 4), mdl.ReLU(), mdl.Dense(4, 1), mdl.Sigmoid()]
    plain = mdl.Sequential(layers(), loss=mdl.BinaryCrossEntropy(0.0), seed=3).gradients(X, Y)
    model = mdl.Sequential(layers(), loss=L1(0.0), seed=3)
    grads = model.gradients(X, Y)
    W = model.layers[0].params["W"]
    np.testing.assert_allclose(grads["0.W"] - plain["0.W"], 0.1 / X.shape[0] * np.sign(W), atol=1e-15)
    np.testing.assert_array_equal(grads["0.b"], plain["0.b"])
    assert model.gradcheck(X, Y, scipy_check=False).passed


# ------------------------------------------------------------------ misuse
@pytest.mark.parametrize("layers, received", [
    (lambda: [mdl.Dense(2, 1)], "Dense(2, 1)"),
    (lambda: [mdl.Dense(2, 3), mdl.Tanh(), mdl.Dense(3, 1), mdl.ReLU()], "ReLU()"),
])
def test_a_model_must_end_in_a_sigmoid(layers, received):
    with pytest.raises(mdl.InputError, match=r"the last layer must be a Sigmoid .*; received " + received.replace(
            "(", r"\(").replace(")", r"\)")):
        mdl.Sequential(layers())


def test_a_sigmoid_subclass_may_end_a_model():
    class MySigmoid(mdl.Sigmoid):
        pass
    assert mdl.Sequential([mdl.Dense(2, 1), MySigmoid()]).n_params == 3


def test_evaluate_gives_cost_and_accuracy():
    X, Y = mdl.datasets.xor()
    model = mdl.Sequential([mdl.Dense(2, 4), mdl.Tanh(), mdl.Dense(4, 1), mdl.Sigmoid()], seed=0)
    cost, accuracy = model.evaluate(X, Y)
    assert cost == model.cost(X, Y)
    assert accuracy == float(np.mean(model.predict(X) == Y))
    with pytest.raises(mdl.InputError, match="X has 3 features per example, but 2 were expected"):
        model.evaluate(np.ones((4, 3)), Y)


# ------------------------------------------------------------------ properties
@SETTINGS
@given(models_and_data())
def test_predictions_are_labels_of_the_right_shape(case):
    model, X, _ = case
    predictions = model.predict(X)
    assert predictions.shape == (X.shape[0], 1)
    assert set(np.unique(predictions)) <= {0, 1}
    A = model.forward(X)
    assert A.dtype == model.dtype and np.all((A >= 0) & (A <= 1))
