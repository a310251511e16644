"""CUDA kernels (``@cuda.jit``), the device twins of ``kernels/cpu``.

Run by :class:`fastdnn.engines.cuda.CudaEngine`, which owns the device buffers and launches
them; ``cuda`` itself comes from that backend module, the one place that imports
``numba.cuda``. Modules:

- ``activations``: activation functions and derivatives (device functions), output activation;
- ``dense``: tiled shared-memory GEMMs with fused epilogues (forward with bias + activation,
  weight gradient with the bias gradient as an extra column, input gradient with the
  activation derivative);
- ``losses``: softmax + cross-entropy, sigmoid + binary cross-entropy, exp + Poisson and MSE
  output deltas with per-batch loss and accuracy sums;
- ``optimizers``: SGD (momentum, Nesterov), Adam, AdamW, RMSprop with L1/L2 as grid-stride passes
  over the flat buffers, and parameter statistics (penalty, finiteness);
- ``batches``: gathering a shuffled mini-batch from device-resident data.

Importing these modules needs numba-cuda (see ``fastdnn.engines.cuda.require_cuda``).
"""
