"""fastdnn: dense neural networks trained by fused Numba kernels.

Public API: :class:`Sequential` of :class:`Dense` layers, the optimizers :class:`SGD`,
:class:`Adam`, :class:`AdamW` and :class:`RMSprop`, and :class:`TrainingDivergedError`.
"""

from .errors import TrainingDivergedError
from .layers import Dense
from .network import History, Sequential
from .optimizers import SGD, Adam, AdamW, Optimizer, RMSprop

__version__ = "0.1.0"

__all__ = [
    "Adam",
    "AdamW",
    "Dense",
    "History",
    "Optimizer",
    "RMSprop",
    "SGD",
    "Sequential",
    "TrainingDivergedError",
    "__version__",
]
