"""Layers: each is its math, a forward that caches what backward needs, and a backward.

Shapes: rows are examples. A layer maps ``X`` of shape ``(m, n_in)`` to ``A`` of shape
``(m, n_out)``; ``backward(dA)`` takes ``dJ/dA`` of shape ``(m, n_out)``, stores
``dJ/dparam`` in ``self.grads`` and returns ``dJ/dX`` of shape ``(m, n_in)``.
"""
import numpy as np
from scipy.special import expit

from .errors import InputError
from .validation import check_choice, check_float, check_int, check_seed


class Layer:
    """Base class for every layer, built-in or user-written.

    A subclass fills ``self.params`` (name -> array) in ``__init__`` and implements
    ``forward`` and ``backward``. ``backward`` must fill ``self.grads`` with arrays of the
    same keys and shapes as ``self.params``. Layers without parameters leave both empty.

    The contract (checked with the layer named, :class:`~minidl.errors.LayerContractError`, wherever
    a model runs a layer that is not one of minidl's own): ``forward`` returns a float array of shape
    ``(m, output_width(n_in))``; ``backward`` returns dX of the input's shape and stores one gradient
    of each parameter's exact shape. :func:`minidl.testing.check_layer` runs all of it on one layer.

    Optional hooks, all with safe defaults. The declarations (``elementwise``, ``rowwise``,
    ``kink_pattern``) are probed on the data of every gradient check before the checker relies on
    them; one the data contradicts is dropped and named in ``report.declarations``:

    ``kink_pattern(X)``
        For layers with non-differentiable points (ReLU at 0, abs, LeakyReLU): return an
        array of the input's shape saying which smooth piece each element lies on (for
        ReLU, ``X > 0``). The gradient checker compares the pattern of the perturbed and
        unperturbed inputs; a coordinate whose perturbation changes it crossed a kink and
        is reported in ``report.kinks`` instead of being called a bug. Default: ``None``
        (smooth everywhere).
    ``elementwise``
        True when ``A[r, c] = f(X[r, c])`` with one scalar function ``f`` for every
        position, so ``forward`` can be applied to an array of any shape. Lets the
        gradient checker push perturbations of a single column through cheaply.
    ``rowwise``
        True when each example (row) is mapped independently of the others. The gradient
        checker then stacks many perturbed copies of the batch as extra rows and sends
        them through ``forward`` at once. Leave False for layers that mix examples (batch
        normalization); they are then evaluated one perturbed copy at a time.
    ``regularized``
        Names of parameters included in the loss's L2 penalty (``("W",)`` for Dense).
    ``output_width(n_in)``
        Width of the output for an input of width ``n_in`` (default: unchanged).
    ``get_config()``
        Constructor arguments as plain data, so that checkpoints can rebuild the layer.

    Examples
    --------
    >>> class LeakyReLU(Layer):
    ...     elementwise = rowwise = True
    ...     def __init__(self, alpha=0.01):
    ...         super().__init__()
    ...         self.alpha = alpha
    ...     def forward(self, X, training=False):
    ...         self.X = X
    ...         return np.where(X > 0, X, self.alpha * X)
    ...     def backward(self, dA):
    ...         return dA * np.where(self.X > 0, 1.0, self.alpha)
    ...     def kink_pattern(self, X):
    ...         return X > 0
    """

    elementwise = False
    rowwise = False
    regularized = ()

    def __init__(self):
        self.params = {}
        self.grads = {}

    def forward(self, X, training=False):
        """Compute the layer's output ``(m, n_out)`` from ``X`` ``(m, n_in)``."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward(X, training=False)")

    def backward(self, dA):
        """Return ``dJ/dX`` ``(m, n_in)`` from ``dJ/dA`` ``(m, n_out)``; fill ``self.grads``."""
        raise NotImplementedError(f"{type(self).__name__} must implement backward(dA)")

    def kink_pattern(self, X):
        """Which smooth piece each element of ``X`` lies on, or None if the layer is smooth."""
        return None

    def output_width(self, n_in):
        """Width of the output for an input of width ``n_in``."""
        return n_in

    def _cached(self, name):
        """What ``forward`` cached for ``backward``; a clear error when forward has not run."""
        value = getattr(self, name, None)
        if value is None:
            raise InputError(f"{type(self).__name__}.backward was called before forward: call forward(X) first, "
                             f"which caches the {name} that backward needs")
        return value

    def get_config(self):
        """Constructor arguments as plain data (``type(self)(**config)`` rebuilds the layer)."""
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Dense(Layer):
    """Fully connected layer: ``Z = X @ W + b``.

    Parameters
    ----------
    n_in, n_out : int
        Input and output widths.
    init : {"auto", "he", "xavier"}
        Weight initialization. "he" draws ``W ~ N(0, 2 / n_in)`` (for ReLU), "xavier"
        ``W ~ N(0, 1 / n_in)`` (for tanh and sigmoid); "auto" picks He when the next layer
        of the Sequential is a ReLU and Xavier otherwise. ``b`` starts at zero.
    seed : int
        Seeds the initial weights of a layer used on its own; a Sequential re-draws them
        from the model's seed.

    Attributes
    ----------
    needs_dX : bool
        When False, ``backward`` skips ``dX`` (returns None). A Sequential sets it for its
        first layer, whose ``dX`` nobody uses: that product is as costly as ``dW``.

    Shape
    -----
    ``X``: (m, n_in) -> ``Z``: (m, n_out). ``W``: (n_in, n_out), ``b``: (n_out,).

    Examples
    --------
    >>> layer = Dense(3, 2)
    >>> layer.forward(np.ones((4, 3))).shape
    (4, 2)
    """

    rowwise = True
    regularized = ("W",)

    def __init__(self, n_in, n_out, init="auto", seed=0):
        super().__init__()
        self.n_in = check_int(n_in, "n_in", minimum=1)
        self.n_out = check_int(n_out, "n_out", minimum=1)
        self.init = check_choice(init, "init", ("auto", "he", "xavier"))
        self.params = {"W": np.zeros((self.n_in, self.n_out)), "b": np.zeros(self.n_out)}
        self.needs_dX = True
        self.reset_parameters(np.random.default_rng(check_seed(seed)))

    def reset_parameters(self, rng, next_layer=None):
        """Draw ``W`` with the layer's scheme (see ``init``) and set ``b`` to zero."""
        scheme = self.init
        if scheme == "auto":
            scheme = "he" if isinstance(next_layer, ReLU) else "xavier"
        scale = np.sqrt((2.0 if scheme == "he" else 1.0) / self.n_in)
        W = self.params["W"]
        W[...] = rng.standard_normal((self.n_in, self.n_out)) * scale
        self.params["b"][...] = 0.0

    def forward(self, X, training=False):
        self.X = X
        Z = X @ self.params["W"]
        Z += self.params["b"]
        return Z

    def backward(self, dZ):
        self.grads["W"] = self._cached("X").T @ dZ      # dW = X^T dZ   (n_in, n_out)
        self.grads["b"] = dZ.sum(axis=0)     # db = sum_rows dZ   (n_out,)
        if not self.needs_dX:                # the first layer of a Sequential: nobody uses dX
            return None
        return dZ @ self.params["W"].T       # dX = dZ W^T   (m, n_in)

    def output_width(self, n_in):
        return self.n_out

    def get_config(self):
        return {"n_in": self.n_in, "n_out": self.n_out, "init": self.init}

    def __repr__(self):
        init = "" if self.init == "auto" else f", init={self.init!r}"
        return f"{type(self).__name__}({self.n_in}, {self.n_out}{init})"


