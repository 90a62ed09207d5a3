import numpy as np
import pytest

import minidl as mdl
from conftest import SETTINGS, assert_same_central_differences, assert_unchanged, models_and_data, small_model, snapshot
from hypothesis import given
from hypothesis import strategies as st

RNG = np.random.default_rng(7)
X8 = RNG.standard_normal((8, 5))
Y8 = np.array([[0], [1], [1], [0], [1], [0], [0], [1]], dtype=float)


# ------------------------------------------------------------------ correct models pass
def random_model(rng, l2=0.0, dtype=np.float64, n_in=5, dropout=True):
    layers, width = [], n_in
    for _ in range(rng.integers(1, 4)):
        out = int(rng.integers(1, 9))
        layers += [mdl.Dense(width, out), [mdl.ReLU, mdl.Tanh, mdl.Sigmoid][rng.integers(3)]()]
        if dropout and rng.random() < 0.4:
            layers.append(mdl.Dropout(float(rng.uniform(0, 0.6))))
        width = out
    layers += [mdl.Dense(width, 1), mdl.Sigmoid()]
    return mdl.Sequential(layers, loss=mdl.BinaryCrossEntropy(l2), seed=int(rng.integers(1000)), dtype=dtype)


@pytest.mark.parametrize("trial", range(12))
def test_random_correct_models_pass(trial):
    rng = np.random.default_rng(trial)
    model = random_model(rng, l2=float(rng.choice([0.0, 0.1, 3.0])),
                         dtype=[np.float64, np.float32][trial % 2])
    X = rng.standard_normal((int(rng.integers(1, 10)), 5)) * rng.choice([0.1, 1.0, 5.0])
    Y = rng.integers(0, 2, (X.shape[0], 1))
    for dropout in ("off", "frozen"):
        report = model.gradcheck(X, Y, dropout=dropout)
        assert report.passed, str(report)
        assert report.difference < 1e-6


def test_correct_model_difference_is_in_the_correct_band():
    report = small_model(l2=0.5).gradcheck(X8, Y8)
    assert report.passed and report.difference < 1e-7 and report.verdict() == "ok"
    assert set(report.per_parameter) == {"0.W", "0.b", "2.W", "2.b", "4.W", "4.b"}
    assert all(d < 1e-7 for d in report.per_parameter.values())
    assert report.n_checked == small_model().n_params and report.kinks == []


def test_saturated_outputs_pass():
    model = small_model()
    model.layers[4].params["W"][...] = 60.0          # logits of several tens
    model.layers[4].params["b"][...] = -20.0
    report = model.gradcheck(X8, Y8)
    logits = model.forward(X8)
    assert np.any((logits < 1e-15) | (logits > 1 - 1e-15))
    assert report.passed, str(report)


def test_saturated_hidden_sigmoids_pass():
    model = mdl.Sequential([mdl.Dense(5, 4), mdl.Sigmoid(), mdl.Dense(4, 1), mdl.Sigmoid()], seed=1)
    model.layers[0].params["W"] *= 30
    assert model.gradcheck(X8, Y8).passed


def test_float32_model_is_checked_in_float64():
    model = small_model(dtype=np.float32, l2=0.3)
    report = model.gradcheck(X8, Y8)
    assert report.passed and report.difference < 1e-7
    # float32 gradients handed in are checked to float32 accuracy, not flagged as bugs
    assert model.gradcheck(X8, Y8, grads=model.gradients(X8, Y8)).passed


def test_dropout_frozen_checks_the_mask_and_off_ignores_it():
    model = small_model(dropout=0.5, l2=0.2)
    assert model.gradcheck(X8, Y8, dropout="off").passed
    assert model.gradcheck(X8, Y8, dropout="frozen").passed


# ------------------------------------------------------------------------- kinks
def model_with_kink():
    model = mdl.Sequential([mdl.Dense(5, 6), mdl.ReLU(), mdl.Dense(6, 1), mdl.Sigmoid()], seed=3)
    Z = X8 @ model.layers[0].params["W"] + model.layers[0].params["b"]
    model.layers[0].params["b"][2] -= Z[0, 2] + 3e-8      # example 0's unit 2 sits 3e-8 above 0
    return model


