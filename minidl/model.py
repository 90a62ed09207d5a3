"""Sequential: layers applied in order, with a loss, a seed and a dtype."""
import numpy as np

from . import contract
from .errors import InputError, InputTypeError, NonFiniteError
from .layers import Dense, Dropout, Layer, Sigmoid
from .losses import BinaryCrossEntropy
from .validation import check_array, check_labels, check_seed


class Sequential:
    """A stack of layers trained with a loss: ``A = layer_L(... layer_1(X))``.

    Parameters
    ----------
    layers : list of Layer
        Applied in order. The first Dense fixes the number of input features; the output
        must have width 1 and be a Sigmoid (the probability of class 1).
    loss : BinaryCrossEntropy, optional
        Default ``BinaryCrossEntropy(l2=0.0)``.
    seed : int
        Seeds the weight initialization and the dropout masks (independent streams), so
        one seed gives bitwise identical models and training.
    dtype : numpy float dtype
        ``np.float64`` (default) or ``np.float32`` for parameters and activations.

    Examples
    --------
    >>> import minidl as mdl
    >>> model = mdl.Sequential([mdl.Dense(2, 4), mdl.Tanh(), mdl.Dense(4, 1), mdl.Sigmoid()])
    >>> X, Y = mdl.datasets.xor()
    >>> model.forward(X).shape
    (4, 1)
    """

    def __init__(self, layers, loss=None, seed=0, dtype=np.float64):
        if isinstance(layers, Layer) or not isinstance(layers, (list, tuple)):
            raise InputTypeError(f"layers must be a list of Layer objects; received {type(layers).__name__}")
        if len(layers) == 0:
            raise InputError("layers must hold at least one layer; received an empty list")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise InputTypeError(f"layers[{i}] must be a minidl Layer; received {type(layer).__name__}")
            contract.check_setup(layer, f"layers[{i}] ({type(layer).__name__})")
        if loss is None:
            loss = BinaryCrossEntropy()
        if not isinstance(loss, BinaryCrossEntropy):
            raise InputTypeError(f"loss must be a BinaryCrossEntropy; received {type(loss).__name__}")
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise InputTypeError(f"dtype must be np.float32 or np.float64; received {dtype!r}") from None
        if dtype not in (np.float32, np.float64):
            raise InputTypeError(f"dtype must be np.float32 or np.float64; received {dtype}")
        self.layers = list(layers)
        self.loss = loss
        self.seed = check_seed(seed)
        self.dtype = dtype
        self.training = False
        self.n_features, self.widths = self._infer_widths()
        init_seq, dropout_seq = np.random.SeedSequence(self.seed).spawn(2)
        init_rng = np.random.default_rng(init_seq)
        dropouts = [layer for layer in self.layers if isinstance(layer, Dropout)]
        for layer, child in zip(dropouts, dropout_seq.spawn(len(dropouts))):
            layer.rng = np.random.default_rng(child)
        if isinstance(self.layers[0], Dense):
            self.layers[0].needs_dX = False
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Dense):
                nxt = self.layers[i + 1] if i + 1 < len(self.layers) else None
                layer.reset_parameters(init_rng, nxt)
            for name, value in layer.params.items():
                layer.params[name] = np.asarray(value, dtype=self.dtype)

    def _infer_widths(self):
        width = None
        widths = []
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Dense):
                if width is not None and layer.n_in != width:
                    raise InputError(f"layers[{i}] is {layer!r} with n_in={layer.n_in}, but the layer "
                                     f"before it outputs width {width}{self._width_hint(i)}")
                width = layer.n_in if width is None else width
            widths.append(None if width is None else layer.output_width(width))
            width = widths[-1]
        if width is None:
            raise InputError("layers must include a Dense layer to fix the number of input features")
        n_features = next(layer.n_in for layer in self.layers if isinstance(layer, Dense))
        widths = [n_features if w is None else w for w in widths]     # shape-preserving layers before it
        if widths[-1] != 1:
            raise InputError(f"the last layer must output width 1 (one probability per example); "
                             f"received width {widths[-1]}")
        if not isinstance(self.layers[-1], Sigmoid):
            raise InputError(f"the last layer must be a Sigmoid (or a subclass): BinaryCrossEntropy needs "
                             f"probabilities, and the loss is computed from the Sigmoid's input; received "
                             f"{self.layers[-1]!r}. Append mdl.Sigmoid() to the layers")
        return n_features, widths

    def _width_hint(self, i):
        """Layers of the user's before layers[i] that take the default output_width (width unchanged)."""
        start = max((j for j in range(i) if isinstance(self.layers[j], Dense)), default=-1) + 1
        silent = [f"layers[{j}] ({type(layer).__name__})" for j, layer in enumerate(self.layers[start:i], start)
                  if type(layer).output_width is Layer.output_width and not contract.is_built_in(layer)]
        if not silent:
            return ""
        return (f" (as the layers declare: {', '.join(silent)} does not define output_width, so it is taken to "
                f"keep the width; a layer that changes the width must define output_width(self, n_in))")

    # ----------------------------------------------------------------------- modes
    def train(self):
        """Training mode: Dropout layers drop units. Returns the model."""
        self.training = True
        return self

    def eval(self):
        """Evaluation mode (the default): Dropout layers are the identity. Returns the model."""
        self.training = False
        return self

    # ------------------------------------------------------------- input checks
    def _mode(self, training):
        return self.training if training is None else bool(training)

    # The interface the Trainer, the gradient checker and the doctor use. Validation happens once, at the
    # door (check_X, check_XY); the ``trusted_*`` methods and run_layers take arrays already validated, so
    # that a training step or one of the checker's thousands of evaluations does not validate again.
    def check_X(self, X, name="X"):
        """``X`` as this model takes it: 2-D, ``n_features`` columns, finite, in the model's dtype."""
        return check_array(X, name, ndim=2, n_columns=self.n_features, dtype=self.dtype)

    def check_XY(self, X, Y):
        """``(X, Y)`` as this model takes them: ``check_X`` and labels of shape ``(m, 1)`` in {0, 1}."""
        X = self.check_X(X)
        return X, check_labels(Y, X.shape[0]).astype(self.dtype)

    # ----------------------------------------------------------- forward/backward
    @property
    def logit_head(self):
        """True when the loss is computed from the logits, i.e. the last layer is exactly Sigmoid."""
        return type(self.layers[-1]) is Sigmoid

    @property
    def body(self):
        """The layers before the loss: all of them, or all but the final Sigmoid."""
        return self.layers[:-1] if self.logit_head else self.layers

    def run_layers(self, A, layers, training, check_finite=False):
        """``layers`` (a prefix of self.layers) applied to ``A`` (validated); a user's layer is held to the
        contract, and ``check_finite`` stops at the first NaN or inf with the layer named."""
        for i, layer in enumerate(layers):
            out = layer.forward(A, training)
            if not contract.is_built_in(layer):
                contract.check_forward(layer, A, out, contract.describe(layer, i), self.widths[i])
            A = out
            if check_finite:
                _require_finite(A, f"the output of layer {i} ({layer!r})")
        return A

    def forward(self, X, training=None):
        """Probabilities ``(m, 1)`` for inputs ``X`` ``(m, n_features)``.

        ``training=None`` uses the model's mode (see ``train()``/``eval()``).
        """
        X = self.check_X(X)
        return self.run_layers(X, self.layers, self._mode(training))

    def predict(self, X):
        """Labels in {0, 1}, shape ``(m, 1)``: 1 where the probability is >= 0.5."""
        return (self.forward(X, training=False) >= 0.5).astype(np.int64)

    def regularized_weights(self):
        """The arrays in the loss's L2 term (every layer's ``regularized`` parameters), themselves."""
        return [layer.params[name] for layer in self.layers for name in layer.regularized]

    def trusted_cost(self, X, Y, training=False):
        """:meth:`cost` on validated ``X``, ``Y``."""
        return self.trusted_evaluate(X, Y, training)[0]

    def _objective(self, out, Y):
        """J from what the loss sees (logits or probabilities): mean example loss plus the L2 term."""
        data = float(np.mean(self.loss.losses(out, Y, self.logit_head), dtype=np.float64))
        return data + self.loss.penalty(self.regularized_weights(), Y.shape[0])

    def trusted_evaluate(self, X, Y, training=False):
        """Cost J and accuracy from one forward pass, on validated ``X``, ``Y``."""
        out = self.run_layers(X, self.body, training)
        A = self.layers[-1].forward(out, training) if self.logit_head else out
        return self._objective(out, Y), float(np.mean((A >= 0.5) == (Y == 1)))

    def evaluate(self, X, Y):
        """``(cost, accuracy)`` on ``(X, Y)`` from one forward pass, dropout off (Keras' ``evaluate``).

        The cost includes the L2 term; accuracy is the fraction of examples whose prediction
        (probability >= 0.5) equals the label.
        """
        X, Y = self.check_XY(X, Y)
        return self.trusted_evaluate(X, Y)

    def cost(self, X, Y):
        """Total cost ``J`` (cross-entropy plus the L2 term), dropout off, as a float."""
        X, Y = self.check_XY(X, Y)
        return self.trusted_cost(X, Y)

    def trusted_backprop(self, X, Y, training, check_finite=False):
        """:meth:`backward` on validated ``X``, ``Y``: fills every layer's grads (L2 included), returns J."""
        m = X.shape[0]
        out = self.run_layers(X, self.body, training, check_finite)
        if self.logit_head:
            self.layers[-1].forward(out, training)
        cost = self._objective(out, Y)
        dA = self.loss.dout(out, Y, self.logit_head)
        for i in reversed(range(len(self.body))):
            layer = self.body[i]
            if contract.is_built_in(layer):
                dA = layer.backward(dA)
            else:
                dA = contract.run_backward(layer, dA, (m, self.widths[i - 1] if i else self.n_features),
                                           contract.describe(layer, i))
            if check_finite and dA is not None:
                where = f"layer {i} ({layer!r})"
                _require_finite(dA, f"the gradient flowing out of {where}")
                for name, grad in layer.grads.items():
                    _require_finite(grad, f"d{name} of {where}")
        # the built-in penalty with l2 = 0 adds nothing: skip two arrays the size of every W
        no_penalty = self.loss.l2 == 0 and type(self.loss).dpenalty is BinaryCrossEntropy.dpenalty
        for layer in self.layers:
            for name in () if no_penalty else layer.regularized:
                layer.grads[name] = layer.grads[name] + self.loss.dpenalty(layer.params[name], m)
        return cost

    def backward(self, X, Y, training=None):
        """Forward and backward pass on ``(X, Y)``: fills every layer's ``grads`` (L2 included) and
        returns the cost J of that pass. Then ``optimizer.step(model)`` applies an update, so a
        training loop of your own is two lines. ``training=None`` uses the model's mode."""
        X, Y = self.check_XY(X, Y)
        return self.trusted_backprop(X, Y, self._mode(training))

    def gradients(self, X, Y):
        """Analytic ``dJ/dparam`` (L2 included, dropout off): dict keyed as named_parameters."""
        X, Y = self.check_XY(X, Y)
        self.trusted_backprop(X, Y, training=False)
        return {name: grad.copy() for name, grad in self.named_gradients()}

    def named_parameters(self):
        """``[(name, array)]`` with names ``"<layer index>.<param>"``; the arrays themselves."""
        return [(f"{i}.{name}", value) for i, layer in enumerate(self.layers)
                for name, value in layer.params.items()]

    def named_gradients(self):
        """``[(name, array)]`` of the gradients left by the last backward pass."""
        return [(f"{i}.{name}", layer.grads[name]) for i, layer in enumerate(self.layers)
                for name in layer.params]

    @property
    def n_params(self):
        """Total number of parameters."""
        return sum(value.size for _, value in self.named_parameters())

    # ----------------------------------------------------------------- debug/io
    def gradcheck(self, X, Y, epsilon=1e-7, grads=None, **options):
        """Check backprop against central differences; see :func:`minidl.gradcheck.gradcheck`."""
        from .gradcheck import gradcheck
        return gradcheck(self, X, Y, epsilon=epsilon, grads=grads, **options)

    def save(self, path, optimizer=None):
        """Write the model (and optionally an optimizer's state) to an HDF5 file, atomically."""
        _io().save(self, path, optimizer=optimizer)

    def load_weights(self, path, trust_old_format=False):
        """Load parameters saved from a model of the same architecture; returns the model.
        ``trust_old_format=True`` reads older checkpoint formats through HDF5 (files you trust only)."""
        return _io().load_weights(self, path, trust_old_format)

    def get_config(self):
        """The architecture as plain data (used by save/load)."""
        return {"layers": [{"class": type(layer).__name__, "config": layer.get_config()}
                           for layer in self.layers],
                "loss": self.loss.get_config(), "seed": self.seed, "dtype": self.dtype.name}

    # ------------------------------------------------------------------ printing
    def __repr__(self):
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"Sequential([{inner}], loss={self.loss!r}, seed={self.seed})"

    def summary(self):
        """A table of layers, output shapes and parameter counts, as Keras prints it."""
        rows = [("#", "layer", "output shape", "params")]
        for i, (layer, width) in enumerate(zip(self.layers, self.widths)):
            count = sum(v.size for v in layer.params.values())
            rows.append((str(i), repr(layer), f"(m, {width})", f"{count:,}"))
        sizes = [max(len(r[c]) for r in rows) for c in range(4)]
        line = "  ".join("-" * s for s in sizes)
        fmt = lambda r: "  ".join([r[0].rjust(sizes[0]), r[1].ljust(sizes[1]), r[2].ljust(sizes[2]),
                                   r[3].rjust(sizes[3])])
        body = [fmt(rows[0]), line] + [fmt(r) for r in rows[1:]] + [line]
        body.append(f"total parameters: {self.n_params:,}   loss: {self.loss!r}   dtype: {self.dtype.name}")
        return "\n".join(["Sequential"] + body)

    __str__ = summary

    def _repr_html_(self):
        """The summary table in a notebook."""
        import html
        rows = "".join(f"<tr><td>{i}</td><td>{html.escape(repr(layer))}</td><td>(m, {width})</td>"
                       f"<td style='text-align:right'>{sum(v.size for v in layer.params.values()):,}</td></tr>"
                       for i, (layer, width) in enumerate(zip(self.layers, self.widths)))
        return (f"<table><thead><tr><th>#</th><th>layer</th><th>output shape</th><th>params</th></tr></thead>"
                f"<tbody>{rows}</tbody></table><p>total parameters: {self.n_params:,} &nbsp; loss: "
                f"{html.escape(repr(self.loss))} &nbsp; dtype: {self.dtype.name}</p>")


def _io():
    """minidl.io, imported when first needed: it builds Sequentials from checkpoints, so it imports this
    module (the one real circle of the package, with gradcheck's)."""
    from . import io
    return io


def _require_finite(array, what):
    if not np.all(np.isfinite(array)):
        kind = "NaN" if np.any(np.isnan(array)) else "inf"
        raise NonFiniteError(f"{kind} in {what}")
