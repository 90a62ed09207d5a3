"""The doctor: once the gradients are right, why doesn't the network learn?

``mdl.doctor(model, X, Y, optimizer)`` measures what the well-known recipes for training neural networks say
to look at, and reports each problem it finds with the numbers measured, why they matter and what to do. It
works on copies: the model, the optimizer and their random states are left exactly as they were.

The checks and their thresholds. Each threshold was set from four healthy recipes (the README's XOR and cat
recipes, the course's 2-layer and 4-layer cat recipes with inputs scaled to [0, 1], not centred, and plain
gradient descent at 0.0075), measured at initialisation, with a margin, and then checked on 200 random
reasonable setups (``benchmarks/doctor_sweep.py``):

1. **Inputs.** The 99th percentile of ``|X|`` beyond ``INPUT_SCALE`` = 20 (the recipes: 1; raw pixels: 255),
   or constant features. The first layer's pre-activations are reported with it.
2. **Labels.** A single class, or a minority class below ``IMBALANCE`` = 10% (the cat set: 34%).
3. **Loss at initialisation** beyond ``LOSS_PRIOR`` = 3 times the cost of predicting the label prior (log 2
   for balanced labels; the recipes: 1.01 to 1.12 times; He-initialised ReLU setups of the sweep reach 2.1).
4. **Activations.** More than ``DEAD_SHARE`` = half of a ReLU layer's units zero for every example (the
   cat recipe: 1 of 20 and 1 of 5), or half of a Sigmoid/Tanh layer's units beyond ``|z| > SATURATED`` = 4
   (slope below 0.02) for most examples; a Dropout rate above ``DROPOUT_MAX`` = 0.5 (the course's
   keep_prob of 0.86 is a rate of 0.14).
5. **Gradients.** Per-layer RMS of dW from first to last: first / last below ``VANISHING`` = 1e-4 (the
   recipes: 0.01 to 0.3) or beyond ``EXPLODING`` = 1e4; and the update-to-weight ratio ``|dW| / |W|`` of
   one step of the given optimizer on a copy: above ``UPDATE_MAX`` = 1 for some layer, the learning rate
   will diverge; below ``UPDATE_MIN`` = 1e-6 for every layer, it will crawl (the recipes span 1e-4, plain
   gradient descent, to 0.15, XOR with Adam at 0.05: the rule of thumb of 1e-3 is their middle).
6. **Learning-rate probe.** ``PROBE_STEPS`` = 20 steps on a copy with the given optimizer: the cost rising
   by 10% or becoming non-finite, or moving by less than ``STILL`` = 1e-4 of itself.
7. **Overfit a handful.** A copy trained on ``HANDFUL`` = 8 examples with Adam(0.01), without L2, for at most
   ``OVERFIT_STEPS`` = 500 full-batch steps must classify all of them; and the gradient check runs (a failed
   verdict and its diagnosis join the findings).
8. **Examples stay independent.** A layer that declares it keeps examples apart (``rowwise = True``) must not
   mix them on the data: the layer contract's probe (one row moved, rows reordered, a copy stacked) is run on
   each such layer of the user's. A layer that declares it mixes them (``rowwise = False``, as a batch
   normalisation would) is left alone.
"""
import copy
import html
from dataclasses import dataclass, field

import numpy as np

from .layers import Dense, Dropout, ReLU, Sigmoid, Tanh
from .losses import BinaryCrossEntropy
from .model import Sequential
from . import contract
from .errors import InputTypeError
from .optim import Adam, Optimizer
from .validation import check_array, check_labels, check_seed

INPUT_SCALE = 20.0
IMBALANCE = 0.10
LOSS_PRIOR = 3.0
DEAD_SHARE = 0.5
SATURATED = 4.0
VANISHING, EXPLODING = 1e-4, 1e4
UPDATE_MIN, UPDATE_MAX = 1e-6, 1.0
PROBE_STEPS, STILL = 20, 1e-4
HANDFUL, OVERFIT_STEPS = 8, 500
DROPOUT_MAX = 0.5


