import io

import numpy as np
import pytest

import minidl as mdl
from conftest import small_model

RNG = np.random.default_rng(3)
X = RNG.standard_normal((40, 5))
Y = (X[:, :1] * X[:, 1:2] > 0).astype(float)


def weights(model):
    return [value.copy() for _, value in model.named_parameters()]


def fit(model=None, debug=False, **kwargs):
    model = model or small_model(l2=0.1, dropout=0.3)
    options = dict(epochs=5, batch_size=8, seed=1, progress=False, debug=debug, log=io.StringIO())
    options.update(kwargs)
    trainer = mdl.Trainer(model, mdl.Adam(0.01), **options)
    return trainer, trainer.fit(X, Y, validation=(X[:10], Y[:10]))


def test_history_has_one_entry_per_epoch():
    _, history = fit()
    for key in ("cost", "accuracy", "val_cost", "val_accuracy"):
        assert len(history[key]) == 5
    assert history["gradchecks"] == []
    assert history["cost"][-1] < history["cost"][0]


def test_one_seed_gives_bitwise_identical_training():
    a, _ = fit()
    b, _ = fit()
    c, _ = fit(seed=2)
    assert all(np.array_equal(x, y) for x, y in zip(weights(a.model), weights(b.model)))
    assert not all(np.array_equal(x, y) for x, y in zip(weights(a.model), weights(c.model)))


def test_debug_never_changes_the_trained_weights():
    plain, _ = fit(debug=False)
    debug, history = fit(debug=True, gradcheck_after=7)
    assert all(np.array_equal(x, y) for x, y in zip(weights(plain.model), weights(debug.model)))
    assert [step for step, _ in history["gradchecks"]] == [0, 7]
    assert all(report.passed for _, report in history["gradchecks"])
    assert all(report.scipy is not None for _, report in history["gradchecks"])


def test_debug_prints_one_line_per_check():
    log = io.StringIO()
    fit(debug=True, gradcheck_after=3, log=log)
    lines = log.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0] == "[debug] doctor: healthy"               # the doctor's report first: one line per finding
    assert lines[1].startswith("[debug] before training: gradcheck passed")
    assert lines[2].startswith("[debug] after 3 steps: gradcheck passed")


def test_minidl_debug_environment_variable_turns_debug_on(monkeypatch):
    monkeypatch.setenv("MINIDL_DEBUG", "1")
    assert mdl.Trainer(small_model()).debug is True
    assert mdl.Trainer(small_model(), debug=False).debug is False
    monkeypatch.setenv("MINIDL_DEBUG", "0")
    assert mdl.Trainer(small_model()).debug is False


class BrokenDense(mdl.Dense):
    def backward(self, dZ):
        dX = super().backward(dZ)
        self.grads["b"] = self.grads["b"] * 0.5
        return dX


def test_broken_layer_raises_before_the_first_step():
    model = mdl.Sequential([mdl.Dense(5, 6), mdl.ReLU(), BrokenDense(6, 1), mdl.Sigmoid()], seed=0)
    before = weights(model)
    with pytest.raises(mdl.GradientCheckError, match="gradient check failed before the first update") as info:
        fit(model, debug=True)
    assert info.value.step == 0 and info.value.report.failed_parameters == ["2.b"]
    assert "2.b" in str(info.value) and "BUG" in str(info.value)
    assert all(np.array_equal(x, y) for x, y in zip(before, weights(model)))


class SaturationBug(mdl.Tanh):
    """Uses tanh'(z) ~ 1 - z^2: right while |z| is small (at initialization), wrong once weights grow."""
    def forward(self, Z, training=False):
        self.Z = Z
        return super().forward(Z, training)

    def backward(self, dA):
        return dA * np.clip(1 - self.Z ** 2, 0, 1)


def test_bug_that_shows_only_away_from_initialization_raises_after_n_steps():
    model = mdl.Sequential([mdl.Dense(5, 6), SaturationBug(), mdl.Dense(6, 1), mdl.Sigmoid()], seed=0)
    for _, W in model.named_parameters():
        W *= 1e-3                                  # a tiny initialization: |Z| ~ 1e-3
    with pytest.raises(mdl.GradientCheckError, match="after 20 updates") as info:
        mdl.Trainer(model, mdl.Adam(0.05), epochs=50, batch_size=8, debug=True, gradcheck_after=20,
                    progress=False, log=io.StringIO()).fit(X, Y)
    assert info.value.step == 20
    assert "0.W" in info.value.report.failed_parameters