@pytest.mark.parametrize("method", ["fast", "loop"])
def test_crafted_relu_kink_is_reported_not_called_a_bug(method):
    model = model_with_kink()
    report = model.gradcheck(X8, Y8, method=method)
    assert report.passed, str(report)
    assert ("0.b", (2,)) in report.kinks
    assert all(name == "0.W" and index[1] == 2 or name == "0.b" for name, index in report.kinks)
    grp = report._group("0.b")
    # the numeric value there is a mixture of the two pieces: it would have been a false alarm
    assert abs(grp.analytic[2] - grp.numeric[2]) > 1e-3 * abs(grp.analytic[2])
    assert "crossed a non-differentiable point" in str(report)


def test_user_layer_kinks_take_part():
    from test_layers import LeakyReLU
    model = mdl.Sequential([mdl.Dense(5, 6), LeakyReLU(0.2), mdl.Dense(6, 1), mdl.Sigmoid()], seed=3)
    Z = X8 @ model.layers[0].params["W"]
    model.layers[0].params["b"][1] = -Z[4, 1] - 1e-8
    report = model.gradcheck(X8, Y8)
    assert report.passed and ("0.b", (1,)) in report.kinks


# ------------------------------------------------------------ broken backprop fails
class DoubledDW(mdl.Dense):
    def backward(self, dZ):
        dX = super().backward(dZ)
        self.grads["W"] = 2 * self.grads["W"]
        return dX


class MeanBias(mdl.Dense):
    def backward(self, dZ):
        dX = super().backward(dZ)
        self.grads["b"] = dZ.mean(axis=0)
        return dX


class TransposedDW(mdl.Dense):
    def backward(self, dZ):
        dX = super().backward(dZ)
        self.grads["W"] = self.grads["W"].T.copy()
        return dX


class UntransposedDX(mdl.Dense):
    def backward(self, dZ):
        super().backward(dZ)
        return dZ @ self.params["W"]


class NoMaskReLU(mdl.ReLU):
    def backward(self, dA):
        return dA


class WrongTanh(mdl.Tanh):
    def backward(self, dA):
        return dA * (1 - self.A)


class NearZeroTanh(mdl.Tanh):
    """tanh'(z) = 1 - z^2: right near z = 0 only."""
    def forward(self, Z, training=False):
        self.Z = Z
        return super().forward(Z, training)

    def backward(self, dA):
        return dA * (1 - self.Z ** 2)


class WrongSigmoid(mdl.Sigmoid):
    def backward(self, dA):
        return dA * self.A


class UnscaledDropout(mdl.Dropout):
    def backward(self, dA):
        return dA if self.mask is None else dA * (self.mask > 0)


def build(hidden_dense=mdl.Dense, act=mdl.Tanh, l2=0.0, first=mdl.Dense, dropout=None):
    layers = [first(5, 4), mdl.ReLU()] + ([dropout] if dropout else [])
    layers += [hidden_dense(4, 4), act(), mdl.Dense(4, 1), mdl.Sigmoid()]
    return mdl.Sequential(layers, loss=mdl.BinaryCrossEntropy(l2), seed=11)


LAYER_BUGS = {
    "factor 2 in dW": (lambda: build(hidden_dense=DoubledDW), {}, {"2.W"}),
    "bias gradient averaged": (lambda: build(hidden_dense=MeanBias), {}, {"2.b"}),
    "transposed dW": (lambda: build(hidden_dense=TransposedDW), {}, {"2.W"}),
    "dX without the transpose": (lambda: build(hidden_dense=UntransposedDX), {}, {"0.W", "0.b"}),
    "forgotten ReLU mask": (lambda: mdl.Sequential([mdl.Dense(5, 4), NoMaskReLU(), mdl.Dense(4, 1), mdl.Sigmoid()],
                                                   seed=2), {}, {"0.W", "0.b"}),
    "wrong tanh derivative": (lambda: build(act=WrongTanh), {}, {"0.W", "0.b", "2.W", "2.b"}),
    "derivative right only near zero": (lambda: build(act=NearZeroTanh), {}, {"0.W", "0.b", "2.W", "2.b"}),
    "wrong sigmoid derivative": (lambda: build(act=WrongSigmoid), {}, {"0.W", "0.b", "2.W", "2.b"}),
    "dropout backward without 1/keep_prob": (lambda: build(dropout=UnscaledDropout(0.5)), {"dropout": "frozen"},
                                             {"0.W", "0.b"}),
}


