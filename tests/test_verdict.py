"""The verdict (minidl/gradcheck/verdict.py, scipy_check.py): situations that fooled the checker, both ways.
Each is a bug that must be caught or a correct network that must pass; all failed on the checker before its
noise model."""
import numpy as np
import pytest
from scipy.special import expit

import minidl as mdl

RNG = np.random.default_rng(9)
X8 = RNG.standard_normal((8, 5))
Y8 = np.array([[0], [1], [1], [0], [1], [0], [0], [1]], dtype=float)


def doubled(layer_class, name):
    """A subclass of ``layer_class`` whose backward doubles the gradient ``name``."""
    class Doubled(layer_class):
        def backward(self, dA):
            dX = super().backward(dA)
            self.grads[name] = 2 * self.grads[name]
            return dX
    return Doubled


# ------------------------------------------------------------------ 1. in-place layers
class InplaceReLU(mdl.ReLU):
    """Correct, but writes its output into its input, as ``inplace=True`` layers do."""

    def forward(self, Z, training=False):
        self.Z = Z
        return np.maximum(Z, 0, out=Z)


@pytest.mark.parametrize("method", ["fast", "loop"])
def test_an_inplace_layer_cannot_hide_a_doubled_dW(method):
    layers = [mdl.Dense(5, 6), InplaceReLU(), doubled(mdl.Dense, "W")(6, 6), InplaceReLU(), mdl.Dense(6, 1),
              mdl.Sigmoid()]
    model = mdl.Sequential(layers, seed=3)
    X = X8.copy()
    report = model.gradcheck(X, Y8, method=method)
    assert not report.passed
    assert report.failed_parameters == ["2.W"]
    assert len(report.kinks) == 0
    assert np.array_equal(X, X8)                # the user's X is not written into either


def test_an_inplace_correct_network_passes_with_no_false_kinks():
    model = mdl.Sequential([mdl.Dense(5, 6), InplaceReLU(), mdl.Dense(6, 6), InplaceReLU(), mdl.Dense(6, 1),
                            mdl.Sigmoid()], seed=3)
    fast, loop = model.gradcheck(X8, Y8), model.gradcheck(X8, Y8, method="loop")
    assert fast.passed and loop.passed
    assert fast.kinks == loop.kinks == []


# ------------------------------------------------------------------ 2. a large L2 term
def test_a_large_l2_term_does_not_hide_a_bias_error():
    model = mdl.Sequential([mdl.Dense(5, 4), mdl.Tanh(), mdl.Dense(4, 1), mdl.Sigmoid()],
                           loss=mdl.BinaryCrossEntropy(l2=5.0), seed=1)
    for _, value in model.named_parameters():
        value *= 20
    model.layers[0].params["b"][...] = [0.1, -0.2, 0.3, 0.05]
    grads = model.gradients(X8, Y8)
    assert model.gradcheck(X8, Y8, grads=grads).passed
    grads["2.b"] = grads["2.b"] + 2e-5
    report = model.gradcheck(X8, Y8, grads=grads)
    assert not report.passed and report.failed_parameters == ["2.b"], str(report)


def test_a_constant_added_to_J_does_not_hide_a_small_error():
    A = np.array([[2.0, 0.5, 0.1], [0.5, 1.0, 0.3], [0.1, 0.3, 3.0]])
    theta = np.array([0.7, -1.2, 0.4])

    def J(t):
        return 1e6 + 0.5 * t @ A @ t

    assert mdl.check_gradient(J, lambda t: A @ t, theta).passed
    report = mdl.check_gradient(J, lambda t: 1.001 * (A @ t), theta)
    assert not report.passed and len(report.wrong()) == 3


# ------------------------------------------------------------------ 3. confident predictions
@pytest.mark.parametrize("z", [30.0, 40.0, 700.0, -30.0, -700.0])
def test_the_loss_is_exact_for_confident_predictions(z):
    loss = mdl.BinaryCrossEntropy()
    out = np.array([z])
    for y in (0.0, 1.0):
        t = z if y == 0 else -z                 # the loss is softplus(t) = log(1 + e^t), exactly
        exact = t if t > 30 else float(np.log1p(np.exp(t)))
        value = float(loss.losses(out, np.array([y]), True)[0])
        assert value == pytest.approx(exact, rel=1e-15, abs=0)
        dz = float(loss.dout(out, np.array([y]), True)[0])
        exact_dz = expit(z) if y == 0 else -expit(-z)   # sigmoid(z) - 1 = -sigmoid(-z), without cancelling
        assert dz == pytest.approx(exact_dz, rel=1e-14, abs=0)


