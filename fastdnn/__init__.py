"""fastdnn: dense neural networks trained by fused Numba kernels.

Public API: :class:`Sequential` of :class:`Dense` layers, the optimizers :class:`SGD`,
:class:`Adam`, :class:`AdamW` and :class:`RMSprop`, and :class:`TrainingDivergedError`.
"""

from .callbacks import (
    Callback,
    CosineDecay,
    EarlyStopping,
    ExponentialDecay,
    LearningRateScheduler,
    ModelCheckpoint,
    StepDecay,
)
from .decomposition import PCA, Autoencoder
from .errors import NotCompiledError, TrainingDivergedError
from .estimators import AutoencoderTransformer, MLPClassifier, MLPRegressor
from .io import ModelFileError, load
from .layers import Dense
from .network import History, Sequential
from .optimizers import SGD, Adam, AdamW, Optimizer, RMSprop
from .plotting import plot_history

__version__ = "0.1.0"

__all__ = [
    "Adam",
    "AdamW",
    "Autoencoder",
    "AutoencoderTransformer",
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
    "plot_history",
    "Dense",
    "History",
    "Optimizer",
    "RMSprop",
    "SGD",
    "Sequential",
    "TrainingDivergedError",
    "__version__",
]