@pytest.mark.parametrize("bug", LAYER_BUGS)
def test_broken_layers_fail_with_the_right_parameters_named(bug):
    factory, options, expected = LAYER_BUGS[bug]
    model = factory()
    report = model.gradcheck(X8, Y8, **options)
    assert not report.passed, str(report)
    assert set(report.failed_parameters) == expected, str(report)
    assert report.worst(1)[0][0] in expected
    assert "FAILED" in str(report)


def test_dropout_bug_is_invisible_with_dropout_off():
    assert build(dropout=UnscaledDropout(0.5)).gradcheck(X8, Y8, dropout="off").passed


def _grads_bug(mutate, l2=0.0):
    model = build(l2=l2)
    grads = model.gradients(X8, Y8)
    mutate(model, grads)
    return model, grads


GRADS_BUGS = {
    "missing L2 term": (lambda mo, g: [g.__setitem__(n, g[n] - 0.7 / 8 * v) for n, v in mo.named_parameters()
                                       if n.endswith("W")], 0.7, {"0.W", "2.W", "4.W"}),
    "half the L2 term": (lambda mo, g: [g.__setitem__(n, g[n] - 0.35 / 8 * v) for n, v in mo.named_parameters()
                                        if n.endswith("W")], 0.7, {"0.W", "2.W", "4.W"}),
    "one wrong element": (lambda mo, g: g["2.W"].__setitem__((1, 3), g["2.W"][1, 3] * 1.01 + 1e-6), 0.0, {"2.W"}),
    "wrong bias only": (lambda mo, g: g.__setitem__("4.b", g["4.b"] + 0.01), 0.0, {"4.b"}),
    "sign flipped": (lambda mo, g: [g.__setitem__(n, -g[n]) for n in list(g)], 0.0,
                     {"0.W", "0.b", "2.W", "2.b", "4.W", "4.b"}),
    "missing 1/m": (lambda mo, g: [g.__setitem__(n, 8 * g[n]) for n in list(g)], 0.0,
                    {"0.W", "0.b", "2.W", "2.b", "4.W", "4.b"}),
}


@pytest.mark.parametrize("bug", GRADS_BUGS)
def test_broken_gradient_dicts_fail_with_the_right_parameters_named(bug):
    mutate, l2, expected = GRADS_BUGS[bug]
    model, grads = _grads_bug(mutate, l2)
    report = model.gradcheck(X8, Y8, grads=grads)
    assert not report.passed
    assert set(report.failed_parameters) == expected, str(report)


def test_one_wrong_element_is_located_exactly():
    model, grads = _grads_bug(lambda mo, g: g["2.W"].__setitem__((1, 3), g["2.W"][1, 3] * 1.01 + 1e-6))
    report = model.gradcheck(X8, Y8, grads=grads)
    assert report.wrong() == [("2.W", (1, 3))]
    name, index, analytic, numeric, rel = report.worst(3)[0]
    assert (name, index) == ("2.W", (1, 3)) and analytic == grads["2.W"][1, 3]
    # the single number would not have raised the alarm on its own at the usual 1e-5 line? it names the place
    assert report.per_parameter["4.W"] < 1e-7