@dataclass
class Finding:
    """One problem: ``kind``, the layer (index in ``model.layers``; None for the data or the whole model),
    the measured ``numbers`` and a ``message`` (what was measured, why it matters, what to do)."""
    kind: str
    layer: object
    numbers: dict = field(default_factory=dict)
    message: str = ""

    def __str__(self):
        return self.message


class DoctorReport:
    """What :func:`doctor` found: ``findings`` (a list of :class:`Finding`), ``healthy`` (no finding), and the
    measurements behind them (``measured``). ``print`` it, or show it in a notebook."""

    def __init__(self, findings, measured):
        self.findings, self.measured = findings, measured

    @property
    def healthy(self):
        return not self.findings

    def kinds(self):
        return [f.kind for f in self.findings]

    def __repr__(self):
        return f"<DoctorReport {'healthy' if self.healthy else ', '.join(self.kinds())}>"

    def __str__(self):
        head = "doctor: healthy, nothing found" if self.healthy else \
            f"doctor: {len(self.findings)} finding{'s' if len(self.findings) > 1 else ''}"
        lines = [head] + [f"  - [{f.kind}] {f.message}" for f in self.findings]
        m = self.measured
        lines.append(f"  measured: initial cost {m['cost']:.4g} (label prior {m['prior']:.4g}); update/weight per "
                     f"layer {_listed(m['update_ratio'])}; RMS dW per layer {_listed(m['grad_rms'])}")
        return "\n".join(lines)

    def _repr_html_(self):
        colour = "#1a7f37" if self.healthy else "#cf222e"
        items = "".join(f"<li><b>{html.escape(f.kind)}</b>: {html.escape(f.message)}</li>" for f in self.findings)
        verdict = "healthy" if self.healthy else f"{len(self.findings)} findings"
        return f"<p><b>doctor: <span style='color:{colour}'>{verdict}</span></b></p><ul>{items}</ul>"


def _listed(values):
    return "[" + ", ".join(f"{k}: {v:.1e}" for k, v in values.items()) + "]"


def doctor(model, X, Y, optimizer=None, seed=0, gradcheck=True):
    """Why doesn't this network learn? Check the data, the initialisation, the activations, the gradients, the
    learning rate and the ability to fit a handful of examples; returns a :class:`DoctorReport`.

    Parameters
    ----------
    model : Sequential
    X : ndarray of shape (m, n_features)
    Y : ndarray of shape (m, 1) or (m,)
    optimizer : Optimizer, optional
        The one training will use (default ``Adam(lr=1e-3)``, the Trainer's); only copies of it step.
    seed : int
        Seeds the handful of examples and the gradient check.
    gradcheck : bool
        Also run the gradient check on the handful (its failure and diagnosis become findings).

    The model and the optimizer are never changed (parameters, state, random generators): every
    measurement that trains or steps runs on a copy. See the module docstring for every threshold.
    """
    if not isinstance(model, Sequential):
        raise InputTypeError(f"model must be a minidl Sequential; received {type(model).__name__}")
    if optimizer is not None and not isinstance(optimizer, Optimizer):
        raise InputTypeError(f"optimizer must be a minidl Optimizer; received {type(optimizer).__name__}")
    X = check_array(X, "X", ndim=2, n_columns=model.n_features)
    Y = check_labels(Y, X.shape[0])
    optimizer = optimizer if optimizer is not None else Adam(lr=1e-3)
    rng = np.random.default_rng(check_seed(seed))
    net = copy.deepcopy(model).eval()
    findings, measured = [], {}
    findings += _inputs(net, X)
    findings += _labels(Y, measured)
    findings += _initial_loss(net, X, Y, measured)
    findings += _activations(net, X)
    findings += _gradients(net, X, Y, optimizer, measured)
    findings += _learning_rate(net, X, Y, optimizer, measured)
    handful = np.sort(rng.choice(X.shape[0], size=min(HANDFUL, X.shape[0]), replace=False))
    findings += _overfit(net, X[handful], Y[handful], gradcheck, seed)
    findings += _independence(net, X)
    return DoctorReport(findings, measured)


