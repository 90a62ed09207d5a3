"""The layer contract (minidl/contract.py): a user's layer is held to it, with the layer named, and what it
declares about itself is probed on the data before the gradient checker relies on it."""
import numpy as np
import pytest

import minidl as mdl
from minidl import contract
from conftest import assert_same_central_differences

RNG = np.random.default_rng(0)
X = RNG.standard_normal((8, 3))
Y = np.array([0, 1, 1, 0, 1, 0, 0, 1])


def around(layer, width=5, seed=1):
    """Dense(3, width), Tanh, the layer at index 2, Dense(width, 1), Sigmoid."""
    return mdl.Sequential([mdl.Dense(3, width), mdl.Tanh(), layer, mdl.Dense(width, 1), mdl.Sigmoid()], seed=seed)


class CenterBatch(mdl.Layer):
    """``A = X - mean over the batch``: mixes examples, yet copies the README LeakyReLU's declaration."""
    elementwise = rowwise = True

    def __init__(self, right=True):
        super().__init__()
        self.right = right

    def forward(self, X, training=False):
        return X - X.mean(axis=0)

    def backward(self, dA):
        return dA - dA.mean(axis=0) if self.right else dA       # the wrong one forgets the mean term


class CenterRows(mdl.Layer):
    """``A = X - mean over the units of each example``: rowwise, not elementwise, declared elementwise."""
    elementwise = rowwise = True

    def forward(self, X, training=False):
        return X - X.mean(axis=1, keepdims=True)

    def backward(self, dA):
        return dA - dA.mean(axis=1, keepdims=True)


class RandomKinks(mdl.Layer):
    """A smooth layer with a wrong backward whose kink_pattern is noise: every coordinate would be 'a kink'."""
    elementwise = rowwise = True

    def __init__(self):
        super().__init__()
        self.rng = np.random.default_rng(1)

    def forward(self, X, training=False):
        self.A = np.tanh(X)
        return self.A

    def backward(self, dA):
        return dA * (1 - self.A)          # 1 - A where 1 - A**2 belongs

    def kink_pattern(self, X):
        return self.rng.random(X.shape) > 0.5


class Scale(mdl.Layer):
    """``A = X * g`` with one factor per unit; ``mistake`` picks a contract break."""
    rowwise = True

    def __init__(self, n=5, mistake=None):
        super().__init__()
        self.params["g"] = np.linspace(0.5, 1.5, n)
        self.mistake = mistake

    def forward(self, X, training=False):
        self.X = X
        return X.T if self.mistake == "forward transposed" else X * self.params["g"]

    def backward(self, dA):
        dX = dA * self.params["g"]
        if self.mistake == "keepdims":
            self.grads["g"] = (dA * self.X).sum(axis=0, keepdims=True)
        elif self.mistake != "no grads":
            self.grads["g"] = (dA * self.X).sum(axis=0)
        if self.mistake == "returns None":
            return None
        return dX.T.copy() if self.mistake == "dX transposed" else dX

    def get_config(self):
        return {"n": self.params["g"].size}


class FirstTwo(mdl.Layer):
    """Keeps the first two units, and forgets to say so with output_width."""
    rowwise = True

    def forward(self, X, training=False):
        self.n = X.shape[1]
        return X[:, :2]

    def backward(self, dA):
        dX = np.zeros((dA.shape[0], self.n))
        dX[:, :2] = dA
        return dX


class NoInit(mdl.Layer):
    def __init__(self, alpha=0.1):
        self.alpha = alpha

    def forward(self, X, training=False):
        return X * self.alpha

    def backward(self, dA):
        return dA * self.alpha