def test_one_wrong_element_of_a_12288_by_20_matrix_is_caught():
    rng = np.random.default_rng(0)
    model = mdl.Sequential([mdl.Dense(12288, 20), mdl.ReLU(), mdl.Dense(20, 7), mdl.ReLU(), mdl.Dense(7, 5),
                            mdl.ReLU(), mdl.Dense(5, 1), mdl.Sigmoid()], seed=0)
    X, Y = rng.random((8, 12288)), rng.integers(0, 2, (8, 1))
    grads = model.gradients(X, Y)
    i, j = np.unravel_index(np.argmax(np.abs(grads["0.W"])), grads["0.W"].shape)
    grads["0.W"][i, j] *= 1.0001
    report = model.gradcheck(X, Y, grads=grads)
    assert report.difference < 1e-6               # the global number alone would call this fine
    assert not report.passed and report.failed_parameters == ["0.W"]
    assert report.wrong() == [("0.W", (int(i), int(j)))]
    assert report.scipy_info["direction"] == "random"


def test_suspects_point_at_the_broken_layer():
    report = build(act=WrongTanh).gradcheck(X8, Y8)
    assert report.suspects == [3]                   # isolated: not the range [2, 3, 4] the parameters suggest
    assert "isolated: layer 3 (WrongTanh) backward: dX is wrong" in str(report)
    assert small_model().gradcheck(X8, Y8).suspects is None


# ------------------------------------------------------------ fast path == plain loop
@pytest.mark.parametrize("trial", range(6))
def test_fast_path_equals_plain_loop(trial):
    rng = np.random.default_rng(100 + trial)
    model = random_model(rng, l2=0.4)
    X = rng.standard_normal((5, 5))
    Y = rng.integers(0, 2, (5, 1))
    for dropout in ("off", "frozen"):
        fast = model.gradcheck(X, Y, dropout=dropout, scipy_check=False)
        loop = model.gradcheck(X, Y, dropout=dropout, method="loop", scipy_check=False)
        for a, b in zip(fast.groups, loop.groups):
            np.testing.assert_allclose(a.numeric, b.numeric, rtol=1e-6, atol=1e-8)
            assert np.array_equal(a.kink, b.kink)


class Scale(mdl.Layer):
    """A = X * s: a user layer with its own parameter (no fast path)."""
    elementwise = False
    rowwise = True

    def __init__(self, n, bug=False):
        super().__init__()
        self.params = {"s": np.linspace(0.5, 1.5, n)}
        self.bug = bug

    def forward(self, X, training=False):
        self.X = X
        return X * self.params["s"]

    def backward(self, dA):
        self.grads["s"] = (dA * self.X).sum(axis=0) * (1.5 if self.bug else 1.0)
        return dA * self.params["s"]


class Center(mdl.Layer):
    """A = X - mean over the batch: mixes examples, so not rowwise."""
    def forward(self, X, training=False):
        return X - X.mean(axis=0)

    def backward(self, dA):
        return dA - dA.mean(axis=0)


def test_user_layers_with_parameters_and_batch_mixing():
    layers = [mdl.Dense(5, 4), Scale(4), mdl.Tanh(), Center(), mdl.Dense(4, 1), mdl.Sigmoid()]
    model = mdl.Sequential(layers, seed=4)
    fast, loop = model.gradcheck(X8, Y8), model.gradcheck(X8, Y8, method="loop")
    assert fast.passed and loop.passed
    for a, b in zip(fast.groups, loop.groups):
        np.testing.assert_allclose(a.numeric, b.numeric, rtol=1e-6, atol=1e-9)
    broken = mdl.Sequential([mdl.Dense(5, 4), Scale(4, bug=True), mdl.Tanh(), mdl.Dense(4, 1), mdl.Sigmoid()], seed=4)
    assert broken.gradcheck(X8, Y8).failed_parameters == ["1.s"]


def test_chunking_does_not_change_the_result():
    model = small_model(l2=0.1)
    a = model.gradcheck(X8, Y8, chunk_size=1, scipy_check=False)
    b = model.gradcheck(X8, Y8, chunk_size=1000, scipy_check=False)
    for ga, gb in zip(a.groups, b.groups):       # the same sums in another order: equal up to rounding
        assert_same_central_differences(ga, gb, a.epsilon)
        assert np.array_equal(ga.wrong, gb.wrong)