class NaNLayer(mdl.Layer):
    rowwise = elementwise = True

    def forward(self, X, training=False):
        return np.where(X > 1e9, np.nan, X) if training else X

    def backward(self, dA):
        return dA


def test_nan_in_activations_names_the_layer():
    model = mdl.Sequential([mdl.Dense(5, 3), NaNLayer(), mdl.Dense(3, 1), mdl.Sigmoid()], seed=0)
    model.layers[0].params["b"][...] = 1e10
    with pytest.raises(mdl.NonFiniteError, match=r"NaN in the output of layer 1 \(NaNLayer\(\)\)"):
        mdl.Trainer(model, debug=True, progress=False, log=io.StringIO(), gradcheck_after=10**6).fit(X, Y)


def test_early_stopping_restores_the_best_weights():
    trainer, history = fit(epochs=200, patience=3)
    assert len(history["val_cost"]) < 200
    best = int(np.argmin(history["val_cost"]))
    assert len(history["val_cost"]) == best + 1 + 3
    assert trainer.model.cost(X[:10], Y[:10]) == pytest.approx(history["val_cost"][best], rel=1e-12)
    assert trainer.stopped_early
    steps = trainer.step
    trainer.fit(X, Y, validation=(X[:10], Y[:10]))           # a stopped trainer does not train on
    assert trainer.step == steps and len(history["val_cost"]) == best + 1 + 3


def test_xor_reaches_full_accuracy():
    X4, Y4 = mdl.datasets.xor()
    model = mdl.Sequential([mdl.Dense(2, 4), mdl.Tanh(), mdl.Dense(4, 1), mdl.Sigmoid()], seed=0)
    history = mdl.Trainer(model, mdl.Adam(0.05), epochs=300, progress=False).fit(X4, Y4)
    assert history["accuracy"][-1] == 1.0
    assert np.array_equal(model.predict(X4), Y4.astype(int))


@pytest.mark.parametrize("kwargs, error, message", [
    ({"epochs": -1}, mdl.InputError, "epochs must be >= 0; received epochs=-1"),
    ({"batch_size": 0}, mdl.InputError, "batch_size must be >= 1; received batch_size=0"),
    ({"optimizer": "adam"}, mdl.InputTypeError, "optimizer must be a minidl optimizer"),
    ({"gradcheck_after": 2.5}, mdl.InputTypeError, "gradcheck_after must be an integer"),
])
def test_trainer_rejects_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        mdl.Trainer(small_model(), **kwargs)


def test_fit_rejects_bad_data_and_leaves_model_and_optimizer_unchanged():
    model = small_model()
    before = weights(model)
    trainer = mdl.Trainer(model, mdl.Adam(0.1), epochs=2, progress=False)
    with pytest.raises(mdl.InputError, match=r"Y must hold labels in \{0, 1\}"):
        trainer.fit(X, Y * 2)
    with pytest.raises(mdl.InputError, match="X_val has 4 features per example, but 5 were expected"):
        trainer.fit(X, Y, validation=(X[:, :4], Y))
    with pytest.raises(mdl.InputTypeError, match=r"validation must be a tuple \(X_val, Y_val\)"):
        trainer.fit(X, Y, validation=X)
    with pytest.raises(mdl.InputError, match="patience needs validation data"):
        mdl.Trainer(model, patience=2).fit(X, Y)
    assert all(np.array_equal(x, y) for x, y in zip(before, weights(model)))
    assert trainer.optimizer.t == 0 and trainer.optimizer.state == {} and trainer.step == 0


FRESH = """
import hashlib, numpy as np, minidl as mdl
rng = np.random.default_rng(3)
X = rng.standard_normal((40, 5)); Y = (X[:, :1] * X[:, 1:2] > 0).astype(float)
model = mdl.Sequential([mdl.Dense(5, 6), mdl.ReLU(), mdl.Dropout(0.3), mdl.Dense(6, 1), mdl.Sigmoid()],
                       loss=mdl.BinaryCrossEntropy(0.1), seed=8)
mdl.Trainer(model, mdl.Adam(0.01), epochs=4, batch_size=8, seed=2, progress=False).fit(X, Y)
print(hashlib.sha256(b"".join(v.tobytes() for _, v in model.named_parameters())).hexdigest())
"""


