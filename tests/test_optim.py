import numpy as np
import pytest

import minidl as mdl


def model_with_grads(dtype=np.float64):
    model = mdl.Sequential([mdl.Dense(2, 1), mdl.Sigmoid()], dtype=dtype)
    X = np.array([[1.0, 2.0], [0.5, -1.0]])
    Y = np.array([[1], [0]])
    model.gradients(X, Y)   # fills the layers' grads
    return model


def test_sgd_step():
    model = model_with_grads()
    before = {n: v.copy() for n, v in model.named_parameters()}
    grads = {n: g.copy() for n, g in model.named_gradients()}
    mdl.SGD(lr=0.1).step(model)
    for name, value in model.named_parameters():
        np.testing.assert_allclose(value, before[name] - 0.1 * grads[name], rtol=1e-15)


def test_momentum_two_steps():
    model = model_with_grads()
    W0 = model.layers[0].params["W"].copy()
    g = model.layers[0].grads["W"].copy()
    opt = mdl.Momentum(lr=0.1, beta=0.9)
    opt.step(model)
    opt.step(model)     # same grads: v1 = 0.1 g, v2 = 0.09 g + 0.1 g
    np.testing.assert_allclose(model.layers[0].params["W"], W0 - 0.1 * (0.1 * g + 0.19 * g), rtol=1e-14)


def test_adam_first_step_is_lr_times_sign_thanks_to_bias_correction():
    model = model_with_grads()
    W0 = model.layers[0].params["W"].copy()
    g = model.layers[0].grads["W"]
    mdl.Adam(lr=0.01).step(model)
    np.testing.assert_allclose(model.layers[0].params["W"], W0 - 0.01 * g / (np.abs(g) + 1e-8), rtol=1e-12)


def test_adam_matches_formula_over_steps():
    model = model_with_grads()
    W = model.layers[0].params["W"].copy()
    g = model.layers[0].grads["W"].copy()
    opt = mdl.Adam(lr=0.01, beta1=0.8, beta2=0.9, eps=1e-6)
    m = v = 0
    for t in range(1, 4):
        opt.step(model)
        m = 0.8 * m + 0.2 * g
        v = 0.9 * v + 0.1 * g * g
        W = W - 0.01 * (m / (1 - 0.8 ** t)) / (np.sqrt(v / (1 - 0.9 ** t)) + 1e-6)
    np.testing.assert_allclose(model.layers[0].params["W"], W, rtol=1e-12)


@pytest.mark.parametrize("opt", [mdl.SGD(0.1), mdl.Momentum(0.1), mdl.Adam(0.1)], ids=repr)
def test_float32_parameters_stay_float32(opt):
    model = model_with_grads(np.float32)
    opt.step(model)
    assert all(v.dtype == np.float32 for _, v in model.named_parameters())


def test_state_dict_round_trip():
    model = model_with_grads()
    opt = mdl.Adam(0.1)
    opt.step(model)
    state = opt.state_dict()
    other = mdl.Adam(0.1)
    other.load_state_dict(state)
    assert other.t == 1 and set(other.state) == set(opt.state)
    for key in opt.state:
        assert np.array_equal(other.state[key], opt.state[key])


@pytest.mark.parametrize("factory, message", [
    (lambda: mdl.SGD(0), r"lr must be a finite number in \(0, inf\); received lr=0.0"),
    (lambda: mdl.Adam(lr="fast"), "lr must be a real number; received str 'fast'"),
    (lambda: mdl.Momentum(0.1, beta=1.0), r"beta must be a finite number in \[0, 1\); received beta=1.0"),
    (lambda: mdl.Adam(beta2=-0.5), r"beta2 must be a finite number in \[0, 1\)"),
])
def test_bad_hyperparameters(factory, message):
    with pytest.raises((ValueError, TypeError), match=message):
        factory()


def test_reprs():
    assert repr(mdl.SGD(0.5)) == "SGD(lr=0.5)"
    assert repr(mdl.Adam()) == "Adam(lr=0.001, beta1=0.9, beta2=0.999, eps=1e-08)"


# ------------------------------------------------------------------ misuse
@pytest.mark.parametrize("optimizer", [mdl.SGD(), mdl.Momentum(), mdl.Adam()])
def test_an_optimizer_step_before_any_backward_says_what_to_do(optimizer):
    model = mdl.Sequential([mdl.Dense(2, 3), mdl.Tanh(), mdl.Dense(3, 1), mdl.Sigmoid()])
    before = [v.copy() for _, v in model.named_parameters()]
    with pytest.raises(mdl.InputError, match=r"no gradients for 0.W: call model.backward\(X, Y\) before "
                                             r"optimizer.step\(model\)"):
        optimizer.step(model)
    assert all(np.array_equal(a, v) for a, (_, v) in zip(before, model.named_parameters()))


def test_an_open_interval_is_printed_as_one():
    with pytest.raises(mdl.InputError, match=r"lr must be a finite number in \(0, inf\); received lr=-1.0"):
        mdl.Adam(lr=-1)