def test_doubled_gradients_fail_on_a_confident_network_with_every_label_one():
    model = mdl.Sequential([mdl.Dense(5, 3), mdl.Tanh(), mdl.Dense(3, 1), mdl.Sigmoid()], seed=2)
    X = np.abs(X8)
    W = model.layers[2].params["W"]
    model.layers[0].params["W"][...] = np.abs(model.layers[0].params["W"])
    W[...] = 8.0
    model.layers[2].params["b"][...] = 0.5
    Y = np.ones((8, 1))
    Z = model.layers[2].forward(model.layers[1].forward(model.layers[0].forward(X)))
    assert 10 < Z.min() and Z.max() < 25                          # z around 18: confident
    grads = {name: 2 * g for name, g in model.gradients(X, Y).items()}
    report = model.gradcheck(X, Y, grads=grads)
    assert not report.passed and set(report.failed_parameters) == {"0.W", "0.b", "2.W", "2.b"}, str(report)
    assert model.gradcheck(X, Y).passed


# ------------------------------------------------------------------ 4. float32
class HalfPrecisionTanh(mdl.Tanh):
    """Right in float64, wrong in float32: its backward drops to float16 for float32 inputs."""

    def backward(self, dA):
        if dA.dtype == np.float32:
            return (dA.astype(np.float16) * (1 - self.A.astype(np.float16) ** 2)).astype(np.float32)
        return super().backward(dA)


def float32_net(act):
    return mdl.Sequential([mdl.Dense(5, 6), act, mdl.Dense(6, 1), mdl.Sigmoid()], seed=4, dtype=np.float32)


def test_a_float32_only_bug_fails_the_model_check():
    report = float32_net(HalfPrecisionTanh()).gradcheck(X8, Y8)
    assert not report.passed, str(report)
    assert "float32" in str(report)
    assert float32_net(mdl.Tanh()).gradcheck(X8, Y8).passed


def test_a_float32_only_bug_fails_the_layer_check():
    X = X8.astype(np.float32)
    assert not mdl.gradcheck_layer(HalfPrecisionTanh(), X).passed
    assert mdl.gradcheck_layer(mdl.Tanh(), X).passed


def test_a_float32_only_bug_stops_the_debug_trainer():
    model = float32_net(HalfPrecisionTanh())
    with pytest.raises(mdl.GradientCheckError):
        mdl.Trainer(model, epochs=1, debug=True, progress=False, log=open("/dev/null", "w")).fit(X8, Y8)


def test_correct_float32_gradients_pass_on_raw_pixels():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (8, 12288)).astype(float)               # the cat network on raw pixels
    Y = rng.integers(0, 2, (8, 1))
    model = mdl.Sequential([mdl.Dense(12288, 20), mdl.ReLU(), mdl.Dense(20, 7), mdl.ReLU(), mdl.Dense(7, 5),
                            mdl.ReLU(), mdl.Dense(5, 1), mdl.Sigmoid()], seed=0, dtype=np.float32)
    model.layers[0].params["W"] *= 1 / 255
    grads = model.gradients(X, Y)
    assert all(g.dtype == np.float32 for g in grads.values())
    report = model.gradcheck(X, Y, grads=grads, scipy_check=False)
    assert report.passed, report.summary()
    # A real error is still caught where float32 resolves it (the output bias: float32 rounding of a
    # sum of 8 terms); middle layers fed by 12,288 raw pixels are resolved only to a few percent.
    grads["6.b"] = grads["6.b"] * np.float32(1.01)
    assert model.gradcheck(X, Y, grads=grads, scipy_check=False).failed_parameters == ["6.b"]


# ------------------------------------------------------------------ 5. frozen dropout
class RedrawingDropout(mdl.Dropout):
    """A bug: backward draws a new mask from the layer's own generator instead of reusing it."""

    def backward(self, dA):
        if self.mask is None:
            return dA
        keep = self.rng.random(dA.shape) >= self.rate
        return dA * keep / self.keep_prob


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_frozen_dropout_catches_a_redrawn_mask_for_every_seed(seed):
    X = RNG.standard_normal((6, 10))
    layer = RedrawingDropout(0.5, seed=seed)
    assert not mdl.gradcheck_layer(layer, X, dropout="frozen", seed=seed).passed
    assert mdl.gradcheck_layer(mdl.Dropout(0.5, seed=seed), X, dropout="frozen", seed=seed).passed