# ---------------------------------------------------------------------------- false declarations
def test_a_layer_that_mixes_examples_and_declares_rowwise_gets_the_right_numbers():
    model = around(CenterBatch(right=True))
    report = model.gradcheck(X, Y)
    loop = model.gradcheck(X, Y, method="loop", scipy_check=False)
    assert report.passed, str(report)
    assert report.difference < 1e-7          # main: passed, but 1.6e-02 computed on the false shortcut
    for fast, plain in zip(report.groups, loop.groups):
        assert_same_central_differences(fast, plain, 1e-7)
    assert any(note.startswith("layer 2 (CenterBatch) declares rowwise = True, but its output at row 0 moved "
                               "when row 7 of its input did: checked without that shortcut")
               for note in report.declarations), report.declarations
    assert any("layer 2 (CenterBatch) declares elementwise = True" in note for note in report.declarations)
    assert "declaration: layer 2 (CenterBatch) declares rowwise = True" in str(report)


def test_a_wrong_backward_never_passes_because_of_a_false_declaration():
    report = around(CenterBatch(right=False)).gradcheck(X, Y)
    assert not report.passed                 # main: "passed: difference 1.6e-02"
    assert set(report.failed_parameters) == {"0.W", "0.b"}
    assert {finding.layer for finding in report.diagnosis} == {2}


def test_a_rowwise_layer_declared_elementwise_no_longer_crashes_the_check():
    report = around(CenterRows()).gradcheck(X, Y)      # main: NumPy's AxisError
    assert report.passed, str(report)
    assert report.difference < 1e-7
    [note] = report.declarations
    assert note.startswith("layer 2 (CenterRows) declares elementwise = True, but its output failed on a 1-D "
                           "array of its input's values (AxisError")
    assert note.endswith("checked without that shortcut (whole rows through its forward)")


def test_a_kink_pattern_that_is_noise_cannot_hide_a_wrong_backward():
    report = around(RandomKinks()).gradcheck(X, Y)
    assert not report.passed and not report.kinks       # main: passed, every coordinate 'a kink'
    assert "layer 2 (RandomKinks).kink_pattern gave two different answers for the same input: checked as if " \
           "the layer had no kinks" in report.declarations
    layer_report = mdl.gradcheck_layer(RandomKinks(), X)
    assert not layer_report.passed and not layer_report.kinks
    assert layer_report.declarations == ["RandomKinks.kink_pattern gave two different answers for the same input: "
                                         "checked as if the layer had no kinks"]


def test_the_trainers_debug_check_is_not_fooled_by_a_false_declaration():
    trainer = mdl.Trainer(around(CenterBatch(right=False)), mdl.SGD(0.1), epochs=1, batch_size=8, debug=True,
                          progress=False)
    with pytest.raises(mdl.GradientCheckError, match="declares rowwise = True"):
        trainer.fit(X, Y)


def test_true_declarations_are_kept_and_built_in_layers_are_not_probed(monkeypatch):
    from test_layers import LeakyReLU          # the README's old example: every declaration true
    A = RNG.standard_normal((6, 4))
    shortcuts = contract.probe(LeakyReLU(0.1), A, LeakyReLU(0.1).forward(A), False, "layer 1 (LeakyReLU)")
    assert (shortcuts.elementwise, shortcuts.rowwise, shortcuts.kinks, shortcuts.notes) == (True, True, True, [])
    assert around(LeakyReLU(0.1)).gradcheck(X, Y).declarations == []
    calls = []
    monkeypatch.setattr(mdl.ReLU, "forward", lambda self, Z, training=False: calls.append(Z.shape) or
                        np.maximum(Z, 0))
    shortcuts = contract.probe(mdl.ReLU(), A, np.maximum(A, 0), False, "layer 1 (ReLU)")
    assert (shortcuts.elementwise, shortcuts.rowwise, shortcuts.notes, calls) == (True, True, [], [])


def test_a_layer_that_depends_on_the_batch_size_is_not_rowwise():
    class PerBatch(mdl.Layer):
        rowwise = True

        def forward(self, X, training=False):
            return X / len(X)

        def backward(self, dA):
            return dA / len(dA)

    shortcuts = contract.probe(PerBatch(), X, X / 8, False, "layer 2 (PerBatch)")
    assert not shortcuts.rowwise
    assert shortcuts.notes == ["layer 2 (PerBatch) declares rowwise = True, but its output at row 7 changed when "
                               "the rows were reordered and a moved copy of the batch was stacked below them: "
                               "checked without that shortcut (one copy of the batch at a time)"]
    assert around(PerBatch()).gradcheck(X, Y).passed


