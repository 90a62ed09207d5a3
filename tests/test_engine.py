"""The evaluation engine's fast paths: each must give the plain loop's numbers, in bounded memory."""
import dataclasses
import decimal
import importlib
import tracemalloc

import numpy as np
import pytest

import minidl as mdl
from conftest import ACTIVATIONS, SETTINGS, assert_same_central_differences, models_and_data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_contract import Scale        # a user's layer with a parameter: the generic path
from test_layers import LeakyReLU

engine = importlib.import_module("minidl.gradcheck.engine")


def wide_relu_net(n_in=300, hidden=6, seed=0, act=mdl.ReLU):
    """The cat network's shape in small: a wide first Dense, then a ReLU (or smooth) tail."""
    return mdl.Sequential([mdl.Dense(n_in, hidden), act(), mdl.Dense(hidden, 4), act(), mdl.Dense(4, 1),
                           mdl.Sigmoid()], seed=seed)


def _softplus_change(x, t):
    """softplus(x + t) - softplus(x) with 60 significant digits."""
    with decimal.localcontext() as context:
        context.prec = 60
        x, t = decimal.Decimal(x), decimal.Decimal(t)
        softplus = lambda v: (1 + v.exp()).ln()
        return float(softplus(x + t) - softplus(x))


@pytest.mark.parametrize("x", [-40.0, -5.0, -0.3, 0.0, 0.7, 6.0, 35.0])
@pytest.mark.parametrize("t", [1e-12, -3e-9, 2e-7, -1e-4, 0.01, -0.5, 1.0, -1.0])
def test_loss_change_identity_is_accurate_to_a_few_ulps(x, t):
    """log1p(sigmoid(x) expm1(t)) is softplus(x + t) - softplus(x) without the cancellation."""
    p = 1 / (1 + np.exp(-x))
    got = engine._loss_change(np.array([t]), p)[0]
    exact = _softplus_change(x, t)
    assert abs(got - exact) <= 4e-16 * abs(exact)


def test_wide_relu_network_takes_the_affine_path_and_equals_the_loop():
    rng = np.random.default_rng(3)
    model = wide_relu_net()
    X, Y = rng.random((6, 300)), rng.integers(0, 2, (6, 1))
    ev = engine.Evaluator(model, X, Y)
    assert set(ev.affine) == {0, 2, 4}
    fast = model.gradcheck(X, Y, scipy_check=False)
    loop = model.gradcheck(X, Y, method="loop", coords="sample", k=40, scipy_check=False)
    for a, b in zip(fast.groups, loop.groups):
        sub = dataclasses.replace(a, fp=a.fp[b.index], fm=a.fm[b.index], kink=a.kink[b.index],
                                  slope=a.slope[b.index])
        assert_same_central_differences(sub, b, fast.epsilon)
    assert fast.passed


def test_units_at_the_kink_take_the_exact_path_and_are_reported():
    """A unit 1e-9 above 0 cannot be proven safe from its inputs' reach: its column goes through the
    exact path, and exactly the coordinates whose move crosses 0 are kinks, as in the loop."""
    rng = np.random.default_rng(4)
    model = wide_relu_net(n_in=40)
    X, Y = 0.05 + rng.random((5, 40)), rng.integers(0, 2, (5, 1))
    X[3, :10] = 0.0                                            # these inputs do not move example 3 at all
    Z = X @ model.layers[0].params["W"] + model.layers[0].params["b"]
    model.layers[0].params["b"][2] -= Z[3, 2] - 1e-9         # example 3's unit 2 sits 1e-9 above its kink
    fast = model.gradcheck(X, Y, scipy_check=False)
    loop = model.gradcheck(X, Y, method="loop", scipy_check=False)
    kinks = {index for name, index in fast.kinks if name == "0.W"}
    assert kinks == {(i, 2) for i in range(10, 40)}           # a move of h * X[3, i] >= 5e-9 crosses
    assert fast.kinks == loop.kinks and fast.passed
    for a, b in zip(fast.groups, loop.groups):
        assert_same_central_differences(a, b, fast.epsilon)


