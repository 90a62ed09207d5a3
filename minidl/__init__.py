"""minidl: a small deep-learning framework on NumPy whose debug mode tells you whether
your backpropagation is right, and if not, exactly where it is wrong.

>>> import minidl as mdl
>>> X, Y = mdl.datasets.xor()
>>> model = mdl.Sequential([mdl.Dense(2, 4), mdl.Tanh(), mdl.Dense(4, 1), mdl.Sigmoid()], seed=0)
>>> model.gradcheck(X, Y).passed
True
"""
from . import datasets
from .errors import (CheckpointError, DataFileError, GradientCheckError, InputError, InputTypeError, LayerContractError,
                     MissingDataFileError, NonFiniteError)
from .gradcheck import GradCheckReport, check_gradient, gradcheck, gradcheck_layer
from .doctor import doctor
from .io import load, load_checkpoint, save
from .layers import Dense, Dropout, Layer, ReLU, Sigmoid, Tanh
from .losses import BinaryCrossEntropy
from .model import Sequential
from .optim import SGD, Adam, Momentum, Optimizer
from .training import Trainer

from . import course, testing  # noqa: E402  (after the names they build on)

__version__ = "0.1.0"

__all__ = ["doctor", "Layer", "Dense", "ReLU", "Sigmoid", "Tanh", "Dropout", "BinaryCrossEntropy", "Sequential",
           "SGD", "Momentum", "Adam", "Optimizer", "Trainer", "GradCheckReport", "gradcheck",
           "gradcheck_layer", "check_gradient", "save", "load", "load_checkpoint", "datasets",
           "GradientCheckError", "InputError", "InputTypeError", "DataFileError", "MissingDataFileError",
           "CheckpointError", "NonFiniteError", "LayerContractError", "course",
           "testing"]
