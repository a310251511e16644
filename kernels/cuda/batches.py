"""Mini-batch assembly on the device: the CUDA twin of ``kernels/cpu/network.gather_batch``."""

from ...engines.cuda import cuda


@cuda.jit(cache=True)
def gather_batch(X, Y, sample_weight, order, start, rows, n_in, n_out, Xb, Yb, Wb):
    """Copy rows ``order[start:start + rows]`` of ``X``, ``Y`` and ``sample_weight`` into the
    flat batch buffers ``Xb`` (rows, n_in), ``Yb`` (rows, n_out) and ``Wb`` (rows,).

    ``X`` and ``Y`` are flat (n_samples * width) device arrays. Launch with a 2-D grid: ``y``
    striding over the batch rows (at most 65535 block rows), ``x`` (any block size) striding over
    the columns, so consecutive threads copy consecutive elements of one sample.
    """
    first = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    stride = cuda.gridDim.x * cuda.blockDim.x
    for r in range(cuda.blockIdx.y, rows, cuda.gridDim.y):
        src = order[start + r]
        for j in range(first, n_in, stride):
            Xb[r * n_in + j] = X[src * n_in + j]
        for j in range(first, n_out, stride):
            Yb[r * n_out + j] = Y[src * n_out + j]
        if first == 0:
            Wb[r] = sample_weight[src]
