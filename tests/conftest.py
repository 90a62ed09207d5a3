"""Shared fixtures and a reference central-difference helper, independent of minidl.gradcheck."""
import os
import sys

# The tests' matrices are small: OpenBLAS's second thread mostly spins, costing CPU time and no wall time
# (measured on the suite: 82 s of CPU with two threads, 65 s with one, the same wall time). Before NumPy
# loads, and inherited by the scripts the tests run; an explicit setting wins.
if "numpy" not in sys.modules:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import minidl as mdl  # noqa: E402

# In CI the property tests draw the same examples every run (a red run is then reproducible); locally
# HYPOTHESIS_PROFILE=fresh (or any run outside CI) searches anew.
settings.register_profile("ci", derandomize=True)
settings.register_profile("fresh", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "fresh"))


def numeric_grad(f, x, eps=1e-6):
    """Central differences of a scalar function f at x (x is modified and restored)."""
    grad = np.zeros_like(x, dtype=np.float64)
    for i in range(x.size):
        old = x.flat[i]
        x.flat[i] = old + eps
        plus = f()
        x.flat[i] = old - eps
        minus = f()
        x.flat[i] = old
        grad.flat[i] = (plus - minus) / (2 * eps)
    return grad


def small_model(l2=0.0, dropout=0.0, dtype=np.float64, seed=0, n_in=5):
    layers = [mdl.Dense(n_in, 6), mdl.ReLU()]
    if dropout:
        layers.append(mdl.Dropout(dropout))
    layers += [mdl.Dense(6, 4), mdl.Tanh(), mdl.Dense(4, 1), mdl.Sigmoid()]
    return mdl.Sequential(layers, loss=mdl.BinaryCrossEntropy(l2=l2), seed=seed, dtype=dtype)


def snapshot(model):
    """Everything gradcheck and rejected calls must leave untouched."""
    params = {name: value.copy() for name, value in model.named_parameters()}
    rngs = [layer.rng.bit_generator.state for layer in model.layers if isinstance(layer, mdl.Dropout)]
    return params, rngs, model.training


def assert_unchanged(model, snap):
    params, rngs, training = snap
    for name, value in model.named_parameters():
        assert value.dtype == params[name].dtype
        assert np.array_equal(value, params[name]), name
    assert [layer.rng.bit_generator.state for layer in model.layers if isinstance(layer, mdl.Dropout)] == rngs
    assert model.training == training


@pytest.fixture
def data():
    rng = np.random.default_rng(42)
    X = rng.standard_normal((8, 5))
    Y = np.array([[0], [1], [1], [0], [1], [0], [0], [1]], dtype=float)
    return X, Y


@pytest.fixture
def cat_dir():
    path = os.environ.get("MINIDL_DATA_DIR")
    if not path or not os.path.isfile(os.path.join(path, "train_catvnoncat.h5")):
        pytest.skip("cat images not available: set MINIDL_DATA_DIR to a folder with train_catvnoncat.h5 and "
                    "test_catvnoncat.h5 (see data/README.md, or mdl.datasets.load_cat(DIR, download=True))")
    return path


def pytest_terminal_summary(terminalreporter):
    """Print the mutation battery's catch rate (tests/test_gradcheck.py) and the diagnosis battery's
    accuracy (tests/test_diagnose.py)."""
    import sys
    module = sys.modules.get("test_gradcheck")
    results = getattr(module, "RESULTS", None)
    if results:
        caught = sum(results.values())
        terminalreporter.write_line(f"mutation battery: {caught}/{len(results)} backprop bugs caught and located "
                                    f"({caught / len(results):.0%})")
        for name, ok in results.items():
            if not ok:
                terminalreporter.write_line(f"  missed: {name}")
    verdicts = getattr(sys.modules.get("test_diagnose"), "DIAGNOSED", None)
    if verdicts:
        counts = {v: verdicts.count(v) for v in ("named right", "named wrong", "not named")}
        terminalreporter.write_line(f"diagnosis battery: {len(verdicts)} mistakes, " +
                                    ", ".join(f"{n} {v}" for v, n in counts.items()))
    doctored = getattr(sys.modules.get("test_doctor"), "DOCTORED", None)
    if doctored:
        verdicts = list(doctored.values())
        counts = {v: verdicts.count(v) for v in ("named right", "named wrong", "missed")}
        terminalreporter.write_line(f"doctor battery: {len(verdicts)} broken setups, " +
                                    ", ".join(f"{n} {v}" for v, n in counts.items()))


def assert_same_central_differences(a, b, epsilon):
    """Two report groups hold the same central differences at epsilon, within the rounding bound of either."""
    D = [(g.fp - g.fm) / (2 * epsilon) + g.slope for g in (a, b)]
    noise = 10 * max(float(np.max(a.sigma)), float(np.max(b.sigma))) / epsilon
    np.testing.assert_allclose(D[0], D[1], rtol=1e-6, atol=noise)
    assert np.array_equal(a.kink, b.kink)


# ------------------------------------------------------------------ hypothesis: random correct models
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