class ReLU(Layer):
    """Rectified linear unit: ``A = max(Z, 0)``; ``dZ = dA * (Z > 0)``.

    Not differentiable at ``Z = 0``; ``kink_pattern`` reports the sign of ``Z``.
    """

    elementwise = rowwise = True

    def forward(self, Z, training=False):
        self.Z = Z
        return np.maximum(Z, 0)

    def backward(self, dA):
        return dA * (self._cached("Z") > 0)

    def kink_pattern(self, Z):
        return Z > 0


class Sigmoid(Layer):
    """Logistic function: ``A = 1 / (1 + exp(-Z))``; ``dZ = dA * A * (1 - A)``.

    Computed with ``scipy.special.expit``: no overflow and no warning for any finite Z.
    As the last layer of a Sequential with BinaryCrossEntropy, the loss works from Z.
    """

    elementwise = rowwise = True

    def forward(self, Z, training=False):
        self.A = expit(Z)
        return self.A

    def backward(self, dA):
        A = self._cached("A")
        return dA * A * (1 - A)


class Tanh(Layer):
    """Hyperbolic tangent: ``A = tanh(Z)``; ``dZ = dA * (1 - A**2)``."""

    elementwise = rowwise = True

    def forward(self, Z, training=False):
        self.A = np.tanh(Z)
        return self.A

    def backward(self, dA):
        return dA * (1 - self._cached("A") ** 2)


class Dropout(Layer):
    """Inverted dropout: ``A = X * mask / keep_prob`` while training, ``A = X`` otherwise.

    Parameters
    ----------
    rate : float in [0, 1)
        Probability of dropping a unit; ``keep_prob = 1 - rate``.
    seed : int
        Seeds the masks of a layer used on its own; a Sequential gives each Dropout a
        Generator derived from the model's seed.

    Notes
    -----
    ``fixed_mask`` (a boolean array of the input's shape, or None) makes training-mode
    forward passes reuse one mask instead of drawing a new one; the gradient checker's
    ``dropout="frozen"`` mode uses it to check this layer's backward.
    """

    def __init__(self, rate, seed=0):
        super().__init__()
        self.rate = check_float(rate, "rate", 0.0, 1.0, high_inclusive=False)
        self.rng = np.random.default_rng(check_seed(seed))
        self.fixed_mask = None
        self.mask = None

    @property
    def keep_prob(self):
        return 1.0 - self.rate

    # With a fixed mask the output depends on the row's position, so the layer is neither.
    @property
    def elementwise(self):
        return self.fixed_mask is None

    rowwise = elementwise

    def forward(self, X, training=False):
        if not training or self.rate == 0.0:
            self.mask = None
            return X
        keep = self.fixed_mask if self.fixed_mask is not None else self.rng.random(X.shape) >= self.rate
        self.mask = (keep / self.keep_prob).astype(X.dtype)
        return X * self.mask

    def backward(self, dA):
        return dA if self.mask is None else dA * self.mask

    def get_config(self):
        return {"rate": self.rate}


# minidl's own layers by class name: what a checkpoint may name without custom_layers, and the layers whose
# declarations and outputs the contract checks trust (see minidl.contract).
BUILT_IN_LAYERS = {cls.__name__: cls for cls in (Dense, ReLU, Sigmoid, Tanh, Dropout)}
