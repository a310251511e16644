"""Optimizer objects: hyper-parameters plus the layout of their state.

An optimizer holds no arrays. The model owns the state, ``n_slots`` arrays the size of the flat
parameter buffer (stored as one (n_slots, n_params) array), and passes it with
``hyperparameters(dtype)`` to the fused kernel ``fastdnn.kernels.cpu.optimizers.optimizer_step``.
Update rules and defaults follow ``torch.optim``.
"""

import numpy as np

from ._validation import non_negative_float, positive_float, unit_interval
from .kernels.cpu import optimizers as _kernels


class Optimizer:
    """Base class: a kernel code, hyper-parameters and the number of state slots."""

    code = -1

    @property
    def n_slots(self):
        """Number of parameter-sized state arrays the update needs."""
        raise NotImplementedError

    def _values(self):
        raise NotImplementedError

    def hyperparameters(self, dtype):
        """Hyper-parameters as an array of ``dtype``, in the order the kernel reads them."""
        return np.asarray(self._values(), dtype=dtype)

    @property
    def learning_rate(self):
        """The learning rate ``lr`` under its Keras (and scikit-learn) name; settable."""
        return self.lr

    @learning_rate.setter
    def learning_rate(self, value):
        self.lr = positive_float(value, "learning_rate")

    def get_config(self):
        """Constructor arguments, as a dict that ``type(self)(**config)`` accepts."""
        return dict(self.__dict__)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as ``torch.optim.SGD``.

    ``buf = momentum * buf + g``; the step is ``lr * buf``, or ``lr * (g + momentum * buf)``
    with Nesterov. Plain gradient descent is SGD with ``batch_size`` equal to the data size.

    Parameters
    ----------
    lr : float
        Learning rate, > 0.
    momentum : float, default 0.0
        Momentum factor in [0, 1).
    nesterov : bool, default False
        Use Nesterov momentum (requires ``momentum > 0``).
    """

    code = _kernels.SGD

    def __init__(self, lr, momentum=0.0, nesterov=False):
        self.lr = positive_float(lr, "lr")
        self.momentum = unit_interval(momentum, "momentum")
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov=True requires momentum > 0")
        self.nesterov = bool(nesterov)

    @property
    def n_slots(self):
        return 1 if self.momentum > 0 else 0

    def _values(self):
        return (self.lr, self.momentum, float(self.nesterov))


class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam`` (bias-corrected first and second moments).

    Parameters
    ----------
    lr : float, default 1e-3
        Learning rate, > 0.
    beta1, beta2 : float, default 0.9, 0.999
        Decay rates of the moment estimates, in [0, 1).
    eps : float, default 1e-8
        Added to the denominator, >= 0.
    """

    code = _kernels.ADAM

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr = positive_float(lr, "lr")
        self.beta1 = unit_interval(beta1, "beta1")
        self.beta2 = unit_interval(beta2, "beta2")
        self.eps = non_negative_float(eps, "eps")

    @property
    def n_slots(self):
        return 2

    def _values(self):
        return (self.lr, self.beta1, self.beta2, self.eps, 0.0)


class AdamW(Adam):
    """Adam with decoupled weight decay, as ``torch.optim.AdamW``.

    Every parameter (biases included, as with ``AdamW(model.parameters())``) is multiplied by
    ``1 - lr * weight_decay`` before the Adam step.

    Parameters
    ----------
    lr, beta1, beta2, eps : float
        As for :class:`Adam`.
    weight_decay : float, default 0.01
        Decoupled decay factor, >= 0.
    """

    code = _kernels.ADAMW

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01):
        super().__init__(lr, beta1, beta2, eps)
        self.weight_decay = non_negative_float(weight_decay, "weight_decay")

    def _values(self):
        return (self.lr, self.beta1, self.beta2, self.eps, self.weight_decay)


class RMSprop(Optimizer):
    """RMSprop, as ``torch.optim.RMSprop`` (``alpha`` there is ``rho`` here).

    Parameters
    ----------
    lr : float, default 1e-2
        Learning rate, > 0.
    rho : float, default 0.99
        Decay rate of the running mean of squared gradients, in [0, 1).
    eps : float, default 1e-8
        Added to the root mean square, >= 0.
    momentum : float, default 0.0
        Momentum factor in [0, 1).
    """

    code = _kernels.RMSPROP

    def __init__(self, lr=1e-2, rho=0.99, eps=1e-8, momentum=0.0):
        self.lr = positive_float(lr, "lr")
        self.rho = unit_interval(rho, "rho")
        self.eps = non_negative_float(eps, "eps")
        self.momentum = unit_interval(momentum, "momentum")

    @property
    def n_slots(self):
        return 2 if self.momentum > 0 else 1

    def _values(self):
        return (self.lr, self.rho, self.eps, self.momentum)


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}


def get_optimizer(optimizer):
    """An :class:`Optimizer` from an instance or a name (``"sgd"`` gets ``lr=0.01``)."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str) and optimizer.lower() in OPTIMIZERS:
        cls = OPTIMIZERS[optimizer.lower()]
        return cls(0.01) if cls is SGD else cls()
    raise ValueError(
        f"unknown optimizer {optimizer!r}; pass an Optimizer instance or one of "
        f"{sorted(OPTIMIZERS)}"
    )
