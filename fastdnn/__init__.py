"""fastdnn: dense neural networks trained by fused Numba kernels.

Public API: :class:`Sequential` of :class:`Dense`, :class:`BatchNorm`, :class:`LayerNorm` and
:class:`Dropout` layers, the optimizers :class:`SGD`,
:class:`Adam`, :class:`AdamW` and :class:`RMSprop`, and :class:`TrainingDivergedError`.

The scikit-learn classes (:class:`PCA`, :class:`Autoencoder`, the estimators and
:func:`patch_sklearn`) are imported on first use: importing scikit-learn takes longer than
starting a cached training run.
"""

import importlib

from .callbacks import (
    Callback,
    CosineDecay,
    EarlyStopping,
    ExponentialDecay,
    LearningRateScheduler,
    ModelCheckpoint,
    StepDecay,
)
from .errors import NotCompiledError, TrainingDivergedError
from .io import ModelFileError, load
from .layers import BatchNorm, Dense, Dropout, LayerNorm
from .network import History, Sequential
from .optimizers import SGD, Adam, AdamW, Optimizer, RMSprop
from .plotting import plot_history

__version__ = "0.1.0"

_LAZY_MODULES = {
    "PCA": ".decomposition",
    "Autoencoder": ".decomposition",
    "AutoencoderTransformer": ".estimators",
    "MLPClassifier": ".estimators",
    "MLPRegressor": ".estimators",
    "patch_sklearn": ".patch",
    "unpatch_sklearn": ".patch",
}


def __getattr__(name):
    if name in _LAZY_MODULES:
        value = getattr(importlib.import_module(_LAZY_MODULES[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "Adam",
    "AdamW",
    "Autoencoder",
    "AutoencoderTransformer",
    "BatchNorm",
    "Callback",
    "CosineDecay",
    "EarlyStopping",
    "ExponentialDecay",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "ModelFileError",
    "StepDecay",
    "MLPClassifier",
    "MLPRegressor",
    "NotCompiledError",
    "PCA",
    "load",
    "patch_sklearn",
    "plot_history",
    "Dense",
    "Dropout",
    "History",
    "LayerNorm",
    "Optimizer",
    "RMSprop",
    "SGD",
    "Sequential",
    "TrainingDivergedError",
    "unpatch_sklearn",
    "__version__",
]