@pytest.mark.parametrize("chunk", [1, 7, 250, None])
def test_block_sizes_do_not_change_the_numbers(chunk):
    rng = np.random.default_rng(5)
    X, Y = rng.random((4, 300)), rng.integers(0, 2, (4, 1))
    for act in (mdl.ReLU, mdl.Tanh):
        model = wide_relu_net(act=act)
        ref = model.gradcheck(X, Y, scipy_check=False)
        got = model.gradcheck(X, Y, scipy_check=False, chunk_size=chunk)
        for a, b in zip(ref.groups, got.groups):
            np.testing.assert_allclose(a.fp, b.fp, rtol=1e-12, atol=1e-20)
            np.testing.assert_allclose(a.fm, b.fm, rtol=1e-12, atol=1e-20)
            assert np.array_equal(a.kink, b.kink)


def test_smooth_tail_on_repeated_inputs_uses_a_value_table_and_equals_the_loop():
    rng = np.random.default_rng(6)
    model = wide_relu_net(n_in=60, act=mdl.Tanh)
    X, Y = rng.integers(0, 5, (6, 60)) / 4.0, rng.integers(0, 2, (6, 1))
    ev = engine.Evaluator(model, X, Y)
    assert 0 not in ev.affine and engine._value_table(X) is not None     # the last Dense is affine
    fast = model.gradcheck(X, Y, scipy_check=False)
    loop = model.gradcheck(X, Y, method="loop", scipy_check=False)
    for a, b in zip(fast.groups, loop.groups):
        assert_same_central_differences(a, b, fast.epsilon)


def _working_set(n_in, chunk, act=mdl.ReLU):
    """Peak traced bytes of every coordinate of the first W, beyond the three result arrays."""
    rng = np.random.default_rng(7)
    model = wide_relu_net(n_in=n_in, hidden=8, act=act)
    ev = engine.Evaluator(model, rng.random((16, n_in)), rng.integers(0, 2, (16, 1)))
    _, k, layer, pname, array = ev.named_params()[0]
    tracemalloc.start()
    ev.central_all(k, layer, pname, array, 1e-7, chunk_size=chunk)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - array.size * (8 + 8 + 1)


@pytest.mark.parametrize("act", [mdl.ReLU, mdl.Tanh])      # the affine blocks, the exact columns
def test_working_memory_is_set_by_the_chunk_not_by_the_number_of_parameters(act):
    small, large = _working_set(2_000, 500, act), _working_set(32_000, 500, act)
    assert large < 1.5 * small + 100_000          # 16x the parameters, about the same working set
    assert _working_set(32_000, 8_000, act) > 3 * large  # ... which the chunk does set


def test_wide_later_layers_keep_the_affine_path():
    """The tail's Jacobian is built a few examples at a time, so wide later layers (16 x 400 x 400 values
    at once used to be refused) still take the affine path, with the loop's numbers."""
    rng = np.random.default_rng(8)
    model = mdl.Sequential([mdl.Dense(50, 400), mdl.ReLU(), mdl.Dense(400, 400), mdl.ReLU(), mdl.Dense(400, 1),
                            mdl.Sigmoid()], seed=8)
    X, Y = rng.random((16, 50)), rng.integers(0, 2, (16, 1))
    assert 0 in engine.Evaluator(model, X, Y).affine
    fast = model.gradcheck(X, Y, coords="sample", k=30, scipy_check=False)
    loop = model.gradcheck(X, Y, coords="sample", k=30, method="loop", scipy_check=False)
    for a, b in zip(fast.groups, loop.groups):
        assert_same_central_differences(a, b, fast.epsilon)
    assert fast.passed