# ---------------------------------------------------------------------------- the contract, layer named
def test_a_gradient_of_the_wrong_shape_is_an_error_naming_the_layer_and_the_key():
    message = r"layer 2 \(Scale\): grads\['g'\] must have the parameter's shape \(5,\); received shape \(1, 5\) " \
              r"\(same values, another shape: a keepdims=True, or a transpose\?\)"
    with pytest.raises(mdl.LayerContractError, match=message):
        around(Scale(mistake="keepdims")).gradcheck(X, Y)          # main: passed
    trainer = mdl.Trainer(around(Scale(mistake="keepdims")), mdl.SGD(0.1), epochs=1, batch_size=8, progress=False)
    with pytest.raises(mdl.LayerContractError, match=message):
        trainer.fit(X, Y)                                       # main: NumPy's non-broadcastable output operand
    with pytest.raises(mdl.LayerContractError, match=r"^Scale: grads\['g'\] must have the parameter's shape"):
        mdl.gradcheck_layer(Scale(mistake="keepdims"), X @ np.ones((3, 5)))


def test_a_missing_gradient_is_named_and_fit_does_not_say_call_backward_first():
    message = r"layer 2 \(Scale\).backward must store self.grads\['g'\], the gradient of params\['g'\]; it stored \[\]"
    with pytest.raises(mdl.LayerContractError, match=message):
        around(Scale(mistake="no grads")).gradcheck(X, Y)      # main: bare KeyError: 'g'
    model = around(Scale(mistake="no grads"))
    with pytest.raises(mdl.LayerContractError, match=message):
        mdl.Trainer(model, mdl.SGD(0.1), epochs=1, batch_size=8, progress=False).fit(X, Y)


def test_a_gradient_left_from_an_earlier_backward_does_not_hide_a_missing_one():
    layer = Scale()
    model = around(layer)
    model.backward(X, Y)
    layer.mistake = "no grads"
    with pytest.raises(mdl.LayerContractError, match=r"must store self.grads\['g'\]"):
        model.backward(X, Y)


@pytest.mark.parametrize("mistake, message", [
    ("returns None", r"layer 2 \(Scale\).backward returned None; it must return dX, the gradient with respect "
                     r"to its input, of shape \(8, 5\)"),
    ("dX transposed", r"layer 2 \(Scale\).backward must return dX of its input's shape \(8, 5\); received shape "
                      r"\(5, 8\): transposed\?"),
    ("forward transposed", r"layer 2 \(Scale\).forward must return shape \(8, 5\) for an input of shape \(8, 5\); "
                           r"received shape \(5, 8\): transposed\? rows are examples"),
])
def test_each_contract_mistake_is_an_error_naming_the_layer(mistake, message):
    with pytest.raises(mdl.LayerContractError, match=message):     # main: TypeError or a matmul error
        around(Scale(mistake=mistake)).gradcheck(X, Y)
    with pytest.raises(mdl.LayerContractError, match=message):
        around(Scale(mistake=mistake)).backward(X, Y)


def test_a_width_changing_layer_without_output_width_is_named_not_the_dense_after_it():
    with pytest.raises(mdl.InputError, match=r"layers\[3\] is Dense\(2, 1\) with n_in=2, but the layer before it "
                                             r"outputs width 5 \(as the layers declare: layers\[2\] \(FirstTwo\) "
                                             r"does not define output_width, so it is taken to keep the width; a "
                                             r"layer that changes the width must define output_width"):
        mdl.Sequential([mdl.Dense(3, 5), mdl.Tanh(), FirstTwo(), mdl.Dense(2, 1), mdl.Sigmoid()])
    model = mdl.Sequential([mdl.Dense(3, 5), FirstTwo(), mdl.Dense(5, 1), mdl.Sigmoid()])
    with pytest.raises(mdl.LayerContractError, match=r"layer 1 \(FirstTwo\).forward must return shape \(8, 5\) for "
                                                     r"an input of shape \(8, 5\); received shape \(8, 2\): "
                                                     r"output_width\(5\) says 5; if the layer changes the width, "
                                                     r"define output_width\(self, n_in\)"):
        model.forward(X)