# ---------------------------------------------------------------------------------------------- the data
def _inputs(net, X):
    scale = float(np.percentile(np.abs(X), 99))
    found = []
    first = net.layers[0]
    Z = first.forward(X) if isinstance(first, Dense) else X
    spread = float(np.std(Z))
    if scale > INPUT_SCALE:
        found.append(Finding("input scale", None, {"p99": scale, "preactivation_std": spread},
                             f"inputs are far from unit scale: 99% of |X| is below {scale:.3g}, not about 1 (raw "
                             f"pixels are 0-255); the first layer's pre-activations spread {spread:.3g}, where "
                             f"activations work within a few units. Scale the inputs (X / 255 for pixels, or "
                             f"subtract the mean and divide by the standard deviation per feature)"))
    if X.shape[0] > 1:
        constant = np.flatnonzero(np.ptp(X, axis=0) == 0)
        if constant.size:
            found.append(Finding("constant features", None, {"count": int(constant.size),
                                                             "first": constant[:5].tolist()},
                                 f"{constant.size} of {X.shape[1]} features are the same for every example (e.g. "
                                 f"columns {constant[:5].tolist()}): they carry no information and only add to the "
                                 f"first layer; drop them"))
    return found


def _labels(Y, measured):
    p = float(Y.mean())
    measured["positive_share"] = p
    if p in (0.0, 1.0):
        return [Finding("single class", None, {"share": p},
                        f"every label is {int(p)}: there is nothing to learn but a constant; check how the labels "
                        f"were loaded")]
    minority = min(p, 1 - p)
    if minority < IMBALANCE:
        return [Finding("imbalance", None, {"minority_share": minority},
                        f"labels are imbalanced: {minority:.1%} of one class, so always answering the other is "
                        f"{1 - minority:.1%} accurate; judge by more than accuracy, or rebalance")]
    return []


def _prior_cost(p):
    return float(-(p * np.log(p) + (1 - p) * np.log(1 - p))) if 0 < p < 1 else 0.0


def _initial_loss(net, X, Y, measured):
    cost = net.cost(X, Y)
    prior = _prior_cost(measured["positive_share"])
    measured.update(cost=cost, prior=prior)
    if prior > 0 and cost > LOSS_PRIOR * prior:
        return [Finding("initial loss", None, {"cost": cost, "prior": prior, "ratio": cost / prior},
                        f"the loss at initialisation is {cost:.3g}, {cost / prior:.1f} times the {prior:.3g} of "
                        f"predicting the label prior: the outputs start saturated and confidently wrong (an "
                        f"initialisation or output bias too large); start the last bias at log(p / (1 - p)) and "
                        f"the weights smaller")]
    return []


# ---------------------------------------------------------------------------------------------- activations
def _activations(net, X):
    found, A = [], X
    for i, layer in enumerate(net.layers[:-1]):
        Z, A = A, layer.forward(A, False)
        units = A.shape[1]
        if isinstance(layer, Dropout) and layer.rate > DROPOUT_MAX:
            found.append(Finding("heavy dropout", i, {"rate": layer.rate},
                                 f"layer {i} ({layer!r}) drops {layer.rate:.0%} of its units in every training "
                                 f"step, so each step sees a small, very noisy part of the network; keep the rate "
                                 f"at or below {DROPOUT_MAX:g} (the course uses keep_prob 0.86, a rate of 0.14)"))
        if isinstance(layer, ReLU):
            dead = int(np.sum(np.all(A <= 0, axis=0)))
            if dead > DEAD_SHARE * units:
                found.append(Finding("dead units", i, {"dead": dead, "units": units},
                                     f"layer {i} ({layer!r}): {dead} of {units} units are zero for every example, "
                                     f"so no gradient flows through them; check the bias before it (a negative "
                                     f"bias kills them) and the learning rate"))
        elif isinstance(layer, (Tanh, Sigmoid)):
            saturated = int(np.sum(np.mean(np.abs(Z) > SATURATED, axis=0) > 0.5))
            if saturated > DEAD_SHARE * units:
                found.append(Finding("saturated units", i, {"saturated": saturated, "units": units},
                                     f"layer {i} ({layer!r}): {saturated} of {units} units sit beyond |z| > "
                                     f"{SATURATED:g} for most examples, where the slope is near 0; the "
                                     f"weights before it are too large: initialise them smaller (Xavier)"))
    return found


