"""Exception types raised by minidl.

Every error a user can cause is a ``ValueError`` or ``TypeError`` subclass, so
``except ValueError`` keeps working, while the specific type says what went wrong.
"""


class InputError(ValueError):
    """An argument has the wrong shape or value (wrong width, NaN, labels outside {0, 1}, ...)."""


class InputTypeError(TypeError):
    """An argument has the wrong type or dtype (a string where a float is expected, complex data, ...)."""


class DataFileError(ValueError):
    """A data file (the cat images) is missing, unreadable or does not hold what it should."""


class MissingDataFileError(DataFileError, FileNotFoundError):
    """A data file does not exist. Also a ``FileNotFoundError``."""


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, foreign, or was saved from another architecture."""


class LayerContractError(InputError):
    """A layer broke the layer contract: forward or backward returned the wrong shape or dtype, a gradient
    is missing or misshapen, or ``super().__init__()`` was never called. The message names the layer."""


class NonFiniteError(FloatingPointError):
    """A NaN or inf appeared in activations or gradients during training in debug mode."""


class GradientCheckError(RuntimeError):
    """Raised by the Trainer in debug mode when a gradient check fails.

    Parameters
    ----------
    report : GradCheckReport
        The failed report; ``str(error)`` shows its table.
    step : int, optional
        The optimizer step after which the check ran.
    """

    def __init__(self, report, step=None):
        self.report = report
        self.step = step
        where = "before the first update" if not step else f"after {step} updates"
        super().__init__(f"gradient check failed {where}:\n{report}")