# ------------------------------------------------------------------ 6. large values that cancel
def test_large_inputs_centred_by_the_next_bias_pass():
    rng = np.random.default_rng(6)
    X = 5e4 + rng.standard_normal((8, 3)) * 10
    model = mdl.Sequential([mdl.Dense(3, 4), mdl.Tanh(), mdl.Dense(4, 1), mdl.Sigmoid()], seed=6)
    Z = X @ model.layers[0].params["W"]
    model.layers[0].params["b"][...] = -Z.mean(axis=0)
    assert np.abs(model.layers[0].forward(X)).max() < 50
    for method in ("fast", "loop"):
        report = model.gradcheck(X, Y8, method=method)
        assert report.passed, str(report)
    grads = model.gradients(X, Y8)
    grads["2.W"] = grads["2.W"] * 1.001
    assert model.gradcheck(X, Y8, grads=grads).failed_parameters == ["2.W"]


# ------------------------------------------------------------------ 7. a Sigmoid subclass output
class MySigmoid(mdl.Sigmoid):
    pass


def test_saturated_networks_with_a_sigmoid_subclass_output_pass():
    failures = 0
    for trial in range(15):
        rng = np.random.default_rng(100 + trial)
        model = mdl.Sequential([mdl.Dense(5, 6), mdl.Tanh(), mdl.Dense(6, 1), MySigmoid()], seed=trial)
        model.layers[2].params["W"] *= rng.uniform(5, 15)
        X = rng.standard_normal((8, 5)) * 3
        Y = rng.integers(0, 2, (8, 1))
        failures += not model.gradcheck(X, Y).passed
    assert failures == 0


# ------------------------------------------------------------------ 8. larger epsilon, float32 J
@pytest.mark.parametrize("epsilon", [1e-3, 1e-4])
def test_smooth_correct_networks_pass_at_a_large_epsilon(epsilon):
    failures = 0
    for trial in range(20):
        rng = np.random.default_rng(200 + trial)
        model = mdl.Sequential([mdl.Dense(5, 6), mdl.Tanh(), mdl.Dense(6, 4), mdl.Sigmoid(), mdl.Dense(4, 1),
                                mdl.Sigmoid()], seed=trial)
        for _, value in model.named_parameters():
            value += rng.normal(0, 1, value.shape)
        X = rng.standard_normal((8, 5))
        failures += not model.gradcheck(X, Y8, epsilon=epsilon).passed
    assert failures == 0


def test_a_large_epsilon_still_catches_a_bug():
    model = mdl.Sequential([mdl.Dense(5, 6), mdl.Tanh(), doubled(mdl.Dense, "b")(6, 1), mdl.Sigmoid()], seed=1)
    assert model.gradcheck(X8, Y8, epsilon=1e-3).failed_parameters == ["2.b"]


def test_check_gradient_of_a_float32_function():
    A = np.array([[2.0, 0.5], [0.5, 1.0]], dtype=np.float32)

    def J(t):
        t = t.astype(np.float32)
        return np.float32(0.5) * t @ A @ t + np.float32(3.0)

    theta = np.array([0.8, -0.3])
    assert mdl.check_gradient(J, lambda t: A.astype(float) @ t, theta).passed
    assert not mdl.check_gradient(J, lambda t: 1.05 * (A.astype(float) @ t), theta).passed


