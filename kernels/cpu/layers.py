"""Kernels of the layer kinds beside ``Dense``: batch and layer normalisation, dropout.

Every kernel reads the layer's input ``X`` (the previous layer's activations, (rows, n)) and
writes its pre-activation ``Z``; the caller runs the layer's activation pass after it, as for a
dense layer. Backward kernels take ``D``, the gradient of the loss w.r.t. ``Z``, and write the
gradient w.r.t. ``X`` into ``DX`` (the caller then applies the previous layer's activation
derivative) and the parameters' gradients into ``dgamma``/``dbeta``.

Normalisation statistics are accumulated in the data's dtype, in two passes (mean, then the
mean squared deviation), as ``torch.nn.BatchNorm1d``/``LayerNorm`` do on the CPU.

Dropout masks come from a counter-based hash (SplitMix64's finaliser) of the batch's key and the
element's index in the batch: no generator state, the same mask on every run, thread and
device, and a new mask for every batch because every batch has a new key
(:func:`batch_mask_key`).
"""

import numpy as np

from .._options import callee, kernel

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S32 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(32)


@callee
def mix64(z):
    """SplitMix64's finaliser: a bijection of uint64 whose output bits look independent."""
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@kernel
def batch_mask_key(model_key, step):
    """The dropout key of the batch of update number ``step`` (1-based) of a model."""
    return mix64(np.uint64(model_key) ^ mix64(np.uint64(step) * _GOLDEN))


@callee
def layer_mask_key(batch_key, layer):
    """The key of layer ``layer``'s mask in the batch of ``batch_key``."""
    return mix64(batch_key + np.uint64(layer + 1) * _GOLDEN)


@kernel
def dropout_forward(X, rate, key, Z, A):
    """Inverted dropout of ``X`` into ``A``; the mask (0 or ``1 / (1 - rate)``) into ``Z``.

    Element ``e = i * n + j`` is dropped when 32 bits of ``h = mix64(key + (e // 2) * golden)``
    fall below ``rate * 2**32``: the top half of ``h`` for an even ``e``, the bottom half for
    an odd one (one hash serves two elements). The arrays are C-contiguous.
    """
    x, z, a = X.reshape(X.size), Z.reshape(Z.size), A.reshape(A.size)
    threshold = np.uint64(rate * 4294967296.0)
    low = np.uint64(0xFFFFFFFF)
    keep = X.dtype.type(1.0 / (1.0 - rate))
    zero = X.dtype.type(0.0)
    n_pairs = x.size // 2
    for p in range(n_pairs):
        h = mix64(key + np.uint64(p) * _GOLDEN)
        e = 2 * p
        m = keep if (h >> _S32) >= threshold else zero
        z[e] = m
        a[e] = x[e] * m
        m = keep if (h & low) >= threshold else zero
        z[e + 1] = m
        a[e + 1] = x[e + 1] * m
    if x.size % 2:
        e = x.size - 1
        h = mix64(key + np.uint64(n_pairs) * _GOLDEN)
        m = keep if (h >> _S32) >= threshold else zero
        z[e] = m
        a[e] = x[e] * m


@kernel
def dropout_backward(D, mask, DX):
    """``DX = D * mask``."""
    rows, n = D.shape
    for i in range(rows):
        for j in range(n):
            DX[i, j] = D[i, j] * mask[i, j]


@kernel
def copy_rows(X, A):
    """``A = X`` (dropout at inference, and the gradient through it)."""
    rows, n = X.shape
    for i in range(rows):
        for j in range(n):
            A[i, j] = X[i, j]


