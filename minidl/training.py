"""Trainer: mini-batch training with a debug mode that checks the gradients as it goes."""
import contextlib
import os
import signal
import sys
import threading
import warnings

import numpy as np

with warnings.catch_warnings():      # in a notebook without ipywidgets tqdm.auto warns, then uses text bars
    warnings.simplefilter("ignore")
    from tqdm.auto import tqdm

from .doctor import doctor, watch
from .errors import CheckpointError, GradientCheckError, InputError, InputTypeError, NonFiniteError
from .io import load_checkpoint, save
from .model import Sequential
from .optim import Adam, Optimizer
from .validation import check_int, check_seed


class History(dict):
    """What ``fit`` records: a dict of lists (``cost``, ``accuracy``, ``val_cost``, ``val_accuracy``, one entry
    per epoch; ``gradchecks``, ``(step, GradCheckReport)`` pairs) that renders as a table in a notebook."""

    def _repr_html_(self):
        import html
        columns = [key for key in EPOCH_KEYS if self.get(key)]
        epochs = len(self.get("cost", []))
        shown = list(range(epochs)) if epochs <= 12 else list(range(5)) + [None] + list(range(epochs - 5, epochs))
        rows = "".join("<tr><td>...</td>" + "<td></td>" * len(columns) + "</tr>" if e is None else
                       f"<tr><td>{e + 1}</td>" + "".join(f"<td>{self[c][e]:.4f}</td>" for c in columns) + "</tr>"
                       for e in shown)
        checks = "".join(f"<li>step {step}: {html.escape(report.summary())}</li>"
                         for step, report in self.get("gradchecks", []))
        header = "".join(f"<th>{c}</th>" for c in ["epoch"] + columns)
        return (f"<table><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>" +
                (f"<p>gradient checks</p><ul>{checks}</ul>" if checks else ""))


EPOCH_KEYS = ("cost", "accuracy", "val_cost", "val_accuracy")    # one number per epoch
DOCTOR_EXAMPLES = 256    # examples the debug mode's doctor looks at (the first ones of the training set)


