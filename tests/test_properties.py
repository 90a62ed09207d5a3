"""Property-based tests: hypothesis searches for architectures and inputs that break a promise."""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minidl as mdl
from conftest import assert_same_central_differences

ACTIVATIONS = [mdl.ReLU, mdl.Tanh, mdl.Sigmoid]
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def models_and_data(draw):
    n_in = draw(st.integers(1, 6))
    depth = draw(st.integers(1, 5))
    layers, width = [], n_in
    for _ in range(depth - 1):
        out = draw(st.integers(1, 16))
        layers += [mdl.Dense(width, out, init=draw(st.sampled_from(["auto", "he", "xavier"]))),
                   draw(st.sampled_from(ACTIVATIONS))()]
        if draw(st.booleans()):
            layers.append(mdl.Dropout(draw(st.floats(0.0, 0.9))))
        width = out
    layers += [mdl.Dense(width, 1), mdl.Sigmoid()]
    l2 = draw(st.floats(0.0, 1.0))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2 ** 16))
    model = mdl.Sequential(layers, loss=mdl.BinaryCrossEntropy(l2), seed=seed, dtype=dtype)
    m = draw(st.integers(1, 8))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([0.01, 1.0, 10.0]))
    X = rng.standard_normal((m, n_in)) * scale
    Y = rng.integers(0, 2, (m, 1))
    return model, X, Y


@SETTINGS
@given(models_and_data(), st.sampled_from(["off", "frozen"]))
def test_gradcheck_passes_on_every_correct_model(case, dropout):
    model, X, Y = case
    report = model.gradcheck(X, Y, dropout=dropout, scipy_check=False)
    assert report.passed, str(report)


@SETTINGS
@given(models_and_data(), st.sampled_from(["off", "frozen"]))
def test_fast_path_equals_plain_loop(case, dropout):
    model, X, Y = case
    fast = model.gradcheck(X, Y, dropout=dropout, scipy_check=False)
    loop = model.gradcheck(X, Y, dropout=dropout, method="loop", scipy_check=False)
    for a, b in zip(fast.groups, loop.groups):
        assert_same_central_differences(a, b, fast.epsilon)
        assert np.array_equal(a.kink, b.kink)


@settings(max_examples=15, deadline=None)
@given(models_and_data())
def test_save_load_round_trips_exactly(tmp_path_factory, case):
    model, X, _ = case
    path = tmp_path_factory.mktemp("ckpt") / "m.h5"
    model.save(path)
    loaded = mdl.load(path)
    for (na, a), (nb, b) in zip(model.named_parameters(), loaded.named_parameters()):
        assert na == nb and a.dtype == b.dtype and np.array_equal(a, b)
    assert np.array_equal(model.forward(X, training=True), loaded.forward(X, training=True))


@SETTINGS
@given(models_and_data())
def test_predictions_are_labels_of_the_right_shape(case):
    model, X, _ = case
    predictions = model.predict(X)
    assert predictions.shape == (X.shape[0], 1)
    assert set(np.unique(predictions)) <= {0, 1}
    A = model.forward(X)
    assert A.dtype == model.dtype and np.all((A >= 0) & (A <= 1))


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


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(12, 40), st.integers(1, 8), st.integers(2, 5), st.integers(0, 2 ** 16),
       st.sampled_from(ACTIVATIONS), st.floats(0.0, 1.0))
def test_fast_path_equals_plain_loop_on_pixel_like_inputs(n_in, m, levels, seed, activation, l2):
    rng = np.random.default_rng(seed)
    model = mdl.Sequential([mdl.Dense(n_in, 6), activation(), mdl.Dense(6, 3), mdl.ReLU(), mdl.Dense(3, 1),
                            mdl.Sigmoid()], loss=mdl.BinaryCrossEntropy(l2), seed=seed)
    X = rng.integers(0, levels, (m, n_in)) / (levels - 1)
    Y = rng.integers(0, 2, (m, 1))
    fast = model.gradcheck(X, Y, scipy_check=False)
    loop = model.gradcheck(X, Y, method="loop", scipy_check=False)
    assert fast.passed
    for a, b in zip(fast.groups, loop.groups):
        assert_same_central_differences(a, b, fast.epsilon)
        assert np.array_equal(a.kink, b.kink)
