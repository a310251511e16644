"""A plain-NumPy reference MLP, written from the formulas, independent of fastdnn's kernels.

Parameters are lists of ``[W, b]`` with ``W`` of shape (out, in). Losses are means (over samples
for cross-entropy, over elements otherwise) plus ``l1 * sum|W| + l2 / 2 * sum W**2``. The
optimizers follow ``torch.optim``'s documented update rules.
"""

import numpy as np
from scipy.special import expit, log_softmax, softmax

GELU_C = np.sqrt(2 / np.pi)


def activate(name, z):
    """f(z)."""
    if name == "relu":
        return np.maximum(z, 0)
    if name == "sigmoid":
        return expit(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "leaky_relu":
        return np.where(z > 0, z, 0.01 * z)
    if name == "elu":
        return np.where(z > 0, z, np.expm1(np.minimum(z, 0)))
    if name == "gelu":
        return 0.5 * z * (1 + np.tanh(GELU_C * (z + 0.044715 * z**3)))
    if name == "softplus":
        return np.logaddexp(0, z)
    if name == "softmax":
        return softmax(z, axis=1)
    return z


def derivative(name, z):
    """f'(z), elementwise (not for softmax)."""
    if name == "relu":
        return (z > 0).astype(z.dtype)
    if name == "sigmoid":
        s = expit(z)
        return s * (1 - s)
    if name == "tanh":
        return 1 - np.tanh(z) ** 2
    if name == "leaky_relu":
        return np.where(z > 0, 1.0, 0.01)
    if name == "elu":
        return np.where(z > 0, 1.0, np.exp(np.minimum(z, 0)))
    if name == "gelu":
        u = GELU_C * (z + 0.044715 * z**3)
        t = np.tanh(u)
        return 0.5 * (1 + t) + 0.5 * z * (1 - t**2) * GELU_C * (1 + 3 * 0.044715 * z**2)
    if name == "softplus":
        return expit(z)
    return np.ones_like(z)


def loss_and_grads(params, acts, loss, X, Y, weight=None, l1=0.0, l2=0.0):
    """Loss and ``[[dW, db], ...]`` for targets ``Y`` (rows; one-hot for cross-entropy)."""
    n = X.shape[0]
    weight = np.ones(n) if weight is None else weight
    zs, outs = [], [X]
    for (W, b), act in zip(params, acts):
        zs.append(outs[-1] @ W.T + b)
        outs.append(activate(act, zs[-1]))
    z, a = zs[-1], outs[-1]
    if loss == "cross_entropy":
        per_row = -(Y * log_softmax(z, axis=1)).sum(axis=1)
        total = weight.sum()
        value = (weight * per_row).sum() / total
        delta = (a - Y) * (weight / total)[:, None]
    elif loss == "binary_cross_entropy":
        per_row = (np.logaddexp(0, z) - z * Y).sum(axis=1)
        total = weight.sum() * Y.shape[1]
        value = (weight * per_row).sum() / total
        delta = (a - Y) * (weight / total)[:, None]
    else:
        per_row = ((a - Y) ** 2).sum(axis=1)
        total = weight.sum() * Y.shape[1]
        value = (weight * per_row).sum() / total
        delta = 2 * (a - Y) * (weight / total)[:, None] * derivative(acts[-1], z)
    grads = [None] * len(params)
    for k in range(len(params) - 1, -1, -1):
        W = params[k][0]
        grads[k] = [delta.T @ outs[k] + l1 * np.sign(W) + l2 * W, delta.sum(axis=0)]
        if k:
            delta = (delta @ W) * derivative(acts[k - 1], zs[k - 1])
    penalty = sum(l1 * np.abs(W).sum() + 0.5 * l2 * (W**2).sum() for W, _ in params)
    return value + penalty, grads, a


class Optimizer:
    """torch.optim-style optimizers over a list of arrays; ``step(params, grads)`` in place."""

    def __init__(self, name, **hyper):
        self.name, self.hyper, self.t, self.state = name, hyper, 0, {}

    def step(self, params, grads):
        self.t += 1
        h, t = self.hyper, self.t
        for i, (p, g) in enumerate(zip(params, grads)):
            s = self.state.setdefault(i, {"m": np.zeros_like(p), "v": np.zeros_like(p)})
            if self.name == "sgd":
                mu = h.get("momentum", 0.0)
                if mu:
                    s["m"] = mu * s["m"] + g
                    g = g + mu * s["m"] if h.get("nesterov") else s["m"]
                p -= h["lr"] * g
            elif self.name in ("adam", "adamw"):
                b1, b2 = h.get("beta1", 0.9), h.get("beta2", 0.999)
                if self.name == "adamw":
                    p *= 1 - h["lr"] * h.get("weight_decay", 0.01)
                s["m"] = b1 * s["m"] + (1 - b1) * g
                s["v"] = b2 * s["v"] + (1 - b2) * g * g
                m_hat = s["m"] / (1 - b1**t)
                v_hat = s["v"] / (1 - b2**t)
                p -= h["lr"] * m_hat / (np.sqrt(v_hat) + h.get("eps", 1e-8))
            elif self.name == "rmsprop":
                rho, mu = h.get("rho", 0.99), h.get("momentum", 0.0)
                s["v"] = rho * s["v"] + (1 - rho) * g * g
                update = g / (np.sqrt(s["v"]) + h.get("eps", 1e-8))
                if mu:
                    s["m"] = mu * s["m"] + update
                    update = s["m"]
                p -= h["lr"] * update


def train(params, acts, loss, X, Y, optimizer, batch_size, epochs, l1=0.0, l2=0.0):
    """Mini-batch training in data order (no shuffling); returns the per-epoch mean losses."""
    flat = [a for pair in params for a in pair]
    history = []
    for _ in range(epochs):
        total = 0.0
        for start in range(0, X.shape[0], batch_size):
            xb, yb = X[start : start + batch_size], Y[start : start + batch_size]
            value, grads, _ = loss_and_grads(params, acts, loss, xb, yb, l1=0.0, l2=0.0)
            # The penalty's gradient is added inside fastdnn's optimizer pass; match it here.
            for (W, _), g in zip(params, grads):
                g[0] += l1 * np.sign(W) + l2 * W
            total += value * len(xb)
            optimizer.step(flat, [g for pair in grads for g in pair])
        history.append(total / X.shape[0])
    return history