# ---------------------------------------------------------------------------------------------- gradients
def _dense_weights(net):
    return [(i, layer) for i, layer in enumerate(net.layers) if isinstance(layer, Dense)]


def _gradients(net, X, Y, optimizer, measured):
    grads = net.gradients(X, Y)
    denses = _dense_weights(net)
    rms = {f"{i}.W": float(np.sqrt(np.mean(grads[f"{i}.W"] ** 2))) for i, _ in denses}
    measured["grad_rms"] = rms
    found = []
    first, last = rms[f"{denses[0][0]}.W"], rms[f"{denses[-1][0]}.W"]
    if len(denses) > 2 and last > 0 and first / last < VANISHING:
        found.append(Finding("vanishing gradients", denses[0][0], {"first": first, "last": last},
                             f"gradients vanish: the RMS of dW is {first:.2e} in the first layer and {last:.2e} in "
                             f"the last ({first / last:.1e} times), so the first layers will barely learn; use ReLU "
                             f"or Tanh instead of a deep Sigmoid stack, or fewer layers"))
    elif len(denses) > 2 and last > 0 and first / last > EXPLODING:
        found.append(Finding("exploding gradients", denses[0][0], {"first": first, "last": last},
                             f"gradients explode towards the input: RMS of dW {first:.2e} in the first layer, "
                             f"{last:.2e} in the last; initialise the weights smaller"))
    ratios = _update_ratios(net, X, Y, optimizer)
    measured["update_ratio"] = ratios
    worst = max(ratios, key=ratios.get)
    if ratios[worst] > UPDATE_MAX:
        found.append(Finding("learning rate too high", int(worst.split(".")[0]), {"update_ratio": ratios[worst]},
                             f"one step of {optimizer!r} changes {worst} by {ratios[worst]:.2g} times its own size "
                             f"(healthy: about 1e-4 to 0.15); the learning rate will make training diverge: lower "
                             f"it"))
    elif ratios[worst] < UPDATE_MIN:
        found.append(Finding("learning rate too low", None, {"update_ratio": ratios[worst]},
                             f"one step of {optimizer!r} changes every weight by at most {ratios[worst]:.2g} times "
                             f"its own size (healthy: about 1e-4 to 0.15); training will crawl: raise the learning "
                             f"rate"))
    return found


def _update_ratios(net, X, Y, optimizer):
    trial, step = copy.deepcopy(net), copy.deepcopy(optimizer)
    before = {name: value.copy() for name, value in trial.named_parameters() if name.endswith(".W")}
    trial.backward(X, Y, training=False)
    step.step(trial)
    return {name: float(np.linalg.norm(value - before[name]) / max(np.linalg.norm(before[name]), 1e-300))
            for name, value in trial.named_parameters() if name in before}


def _learning_rate(net, X, Y, optimizer, measured):
    trial, step = copy.deepcopy(net), copy.deepcopy(optimizer)
    costs = [trial.cost(X, Y)]
    with np.errstate(all="ignore"):
        for _ in range(PROBE_STEPS):
            trial.backward(X, Y, training=False)
            step.step(trial)
            costs.append(trial.cost(X, Y) if all(np.all(np.isfinite(v)) for _, v in trial.named_parameters())
                         else float("inf"))
    measured["probe_costs"] = costs
    start, end = costs[0], costs[-1]
    if not np.isfinite(end) or end > 1.1 * start:
        return [Finding("diverging", None, {"start": start, "end": end},
                        f"{PROBE_STEPS} steps of {optimizer!r} on a copy took the cost from {start:.4g} to {end:.4g}: "
                        f"training diverges; lower the learning rate (and scale the inputs)")]
    if abs(start - end) < STILL * abs(start):
        return [Finding("not moving", None, {"start": start, "end": end},
                        f"{PROBE_STEPS} steps of {optimizer!r} on a copy moved the cost from {start:.6g} only to "
                        f"{end:.6g}: training is not moving; raise the learning rate, or look for dead or "
                        f"saturated units")]
    return []


