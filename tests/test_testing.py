"""minidl.testing.check_layer: the whole layer contract in one call, for every built-in layer and the user's."""
import os
import re

import numpy as np
import pytest

import minidl as mdl
from minidl.testing import LayerCheck, check_layer, layer_checks
from test_contract import CenterBatch, CenterRows, FirstTwo, NoInit, RandomKinks, Scale
from test_layers import LeakyReLU
from test_gradcheck import LAYER_MUTANTS, network

CHECKS = ["setup", "forward", "backward", "gradients", "float32", "declarations", "no mutation", "deterministic",
          "get_config", "checkpoint", "repr"]


class MyDense(mdl.Dense):
    """A Dense subclass, as people write one to change its backward: its repr says its own name."""


@pytest.mark.parametrize("layer", [mdl.Dense(3, 2), mdl.Dense(4, 3, init="he"), mdl.ReLU(), mdl.Sigmoid(), mdl.Tanh(),
                                   mdl.Dropout(0.3), LeakyReLU(0.1), Scale(), MyDense(3, 2)], ids=repr)
def test_every_built_in_layer_and_a_correct_users_layer_passes(layer):
    summary = check_layer(layer)
    assert [name for name, _ in summary.rows] == CHECKS
    assert str(summary).startswith(f"check_layer({layer!r}) on X of shape (6, ")
    assert "all 11 checks passed" in str(summary)


def test_the_summary_says_what_each_check_verified():
    text = str(check_layer(mdl.Dense(3, 2)))
    assert "  forward        ok  shape (6, 2) for an input of shape (6, 3), float64" in text
    assert "  checkpoint     ok  save/load as a built-in gives back the same parameters and outputs" in text
    assert "  checkpoint     ok  save/load with custom_layers={'LeakyReLU': ...}" in str(check_layer(LeakyReLU()))


@pytest.mark.parametrize("where, bug, expected", LAYER_MUTANTS, ids=[m[1] for m in LAYER_MUTANTS])
def test_every_broken_layer_of_the_mutation_battery_fails_the_gradient_check(where, bug, expected):
    layer = network(where, bug).layers[where]
    with pytest.raises(AssertionError, match=r"- gradients: gradcheck FAILED") as failure:
        check_layer(layer)
    assert f"check_layer({layer!r}) failed" in str(failure.value)


def test_a_false_declaration_fails_check_layer_while_gradcheck_passes_the_correct_layer():
    assert mdl.gradcheck_layer(CenterBatch(), np.random.default_rng(0).standard_normal((6, 4))).passed
    with pytest.raises(AssertionError) as failure:
        check_layer(CenterBatch())
    text = str(failure.value)
    assert text.startswith("check_layer(CenterBatch()) failed 1 of 11 checks:\n- declarations: CenterBatch declares "
                           "rowwise = True, but its output at row 0 moved when row 5 of its input did")
    with pytest.raises(AssertionError, match=r"- declarations: CenterRows declares elementwise = True, but its "
                                             r"output failed on a 1-D array of its input's values \(AxisError"):
        check_layer(CenterRows())
    with pytest.raises(AssertionError, match=r"- declarations: RandomKinks.kink_pattern gave two different answers"):
        check_layer(RandomKinks())


def test_every_failed_check_is_listed_once_with_its_reason():
    with pytest.raises(AssertionError) as failure:
        check_layer(Scale(mistake="keepdims"))
    assert str(failure.value).splitlines() == [
        "check_layer(Scale(n=5)) failed 3 of 11 checks:",
        "- backward: LayerContractError: Scale: grads['g'] must have the parameter's shape (5,); received shape "
        "(1, 5) (same values, another shape: a keepdims=True, or a transpose?)",
        "- gradients: fails as backward does",
        "- float32: fails as backward does"]
    with pytest.raises(AssertionError, match=r"- forward: LayerContractError: FirstTwo.forward must return shape "
                                             r"\(6, 4\)"):
        check_layer(FirstTwo())
    with pytest.raises(AssertionError) as failure:
        check_layer(NoInit())
    assert str(failure.value).splitlines()[1:] == [
        "- setup: LayerContractError: NoInit has no self.params / self.grads dicts: its __init__ must call "
        "super().__init__() first, which creates them",
        "- the other 10 checks need a layer that passes setup: not run"]


