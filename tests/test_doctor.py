"""mdl.doctor: healthy recipes get no finding, and every broken setup of the battery is named by the right kind
(the count is printed after the suite, as the mutation battery's is)."""
import copy
import importlib

import numpy as np
import pytest

import minidl as mdl

doctor_module = importlib.import_module("minidl.doctor")     # mdl.doctor is the function

DOCTORED = {}        # battery case -> "named right", "named wrong" or "missed" (printed by conftest)
RNG = np.random.default_rng(0)


def teacher_data(m=64, n=6, seed=0):
    """Scaled inputs and labels a small network can learn (a random teacher), balanced."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, n))
    w = rng.standard_normal(n)
    Y = (X @ w > np.median(X @ w)).astype(float)
    return X, Y


def net(widths=(6, 8, 1), act=mdl.Tanh, seed=0, l2=0.0, extra=None, at=None):
    layers = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layers.append(mdl.Dense(a, b))
        if i < len(widths) - 2:
            layers.append(act())
    if extra is not None:
        layers.insert(at, extra)
    return mdl.Sequential(layers + [mdl.Sigmoid()], loss=mdl.BinaryCrossEntropy(l2), seed=seed)


class Ignores(mdl.Layer):
    """Multiplies its input by 0: the labels cannot be fitted through it."""
    rowwise = elementwise = True

    def forward(self, X, training=False):
        return X * 0.0

    def backward(self, dA):
        return dA * 0.0


class MixesExamples(mdl.Layer):
    """A slip that mixes examples (the batch mean subtracted) in a layer that declares it does not."""
    rowwise = True

    def forward(self, X, training=False):
        return X - X.mean(axis=0)

    def backward(self, dA):
        return dA - dA.mean(axis=0)


class SignError(mdl.Dense):
    """Its backward takes dZ with the wrong sign (as y - a for a - y would): every gradient points uphill."""
    def backward(self, dZ):
        return super().backward(-dZ)


def _raw_pixels():
    X = np.random.default_rng(1).integers(0, 256, (64, 30)).astype(float)
    Y = (X[:, 0] > 128).astype(float)
    return net((30, 8, 1), mdl.ReLU), X, Y, mdl.Adam(1e-3)


def _saturated_tanh():
    X, Y = teacher_data()
    model = net((6, 8, 8, 1))
    model.layers[0].params["W"] *= 30
    return model, X, Y, mdl.Adam(1e-3)


def _dead_relu():
    X, Y = teacher_data()
    model = net((6, 8, 8, 1), mdl.ReLU)
    model.layers[0].params["b"][...] = -50.0
    return model, X, Y, mdl.Adam(1e-3)


def _single_class():
    X, _ = teacher_data()
    return net(), X, np.ones(len(X)), mdl.Adam(1e-3)


def _deep_sigmoid():
    X, Y = teacher_data()
    return net((6,) + (8,) * 10 + (1,), mdl.Sigmoid), X, Y, mdl.Adam(1e-3)


def _output_bias():
    X, Y = teacher_data()
    model = net()
    model.layers[-2].params["b"][...] = -15.0          # every example starts at p = 3e-7
    return model, X, Y, mdl.Adam(1e-3)


def _with(extra, at, act=mdl.Tanh):
    X, Y = teacher_data()
    return net((6, 8, 8, 1), act, extra=extra, at=at), X, Y, mdl.Adam(1e-2)


def _sign_error():
    X, Y = teacher_data()
    model = mdl.Sequential([mdl.Dense(6, 8), mdl.Tanh(), SignError(8, 1), mdl.Sigmoid()], seed=0)
    return model, X, Y, mdl.Adam(1e-2)


def _lr(lr):
    X, Y = teacher_data()
    return net((6, 8, 8, 1)), X, Y, mdl.Adam(lr)


BATTERY = {      # name: (build, expected kind, expected layer or None)
    "raw pixels": (_raw_pixels, "input scale", None),
    "learning rate 100x too high": (lambda: _lr(1.0), "learning rate too high", None),
    "learning rate 1e4x too low": (lambda: _lr(1e-7), "learning rate too low", None),
    "Tanh saturated by large initial weights": (_saturated_tanh, "saturated units", 1),
    "a ReLU layer killed by a negative bias": (_dead_relu, "dead units", 1),
    "a single-class label set": (_single_class, "single class", None),
    "a layer that ignores its input": (lambda: _with(Ignores(), 2), "cannot overfit", None),
    "a layer that mixes examples": (lambda: _with(MixesExamples(), 2), "examples mix", 2),
    "vanishing gradients through a deep Sigmoid stack": (_deep_sigmoid, "vanishing gradients", 0),
    "an output bias that makes the initial loss 10x the prior": (_output_bias, "initial loss", None),
    "a backward with a sign error": (_sign_error, "gradient check", None),
    "a Dropout rate of 0.95": (lambda: _with(mdl.Dropout(0.95), 2), "heavy dropout", 2),
}


@pytest.mark.parametrize("name", list(BATTERY))
def test_every_broken_setup_is_named_by_the_right_kind(name):
    build, kind, layer = BATTERY[name]
    model, X, Y, optimizer = build()
    report = mdl.doctor(model, X, Y, optimizer)
    matching = [f for f in report.findings if f.kind == kind]
    if not matching:
        DOCTORED[name] = "missed"
    elif layer is not None and all(f.layer != layer for f in matching):
        DOCTORED[name] = "named wrong"
    else:
        DOCTORED[name] = "named right"
    assert DOCTORED[name] == "named right", str(report)


def test_a_sign_error_is_found_by_the_overfit_probe_and_named_by_the_gradient_check():
    model, X, Y, optimizer = _sign_error()
    report = mdl.doctor(model, X, Y, optimizer)
    assert {"gradient check", "cannot overfit"} <= set(report.kinds())
    check = next(f for f in report.findings if f.kind == "gradient check")
    assert "layer 2 (SignError) backward: W is -1 times the right value" in check.message


def test_the_battery_has_at_least_twelve_setups():
    assert len(BATTERY) >= 12


def cat_like(m=209, seed=0):
    """Pixels in [0, 1], not centred, as the course feeds them (random, so the test needs no data files)."""
    rng = np.random.default_rng(seed)
    X = rng.random((m, 12288))
    Y = (rng.random(m) < 0.34).astype(float)
    return X, Y


def test_the_readme_and_course_recipes_are_healthy(cat_dir):
    X, Y, *_ = mdl.datasets.load_cat(cat_dir)
    layers, n = [], 12288
    for width in (20, 7, 5):
        layers += [mdl.Dense(n, width), mdl.ReLU()]
        n = width
    cat = mdl.Sequential(layers + [mdl.Dense(n, 1), mdl.Sigmoid()], loss=mdl.BinaryCrossEntropy(0.3), seed=0)
    assert mdl.doctor(cat, X - X.mean(axis=0), Y, mdl.Adam(1e-3)).healthy
    rng = np.random.default_rng(1)
    two = mdl.Sequential([mdl.Dense(12288, 7), mdl.ReLU(), mdl.Dense(7, 1), mdl.Sigmoid()], seed=1)
    for layer in two.layers[::2]:
        layer.params["W"][...] = rng.standard_normal(layer.params["W"].shape) * 0.01     # the course's 2-layer init
    report = mdl.doctor(two, X, Y, mdl.SGD(0.0075))
    assert report.healthy, str(report)
    four = copy.deepcopy(cat)
    four.loss = mdl.BinaryCrossEntropy(0.0)
    for layer in four.layers[::2]:
        layer.params["W"][...] = rng.standard_normal(layer.params["W"].shape) / np.sqrt(layer.n_in)
    report = mdl.doctor(four, X, Y, mdl.SGD(0.0075))
    assert report.healthy, str(report)


def test_the_xor_recipe_is_healthy_and_random_reasonable_setups_too():
    X, Y = mdl.datasets.xor()
    assert mdl.doctor(mdl.Sequential([mdl.Dense(2, 4), mdl.Tanh(), mdl.Dense(4, 1), mdl.Sigmoid()], seed=0), X, Y,
                      mdl.Adam(0.05)).healthy
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import doctor_sweep
    reports = [doctor_sweep.check(seed) for seed in range(8)]          # the benchmark runs 200
    assert [r.kinds() for r in reports] == [[]] * 8


def test_the_doctor_changes_neither_the_model_nor_the_optimizer():
    model, X, Y, optimizer = _with(mdl.Dropout(0.2), 2)
    model.backward(X, Y)
    optimizer.step(model)                        # an optimizer with state (moments, step count)
    params = {n: v.copy() for n, v in model.named_parameters()}
    rng_state = model.layers[2].rng.bit_generator.state
    state = copy.deepcopy(optimizer.state_dict())
    mdl.doctor(model, X, Y, optimizer)
    assert all(np.array_equal(v, params[n]) for n, v in model.named_parameters())
    assert model.layers[2].rng.bit_generator.state == rng_state and not model.training
    after = optimizer.state_dict()
    assert after["t"] == state["t"] and all(np.array_equal(after["arrays"][k], v) for k, v in state["arrays"].items())


def test_the_report_prints_and_renders():
    model, X, Y, optimizer = _raw_pixels()
    report = mdl.doctor(model, X, Y, optimizer)
    text = str(report)
    assert text.startswith("doctor: ") and "- [input scale] inputs are far from unit scale" in text
    assert "<b>input scale</b>" in report._repr_html_() and not report.healthy
    assert repr(report).startswith("<DoctorReport input scale")


def test_the_doctor_on_the_cat_network_takes_seconds_not_minutes():
    """Timing is the benchmark's business; this only guards the order of magnitude of the work (one full
    backward per probe step and a bounded overfit on 8 examples)."""
    assert doctor_module.PROBE_STEPS <= 50 and doctor_module.OVERFIT_STEPS <= 1000 and doctor_module.HANDFUL <= 16


def test_bad_arguments_are_named():
    with pytest.raises(mdl.InputTypeError, match="model must be a minidl Sequential; received list"):
        mdl.doctor([], np.ones((2, 2)), np.ones(2))
    with pytest.raises(mdl.InputTypeError, match="optimizer must be a minidl Optimizer; received str"):
        mdl.doctor(net(), *teacher_data(), optimizer="adam")