# ---------------------------------------------------------------------------------------------- fitting
def _overfit(net, X, Y, gradcheck, seed):
    found = []
    if gradcheck:
        report = net.gradcheck(X, Y, seed=seed, scipy_check=False)
        if not report.passed:
            diagnosis = "; ".join(f.message for f in report.diagnosis) or report.summary()
            found.append(Finding("gradient check", None, {"difference": report.difference},
                                 f"the gradient check fails ({report.summary()}); diagnosis: {diagnosis}. No "
                                 f"learning rate fixes a wrong gradient: fix backprop first"))
    trial, step = copy.deepcopy(net), Adam(lr=0.01)
    if type(trial.loss) is BinaryCrossEntropy:
        trial.loss = BinaryCrossEntropy(0.0)       # memorising is the point: no regularization
    for t in range(OVERFIT_STEPS):
        trial.backward(X, Y, training=False)
        step.step(trial)
        if t % 25 == 24 and np.all(trial.predict(X) == Y):
            return found
    accuracy = float(np.mean(trial.predict(X) == Y))
    found.append(Finding("cannot overfit", None, {"examples": len(X), "accuracy": accuracy},
                         f"a copy trained on {len(X)} examples with Adam(lr=0.01) for {OVERFIT_STEPS} steps classifies "
                         f"only {accuracy:.0%} of them: a network that learns cannot fail to memorise a handful; "
                         f"look for a layer that ignores its input, a wrong gradient, or too little capacity"))
    return found


def _independence(net, X):
    """The first layer that declares it keeps examples apart (``rowwise = True``) and mixes them on the data:
    the layer contract's own probe (:func:`minidl.contract.probe`; minidl's layers keep them apart)."""
    A = X
    for i, layer in enumerate(net.layers):
        out = layer.forward(A.copy(), False)
        if layer.rowwise and not contract.probe(layer, A, out, False, contract.describe(layer, i)).rowwise:
            return [Finding("examples mix", i, {},
                            f"layer {i} ({layer!r}) mixes examples though it declares rowwise = True: each example's "
                            f"loss then depends on the others (a wrong reshape or axis?)")]
        A = out
    return []


def watch(model, X, Y, optimizer, costs, epoch):
    """What the Trainer's debug mode checks again during training, at its second gradient check: units that
    died or saturated since, the update-to-weight ratio drifting out of its band, the cost diverging or on a
    plateau over the last epochs. Returns findings whose messages say the epoch; changes nothing."""
    net = copy.deepcopy(model).eval()
    found = _activations(net, X)
    ratios = _update_ratios(net, X, Y, optimizer)
    worst = max(ratios, key=ratios.get)
    if ratios[worst] > UPDATE_MAX or ratios[worst] < UPDATE_MIN:
        found.append(Finding("update ratio", None, {"update_ratio": ratios[worst]},
                             f"one step now changes {worst} by {ratios[worst]:.2g} times its own size, outside the "
                             f"healthy band of {UPDATE_MIN:g} to {UPDATE_MAX:g}"))
    recent = [c for c in costs[-4:] if np.isfinite(c)]
    if len(costs) >= 4 and (len(recent) < 4 or recent[-1] > 1.1 * recent[0]):
        found.append(Finding("diverging", None, {"costs": list(costs[-4:])},
                             f"the cost rose over the last epochs ({', '.join(f'{c:.4g}' for c in costs[-4:])}): "
                             f"training diverges; lower the learning rate"))
    elif len(costs) >= 4 and abs(recent[0] - recent[-1]) < STILL * abs(recent[0]):
        found.append(Finding("plateau", None, {"costs": list(costs[-4:])},
                             f"the cost has not moved over the last epochs ({recent[-1]:.6g}): a plateau; raise the "
                             f"learning rate, or look for dead or saturated units"))
    for finding in found:
        finding.numbers["epoch"] = epoch
        finding.message = f"epoch {epoch}: {finding.message}"
    return found


__all__ = ["doctor", "DoctorReport", "Finding", "watch"]