def _env_debug():
    return os.environ.get("MINIDL_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


class Trainer:
    """Train a Sequential on shuffled mini-batches.

    Parameters
    ----------
    model : Sequential
    optimizer : Optimizer, optional
        Default ``Adam(lr=1e-3)``.
    epochs : int
        Total number of passes over the data (a resumed trainer continues up to it).
    batch_size : int
    seed : int
        Seeds the shuffling (the model's own seed drives initialization and dropout).
    debug : bool, optional
        Check the gradients with ``model.gradcheck`` on a small fixed batch before the first
        update and again after ``gradcheck_after`` updates (dropout off, L2 included, with
        scipy's cross-check); record the reports in ``history["gradchecks"]``; raise
        :class:`GradientCheckError` when one fails; stop with ``NonFiniteError`` naming the
        layer when a NaN or inf appears. Never changes the trained weights. Default: on when
        the environment has ``MINIDL_DEBUG=1``.
    gradcheck_after : int
        Updates after which the second check runs.
    progress : bool
        Show a tqdm bar (only when the output is a terminal).
    gradcheck_batch : int
        Examples in the debug checks' batch (the first ones of X).
    patience : int, optional
        Early stopping: when the validation cost has not improved for this many epochs, stop
        (``stopped_early`` becomes True; later ``fit`` calls do nothing) and restore the weights
        of the best epoch. Needs ``validation`` in ``fit``.
    log : file-like, optional
        Where debug summaries are printed (default: standard output).

    Examples
    --------
    >>> import minidl as mdl
    >>> X, Y = mdl.datasets.xor()
    >>> model = mdl.Sequential([mdl.Dense(2, 4), mdl.Tanh(), mdl.Dense(4, 1), mdl.Sigmoid()])
    >>> history = mdl.Trainer(model, mdl.Adam(0.05), epochs=300, progress=False).fit(X, Y)
    >>> history["accuracy"][-1]
    1.0
    """

    def __init__(self, model, optimizer=None, epochs=100, batch_size=64, seed=0, debug=None,
                 gradcheck_after=100, progress=True, gradcheck_batch=8, patience=None, log=None):
        if not isinstance(model, Sequential):
            raise InputTypeError(f"model must be a minidl Sequential; received {type(model).__name__}")
        if optimizer is None:
            optimizer = Adam(lr=1e-3)
        if not isinstance(optimizer, Optimizer):
            raise InputTypeError(f"optimizer must be a minidl optimizer (SGD, Momentum, Adam); "
                                 f"received {type(optimizer).__name__}")
        self.model = model
        self.optimizer = optimizer
        self.epochs = check_int(epochs, "epochs", minimum=0)
        self.batch_size = check_int(batch_size, "batch_size", minimum=1)
        self.seed = check_seed(seed)
        self.debug = _env_debug() if debug is None else bool(debug)
        self.gradcheck_after = check_int(gradcheck_after, "gradcheck_after", minimum=1)
        self.progress = bool(progress)
        self.gradcheck_batch = check_int(gradcheck_batch, "gradcheck_batch", minimum=1)
        self.patience = None if patience is None else check_int(patience, "patience", minimum=1)
        self.log = log
        self.rng = np.random.default_rng(self.seed)
        self.epoch = 0
        self.step = 0
        self.history = History(cost=[], accuracy=[], val_cost=[], val_accuracy=[], gradchecks=[])
        self._best = None
        self.stopped_early = False
        self.interrupted = False

    def __repr__(self):
        return (f"Trainer(model={self.model!r}, optimizer={self.optimizer!r}, epochs={self.epochs}, "
                f"batch_size={self.batch_size}, seed={self.seed}, debug={self.debug})")

    def fit(self, X, Y, validation=None):
        """Train until ``epochs``; returns ``history``.

        Parameters
        ----------
        X : ndarray of shape (m, n_features)
        Y : ndarray of shape (m, 1) or (m,)
        validation : tuple (X_val, Y_val), optional
            Evaluated after every epoch (``val_cost``, ``val_accuracy``).

        Returns
        -------
        dict
            ``cost``, ``accuracy`` (training set, eval mode, after each epoch), ``val_cost``,
            ``val_accuracy``, and ``gradchecks``: a list of ``(step, GradCheckReport)``.

        Ctrl-C stops training after the update in progress (the model is never half-updated) by raising
        KeyboardInterrupt; ``trainer.interrupted`` is then True and ``trainer.epoch`` counts the finished epochs.
        """
        model = self.model
        X, Y = model.check_XY(X, Y)
        if validation is not None:
            if not isinstance(validation, (tuple, list)) or len(validation) != 2:
                raise InputTypeError("validation must be a tuple (X_val, Y_val)")
            X_val = model.check_X(validation[0], "X_val")
            Y_val = model.check_XY(X_val, validation[1])[1]
        elif self.patience is not None:
            raise InputError("patience needs validation data: pass validation=(X_val, Y_val) to fit")
        check_batch = (X[:self.gradcheck_batch], Y[:self.gradcheck_batch])
        with self._interrupt_between_steps():       # from here on Ctrl-C waits for a step boundary
            if self.debug and self.step == 0:
                self._doctor(X[:DOCTOR_EXAMPLES], Y[:DOCTOR_EXAMPLES])
                self._gradcheck(*check_batch)
            bar = tqdm(total=self.epochs, initial=self.epoch, desc="train", unit="epoch", leave=False,
                       disable=True if not self.progress else None)
            self._fit_epochs(X, Y, None if validation is None else (X_val, Y_val), check_batch, bar)
        return self.history

    @contextlib.contextmanager
    def _interrupt_between_steps(self):
        """Ctrl-C during ``fit`` lets the update in progress finish, then raises KeyboardInterrupt, so the model
        is never left half-updated (``self.interrupted`` says so); a second Ctrl-C interrupts at once. Only in
        the main thread, and only where Python's own SIGINT handler is installed."""
        self.interrupted = False
        if threading.current_thread() is not threading.main_thread() or \
                signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            yield
            return

        def later(signum, frame):
            self.interrupted = True
            signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGINT, later)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def _fit_epochs(self, X, Y, validation, check_batch, bar):
        model, m = self.model, X.shape[0]
        try:
            while self.epoch < self.epochs and not self.stopped_early:
                order = self.rng.permutation(m)
                for start in range(0, m, self.batch_size):
                    batch = order[start:start + self.batch_size]
                    cost = model.trusted_backprop(X[batch], Y[batch], training=True, check_finite=self.debug)
                    if not np.isfinite(cost):      # stop before the update spreads it into the weights
                        raise NonFiniteError(f"training diverged: the cost of step {self.step + 1} (epoch "
                                             f"{self.epoch + 1}) is {cost}; lower the learning rate (now "
                                             f"{self.optimizer.lr:g}) or run with debug=True to find the layer")
                    self.optimizer.step(model)
                    self.step += 1
                    if self.interrupted:
                        raise KeyboardInterrupt(f"training interrupted at epoch {self.epoch + 1} of {self.epochs}, "
                                                f"after {self.step} updates")
                    if self.debug and self.step == self.gradcheck_after:
                        self._gradcheck(*check_batch)
                        self._watch(X[:DOCTOR_EXAMPLES], Y[:DOCTOR_EXAMPLES])
                self.epoch += 1
                self._record(X, Y, "")
                if validation is not None:
                    self._record(*validation, "val_")
                bar.update(1)
                bar.set_postfix({key: f"{self.history[key][-1]:.4f}" for key in EPOCH_KEYS if self.history[key]})
                if self.patience is not None and self._stop_early():
                    self.stopped_early = True
                    for (_, value), best in zip(model.named_parameters(), self._best[2]):
                        value[...] = best
                    break
        finally:
            bar.close()

    @property
    def best_epoch(self):
        """With early stopping: the epoch (1-based) whose weights are kept, i.e. the lowest validation cost."""
        return None if self._best is None else self._best[1]

    def _record(self, X, Y, prefix):
        cost, accuracy = self.model.trusted_evaluate(X, Y)
        self.history[prefix + "cost"].append(cost)
        self.history[prefix + "accuracy"].append(accuracy)

    def _stop_early(self):
        cost = self.history["val_cost"][-1]
        if self._best is None or cost < self._best[0]:
            self._best = (cost, self.epoch, [value.copy() for _, value in self.model.named_parameters()])
        return self.epoch - self._best[1] >= self.patience

    def _doctor(self, X, Y):
        """Before the first update: the doctor's report, one line per finding (its gradient check is the
        trainer's own, which follows)."""
        report = doctor(self.model, X, Y, self.optimizer, seed=self.seed, gradcheck=False)
        self.history["doctor"] = report
        lines = [f"[debug] doctor: [{f.kind}] {f.message}" for f in report.findings] or ["[debug] doctor: healthy"]
        print("\n".join(lines), file=self.log or sys.stdout, flush=True)

    def _watch(self, X, Y):
        """At the second gradient check: what changed since (dead units, the update ratio, the cost's course)."""
        found = watch(self.model, X, Y, self.optimizer, self.history["cost"], self.epoch + 1)
        self.history.setdefault("doctor_watch", []).extend((self.step, f) for f in found)
        for finding in found:
            print(f"[debug] doctor: [{finding.kind}] {finding.message}", file=self.log or sys.stdout, flush=True)

    def _gradcheck(self, X, Y):
        report = self.model.gradcheck(X, Y, seed=self.seed)
        self.history["gradchecks"].append((self.step, report))
        where = "before training" if self.step == 0 else f"after {self.step} steps"
        print(f"[debug] {where}: {report.summary()}", file=self.log or sys.stdout, flush=True)
        if not report.passed:
            raise GradientCheckError(report, self.step)

    # ------------------------------------------------------------- checkpoints
    def state(self):
        """The trainer's own state as plain data (configuration, counters, RNG, history, early stopping)."""
        history = {key: self.history[key] for key in EPOCH_KEYS}
        best = None if self._best is None else {"cost": self._best[0], "epoch": self._best[1]}
        return {"epochs": self.epochs, "batch_size": self.batch_size, "seed": self.seed,
                "gradcheck_after": self.gradcheck_after, "patience": self.patience, "epoch": self.epoch,
                "step": self.step, "rng": self.rng.bit_generator.state, "history": history, "best": best,
                "stopped_early": self.stopped_early}

    def save(self, path):
        """Write model, optimizer state and trainer state to ``path`` so ``Trainer.load`` can resume."""
        best = {} if self._best is None else {name: value for (name, _), value in
                                               zip(self.model.named_parameters(), self._best[2])}
        save(self.model, path, optimizer=self.optimizer, trainer_state=self.state(), trainer_arrays=best)

    @classmethod
    def load(cls, path, custom_layers=None, trust_old_format=False, **overrides):
        """Rebuild a trainer saved with :meth:`save`; ``overrides`` (e.g. ``epochs=``) replace settings.
        ``trust_old_format=True`` reads older checkpoint formats through HDF5 (files you trust only)."""
        ckpt = load_checkpoint(path, custom_layers, trust_old_format)
        state = ckpt["trainer"]
        if state is None or ckpt["optimizer"] is None:
            raise CheckpointError(f"{path} holds a model but no trainer state; save it with Trainer.save")
        settings = {key: state[key] for key in ("epochs", "batch_size", "seed", "gradcheck_after", "patience")}
        settings.update(overrides)
        trainer = cls(ckpt["model"], ckpt["optimizer"], **settings)
        trainer.rng.bit_generator.state = state["rng"]
        trainer.epoch, trainer.step = state["epoch"], state["step"]
        trainer.stopped_early = bool(state.get("stopped_early", False))
        trainer.history.update({key: list(values) for key, values in state["history"].items()})
        if state.get("best") is not None:
            weights = [ckpt["trainer_arrays"][name] for name, _ in trainer.model.named_parameters()]
            trainer._best = (state["best"]["cost"], state["best"]["epoch"], weights)
        return trainer