# ------------------------------------------------------------------ the adversarial sweep
def test_a_sweep_of_correct_and_broken_networks():
    """A small run of benchmarks/trust_sweep.py: every family, no false alarm, errors of 1e-4 caught, scipy never
    said to disagree on a correct network."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import trust_sweep
    results = trust_sweep.sweep(per_family=5, detect=1, seed=1)
    assert len(results) == len(trust_sweep.FAMILIES) >= 15
    assert {name: alarms for name, (_, alarms, *_) in results.items() if alarms} == {}
    assert {name: v[4] for name, v in results.items() if v[4]} == {}
    # The error is injected into the data part of dW: with tiny gradients it sits near the absolute
    # rounding floor, and a huge L2 term dwarfs it in the whole gradient.
    floor = {"tiny_gradients": 1e-1, "huge_l2": 1e-2}
    for name, (_, _, median, worst, *_) in results.items():
        assert worst <= floor.get(name, 1e-4), name


def test_the_trainer_debug_line_says_whether_scipy_agrees():
    import io
    log = io.StringIO()
    model = mdl.Sequential([mdl.Dense(5, 3), mdl.Tanh(), mdl.Dense(3, 1), mdl.Sigmoid()], seed=0)
    mdl.Trainer(model, epochs=1, debug=True, progress=False, log=log).fit(X8, Y8)
    assert "gradcheck passed" in log.getvalue() and "scipy agrees" in log.getvalue()


@pytest.mark.parametrize("margin", [1e-11, 1e-10, 1e-9, 5e-9])
def test_scipy_cross_check_allows_for_its_steps_crossing_a_kink(margin):
    """A unit `margin` above its kink: scipy's forward step of 1.5e-8 crosses it for the inputs that move it
    down, and its difference is off by up to the jump in slope. A correct network: scipy must not be said to
    disagree (it did at margin 1e-10: 0.0677 against an allowance of 0.0674)."""
    X = np.array([[-1.0, -0.8, 0.5], [0.3, 0.9, -1.2]])
    Y = np.array([[1], [0]])
    model = mdl.Sequential([mdl.Dense(3, 2), mdl.ReLU(), mdl.Dense(2, 1), mdl.Sigmoid()], seed=1)
    W, b = model.layers[0].params["W"], model.layers[0].params["b"]
    b[0] -= (X @ W + b)[0, 0] - margin
    report = model.gradcheck(X, Y)
    assert report.passed and len(report.kinks) == 4
    info = report.scipy_info
    assert info["agrees"] and info["consistent"] and info["value"] <= info["expected"]
    broken = model.gradients(X, Y)
    broken["2.W"] *= 1.5                                   # and a real error is still seen by both
    failed = model.gradcheck(X, Y, grads=broken)
    assert not failed.passed and failed.scipy_info["agrees"] and not failed.scipy_info["consistent"]


def _kinked_wide_network(seed):
    """1,209 parameters (scipy checks one random direction) and every unit of example 0 1e-10 above its kink."""
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((3, 300)), np.array([[1], [0], [1]])
    model = mdl.Sequential([mdl.Dense(300, 4), mdl.ReLU(), mdl.Dense(4, 1), mdl.Sigmoid()], seed=seed)
    W, b = model.layers[0].params["W"], model.layers[0].params["b"]
    b[:] -= (X @ W + b)[0] - 1e-10
    return model, X, Y


@pytest.mark.parametrize("seed", [0, 3, 5, 13, 20, 34, 35])
def test_scipy_random_direction_crossing_kinks_is_not_a_disagreement(seed):
    """scipy's one random step crosses kinks here; it was said to disagree on these correct networks
    (e.g. seed 0: 4.0 against an allowance of 0.10). The allowance for kinks was then a jump in slope
    estimated from a second difference, where jumps of opposite signs cancel: seeds 34 and 35 still
    disagreed (2.09 against 2.02), and 0, 13, 20 did with a uniform direction. It is now measured:
    J(theta + h v) against the same point with every ReLU keeping theta's units."""
    model, X, Y = _kinked_wide_network(seed)
    report = model.gradcheck(X, Y)
    info = report.scipy_info
    assert report.passed and info["direction"] == "random"
    assert info["agrees"] and info["consistent"] and info["kinks"] > 0
    # the kinks explain scipy's number to within the error of its forward difference on smooth J
    assert abs(info["value"] - info["kinks"]) <= info["expected"] - info["kinks"]
    assert "scipy agrees" in report.summary() and "cross kinks" in str(report)
    g = model.gradients(X, Y)
    g["2.W"] *= 1.5
    failed = model.gradcheck(X, Y, grads=g)     # minidl sees the error whether scipy's kinked step resolves it or not
    assert failed.failed_parameters == ["2.W"]
    if failed.scipy_info["consistent"]:
        assert "below what its differences resolve" in str(failed)
    else:
        assert failed.scipy_info["agrees"] and failed.scipy_info["value"] > failed.scipy_info["kinks"]


