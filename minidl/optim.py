"""Optimizers that update a model's parameters in place from its last backward pass."""
import numpy as np

from .errors import InputError, InputTypeError
from .validation import check_float


class Optimizer:
    """Base class: ``step(model)`` applies one update to every parameter of ``model``.

    Per-parameter state (velocities, moments) is kept in ``self.state`` keyed by the
    parameter's name, and ``self.t`` counts the steps taken.
    """

    def __init__(self, lr):
        self.lr = check_float(lr, "lr", low=0.0, low_inclusive=False)
        self.state = {}
        self.t = 0

    def step(self, model):
        """Update each parameter of ``model`` in place with the gradients of its last backward."""
        for i, layer in enumerate(model.layers):
            missing = [name for name in layer.params if name not in layer.grads]
            if missing:
                raise InputError(f"no gradients for {i}.{missing[0]}: call model.backward(X, Y) before "
                                 f"optimizer.step(model)")
        self.t += 1
        for (name, param), (_, grad) in zip(model.named_parameters(), model.named_gradients()):
            param -= self._delta(name, grad).astype(param.dtype, copy=False)

    def _delta(self, name, grad):
        raise NotImplementedError

    def _slot(self, key, like):
        if key not in self.state:
            self.state[key] = np.zeros_like(like)
        return self.state[key]

    def get_config(self):
        return {"lr": self.lr}

    def state_dict(self):
        """Step count and state arrays, for checkpoints."""
        return {"t": self.t, "arrays": {k: v.copy() for k, v in self.state.items()}}

    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` returned."""
        if not isinstance(state, dict) or "t" not in state or "arrays" not in state:
            raise InputTypeError("state must be a dict with keys 't' and 'arrays', as state_dict() returns")
        self.t = int(state["t"])
        self.state = {k: np.array(v) for k, v in state["arrays"].items()}

    def __repr__(self):
        args = ", ".join(f"{k}={v:g}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Gradient descent: ``W -= lr * dW``."""

    def __init__(self, lr=0.01):
        super().__init__(lr)

    def _delta(self, name, grad):
        return self.lr * grad


class Momentum(Optimizer):
    """Gradient descent with momentum: ``v = beta v + (1 - beta) dW``; ``W -= lr * v``."""

    def __init__(self, lr=0.01, beta=0.9):
        super().__init__(lr)
        self.beta = check_float(beta, "beta", 0.0, 1.0, high_inclusive=False)

    def _delta(self, name, grad):
        v = self._slot(name + ".v", grad)
        v *= self.beta
        v += (1 - self.beta) * grad
        return self.lr * v

    def get_config(self):
        return {"lr": self.lr, "beta": self.beta}


class Adam(Optimizer):
    """Adam with bias correction.

    ``m = b1 m + (1 - b1) dW``; ``v = b2 v + (1 - b2) dW**2``;
    ``W -= lr * (m / (1 - b1**t)) / (sqrt(v / (1 - b2**t)) + eps)``.
    """

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(lr)
        self.beta1 = check_float(beta1, "beta1", 0.0, 1.0, high_inclusive=False)
        self.beta2 = check_float(beta2, "beta2", 0.0, 1.0, high_inclusive=False)
        self.eps = check_float(eps, "eps", low=0.0, low_inclusive=False)

    def _delta(self, name, grad):
        m = self._slot(name + ".m", grad)
        v = self._slot(name + ".v", grad)
        m *= self.beta1
        m += (1 - self.beta1) * grad
        v *= self.beta2
        v += (1 - self.beta2) * np.square(grad)
        # lr * m_hat / (sqrt(v_hat) + eps), with the bias corrections folded into scalars
        denominator = np.sqrt(v)
        denominator *= 1 / np.sqrt(1 - self.beta2 ** self.t)
        denominator += self.eps
        step = np.divide(m, denominator, out=denominator)
        step *= self.lr / (1 - self.beta1 ** self.t)
        return step

    def get_config(self):
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}


OPTIMIZERS = {cls.__name__: cls for cls in (SGD, Momentum, Adam)}