def test_dropout_between_a_dense_and_its_relu_is_an_affine_tail_with_dropout_off():
    rng = np.random.default_rng(9)
    model = mdl.Sequential([mdl.Dense(20, 5), mdl.Dropout(0.3), mdl.ReLU(), mdl.Dense(5, 1), mdl.Sigmoid()], seed=9)
    X, Y = rng.standard_normal((6, 20)), rng.integers(0, 2, (6, 1))
    assert 0 in engine.Evaluator(model, X, Y).affine
    fast = model.gradcheck(X, Y, scipy_check=False)
    loop = model.gradcheck(X, Y, method="loop", scipy_check=False)
    for a, b in zip(fast.groups, loop.groups):
        assert_same_central_differences(a, b, fast.epsilon)
    assert fast.passed and fast.kinks == loop.kinks


def test_the_checks_memory_grows_by_a_fraction_of_an_example_per_example():
    """The cat network's check holds no copy of X (main: four, 1.09 GB at m = 2,000): beyond the caller's own
    X (96 KiB per example) it grows by about 20 KiB per example, the isfinite mask and the activations."""
    peaks = {}
    for m in (100, 400):
        rng = np.random.default_rng(0)
        X = rng.integers(0, 256, (m, 12288)) / 255.0
        Y = rng.integers(0, 2, m)
        layers = []
        for n_in, n_out in zip([12288, 20, 7], [20, 7, 5]):
            layers += [mdl.Dense(n_in, n_out), mdl.ReLU()]
        model = mdl.Sequential(layers + [mdl.Dense(5, 1), mdl.Sigmoid()], seed=0)
        tracemalloc.start()
        assert model.gradcheck(X, Y).passed
        peaks[m] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    per_example = (peaks[400] - peaks[100]) / 300
    assert per_example < 40 * 1024, per_example          # X itself is 98,304 bytes per example


class _Center(mdl.Layer):
    """Mixes examples (declares it: rowwise stays False): what follows it takes the stacked path."""

    def forward(self, X, training=False):
        return X - X.mean(axis=0)

    def backward(self, dA):
        return dA - dA.mean(axis=0)


class _OwnPenalty(mdl.BinaryCrossEntropy):
    """A loss subclass with a penalty of its own: evaluated with J on every path."""

    def penalty(self, weights, m):
        return self.l2 / (2 * m) * sum(float(np.sum(np.abs(W) ** 3)) for W in weights)

    def dpenalty(self, W, m):
        return self.l2 / (2 * m) * 3 * W * np.abs(W)


def _path_network(path):
    """A network whose first Dense takes ``path`` (and the loss that goes with it)."""
    body = {"affine": [mdl.ReLU()], "exact columns": [mdl.Tanh()], "stacked columns": [mdl.Tanh(), _Center()],
            "generic": [mdl.Tanh(), Scale(4)], "affine + penalty": [mdl.ReLU()],
            "exact columns (wide Jacobian)": [mdl.ReLU()]}[path]
    loss = _OwnPenalty(0.7) if path == "affine + penalty" else mdl.BinaryCrossEntropy(0.3)
    return mdl.Sequential([mdl.Dense(5, 4)] + body + [mdl.Dense(4, 3), mdl.ReLU(), mdl.Dense(3, 1), mdl.Sigmoid()],
                          loss=loss, seed=3)


@pytest.mark.parametrize("path, first, expected", [
    ("affine", "0.W", "affine"),
    ("exact columns", "0.W", "exact columns"),
    ("stacked columns", "0.W", "stacked columns"),
    ("generic", "2.g", "generic"),
    ("affine + penalty", "0.W", "affine + penalty"),
    ("exact columns (wide Jacobian)", "0.W", "exact columns"),
])
def test_every_named_path_equals_the_plain_loop(path, first, expected, monkeypatch):
    """The one test of the path chooser: each path (the penalty evaluated with J, and the wide-Jacobian fallback
    from the affine path included) gives the loop's central differences."""
    if path == "exact columns (wide Jacobian)":
        monkeypatch.setattr(importlib.import_module("minidl.gradcheck.engine"), "JACOBIAN_VALUES", 8)
    model = _path_network(path)
    X = np.random.default_rng(4).standard_normal((7, 5))
    Y = np.array([0, 1, 1, 0, 1, 0, 1])
    fast = model.gradcheck(X, Y, scipy_check=False)
    loop = model.gradcheck(X, Y, method="loop", scipy_check=False)
    assert fast.paths[first] == expected and set(loop.paths.values()) <= {"loop", "loop + penalty"}
    assert fast.passed and loop.passed
    for a, b in zip(fast.groups, loop.groups):
        assert_same_central_differences(a, b, 1e-7)