def test_sampled_coordinates_are_seeded_and_a_subset():
    model = small_model()
    a = model.gradcheck(X8, Y8, coords="sample", k=3, seed=1)
    b = model.gradcheck(X8, Y8, coords="sample", k=3, seed=1)
    c = model.gradcheck(X8, Y8, coords="sample", k=3, seed=2)
    assert a.n_checked == 3 + 3 + 3 + 3 + 3 + 1
    assert [g.index.tolist() for g in a.groups] == [g.index.tolist() for g in b.groups]
    assert [g.index.tolist() for g in a.groups] != [g.index.tolist() for g in c.groups]


# ------------------------------------------------------------- leaves the model alone
def test_gradcheck_leaves_the_model_bitwise_unchanged():
    model = small_model(dropout=0.5, dtype=np.float32).train()
    model.forward(X8)                        # advance the dropout RNG a little
    snap = snapshot(model)
    model.gradcheck(X8, Y8, dropout="frozen")
    model.gradcheck(X8, Y8, method="loop")
    assert_unchanged(model, snap)
    assert model.training is True


# ------------------------------------------------------------------------- reports
def test_report_text_and_scipy_cross_check():
    report = small_model(l2=0.1).gradcheck(X8, Y8)
    text = str(report)
    for piece in ("PASSED", "parameter", "difference", "verdict", "0.W", "(5, 6)", "worst coordinates",
                  "scipy.optimize.check_grad agrees", "forward differences at h = 1.5e-08", "bands"):
        assert piece in text
    assert report.scipy_info["direction"] == "all"
    assert report.scipy < report.scipy_info["expected"] < 1e-5 and report.scipy_info["agrees"]
    assert report.summary().endswith("scipy agrees")
    broken = build(hidden_dense=DoubledDW).gradcheck(X8, Y8)
    assert broken.scipy > 1e-3 and broken.scipy_info["agrees"] and not broken.scipy_info["consistent"]


def test_worst_rows_and_order():
    model, grads = _grads_bug(lambda mo, g: g["0.W"].__setitem__((0, 0), g["0.W"][0, 0] + 0.05))
    rows = model.gradcheck(X8, Y8, grads=grads).worst(4)
    assert len(rows) == 4 and rows[0][:2] == ("0.W", (0, 0))
    name, index, analytic, numeric, rel = rows[0]
    assert rel == pytest.approx(abs(analytic - numeric) / (abs(analytic) + abs(numeric)))


# ------------------------------------------------------------ layer and function checks
def test_gradcheck_layer_catches_a_broken_user_layer():
    X = np.random.default_rng(0).standard_normal((4, 3))
    report = mdl.gradcheck_layer(WrongTanh(), X)
    assert not report.passed and report.failed_parameters == ["X"]
    report = mdl.gradcheck_layer(DoubledDW(3, 2), X)
    assert report.failed_parameters == ["W"]


def test_gradcheck_layer_reports_kinks():
    X = np.array([[1e-9, 1.0], [-2.0, 0.5]])
    report = mdl.gradcheck_layer(mdl.ReLU(), X)
    assert report.passed and report.kinks == [("X", (0, 0))]


def test_check_gradient_the_course_exercise_and_beyond():
    x = 3.0
    assert mdl.check_gradient(lambda t: float(t[0] * x), lambda t: np.array([x]), np.array([4.0])).passed
    report = mdl.check_gradient(lambda t: float(t[0] * x), lambda t: np.array([x + 0.1]), np.array([4.0]))
    assert not report.passed
    theta = np.arange(6.0).reshape(2, 3)
    ok = mdl.check_gradient(lambda t: float(np.sum(np.sin(t) * t)), lambda t: np.cos(t) * t + np.sin(t), theta)
    assert ok.passed and ok.per_parameter["theta"] < 1e-8
    assert np.array_equal(theta, np.arange(6.0).reshape(2, 3))