@kernel
def batch_norm_forward(X, gamma, beta, running, eps, momentum, training, update, moments, Z):
    """``Z = gamma * (X - mean) / sqrt(var + eps) + beta`` per feature (column).

    ``running`` holds the running mean then the running variance (2n,). Training uses the
    batch's mean and biased variance and, when ``update``, moves the running statistics by
    ``momentum`` towards the batch mean and the unbiased variance (the biased one for a single
    row, whose unbiased variance is undefined); inference uses the running statistics.
    ``moments`` (2n,) receives the mean and ``1 / sqrt(var + eps)`` used, for the backward pass.
    """
    rows, n = X.shape
    mean = moments[:n]
    inv = moments[n:]
    dt = X.dtype.type
    if training:
        mean[:] = 0
        inv[:] = 0
        for i in range(rows):
            for j in range(n):
                mean[j] += X[i, j]
        scale = dt(1.0 / rows)
        for j in range(n):
            mean[j] *= scale
        for i in range(rows):
            for j in range(n):
                d = X[i, j] - mean[j]
                inv[j] += d * d
        unbias = dt(rows / (rows - 1) if rows > 1 else 1.0)
        m = dt(momentum)
        for j in range(n):
            var = inv[j] * scale
            if update:
                running[j] = (dt(1.0) - m) * running[j] + m * mean[j]
                running[n + j] = (dt(1.0) - m) * running[n + j] + m * (var * unbias)
            inv[j] = dt(1.0) / np.sqrt(var + dt(eps))
    else:
        for j in range(n):
            mean[j] = running[j]
            inv[j] = dt(1.0) / np.sqrt(running[n + j] + dt(eps))
    for i in range(rows):
        for j in range(n):
            Z[i, j] = gamma[j] * ((X[i, j] - mean[j]) * inv[j]) + beta[j]


@kernel
def batch_norm_backward(X, D, gamma, moments, training, dgamma, dbeta, DX):
    """Gradients of :func:`batch_norm_forward` given ``D = dL/dZ``.

    Training (batch statistics): ``DX = gamma * inv * (D - mean(D) - xhat * mean(D * xhat))``
    per feature, the means over the batch; inference: ``DX = gamma * inv * D``.
    """
    rows, n = X.shape
    mean = moments[:n]
    inv = moments[n:]
    dgamma[:] = 0
    dbeta[:] = 0
    for i in range(rows):
        for j in range(n):
            d = D[i, j]
            dbeta[j] += d
            dgamma[j] += d * ((X[i, j] - mean[j]) * inv[j])
    dt = X.dtype.type
    scale = dt(1.0 / rows) if training else dt(0.0)
    for i in range(rows):
        for j in range(n):
            xhat = (X[i, j] - mean[j]) * inv[j]
            DX[i, j] = gamma[j] * inv[j] * (D[i, j] - scale * (dbeta[j] + xhat * dgamma[j]))


@callee
def _row_moments(x, eps):
    n = x.size
    dt = x.dtype.type
    total = dt(0.0)
    for j in range(n):
        total += x[j]
    mean = total * dt(1.0 / n)
    sq = dt(0.0)
    for j in range(n):
        d = x[j] - mean
        sq += d * d
    return mean, dt(1.0) / np.sqrt(sq * dt(1.0 / n) + dt(eps))


@kernel
def layer_norm_forward(X, gamma, beta, eps, Z):
    """``Z = gamma * (x - mean(x)) / sqrt(var(x) + eps) + beta`` for every row ``x`` of ``X``
    (biased variance over the row's features, as ``torch.nn.LayerNorm``)."""
    rows, n = X.shape
    for i in range(rows):
        mean, inv = _row_moments(X[i], eps)
        for j in range(n):
            Z[i, j] = gamma[j] * ((X[i, j] - mean) * inv) + beta[j]


@kernel
def layer_norm_backward(X, D, gamma, eps, dgamma, dbeta, DX):
    """Gradients of :func:`layer_norm_forward` given ``D = dL/dZ``: per row, with
    ``g = D * gamma``, ``DX = inv * (g - mean(g) - xhat * mean(g * xhat))``. The row moments
    are recomputed from ``X`` (the same operations, so the same values as the forward's)."""
    rows, n = X.shape
    dgamma[:] = 0
    dbeta[:] = 0
    dt = X.dtype.type
    scale = dt(1.0 / n)
    for i in range(rows):
        mean, inv = _row_moments(X[i], eps)
        g_sum = dt(0.0)
        gx_sum = dt(0.0)
        for j in range(n):
            d = D[i, j]
            xhat = (X[i, j] - mean) * inv
            dbeta[j] += d
            dgamma[j] += d * xhat
            g = d * gamma[j]
            g_sum += g
            gx_sum += g * xhat
        g_mean = g_sum * scale
        gx_mean = gx_sum * scale
        for j in range(n):
            xhat = (X[i, j] - mean) * inv
            DX[i, j] = inv * (D[i, j] * gamma[j] - g_mean - xhat * gx_mean)
