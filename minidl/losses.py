"""Binary cross-entropy with an L2 penalty, computed stably from logits."""
import numpy as np
from scipy.special import expit

from .validation import check_float


class BinaryCrossEntropy:
    """``J = -(1/m) sum(y log a + (1-y) log(1-a)) + (l2 / (2m)) sum_Dense ||W||_F^2``.

    When the model ends with a Sigmoid, the per-example loss is computed from the logits
    ``z`` (``a = sigmoid(z)``). For a label y in {0, 1} it is ``softplus(t) = log(1 + e^t)``
    with ``t = (1 - 2y) z``, evaluated as ``max(t, 0) + log1p(exp(-|t|))``: no term cancels,
    so it is exact to rounding for any finite z, confident predictions included (the loss
    of y = 1 at z = 40 is 4.2e-18, not 0). Its gradient at the logits, ``(a - y) / m``, is
    ``(1 - 2y) sigmoid(t) / m``, exact in the same way. Biases are not regularized.

    Parameters
    ----------
    l2 : float >= 0
        The L2 regularization strength (lambda).
    """

    def __init__(self, l2=0.0):
        self.l2 = check_float(l2, "l2", low=0.0)

    def losses(self, out, Y, from_logits):
        """Per-example losses ``(m, 1)`` from logits or from probabilities ``out``."""
        if from_logits:
            t = _signed(out, Y)
            return np.maximum(t, 0) + np.log1p(np.exp(-np.abs(t)))
        A = np.clip(out, np.finfo(out.dtype).tiny, 1 - np.finfo(out.dtype).epsneg)
        return -(Y * np.log(A) + (1 - Y) * np.log1p(-A))

    def dout(self, out, Y, from_logits):
        """``dJ/dout`` of the data term, ``(m, 1)``: ``(a - y)/m`` at the logits."""
        m = Y.shape[0]
        if from_logits:
            return (1 - 2 * Y) * expit(_signed(out, Y)) / m
        A = np.clip(out, np.finfo(out.dtype).tiny, 1 - np.finfo(out.dtype).epsneg)
        return (A - Y) / (A * (1 - A)) / m

    def penalty(self, weights, m):
        """The L2 term ``(l2 / (2m)) * sum ||W||_F^2`` over the given weight arrays."""
        if self.l2 == 0.0:
            return 0.0
        return self.l2 / (2 * m) * float(sum(np.sum(np.square(W, dtype=np.float64)) for W in weights))

    def dpenalty(self, W, m):
        """Gradient of the L2 term with respect to one weight array: ``(l2 / m) * W``."""
        return (self.l2 / m) * W

    def get_config(self):
        return {"l2": self.l2}

    def __repr__(self):
        return f"BinaryCrossEntropy(l2={self.l2:g})"


def _signed(z, Y):
    """``t = (1 - 2y) z``: the logit seen from the label's side, so that the loss is softplus(t)."""
    return np.where(Y == 1, -z, z)