class Writes(LeakyReLU):
    def forward(self, X, training=False):
        self.X = X.copy()
        np.maximum(X, self.alpha * X, out=X)
        return X


class Noisy(LeakyReLU):
    def forward(self, X, training=False):
        return super().forward(X) + 1e-3 * np.random.default_rng().standard_normal(X.shape)


class ForgetsAlpha(LeakyReLU):
    def get_config(self):
        return {}


class DefaultRepr(LeakyReLU):
    __repr__ = object.__repr__


class SilentUpcast(LeakyReLU):
    def forward(self, X, training=False):
        return super().forward(X).astype(np.float64)


@pytest.mark.parametrize("layer, message", [
    (Writes(0.1), r"- no mutation: forward wrote into its input X \(the caller's array\)"),
    (Noisy(0.1), r"- deterministic: forward gave two different outputs for the same input"),
    (ForgetsAlpha(0.1), r"- get_config: type\(layer\)\(\*\*\{\}\) with the same parameters computes another output"),
    (DefaultRepr(0.1), r"- repr: repr is Python's default"),
    (SilentUpcast(0.1), r"- float32: forward returned float64 for float32 inputs and parameters"),
], ids=["writes into X", "not deterministic", "get_config forgets alpha", "default repr", "float32 upcast"])
def test_each_contract_check_catches_its_mistake(layer, message):
    with pytest.raises(AssertionError, match=message):
        check_layer(layer)


def test_layer_checks_gives_one_callable_check_per_pytest_test():
    checks = layer_checks(LeakyReLU(0.1))
    assert [str(check) for check in checks] == CHECKS
    assert all(isinstance(check, LayerCheck) for check in checks)
    assert checks[3]().startswith("dX and 0 parameter gradients match central differences")
    broken = {str(check): check for check in layer_checks(Writes(0.1))}
    with pytest.raises(AssertionError, match="forward wrote into its input"):
        broken["no mutation"]()
    assert broken["gradients"]().startswith("dX and 0 parameter gradients")


def test_the_input_width_comes_from_the_layer_or_an_error_asks_for_x():
    assert check_layer(mdl.Dense(7, 2)).input_shape == (6, 7)
    assert check_layer(Scale(n=3)).input_shape == (6, 3)
    assert check_layer(mdl.ReLU()).input_shape == (6, 4)
    X = np.random.default_rng(3).standard_normal((5, 9))
    assert check_layer(mdl.Tanh(), X=X).input_shape == (5, 9)

    class Kernel(mdl.Layer):
        rowwise = True

        def __init__(self):
            super().__init__()
            self.params["K"] = np.ones((3, 2))

        def forward(self, X, training=False):
            self.X = X
            return X @ self.params["K"]

        def backward(self, dA):
            self.grads["K"] = self.X.T @ dA
            return dA @ self.params["K"].T

        def output_width(self, n_in):
            return 2

    with pytest.raises(mdl.InputError, match=r"check_layer cannot tell the input width of Kernel from n_in, its "
                                             r"parameters \{'K': \(3, 2\)\} or get_config\(\): pass X, an array of "
                                             r"shape \(m, n_in\)"):
        check_layer(Kernel())
    assert "all 11 checks passed" in str(check_layer(Kernel(), X=X[:, :3]))
    with pytest.raises(mdl.InputTypeError, match="layer must be a minidl Layer instance; received type"):
        check_layer(LeakyReLU)


def test_check_layer_leaves_the_layer_unchanged():
    layer = Scale()
    before = layer.params["g"].copy()
    check_layer(layer)
    assert np.array_equal(layer.params["g"], before) and layer.grads == {}


def test_the_readme_layer_section_runs_as_written_and_prints_what_it_shows(tmp_path, monkeypatch, capsys):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    section = open(os.path.join(root, "README.md")).read().split("## Writing your own layer")[1]
    snippet = section.split("```python")[1].split("```")[0]
    shown = section.split("```python")[1].split("```\n\n```\n")[1].split("```")[0]
    monkeypatch.chdir(tmp_path)
    exec(compile("import numpy as np\nimport minidl as mdl\n" + snippet, "README.md", "exec"), {})
    assert (tmp_path / "model.h5").exists()
    digits = re.compile(r"\d\.\d+e-\d\d")       # rounding-level differences vary with NumPy and its BLAS
    assert digits.sub("#", capsys.readouterr().out) == digits.sub("#", shown)