@pytest.mark.parametrize("first", ["dense", "user"])
@pytest.mark.parametrize("loss", ["built-in", "own penalty"])
def test_J_along_a_line_is_the_cost_at_theta_moved_along_it(first, loss):
    """scipy's line ``theta + w v``: the first Dense's product with v taken once and the L2 term as a quadratic
    in w give J at the moved theta (the whole forward pass); with ReLUs frozen at theta's units J is smooth,
    equal to J where no unit changed side, and different where one did."""
    layers = [mdl.Dense(6, 5), mdl.ReLU(), mdl.Dense(5, 4), mdl.Tanh(), mdl.Dense(4, 1), mdl.Sigmoid()]
    if first == "user":
        layers = [Scale(6)] + layers
    loss = _OwnPenalty(0.7) if loss == "own penalty" else mdl.BinaryCrossEntropy(0.3)
    model = mdl.Sequential(layers, loss=loss, seed=5)
    X = np.random.default_rng(6).standard_normal((9, 6))
    Y = np.array([[0], [1], [1], [0], [1], [0], [1], [1], [0]])
    ev = engine.Evaluator(model, X, Y)
    names = [h.name for h in ev.named_params()]
    theta = np.concatenate([h.array.ravel() for h in ev.named_params()])
    v = np.random.default_rng(7).uniform(-1, 1, theta.size)
    J_v = ev.along(v)
    for w in (0.0, 1.5e-8, -1e-4, 0.3):
        full = ev.cost_at(theta + w * v, names)
        value, crossed = J_v(w)
        assert value == pytest.approx(full, rel=1e-13, abs=1e-15)
        smooth, _ = J_v(w, frozen=True)
        if not crossed:
            assert smooth == pytest.approx(full, rel=1e-13)
    assert not J_v(1e-9)[1] and J_v(0.3)[1]          # no unit changes side at 1e-9; some do at 0.3
    assert abs(J_v(0.3, frozen=True)[0] - J_v(0.3)[0]) > 1e-6
    np.testing.assert_array_equal(theta, np.concatenate([h.array.ravel() for h in ev.named_params()]))


def test_a_users_kinked_layer_has_no_frozen_line():
    """There is no freezing a kink_pattern of the user's: J_smooth is None, and scipy's check falls back to its
    estimate of the jump in slope."""
    model = mdl.Sequential([mdl.Dense(4, 3), LeakyReLU(0.1), mdl.Dense(3, 1), mdl.Sigmoid()], seed=0)
    X, Y = np.random.default_rng(0).standard_normal((5, 4)), np.array([[0], [1], [1], [0], [1]])
    ev = engine.Evaluator(model, X, Y)
    J_v = ev.along(np.ones(model.n_params))
    assert J_v(1e-3, frozen=True) == (None, False) and isinstance(J_v(1e-3)[0], float)


# ------------------------------------------------------------------ properties
@SETTINGS
@given(models_and_data(), st.sampled_from(["off", "frozen"]))
def test_fast_path_equals_plain_loop(case, dropout):
    model, X, Y = case
    fast = model.gradcheck(X, Y, dropout=dropout, scipy_check=False)
    loop = model.gradcheck(X, Y, dropout=dropout, method="loop", scipy_check=False)
    for a, b in zip(fast.groups, loop.groups):
        assert_same_central_differences(a, b, fast.epsilon)
        assert np.array_equal(a.kink, b.kink)


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
