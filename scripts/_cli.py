"""What the scripts share (private to scripts/): argument types that name the flag, and how a run ends.

An argparse ``type=`` that raises ``argparse.ArgumentTypeError`` makes argparse print
``argument --epochs: must be an integer >= 1; received 0`` and exit with status 2, before
any data is loaded or any training starts.
"""
import argparse
import math
import os
import sys

DIVERGED = 3       # exit status of a run whose cost blew up
INTERRUPTED = 130  # exit status after Ctrl-C, as shells report 128 + SIGINT
TRAINING_COPIES = 5  # parameters, gradients, two Adam moments and a temporary: what training holds per parameter


def _number(text, kind):
    try:
        value = kind(text)
    except ValueError:
        return None
    return value if kind is int or math.isfinite(value) else None


def _number_type(kind, accept, expected, doc):
    """An argparse type: parse ``text`` as ``kind`` and accept it when ``accept(value)``."""
    def parse(text):
        value = _number(text, kind)
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"must be {expected}; received {_shown(text)}")
        return value
    parse.__name__, parse.__doc__ = expected, doc
    return parse


positive_int = _number_type(int, lambda v: v >= 1, "an integer >= 1", "An integer >= 1 (epochs, widths, patience).")
non_negative_int = _number_type(int, lambda v: v >= 0, "an integer >= 0", "An integer >= 0 (seeds).")
positive_float = _number_type(float, lambda v: v > 0, "a finite number > 0", "A finite number > 0 (learning rates).")
non_negative_float = _number_type(float, lambda v: v >= 0, "a finite number >= 0", "A finite number >= 0 (L2).")
fraction = _number_type(float, lambda v: 0 <= v < 1, "a number in [0, 1)", "A number in [0, 1) (dropout, splits).")


def output_path(text):
    """A file path whose folder exists and is writable: checked before training, not after."""
    folder = os.path.dirname(os.path.abspath(text))
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name inside it")
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise argparse.ArgumentTypeError(f"the folder {folder} is not writable")
    return text


def _shown(text):
    """The argument as typed: a number as is (``-1``, ``inf``), anything else quoted (``'many'``)."""
    try:
        float(text)
    except ValueError:
        return repr(text)
    return text


def early_stopping_line(trainer):
    """One line saying when training stopped early and which epoch's weights were kept, or None."""
    if not trainer.stopped_early:
        return None
    kept = trainer.best_epoch
    history = trainer.history
    return (f"stopped early after epoch {trainer.epoch}: no validation improvement for {trainer.patience} epochs; "
            f"kept the weights of epoch {kept} (validation cost {history['val_cost'][kept - 1]:.4f}, "
            f"validation accuracy {history['val_accuracy'][kept - 1]:.1%})")


def diverged(initial_cost, history):
    """True when the final training cost is not finite or ten times the cost before training."""
    final = history["cost"][-1] if history["cost"] else initial_cost
    return not math.isfinite(final) or final > 10 * initial_cost


def say_diverged(initial_cost, final, lr, where=None):
    """Print why a run failed to the user, and return the exit status."""
    what = f"became {final}" if where is None else f"became {final} at {where}"
    if where is None and math.isfinite(final):
        what = f"went from {initial_cost:.4g} before training to {final:.4g}"
    print(f"training diverged: the cost {what}; lower --lr (now {lr:g})", file=sys.stderr)
    return DIVERGED


def memory_bytes():
    """This machine's physical memory, or None where the platform does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_trainable(widths, flag, itemsize=8):
    """Raise ValueError (an argument error) when a network of these widths cannot be trained in this memory."""
    n_params = sum(a * b + b for a, b in zip(widths, widths[1:]))
    need, have = n_params * itemsize * TRAINING_COPIES, memory_bytes()
    if have is not None and need > have:
        raise ValueError(f"{flag}: a network of widths {widths} has {n_params:,} parameters, which need about "
                         f"{need / 2 ** 30:,.1f} GiB to train; this machine has {have / 2 ** 30:,.1f} GiB")


def interrupted(trainer, total_epochs, save=None):
    """Say where Ctrl-C stopped training (and save what was trained, if asked); returns the exit status."""
    print(f"interrupted at epoch {trainer.epoch + 1} of {total_epochs} (after {trainer.step} updates)",
          file=sys.stderr)
    if save is not None:
        save()
    return INTERRUPTED