# ------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kwargs, error, message", [
    ({"epsilon": 0.0}, mdl.InputError, r"epsilon must be a finite number in \(0, 1\]; received epsilon=0.0"),
    ({"epsilon": "1e-7"}, mdl.InputTypeError, "epsilon must be a real number"),
    ({"dropout": "on"}, mdl.InputError, "dropout must be one of 'off', 'frozen'; received dropout='on'"),
    ({"coords": "some"}, mdl.InputError, "coords must be one of 'all', 'sample'"),
    ({"coords": "sample", "k": 0}, mdl.InputError, "k must be >= 1; received k=0"),
    ({"grads": {"0.W": np.zeros((5, 6))}}, mdl.InputError, r"grads must have the keys .* missing \['0.b'"),
    ({"grads": [1, 2]}, mdl.InputTypeError, "grads must be a dict"),
])
def test_gradcheck_rejects_bad_options(kwargs, error, message):
    model = small_model()
    snap = snapshot(model)
    with pytest.raises(error, match=message):
        model.gradcheck(X8, Y8, **kwargs)
    assert_unchanged(model, snap)


def test_gradcheck_rejects_grads_of_wrong_shape_or_with_nan():
    model = small_model()
    grads = model.gradients(X8, Y8)
    grads["2.W"] = grads["2.W"].T
    with pytest.raises(mdl.InputError, match=r"grads\['2.W'\] must have shape \(6, 4\) like the parameter; "
                                             r"received shape \(4, 6\)"):
        model.gradcheck(X8, Y8, grads=grads)
    grads = model.gradients(X8, Y8)
    grads["0.b"][0] = np.nan
    with pytest.raises(mdl.InputError, match=r"grads\['0.b'\] must be finite"):
        model.gradcheck(X8, Y8, grads=grads)


def test_kinks_in_a_deeper_relu_are_found_by_both_paths():
    model = mdl.Sequential([mdl.Dense(5, 6), mdl.ReLU(), mdl.Dense(6, 4), mdl.ReLU(), mdl.Dense(4, 1), mdl.Sigmoid()],
                           seed=3)
    A1 = np.maximum(X8 @ model.layers[0].params["W"] + model.layers[0].params["b"], 0)
    Z2 = A1 @ model.layers[2].params["W"]
    model.layers[2].params["b"][1] = -Z2[0, 1] + 3e-9      # example 0's unit 1 of the second ReLU: 3e-9 above 0
    fast = model.gradcheck(X8, Y8, scipy_check=False)
    loop = model.gradcheck(X8, Y8, method="loop", scipy_check=False)
    assert fast.kinks == loop.kinks
    assert any(name == "0.W" for name, _ in fast.kinks) and ("2.b", (1,)) in fast.kinks
    assert fast.passed and loop.passed


def test_a_tiny_uniform_scale_error_is_confirmed_at_larger_steps():
    theta = np.linspace(1.0, 2.0, 5)
    J = lambda t: float(100 * np.sum(t ** 2))
    report = mdl.check_gradient(J, lambda t: 200 * t * (1 + 2e-6), theta)
    assert 1e-7 < report.difference <= 1e-5                # the band still reads "look again" ...
    assert not report.passed and len(report.wrong()) == 5   # ... but larger steps confirm every coordinate
    assert "BUG (5 wrong)" in str(report)
    assert mdl.check_gradient(J, lambda t: 200 * t * (1 + 2e-8), theta).passed    # below float64 backprop rounding


def test_a_scale_error_below_the_old_noise_floor_is_now_caught():
    model = small_model(l2=0.1)
    grads = {name: g * (1 + 2e-6) for name, g in model.gradients(X8, Y8).items()}
    report = model.gradcheck(X8, Y8, grads=grads)
    assert not report.passed and len(report.failed_parameters) >= 4
    assert not report.scipy_info["agrees"] and "below what its one-sided differences resolve" in str(report)
    grads = {name: g * (1 + 1e-9) for name, g in model.gradients(X8, Y8).items()}
    report = model.gradcheck(X8, Y8, grads=grads)
    assert report.passed and report.scipy_info["agrees"]