def test_training_is_bitwise_reproducible_in_a_fresh_process():
    import subprocess
    import sys
    digests = {subprocess.run([sys.executable, "-c", FRESH], capture_output=True, text=True, check=True).stdout
               for _ in range(2)}
    namespace = {}
    import contextlib
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(FRESH, namespace)
    assert digests == {buffer.getvalue()}
    assert len(buffer.getvalue().strip()) == 64


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")   # the NaN this test plants
def test_divergence_is_an_error_not_nan_weights():
    model = mdl.Sequential([mdl.Dense(5, 6), NaNLayer(), mdl.Dense(6, 1), mdl.Sigmoid()], seed=0)
    model.layers[0].params["b"][...] = 1e10                 # the layer turns these into NaN while training
    before = weights(model)
    with pytest.raises(mdl.NonFiniteError, match=r"training diverged: the cost of step 1 \(epoch 1\) is nan; "
                                                 r"lower the learning rate \(now 0.001\) or run with debug=True"):
        mdl.Trainer(model, epochs=3, progress=False).fit(X, Y)
    assert all(np.array_equal(a, b) for a, b in zip(before, weights(model)))    # no NaN update applied


def test_ctrl_c_finishes_the_update_in_progress_then_raises():
    import os
    import signal
    X, Y = mdl.datasets.xor()

    class SignalledAdam(mdl.Adam):
        def step(self, model):
            if self.t == 2:                  # Ctrl-C arrives in the middle of the third update
                os.kill(os.getpid(), signal.SIGINT)
            super().step(model)

    model = mdl.Sequential([mdl.Dense(2, 3), mdl.Tanh(), mdl.Dense(3, 1), mdl.Sigmoid()], seed=0)
    trainer = mdl.Trainer(model, SignalledAdam(0.05), epochs=10, batch_size=1, progress=False)
    with pytest.raises(KeyboardInterrupt, match="training interrupted at epoch 1 of 10, after 3 updates"):
        trainer.fit(X, Y)
    assert trainer.interrupted and trainer.step == 3 and trainer.epoch == 0
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    reference = mdl.Sequential([mdl.Dense(2, 3), mdl.Tanh(), mdl.Dense(3, 1), mdl.Sigmoid()], seed=0)
    order = mdl.Trainer(reference, mdl.Adam(0.05), seed=0, progress=False).rng.permutation(4)   # the same shuffle
    optimizer = mdl.Adam(0.05)
    for i in order[:3]:
        reference.backward(X[i:i + 1], Y[i:i + 1], training=True)
        optimizer.step(reference)
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(model.named_parameters(), reference.named_parameters()))


def test_debug_runs_the_doctor_first_and_watches_at_the_second_check():
    X, Y = mdl.datasets.xor()
    log = io.StringIO()
    model = mdl.Sequential([mdl.Dense(2, 4), mdl.Tanh(), mdl.Dense(4, 1), mdl.Sigmoid()], seed=0)
    trainer = mdl.Trainer(model, mdl.SGD(1e-9), epochs=12, batch_size=4, debug=True, gradcheck_after=10,
                          progress=False, log=log)
    history = trainer.fit(X, Y)
    lines = log.getvalue().splitlines()
    assert lines[0].startswith("[debug] doctor: [learning rate too low] one step of SGD(lr=1e-09) changes every "
                               "weight by at most")
    assert "learning rate too low" in history["doctor"].kinds()
    watched = [(step, f.kind) for step, f in history["doctor_watch"]]
    assert (10, "plateau") in watched and (10, "update ratio") in watched
    plateau = next(f for _, f in history["doctor_watch"] if f.kind == "plateau")
    assert plateau.message.startswith("epoch 10: the cost has not moved over the last epochs")   # step 10 ends epoch 10
    assert any(line.startswith("[debug] doctor: [plateau] epoch 10:") for line in lines)
