"""A plain-NumPy reference MLP, written from the formulas and independent of fastdnn's kernels.

Everything runs in float64. Parameters are lists of ``[W, b]`` with ``W`` of shape (out, in), as
in fastdnn and PyTorch. Conventions (issue 2):

- losses are means: over samples for ``cross_entropy``, over all output elements for ``mse``,
  ``binary_cross_entropy`` and ``poisson``; with sample weights, weighted means;
- ``poisson`` is the half Poisson deviance ``exp(z) - y z + (y log y - y)`` (``0 log 0 = 0``) of
  the output pre-activation ``z``;
- the penalty ``l1 * sum|W| + (l2 / 2) * sum W**2`` covers weights, not biases, so its gradient
  is ``l1 * sign(W) + l2 * W`` and is added to the weights' gradient before the optimizer runs;
- the optimizers follow the update rules and defaults documented for ``torch.optim``.
"""

import numpy as np
from scipy.special import expit, log_softmax, softmax, xlogy

GELU_C = np.sqrt(2 / np.pi)
GELU_A = 0.044715
LEAKY_SLOPE = 0.01

HIDDEN_ACTIVATIONS = ["linear", "relu", "sigmoid", "tanh", "leaky_relu", "elu", "gelu", "softplus"]
# exp grows too fast for the random networks of the property tests: listed apart.
ELEMENTWISE_ACTIVATIONS = [*HIDDEN_ACTIVATIONS, "exp"]


# --------------------------------------------------------------------------------- activations
def activate(name, z):
    """``f(z)``; softmax is row-wise, every other activation elementwise."""
    if name == "linear":
        return z
    if name == "relu":
        return np.maximum(z, 0)
    if name == "sigmoid":
        return expit(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "leaky_relu":
        return np.where(z > 0, z, LEAKY_SLOPE * z)
    if name == "elu":
        return np.where(z > 0, z, np.expm1(np.minimum(z, 0)))
    if name == "gelu":
        return 0.5 * z * (1 + np.tanh(GELU_C * (z + GELU_A * z**3)))
    if name == "softplus":
        return np.logaddexp(0, z)
    if name == "exp":
        return np.exp(z)
    if name == "softmax":
        return softmax(z, axis=1)
    raise ValueError(name)


def derivative(name, z):
    """``f'(z)`` elementwise (every activation but softmax)."""
    if name == "linear":
        return np.ones_like(z)
    if name == "relu":
        return np.where(z > 0, 1.0, 0.0)
    if name == "sigmoid":
        s = expit(z)
        return s * (1 - s)
    if name == "tanh":
        return 1 - np.tanh(z) ** 2
    if name == "leaky_relu":
        return np.where(z > 0, 1.0, LEAKY_SLOPE)
    if name == "elu":
        return np.where(z > 0, 1.0, np.exp(np.minimum(z, 0)))
    if name == "gelu":
        t = np.tanh(GELU_C * (z + GELU_A * z**3))
        return 0.5 * (1 + t) + 0.5 * z * (1 - t**2) * GELU_C * (1 + 3 * GELU_A * z**2)
    if name == "softplus":
        return expit(z)
    if name == "exp":
        return np.exp(z)
    raise ValueError(name)


# --------------------------------------------------------------------------------- the network
def one_hot(labels, n_classes):
    """Integer labels as float64 one-hot rows."""
    return np.eye(n_classes)[np.asarray(labels)]


def forward(params, acts, X):
    """Pre-activations ``zs`` and activations ``outs`` (``outs[0]`` is ``X``) of every layer."""
    zs, outs = [], [np.asarray(X, dtype=np.float64)]
    for (W, b), act in zip(params, acts):
        zs.append(outs[-1] @ W.T + b)
        outs.append(activate(act, zs[-1]))
    return zs, outs


def predict(params, acts, X):
    """Output-layer activations."""
    return forward(params, acts, X)[1][-1]


def penalty(params, l1=0.0, l2=0.0):
    """``l1 * sum|W| + (l2 / 2) * sum W**2`` over the weights of every layer."""
    return sum(l1 * np.abs(W).sum() + 0.5 * l2 * (W**2).sum() for W, _ in params)


def data_loss(loss, z, a, Y, weight=None):
    """Mean (or weighted mean) loss of the output pre-activation ``z``/activation ``a``."""
    weight = np.ones(len(Y)) if weight is None else np.asarray(weight, dtype=np.float64)
    if loss == "cross_entropy":
        per_row = -(Y * log_softmax(z, axis=1)).sum(axis=1)
        return (weight * per_row).sum() / weight.sum()
    if loss == "binary_cross_entropy":
        # -(y log s(z) + (1 - y) log(1 - s(z))) == softplus(z) - y z
        per_row = (np.logaddexp(0, z) - Y * z).sum(axis=1)
    elif loss == "mse":
        per_row = ((a - Y) ** 2).sum(axis=1)
    elif loss == "poisson":
        per_row = poisson_deviance(z, Y).sum(axis=1)
    else:
        raise ValueError(loss)
    return (weight * per_row).sum() / (weight.sum() * Y.shape[1])


def poisson_deviance(z, Y):
    """Elementwise half Poisson deviance of the log-link prediction ``z`` (``mu = exp(z)``)."""
    return np.exp(z) - Y * z + xlogy(Y, Y) - Y


def accuracy(loss, a, Y):
    """Argmax agreement per row (cross-entropy) or per element at 0.5 (binary)."""
    if loss == "cross_entropy":
        return float(np.mean(a.argmax(axis=1) == Y.argmax(axis=1)))
    return float(np.mean((a > 0.5) == (Y > 0.5)))


def loss_and_grads(params, acts, loss, X, Y, l1=0.0, l2=0.0, weight=None):
    """``(loss, [[dW, db], ...], output activations)``; the loss includes the penalty.

    ``Y`` holds target rows (one-hot for cross-entropy).
    """
    zs, outs = forward(params, acts, X)
    z, a = zs[-1], outs[-1]
    weight = np.ones(len(X)) if weight is None else np.asarray(weight, dtype=np.float64)
    # d(loss)/dz of the output layer. Softmax + CE, sigmoid + BCE and exp + Poisson reduce to
    # (a - Y).
    if loss == "cross_entropy":
        delta = (a - Y) * (weight / weight.sum())[:, None]
    elif loss in ("binary_cross_entropy", "poisson"):
        delta = (a - Y) * (weight / (weight.sum() * Y.shape[1]))[:, None]
    else:
        factor = 2 * weight / (weight.sum() * Y.shape[1])
        delta = (a - Y) * factor[:, None] * derivative(acts[-1], z)
    grads = [None] * len(params)
    for k in range(len(params) - 1, -1, -1):
        W = params[k][0]
        grads[k] = [delta.T @ outs[k] + l1 * np.sign(W) + l2 * W, delta.sum(axis=0)]
        if k:
            delta = (delta @ W) * derivative(acts[k - 1], zs[k - 1])
    value = data_loss(loss, z, a, Y, weight) + penalty(params, l1, l2)
    return value, grads, a


# --------------------------------------------------------------------------------- optimizers
class SGD:
    """``torch.optim.SGD`` (dampening 0): ``buf = momentum * buf + g``; the step is
    ``lr * buf``, or ``lr * (g + momentum * buf)`` with Nesterov, or ``lr * g`` without momentum."""

    def __init__(self, lr, momentum=0.0, nesterov=False):
        self.lr, self.momentum, self.nesterov = lr, momentum, nesterov
        self.buf = None

    def step(self, params, grads):
        if self.buf is None:
            self.buf = [np.zeros_like(p) for p in params]
        for p, g, buf in zip(params, grads, self.buf):
            if self.momentum:
                buf[...] = self.momentum * buf + g
                g = g + self.momentum * buf if self.nesterov else buf
            p -= self.lr * g


class Adam:
    """``torch.optim.Adam``: bias-corrected first and second moments; ``AdamW`` below adds
    decoupled weight decay ``p *= 1 - lr * weight_decay`` first (on every parameter)."""

    weight_decay = 0.0

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.t, self.m, self.v = 0, None, None

    def step(self, params, grads):
        if self.m is None:
            self.m = [np.zeros_like(p) for p in params]
            self.v = [np.zeros_like(p) for p in params]
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        for p, g, m, v in zip(params, grads, self.m, self.v):
            p *= 1 - self.lr * self.weight_decay
            m[...] = b1 * m + (1 - b1) * g
            v[...] = b2 * v + (1 - b2) * g * g
            m_hat = m / (1 - b1**self.t)
            v_hat = v / (1 - b2**self.t)
            p -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class AdamW(Adam):
    """``torch.optim.AdamW``."""

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01):
        super().__init__(lr, beta1, beta2, eps)
        self.weight_decay = weight_decay