@pytest.mark.parametrize("family, seed", [("large_steps", 112001), ("many_decades", 15078)])
def test_scipy_is_not_said_to_disagree_on_the_trust_sweeps_correct_networks(family, seed):
    """Two of the 4 disagreements of scipy on the sweep's 1,280 correct networks: epsilon 1e-2 on inputs of ~600,
    where the curvature for scipy's steps was taken from second differences over 1e-2 (a secant, 10x below the
    curvature where scipy steps: 5.0e-4 beyond 4.5e-4); and inputs of 7.6e5, where the per-row steps of 1.3e-10
    crossed no kink but scipy's 1.5e-8 do (9.1e3 beyond 1.8e3): kinks were looked for only where epsilon was below
    scipy's step."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import trust_sweep
    model, X, Y, options = getattr(trust_sweep, family)(np.random.default_rng(seed), mdl.Dense)
    report = model.gradcheck(X, Y, **options)
    assert report.passed and report.scipy_info["direction"] == "all"
    assert report.scipy_info["agrees"] and "scipy agrees" in report.summary()


def test_scipy_number_is_check_grad_along_the_seeded_direction():
    """Beyond 1,000 parameters the number is scipy's forward difference along v = random_direction(seed, P) against
    g . v: computed here with the model's own cost on a moved copy (the whole forward pass, L2 included), for
    gradients with an error scipy resolves (for right ones the number is rounding noise)."""
    import copy
    from minidl.gradcheck.scipy_check import SCIPY_STEP, random_direction
    model, X, Y = _kinked_wide_network(1)
    model.loss = mdl.BinaryCrossEntropy(0.4)
    for seed in (0, 8):
        g = model.gradients(X, Y)
        g["0.b"] = g["0.b"] * 1.1
        info = model.gradcheck(X, Y, seed=seed, grads=g).scipy_info
        names = [f"{i}.{p}" for i, layer in enumerate(model.layers) for p in layer.params]
        v = random_direction(seed, model.n_params)
        moved, offset = copy.deepcopy(model), 0
        for name in names:
            i, p = name.split(".")
            array = moved.layers[int(i)].params[p]
            array += SCIPY_STEP * v[offset:offset + array.size].reshape(array.shape)
            offset += array.size
        slope = float(np.dot(np.concatenate([g[n].ravel() for n in names]), v))
        expected = abs(slope - (moved.cost(X, Y) - model.cost(X, Y)) / SCIPY_STEP)
        assert info["direction"] == "random" and info["value"] == pytest.approx(expected, rel=1e-9, abs=info["expected"] - info["kinks"])
        assert info["value"] > 100 * (info["expected"] - info["kinks"])        # far above its rounding


def test_scipy_sees_an_error_beyond_what_its_kinked_step_explains():
    """With the kinks' share measured rather than bounded, scipy resolves a 1.5x error of 2.W in
    seed 0 (the bound of a second difference hid it: "below what its differences resolve"); in
    seed 4 the error is smaller than the kinks' share and scipy cannot tell, as the report says."""
    for seed, resolves in ((0, True), (4, False)):
        model, X, Y = _kinked_wide_network(seed)
        g = model.gradients(X, Y)
        g["2.W"] *= 1.5
        failed = model.gradcheck(X, Y, grads=g)
        assert failed.failed_parameters == ["2.W"]
        assert failed.scipy_info["consistent"] is not resolves
        assert failed.scipy_info["agrees"] is resolves
        assert ("below what its differences resolve" in str(failed)) is not resolves


def test_a_large_epsilon_meets_smaller_steps_before_a_coordinate_is_called_wrong():
    """epsilon 1e-2 on inputs of ~1000: the steps' truncation error is large, and with only larger steps to
    confirm at, this correct network failed (0.W and 2.W). Confirmation now also tries steps below epsilon."""
    rng = np.random.default_rng(1)
    X, Y = rng.random((4, 30)) * 1000, rng.integers(0, 2, (4, 1))
    model = mdl.Sequential([mdl.Dense(30, 6), mdl.ReLU(), mdl.Dense(6, 3), mdl.Tanh(), mdl.Dense(3, 1),
                            mdl.Sigmoid()], seed=1)
    assert model.gradcheck(X, Y, epsilon=1e-2).passed
    grads = model.gradients(X, Y)
    grads["2.W"] = grads["2.W"] * 1.001
    assert model.gradcheck(X, Y, epsilon=1e-2, grads=grads).failed_parameters == ["2.W"]


def test_a_kink_at_a_large_epsilon_is_judged_at_the_smaller_steps():
    """epsilon 1e-2 on inputs of ~500: every step of the first W crosses some unit's kink, so every coordinate
    was a kink and a 10% error in dW passed unseen. The ladder's smaller steps avoid the kinks and judge them."""
    rng = np.random.default_rng(12)
    X, Y = rng.random((4, 30)) * 500, np.array([[1], [0], [0], [1]])
    model = mdl.Sequential([mdl.Dense(30, 6), mdl.ReLU(), mdl.Dense(6, 1), mdl.Sigmoid()], seed=12)
    model.layers[0].params["W"] /= 500
    report = model.gradcheck(X, Y, epsilon=1e-2)
    assert report.passed and report.kinks == []
    grads = model.gradients(X, Y)
    grads["0.W"] = grads["0.W"] * 1.1
    failed = model.gradcheck(X, Y, epsilon=1e-2, grads=grads)
    assert failed.failed_parameters == ["0.W"] and failed.kinks == []
    assert failed.diagnosis[0].kind == "factor"