@pytest.mark.parametrize("trial", range(4))
def test_pixel_like_inputs_equal_the_loop(trial):
    """Pixel-like inputs (few distinct values, many zeros): every path must equal the loop."""
    rng = np.random.default_rng(200 + trial)
    model = random_model(rng, l2=0.3, n_in=30, dropout=False)
    X = rng.integers(0, 4, (6, 30)) / 3.0
    Y = rng.integers(0, 2, (6, 1))
    fast = model.gradcheck(X, Y, scipy_check=False)
    loop = model.gradcheck(X, Y, method="loop", scipy_check=False)
    assert fast.passed
    for a, b in zip(fast.groups, loop.groups):
        np.testing.assert_allclose(a.numeric, b.numeric, rtol=1e-6, atol=1e-9)
        assert np.array_equal(a.kink, b.kink)
    broken = model.gradients(X, Y)
    broken["0.W"][7, 0] += 1e-3
    assert model.gradcheck(X, Y, grads=broken).wrong() == [("0.W", (7, 0))]


@pytest.mark.parametrize("activation", [mdl.ReLU, mdl.Tanh])
def test_pixel_like_inputs_find_kinks(activation):
    X = np.tile(np.array([[0.0, 1.0, 1.0, 0.5, 0.5, 1.0]]), (4, 4))
    X[1] *= 0.5
    """A unit 1e-9 above its kink: the affine path (ReLU tail) and the exact path (Tanh tail) both see it."""
    model = mdl.Sequential([mdl.Dense(24, 3), mdl.ReLU(), mdl.Dense(3, 2), activation(), mdl.Dense(2, 1),
                            mdl.Sigmoid()], seed=2)
    Z = X @ model.layers[0].params["W"]
    model.layers[0].params["b"][1] = -Z[1, 1] + 1e-9        # example 1's unit 1 sits 1e-9 above the kink
    Y = np.array([0, 1, 1, 0])
    fast, loop = model.gradcheck(X, Y, scipy_check=False), model.gradcheck(X, Y, method="loop", scipy_check=False)
    assert fast.kinks == loop.kinks and ("0.W", (1, 1)) in fast.kinks and fast.passed


class Project(mdl.Layer):
    """A = X P: a user layer with a weight matrix of its own that changes the width."""
    rowwise = True

    def __init__(self, n_in, n_out, bug=False):
        super().__init__()
        self.params = {"P": np.random.default_rng(0).standard_normal((n_in, n_out))}
        self.bug = bug

    def forward(self, X, training=False):
        self.X = X
        return X @ self.params["P"]

    def backward(self, dA):
        self.grads["P"] = self.X.T @ dA * (2.0 if self.bug else 1.0)
        return dA @ self.params["P"].T

    def output_width(self, n_in):
        return self.params["P"].shape[1]


@pytest.mark.parametrize("method", ["fast", "loop"])
def test_user_layer_that_changes_the_width_is_checked(method):
    """Its noise bound used to add a (m, 3) rounding term to a (m, 4) array: a raw ValueError."""
    layers = lambda bug: [mdl.Dense(5, 4), mdl.Tanh(), Project(4, 3, bug), mdl.Tanh(), mdl.Dense(3, 1), mdl.Sigmoid()]
    report = mdl.Sequential(layers(False), seed=0).gradcheck(X8, Y8, method=method)
    assert report.passed and report.difference < 1e-7
    assert mdl.Sequential(layers(True), seed=0).gradcheck(X8, Y8, method=method).failed_parameters == ["2.P"]


# ------------------------------------------------------------------ properties
@SETTINGS
@given(models_and_data(), st.sampled_from(["off", "frozen"]))
def test_gradcheck_passes_on_every_correct_model(case, dropout):
    model, X, Y = case
    report = model.gradcheck(X, Y, dropout=dropout, scipy_check=False)
    assert report.passed, str(report)


# ------------------------------------------------------------------ the mutation battery
# The mutation battery: realistic backprop bugs, each of which gradcheck must catch and locate.
#
# Every mutant is a correct network with one bug, written as a custom layer (a wrong backward) or
# as a wrong gradient dict handed to ``grads=``. A mutant is caught when the check fails and the
# failing parameters are exactly the ones the bug spoils. The catch rate is printed at the end
# of the test session (see conftest.py).
RESULTS = {}
MUTANT_RNG = np.random.default_rng(11)
X = MUTANT_RNG.standard_normal((8, 5))
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