class RMSprop:
    """``torch.optim.RMSprop`` (not centered; ``alpha`` there is ``rho`` here):
    ``sq = rho * sq + (1 - rho) g**2``, ``u = g / (sqrt(sq) + eps)``; with momentum
    ``buf = momentum * buf + u`` and the step is ``lr * buf``, else ``lr * u``."""

    def __init__(self, lr=1e-2, rho=0.99, eps=1e-8, momentum=0.0):
        self.lr, self.rho, self.eps, self.momentum = lr, rho, eps, momentum
        self.sq, self.buf = None, None

    def step(self, params, grads):
        if self.sq is None:
            self.sq = [np.zeros_like(p) for p in params]
            self.buf = [np.zeros_like(p) for p in params]
        for p, g, sq, buf in zip(params, grads, self.sq, self.buf):
            sq[...] = self.rho * sq + (1 - self.rho) * g * g
            update = g / (np.sqrt(sq) + self.eps)
            if self.momentum:
                buf[...] = self.momentum * buf + update
                update = buf
            p -= self.lr * update


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}


def make_optimizer(name, **hyper):
    """A reference optimizer by fastdnn's class name, e.g. ``make_optimizer("SGD", lr=0.1)``."""
    return OPTIMIZERS[name.lower()](**hyper)


# --------------------------------------------------------------------------------- training
def train(params, acts, loss, X, Y, optimizer, batch_size, epochs, l1=0.0, l2=0.0):
    """Mini-batch training in data order (no shuffling); ``params`` are updated in place.

    Every batch (the last one may be smaller) takes one step on its own mean loss. Returns the
    per-epoch mean data loss (without the penalty), measured on each batch before its update.
    """
    X = np.asarray(X, dtype=np.float64)
    flat = [array for pair in params for array in pair]
    history = []
    for _ in range(epochs):
        total = 0.0
        for start in range(0, len(X), batch_size):
            xb, yb = X[start : start + batch_size], Y[start : start + batch_size]
            value, grads, _ = loss_and_grads(params, acts, loss, xb, yb, l1=l1, l2=l2)
            total += (value - penalty(params, l1, l2)) * len(xb)
            optimizer.step(flat, [g for pair in grads for g in pair])
        history.append(total / len(X))
    return history