def test_forgetting_super_init_is_named():
    message = r"has no self.params / self.grads dicts: its __init__ must call super\(\).__init__\(\) first"
    with pytest.raises(mdl.LayerContractError, match=r"layers\[2\] \(NoInit\) " + message):
        around(NoInit())                       # main: 'NoInit' object has no attribute 'params'
    with pytest.raises(mdl.LayerContractError, match=r"^NoInit " + message):
        mdl.gradcheck_layer(NoInit(), X)


def test_a_regularized_name_that_is_no_parameter_is_named():
    class Odd(Scale):
        regularized = ("W",)
    with pytest.raises(mdl.LayerContractError, match=r"layers\[2\] \(Odd\) declares regularized = \('W',\), but "
                                                     r"has no parameter 'W'; its params are \['g'\]"):
        around(Odd())


def test_the_contract_error_is_a_value_error():
    assert issubclass(mdl.LayerContractError, mdl.InputError) and issubclass(mdl.LayerContractError, ValueError)


class PerUnit(mdl.Layer):
    """``A = X * g``, one g per unit, declared elementwise (it is only rowwise)."""
    elementwise = rowwise = True

    def __init__(self, n=5, right=True):
        super().__init__()
        self.params["g"] = np.linspace(0.5, 2.0, n)
        self.right = right

    def forward(self, X, training=False):
        self.X = X
        return X * self.params["g"]

    def backward(self, dA):
        self.grads["g"] = (dA * self.X).sum(axis=0)
        return dA * self.params["g"] if self.right else dA


class PerBatch(mdl.Layer):
    """``A = X / m``: depends on the batch size, declared rowwise and elementwise."""
    elementwise = rowwise = True

    def __init__(self, right=True):
        super().__init__()
        self.right = right

    def forward(self, X, training=False):
        return X / len(X)

    def backward(self, dA):
        return dA / len(dA) if self.right else dA


class CenterRowsWrong(CenterRows):
    def backward(self, dA):
        return dA


LYING = {"CenterBatch": (CenterBatch, lambda: CenterBatch(right=False)),
         "CenterRows": (CenterRows, CenterRowsWrong),
         "PerUnit": (PerUnit, lambda: PerUnit(right=False)),
         "PerBatch": (PerBatch, lambda: PerBatch(right=False))}


def test_a_sweep_of_lying_layers_gives_no_false_pass_and_no_false_alarm():
    """Random networks around each lying layer, correct and with the backward mistake its lie would hide."""
    tried, false_alarms, misses = 0, [], []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        X_ = rng.standard_normal((int(rng.integers(1, 12)), 3)) * rng.choice([0.3, 1, 3])
        Y_ = rng.integers(0, 2, len(X_))
        act = [mdl.Tanh, mdl.Sigmoid, mdl.ReLU][seed % 3]
        for name, (right, wrong) in LYING.items():
            for make, correct in ((right, True), (wrong, False)):
                model = mdl.Sequential([mdl.Dense(3, 5), act(), make(), mdl.Dense(5, 1), mdl.Sigmoid()],
                                       loss=mdl.BinaryCrossEntropy(float(rng.choice([0, 0.3]))), seed=seed)
                passed = model.gradcheck(X_, Y_, scipy_check=False).passed
                tried += 1
                if correct and not passed:
                    false_alarms.append((name, seed))
                if not correct and passed and not (name == "PerBatch" and len(X_) == 1):   # X / 1: no mistake
                    misses.append((name, seed))
    print(f"lying layers: {tried} networks, {len(false_alarms)} false alarms, {len(misses)} misses")
    assert (false_alarms, misses) == ([], []), (false_alarms, misses)
