"""The CUDA device: training and inference of a ``Sequential`` on an NVIDIA GPU.

This is the only module that imports ``numba.cuda`` (the numba-cuda package, which redirects
``from numba import cuda`` to itself). The ``@cuda.jit`` kernels in ``fastdnn.kernels.cuda`` take
``cuda`` from here, so a successor to numba-cuda means changing one import. Nothing here touches
the GPU at import time: importing this module never fails, and :func:`require_cuda` says what is
missing.

:class:`CudaEngine` mirrors ``kernels/cpu/network.py`` kernel for kernel. It is built from the
same layer table as the CPU path (``kernels.cpu.network.Net``) and
keeps the flat parameter buffer (all weights, then all biases), the flat gradient buffer, the
optimizer state ((n_slots, n_params), as on the CPU) and the workspace (``Zbuf``, ``Abuf``,
``Dbuf`` with the CPU's per-layer offsets) on the device for the whole fit. A training epoch
queues every batch's kernels without waiting (gather, one GEMM per layer forward, the fused
loss, one launch per layer backward computing ``dW``/``db`` and the previous delta together,
one optimizer pass: 2L + 3 launches for L layers)
and copies back only the per-batch loss and accuracy sums and the "first bad batch" flag.

Typical use (what ``Sequential`` does with ``device="cuda"``)::

    engine = CudaEngine(net, loss_code, opt_code, n_slots, l1, l2, dtype)
    engine.upload(params, state, step)
    data = engine.dataset(X, Y, sample_weight)           # copied once if it fits on the GPU
    for epoch in range(epochs):
        loss_sum, correct, bad_batch = engine.train_epoch(data, order, batch_size, hyper)
    params, state, step = engine.download(params, state)   # into the model's arrays
"""

import importlib.util
import math
import os
import warnings

import numpy as np

from ..kernels.cpu import layers as _cpu_layers
from ..kernels.cpu import network as _cpu_net
from ..kernels.cpu import sparse as _sparse
from . import cpu as _cpu

if importlib.util.find_spec("numba_cuda") is not None:
    from numba import cuda
else:  # pragma: no cover - exercised only where numba-cuda is absent
    cuda = None

__all__ = [
    "CudaEngine",
    "DeviceDataset",
    "cuda",
    "cuda_problem",
    "ptx_compiler_problem",
    "require_cuda",
    "simulator_enabled",
]

INSTALL_HINT = (
    'pip install "fastdnn[cuda]" (it installs numba-cuda[cu12], the CUDA 12 build; with a CUDA 13 '
    'driver use pip install "numba-cuda[cu13]")'
)

#: Largest number of rows one GEMM launch covers along the grid's y dimension, per tile row.
_MAX_GRID_Y = 65535


# --------------------------------------------------------------------------------- availability
def simulator_enabled():
    """True when numba-cuda runs kernels in its CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``)."""
    if cuda is None:
        return False
    config = getattr(cuda, "config", None)
    return bool(getattr(config, "ENABLE_CUDASIM", False))


def _describe_driver_error(error):
    """``(what is missing, how to fix it)`` for a CUDA driver initialisation error text."""
    text = " ".join(str(error or "").split())
    if "cannot be found" in text or "driver library" in text.lower():
        return (
            "no NVIDIA driver was found (the CUDA driver library libcuda could not be loaded)",
            "install the NVIDIA driver for your GPU (nvidia-smi must list it), or use "
            "device='cpu' on a machine without an NVIDIA GPU",
        )
    if "NO_DEVICE" in text or "no CUDA-capable device" in text:
        return (
            "the NVIDIA driver reports no CUDA-capable GPU",
            "check nvidia-smi and CUDA_VISIBLE_DEVICES, or use device='cpu'",
        )
    if "INSUFFICIENT_DRIVER" in text or "driver version is insufficient" in text.lower():
        return (
            f"the NVIDIA driver is too old for the installed CUDA runtime ({text})",
            "update the driver, or install the numba-cuda build of your driver's CUDA major "
            'version: pip install "numba-cuda[cu12]"',
        )
    if "NUMBA_DISABLE_CUDA" in text:
        return ("CUDA is disabled by NUMBA_DISABLE_CUDA=1", "unset NUMBA_DISABLE_CUDA")
    return (
        f"the CUDA driver failed to initialise ({text or 'unknown error'})",
        "check that nvidia-smi works and that the driver matches the installed numba-cuda "
        f"build: {INSTALL_HINT}",
    )


def cuda_problem():
    """Why ``device="cuda"`` cannot run here, or None when it can.

    Checks, in order: the numba-cuda package, the NVIDIA driver, a visible GPU, and the CUDA
    compiler library (NVVM, shipped by the ``cu12``/``cu13`` extras of numba-cuda). Under the
    CUDA simulator only the package is needed.

    Returns
    -------
    str or None
        One sentence naming what is missing and how to fix it.
    """
    if cuda is None:
        return (
            "device='cuda' needs the numba-cuda package, which is not installed. "
            f"Install it with: {INSTALL_HINT}"
        )
    if simulator_enabled():
        return None
    try:
        from numba.cuda.cudadrv import driver as _driver

        available = _driver.driver.is_available
        error = _driver.driver.initialization_error
    except Exception as exc:  # noqa: BLE001 - any failure here means "no usable driver"
        available, error = False, exc
    if not available:
        what, fix = _describe_driver_error(error)
        return f"device='cuda' is not available: {what}. To fix: {fix}."
    try:
        n_gpus = len(cuda.gpus)
    except Exception as exc:  # noqa: BLE001
        what, fix = _describe_driver_error(exc)
        return f"device='cuda' is not available: {what}. To fix: {fix}."
    if n_gpus == 0:
        what, fix = _describe_driver_error("NO_DEVICE")
        return f"device='cuda' is not available: {what}. To fix: {fix}."
    try:
        from numba.cuda.cudadrv import nvvm

        has_nvvm = nvvm.is_available()
    except Exception:  # noqa: BLE001
        has_nvvm = False
    if not has_nvvm:
        return (
            "device='cuda' is not available: numba-cuda is installed without the CUDA compiler "
            f"libraries (libNVVM), so it cannot compile kernels. To fix: {INSTALL_HINT}."
        )
    return None


def require_cuda():
    """Raise one clear ``RuntimeError`` unless ``device="cuda"`` can run (see
    :func:`cuda_problem`); the CUDA simulator counts as available.

    Raises
    ------
    RuntimeError
        Naming what is missing (numba-cuda, the NVIDIA driver, a GPU, or the CUDA compiler
        libraries) and how to fix it (``pip install "fastdnn[cuda]"``).
    """
    problem = cuda_problem()
    if problem is not None:
        raise RuntimeError(problem)


def ptx_compiler_problem():
    """Why kernels cannot be compiled to PTX here, or None.

    Compiling needs numba-cuda outside the simulator, libNVVM and NVRTC (``fastdnn[cuda]``
    installs them), but no GPU or driver: the developer tools ``tests/cuda_ptx.py`` and
    ``asv_benchmarks/gpu_sass.py`` use it on machines without one.
    """
    if cuda is None:
        return "numba-cuda is not installed"
    if simulator_enabled():
        return "the CUDA simulator is enabled (unset NUMBA_ENABLE_CUDASIM)"
    try:
        import numba

        def probe(x):
            x[0] = 1.0

        cuda.compile_ptx(probe, (numba.float32[::1],), cc=(9, 0))
    except Exception as exc:  # noqa: BLE001 - any failure: no usable NVVM/NVRTC
        return f"cannot compile PTX: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return None


def gpu_available():
    """True on a real, usable GPU (False under the simulator and without CUDA)."""
    return cuda is not None and not simulator_enabled() and cuda_problem() is None


# --------------------------------------------------------------------------------- data
class DeviceDataset:
    """Training or inference data for a :class:`CudaEngine`, resident on the device or streamed.

    Build it with :meth:`CudaEngine.dataset`. When resident, ``X``, ``Y`` and the sample weights
    are copied to the device once and every epoch gathers its batches there; otherwise each batch
    is gathered on the host and copied. A sparse ``X`` is always streamed: each batch's rows are
    densified on the host, the data set never is.

    Attributes
    ----------
    X : numpy.ndarray or fastdnn.kernels.cpu.sparse.CSR
        The validated host inputs (C-contiguous, or CSR, of the engine's dtype).
    Y, weight : numpy.ndarray
        The validated host arrays (C-contiguous, the engine's dtype); ``Y``/``weight`` may be None
        for prediction.
    n_rows : int
    resident : bool
        Whether device copies exist.
    """

    def __init__(self, X, Y, weight, resident, d_X=None, d_Y=None, d_weight=None):
        self.X, self.Y, self.weight = X, Y, weight
        self.n_rows = X.shape[0]
        self.resident = resident
        self.d_X, self.d_Y, self.d_weight = d_X, d_Y, d_weight

    def __repr__(self):
        where = "device" if self.resident else "host (streamed)"
        return f"DeviceDataset(n_rows={self.n_rows}, on {where})"


# --------------------------------------------------------------------------------- engine
class CudaEngine:
    """A network's parameters, gradients, optimizer state and workspace resident on one GPU.

    Parameters
    ----------
    net : kernels.cpu.network.Net
        The network's layer table (kinds, widths, activation codes, parameter and statistics
        offsets, the layers' constants; its ``n_weights`` weights come first in the parameter
        buffer and L1/L2 apply to them only), as the CPU kernels take it.
    loss_code : int
        ``MSE``, ``CROSS_ENTROPY``, ``BINARY_CROSS_ENTROPY`` or ``POISSON``
        (``kernels.cpu.losses``).
    opt_code : int
        ``SGD``, ``ADAM``, ``ADAMW`` or ``RMSPROP`` (``kernels.cpu.optimizers``).
    n_slots : int
        Rows of optimizer state (``optimizer.n_slots``).
    l1, l2 : float, default 0.0
        Weight penalties, as in ``Sequential.compile``.
    dtype : {"float32", "float64"}, default "float32"
    loss_weight : float, default 1.0
        Factor on the data loss's gradient, as in ``Sequential.compile`` (the loss sums this
        engine returns leave it out, as the CPU kernels' do).
    tile : str or tuple, optional
        GEMM tile (a key of ``kernels.cuda.dense.TILES`` or ``(BM, BN, BK, TM, TN)``) for every
        product. By default the environment variable ``FASTDNN_CUDA_TILE`` (a key; for A/B runs
        of whole trainings), else "tiny" under the simulator, else chosen per product by
        ``kernels.cuda.dense.choose_tile`` (big register tiles for outputs that fill the GPU
        with them, smaller ones otherwise).
    threads : int, optional
        Threads per block of the loss, reduction and elementwise kernels (a power of two);
        16 under the simulator, 256 on a GPU.
    max_resident_bytes : int, optional
        Data sets up to this size are copied to the device once; larger ones are streamed batch
        by batch. Default: half the device memory free when the data set is built.
    n_running : int, default 0
        Size of the running-statistics buffer the table's ``s_off`` index.
    mask_key : int, default 0
        The model's dropout key (``Sequential._mask_key``): batch ``t`` of a fit draws the
        masks of ``kernels.cpu.layers.batch_mask_key(mask_key, t)``, as on the CPU.
    clipnorm : float or None, default None
        Global gradient-norm clipping before every update, as ``Sequential.compile``.

    Notes
    -----
    Nothing is allocated on the device until :meth:`upload`. Every array this engine returns is
    a new host array (or the ``out`` arrays given to :meth:`download`).
    """

    def __init__(
        self, net, loss_code, opt_code, n_slots, l1=0.0, l2=0.0, dtype="float32", *,
        loss_weight=1.0, tile=None, threads=None, max_resident_bytes=None, n_running=0,
        mask_key=0, clipnorm=None,
    ):  # fmt: skip
        require_cuda()
        from ..kernels.cuda import activations, batches, dense, losses, optimizers
        from ..kernels.cuda import layers as cuda_layers

        self._k_act, self._k_batch, self._k_dense = activations, batches, dense
        self._k_loss, self._k_opt, self._k_layers = losses, optimizers, cuda_layers
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        self.sizes = [int(s) for s in net.sizes]
        self.acts = [int(a) for a in net.acts]
        self.w_off = [int(o) for o in net.p_off]
        self.b_off = [int(o) for o in net.q_off]
        self.n_layers = len(self.acts)
        if len(self.sizes) != self.n_layers + 1:
            raise ValueError("net.sizes must hold one more entry than net.acts")
        self.kinds = [int(k) for k in net.kinds]
        self.s_off = [int(o) for o in net.s_off]
        self.layer_eps = [float(v) for v in net.eps]
        self.layer_momentum = [float(v) for v in net.momentum]
        self.layer_rate = [float(v) for v in net.rate]
        self.n_running = int(n_running)
        self.mask_key = np.uint64(mask_key)
        self.clipnorm = None if clipnorm is None else float(clipnorm)
        self.n_weights = int(net.n_weights)
        self.n_params = self.b_off[-1] + self.sizes[-1]
        self.loss_code = int(loss_code)
        self.opt_code = int(opt_code)
        self.n_slots = int(n_slots)
        self.l1 = self.dtype.type(l1)
        self.l2 = self.dtype.type(l2)
        # Rounded to the dtype as the CPU path passes it to its kernels, so both scale alike.
        self.loss_weight = self.dtype.type(loss_weight)
        self._simulated = sim = simulator_enabled()
        if tile is None:
            tile = os.environ.get("FASTDNN_CUDA_TILE") or None
        if tile is None:
            self._tile = dense.TILES["tiny"] if sim else None
        elif isinstance(tile, str):
            if tile not in dense.TILES:
                raise ValueError(
                    f"unknown GEMM tile {tile!r} (tile= or FASTDNN_CUDA_TILE): choose one of "
                    f"{', '.join(dense.TILES)}"
                )
            self._tile = dense.TILES[tile]
        else:
            self._tile = tuple(tile)
        self.threads = int(threads) if threads is not None else (16 if sim else 256)
        self.max_resident_bytes = max_resident_bytes
        self._n_sm = None if sim else int(cuda.get_current_device().MULTIPROCESSOR_COUNT)
        self._loss_kernels = losses.loss_kernels(self.dtype.name, self.threads)
        self._param_kernels = optimizers.param_kernels(self.dtype.name, self.threads)
        self._launchers = {}
        self._gemm_configs = {}  # (which, shape) -> (kernel, grid, threads)
        self._d_order = None
        self.step = 0
        self.params = None  # device buffers, allocated by upload()
        self._ws_rows = 0
        self._dense_rows = None  # host rows of a streamed sparse batch (see _stream_inputs)
        self._parts_size = 0
        self._saved = None

    # ----------------------------------------------------------------------------- buffers
    def upload(self, params, state=None, step=0, running=None):
        """Copy the parameters, the optimizer state, the step count and the running statistics
        to the device.

        Allocates the device buffers on the first call.

        Parameters
        ----------
        params : ndarray (n_params,)
            The flat parameter buffer (all weights, then all biases).
        state : ndarray (n_slots, n_params), optional
            Optimizer state; zeros when None.
        step : int or ndarray (1,), default 0
            Updates applied so far (Adam's bias corrections continue from it).
        running : ndarray (n_running,), optional
            Batch normalisations' running statistics; kept as they are when None.
        """
        params = self._host_params(params)
        if self.params is None:
            self.params = cuda.to_device(params)
            self.grads = cuda.device_array(self.n_params, dtype=self.dtype)
            # At least one entry each: the kernels take them even where no layer uses them.
            self.running = cuda.device_array(max(self.n_running, 1), dtype=self.dtype)
            self._moments = cuda.device_array(max(self.n_running, 1), dtype=self.dtype)
            self._clip_sq = cuda.device_array(1, dtype=np.float64)
            # At least one row: plain SGD has no state but the kernel takes a 2-D array.
            self.state = cuda.device_array((max(self.n_slots, 1), self.n_params), self.dtype)
            self._hyper = cuda.device_array(8, dtype=self.dtype)
            self._bad = cuda.device_array(1, dtype=np.int64)
        else:
            self.params.copy_to_device(params)
        if self.n_slots:
            if state is None:
                host_state = np.zeros((self.n_slots, self.n_params), dtype=self.dtype)
            else:
                host_state = np.ascontiguousarray(state, dtype=self.dtype).reshape(
                    self.n_slots, self.n_params
                )
            self.state.copy_to_device(host_state)
        if running is not None:
            self.set_running(running)
        self.step = int(np.asarray(step).reshape(-1)[0])
        self._saved = None

    def set_running(self, running):
        """Replace the running statistics on the device."""
        self._require_uploaded()
        running = np.ascontiguousarray(running, dtype=self.dtype).reshape(-1)
        if running.size != self.n_running:
            raise ValueError(
                f"running has {running.size} entries, the network needs {self.n_running}"
            )
        if running.size:
            self.running[: running.size].copy_to_device(running)

    def download_running(self, out=None):
        """The running statistics, into ``out`` when given."""
        self._require_uploaded()
        if out is None:
            out = np.empty(self.n_running, dtype=self.dtype)
        if self.n_running:
            self.running[: self.n_running].copy_to_host(out.reshape(-1))
        return out

    def set_params(self, params):
        """Replace only the parameters on the device (state and step are kept), e.g. after a
        callback changed the model's weights between epochs."""
        self._require_uploaded()
        self.params.copy_to_device(self._host_params(params))

    def _host_params(self, params):
        params = np.ascontiguousarray(params, dtype=self.dtype).reshape(-1)
        if params.size != self.n_params:
            raise ValueError(f"params has {params.size} entries, the network needs {self.n_params}")
        return params

    def download(self, params=None, state=None):
        """Copy the parameters and optimizer state back to the host.

        Parameters
        ----------
        params : ndarray (n_params,), optional
            Filled in place when given (e.g. the model's own buffer).
        state : ndarray (n_slots, n_params), optional
            Filled in place when given.

        Returns
        -------
        params : ndarray (n_params,)
        state : ndarray (n_slots, n_params)
        step : int
            Updates applied so far (the CPU path's ``step[0]``).
        """
        self._require_uploaded()
        if params is None:
            params = np.empty(self.n_params, dtype=self.dtype)
        self.params.copy_to_host(params.reshape(-1))
        if not self.n_slots:
            state = np.empty((0, self.n_params), self.dtype) if state is None else state
            return params, state, self.step
        if state is None:
            state = np.empty((self.n_slots, self.n_params), dtype=self.dtype)
        self.state.copy_to_host(state.reshape(self.n_slots, self.n_params))
        return params, state, self.step

    def snapshot(self):
        """Keep a device copy of the parameters, state, running statistics and step (see
        :meth:`restore`)."""
        self._require_uploaded()
        if self._saved is None:
            self._saved = (
                cuda.device_array_like(self.params),
                cuda.device_array_like(self.state),
                cuda.device_array_like(self.running),
                self.step,
            )
        saved_params, saved_state, saved_running, _ = self._saved
        saved_params.copy_to_device(self.params)
        saved_state.copy_to_device(self.state)
        saved_running.copy_to_device(self.running)
        self._saved = (saved_params, saved_state, saved_running, self.step)

    def restore(self):
        """Return to the last :meth:`snapshot` (device to device; nothing crosses the bus)."""
        if self._saved is None:
            raise RuntimeError("restore() needs an earlier snapshot()")
        saved_params, saved_state, saved_running, step = self._saved
        self.params.copy_to_device(saved_params)
        self.state.copy_to_device(saved_state)
        self.running.copy_to_device(saved_running)
        self.step = step

    def param_stats(self):
        """``(sum |W|, sum W**2, all parameters finite)`` computed on the device.

        Only one small array of per-block partial sums comes back; it is summed in float64.
        """
        self._require_uploaded()
        nt = self.threads
        blocks = max(1, min(-(-self.n_params // nt), 1024))
        partials = cuda.device_array((blocks, 3), dtype=self.dtype)
        self._launch(self._param_kernels.stats, blocks, nt)(self.params, self.n_weights, partials)
        host = partials.copy_to_host().astype(np.float64)
        totals = host.sum(axis=0)
        return float(totals[0]), float(totals[1]), bool(totals[2] == 0)

    def penalty(self, stats=None):
        """``l1 * sum|W| + (l2 / 2) * sum W**2``, as ``kernels.cpu.optimizers.penalty``.

        ``stats`` is a result of :meth:`param_stats` to reuse (one device pass per epoch gives
        both the penalty and the finiteness check).
        """
        abs_sum, sq_sum, _ = self.param_stats() if stats is None else stats
        return float(self.l1) * abs_sum + 0.5 * float(self.l2) * sq_sum

    def all_finite(self):
        """Whether every parameter is finite."""
        return self.param_stats()[2]

    # ----------------------------------------------------------------------------- data
    def dataset(self, X, Y=None, sample_weight=None, resident=None):
        """Wrap validated host arrays as a :class:`DeviceDataset`, copying them to the device
        once when they fit.

        Parameters
        ----------
        X : ndarray (n, n_in) or fastdnn.kernels.cpu.sparse.CSR
            A CSR (as ``Sequential`` validates a scipy.sparse input) is streamed, never resident.
        Y : ndarray (n, n_out), optional
            Targets (needed for training and evaluation).
        sample_weight : ndarray (n,), optional
            Ones when omitted (none at all without targets: prediction needs no weights).
        resident : bool, optional
            Force (True) or forbid (False) the device copy; by default it is made when the data
            is at most ``max_resident_bytes`` (half the free device memory by default).
        """
        is_csr = isinstance(X, _sparse.CSR)
        if is_csr:
            X = X._replace(data=np.ascontiguousarray(X.data, dtype=self.dtype))
            if resident:
                raise ValueError("a sparse X is streamed batch by batch; it cannot be resident")
            resident = False
        else:
            X = np.ascontiguousarray(X, dtype=self.dtype)
        n = X.shape[0]
        if len(X.shape) != 2 or X.shape[1] != self.sizes[0]:
            raise ValueError(f"X must have shape (n, {self.sizes[0]}), got {X.shape}")
        if Y is not None:
            Y = np.ascontiguousarray(Y, dtype=self.dtype)
            if Y.shape != (n, self.sizes[-1]):
                raise ValueError(f"Y must have shape ({n}, {self.sizes[-1]}), got {Y.shape}")
        if sample_weight is None:
            weight = None if Y is None else np.ones(n, dtype=self.dtype)
        else:
            weight = np.ascontiguousarray(sample_weight, dtype=self.dtype).reshape(-1)
            if weight.size != n:
                raise ValueError(f"sample_weight must have shape ({n},), got {weight.shape}")
        if resident is None:
            nbytes = sum(a.nbytes for a in (X, Y, weight) if a is not None)
            resident = nbytes <= self._resident_limit()
        if not resident:
            return DeviceDataset(X, Y, weight, False)
        d_X = cuda.to_device(X.reshape(-1))
        d_Y = cuda.to_device(Y.reshape(-1)) if Y is not None else None
        d_weight = cuda.to_device(weight) if weight is not None else None
        return DeviceDataset(X, Y, weight, True, d_X, d_Y, d_weight)

    def _resident_limit(self):
        if self.max_resident_bytes is not None:
            return self.max_resident_bytes
        try:
            free = cuda.current_context().get_memory_info()[0]
        except Exception:  # noqa: BLE001 - no memory query: keep data on the host
            return 0
        return free / 2 if math.isfinite(free) else float("inf")

    def _as_dataset(self, data, need_targets=True):
        if isinstance(data, DeviceDataset):
            dataset = data
        elif isinstance(data, tuple) and not isinstance(data, _sparse.CSR):  # CSR: a tuple too
            dataset = self.dataset(*data)
        else:
            dataset = self.dataset(data)
        if need_targets and dataset.Y is None:
            raise ValueError("this call needs targets: build the data set with Y")
        return dataset

    # ----------------------------------------------------------------------------- launches
    def _launch(self, kernel, griddim, blockdim):
        """The configured launch ``kernel[griddim, blockdim]``, built once and kept on a GPU.

        The simulator's ``kernel[griddim, blockdim]`` sets the grid on the kernel object itself
        and returns that object, so a kept configuration would launch with whichever grid was
        set last (the forward GEMM of one layer ran with the next layer's grid from the second
        batch of an epoch on). There the kernel is configured at every launch.
        """
        if self._simulated:
            return kernel[griddim, blockdim]
        key = (kernel, griddim, blockdim)
        launcher = self._launchers.get(key)
        if launcher is None:
            with warnings.catch_warnings():
                # Small grids are expected for small layers; numba warns about each one.
                warnings.simplefilter("ignore")
                launcher = kernel[griddim, blockdim]
            self._launchers[key] = launcher
        return launcher

    def _tile_for(self, m, n, also=None):
        if self._tile is not None:
            return self._tile
        return self._k_dense.choose_tile(m, n, self._n_sm, also)

    def _gemm(self, which, m, n):
        """Configured launch of GEMM ``which`` ("forward", "weight_grad" or "input_grad") for
        an ``m x n`` output."""
        key = (which, m, n)
        config = self._gemm_configs.get(key)
        if config is None:
            dense = self._k_dense
            tile = self._tile_for(m, n)
            kernel = getattr(dense.gemm_kernels(self.dtype.name, tile), which)
            config = self._gemm_configs[key] = (
                kernel,
                dense.grid(tile, m, n),
                dense.threads_per_block(tile),
            )
        return self._launch(*config)

    def _backward_gemms(self, rows, n_in, n_out):
        """Configured launch of ``backward``: both gradients of a hidden layer at once."""
        key = ("backward", rows, n_in, n_out)
        config = self._gemm_configs.get(key)
        if config is None:
            dense = self._k_dense
            tile = self._tile_for(n_out, n_in + 1, also=(rows, n_in))
            kernel = dense.gemm_kernels(self.dtype.name, tile).backward
            blocks = dense.backward_blocks(tile, rows, n_in, n_out)
            config = self._gemm_configs[key] = (kernel, blocks, dense.threads_per_block(tile))
        return self._launch(*config)

    def _stream_inputs(self, X, order, start, rows):
        """Copy host rows ``order[start:start + rows]`` of ``X`` (rows ``start:start + rows``
        when ``order`` is None) into the device batch buffer ``_Xbuf``.

        A CSR's rows are densified on the host first, into one buffer kept for the largest
        batch: the device kernels take dense rows, and only a batch is ever dense.
        """
        n_in = self.sizes[0]
        if not isinstance(X, _sparse.CSR):
            host = X[start : start + rows] if order is None else X[order[start : start + rows]]
        else:
            if self._dense_rows is None or self._dense_rows.shape[0] < rows:
                self._dense_rows = np.empty((max(rows, self._ws_rows), n_in), self.dtype)
                self._row_numbers = np.arange(self._dense_rows.shape[0], dtype=np.int64)
            host = self._dense_rows[:rows]
            if order is None:  # the block's own rows 0..rows-1
                X = _sparse.CSR(X.indptr[start : start + rows + 1], X.indices, X.data, X.n_cols)
                order, start = self._row_numbers, 0
            _sparse.densify_rows(X, order, start, rows, host)
        self._Xbuf[: rows * n_in].copy_to_device(host.reshape(-1))

    def _ensure_workspace(self, rows):
        """Device workspace for batches of up to ``rows`` rows; returns the layer offsets."""
        width = sum(self.sizes[1:])
        if rows > self._ws_rows:
            self._Zbuf = cuda.device_array(rows * width, dtype=self.dtype)
            self._Abuf = cuda.device_array(rows * width, dtype=self.dtype)
            self._Dbuf = cuda.device_array(rows * width, dtype=self.dtype)
            self._Xbuf = cuda.device_array(rows * self.sizes[0], dtype=self.dtype)
            self._Ybuf = cuda.device_array(rows * self.sizes[-1], dtype=self.dtype)
            self._Wbuf = cuda.device_array(rows, dtype=self.dtype)
            self._row_moments = cuda.device_array(2 * rows, dtype=self.dtype)
            self._ws_rows = rows
        offsets = [0]
        for size in self.sizes[1:-1]:
            offsets.append(offsets[-1] + rows * size)
        return offsets

    def _ensure_parts(self, n_batches):
        """Zeroed per-batch loss and correct-count slots, and the bad-batch flag at -1."""
        if n_batches > self._parts_size:
            self._loss_parts = cuda.device_array(n_batches, dtype=self.dtype)
            self._correct_parts = cuda.device_array(n_batches, dtype=np.int32)
            self._clip_parts = cuda.device_array(n_batches, dtype=np.float64)
            self._parts_size = n_batches
        self._loss_parts[:n_batches].copy_to_device(np.zeros(n_batches, dtype=self.dtype))
        self._correct_parts[:n_batches].copy_to_device(np.zeros(n_batches, dtype=np.int32))
        if self.clipnorm is not None:
            self._clip_parts[:n_batches].copy_to_device(np.zeros(n_batches, dtype=np.float64))

    def _require_uploaded(self):
        if self.params is None:
            raise RuntimeError("call upload(params, state, step) first")

    def _check_rows(self, rows):
        tile_rows = self._tile[0] if self._tile is not None else self._k_dense.TILES["small"][0]
        if -(-rows // tile_rows) > _MAX_GRID_Y:
            raise ValueError(
                f"batch_size {rows} is too large for one GPU launch (at most "
                f"{_MAX_GRID_Y * tile_rows} rows)"
            )

    # ----------------------------------------------------------------------------- passes
    def _forward(self, X, x_off, rows, ws, last_act, training=False, update=False, key=None):
        """Every layer on ``rows`` rows of ``X`` (flat, at ``x_off``); the last layer stores
        only ``Z`` unless ``last_act`` (then ``A = f(Z)`` too, for elementwise codes).

        ``training`` selects batch statistics and dropout, ``update`` (with it) moves the
        running statistics, ``key`` is the batch's dropout key (``batch_mask_key``), as in
        ``kernels.cpu.network.forward``.
        """
        L = self.n_layers
        net = _cpu_net
        layer_in, in_off = X, x_off
        for layer in range(L):
            n_in, n_out = self.sizes[layer], self.sizes[layer + 1]
            kind = self.kinds[layer]
            if kind == net.DENSE:
                store = 1 if (layer < L - 1 or last_act) else 0
                self._gemm("forward", rows, n_out)(
                    layer_in, in_off, self.params, self.w_off[layer], self.b_off[layer],
                    self._Zbuf, ws[layer], self._Abuf, ws[layer], rows, n_in, n_out,
                    self.acts[layer], store,
                )  # fmt: skip
            else:
                self._layer_forward(layer, kind, rows, ws, training, update, key)
            layer_in, in_off = self._Abuf, ws[layer]

    def _layer_forward(self, layer, kind, rows, ws, training, update, key):
        """A normalisation or dropout layer's forward kernel (input: the previous layer's A)."""
        net, k, t = _cpu_net, self._k_layers, self.dtype.type
        n = self.sizes[layer + 1]
        nt = self.threads
        x_off, z_off = ws[layer - 1], ws[layer]
        p, q, s = self.w_off[layer], self.b_off[layer], self.s_off[layer]
        if kind == net.BATCH_NORM:
            self._launch(k.batch_norm_forward, -(-n // nt), nt)(
                self._Abuf, x_off, self._Zbuf, self._Abuf, z_off, self.params, p, q,
                self.running, s, self._moments, rows, n, t(self.layer_eps[layer]),
                t(self.layer_momentum[layer]), t(1.0 / rows),
                t(rows / (rows - 1) if rows > 1 else 1.0), bool(training), bool(update),
                self.acts[layer],
            )  # fmt: skip
        elif kind == net.LAYER_NORM:
            self._launch(k.layer_norm_forward, -(-rows // nt), nt)(
                self._Abuf, x_off, self._Zbuf, self._Abuf, z_off, self.params, p, q, rows, n,
                t(self.layer_eps[layer]), t(1.0 / n), self.acts[layer],
            )  # fmt: skip
        else:
            size = rows * n
            rate = self.layer_rate[layer]
            if training and rate > 0:
                layer_key = np.uint64(_cpu_layers.layer_mask_key(key, layer))
                self._launch(k.dropout_forward, -(-((size + 1) // 2) // nt), nt)(
                    self._Abuf, x_off, self._Zbuf, self._Abuf, z_off, size,
                    np.uint64(rate * 4294967296.0), t(1.0 / (1.0 - rate)), layer_key,
                )  # fmt: skip
            else:
                self._launch(k.dropout_identity, -(-size // nt), nt)(
                    self._Abuf, x_off, self._Abuf, z_off, size
                )

    def _loss(self, Y, y_off, weight, w_off, rows, ws, scale, write_delta, slot):
        """The fused output loss (and delta) of the batch into slot ``slot``."""
        L = self.n_layers
        n_out = self.sizes[-1]
        off = ws[L - 1]
        nt = self.threads
        k = self._loss_kernels
        if self.loss_code == self._k_loss.CROSS_ENTROPY:
            self._launch(k.cross_entropy, -(-rows // nt), nt)(
                self._Zbuf, self._Abuf, self._Dbuf, off, Y, y_off, weight, w_off, rows, n_out,
                scale, write_delta, self._loss_parts, self._correct_parts, slot,
            )  # fmt: skip
        else:
            self._launch(k.elementwise, -(-(rows * n_out) // nt), nt)(
                self.loss_code, self.acts[L - 1], self._Zbuf, self._Abuf, self._Dbuf, off, Y,
                y_off, weight, w_off, rows, n_out, scale, write_delta, self._loss_parts,
                self._correct_parts, slot,
            )  # fmt: skip

    def _backward(self, X, x_off, rows, ws, training=False):
        """``dW``, ``db`` of every layer and the deltas below the output into the gradient
        buffer and ``Dbuf``; the output delta is already in ``Dbuf``. A hidden dense layer's
        two gradients take one launch; the first layer's (no delta below it) its own; the
        other kinds run their backward kernels in the mode ``training`` of the forward pass."""
        net = _cpu_net
        for layer in range(self.n_layers - 1, -1, -1):
            n_in, n_out = self.sizes[layer], self.sizes[layer + 1]
            kind = self.kinds[layer]
            if kind != net.DENSE:
                self._layer_backward(layer, kind, rows, ws, training)
            elif layer == 0:
                self._gemm("weight_grad", n_out, n_in + 1)(
                    self._Dbuf, ws[layer], X, x_off, self.grads, self.w_off[layer],
                    self.b_off[layer], rows, n_in, n_out,
                )  # fmt: skip
            else:
                self._backward_gemms(rows, n_in, n_out)(
                    self._Dbuf, ws[layer], self.params, self.w_off[layer], self.b_off[layer],
                    self.grads, self._Dbuf, ws[layer - 1], self._Zbuf, self._Abuf, rows, n_in,
                    n_out, self.acts[layer - 1],
                )  # fmt: skip

    def _layer_backward(self, layer, kind, rows, ws, training):
        """A normalisation or dropout layer's gradients, and the delta of the layer below it
        (its activation derivative included)."""
        net, k, t = _cpu_net, self._k_layers, self.dtype.type
        n = self.sizes[layer + 1]
        nt = self.threads
        x_off, d_off = ws[layer - 1], ws[layer]
        p, q, s = self.w_off[layer], self.b_off[layer], self.s_off[layer]
        prev_act = self.acts[layer - 1]
        Z, A, D = self._Zbuf, self._Abuf, self._Dbuf
        if kind == net.BATCH_NORM:
            self._launch(k.batch_norm_backward, -(-n // nt), nt)(
                A, x_off, D, d_off, self.params, p, self._moments, s, self.grads, q, rows, n,
                t(1.0 / rows) if training else t(0.0), D, Z, A, prev_act,
            )  # fmt: skip
        elif kind == net.LAYER_NORM:
            eps, inv_n = t(self.layer_eps[layer]), t(1.0 / n)
            self._launch(k.layer_norm_backward_rows, -(-rows // nt), nt)(
                A, x_off, D, d_off, self.params, p, rows, n, eps, inv_n, self._row_moments, D,
                Z, A, prev_act,
            )  # fmt: skip
            self._launch(k.layer_norm_backward_params, -(-n // nt), nt)(
                A, x_off, D, d_off, self._row_moments, self.grads, p, q, rows, n
            )
        else:
            size = rows * n
            masked = bool(training and self.layer_rate[layer] > 0)
            self._launch(k.dropout_backward, -(-size // nt), nt)(
                D, d_off, Z, masked, D, x_off, size, Z, A, prev_act
            )

    def _clip(self, slot):
        """Queue the global-norm clipping of the gradient buffer (``clipnorm``)."""
        nt = self.threads
        blocks = max(1, min(-(-self.n_params // nt), 64))
        k = self._k_layers
        self._launch(k.squared_norm, blocks, nt)(self.grads, self._clip_parts, slot)
        blocks = max(1, min(-(-self.n_params // nt), 4096))
        self._launch(k.clip_by_norm, blocks, nt)(
            self.grads, self._clip_parts, slot, float(self.clipnorm)
        )

    def _batch_key(self, step):
        """The dropout key of update number ``step`` (1-based), as the CPU epoch's."""
        return np.uint64(_cpu_layers.batch_mask_key(self.mask_key, step))

    def _batch_scale(self, weight_sum):
        """The output delta's factor: loss_weight / (summed weights [* width]), 0 for zero
        weights; formed in float64 and rounded once, as ``kernels.cpu.network`` does."""
        if self.loss_code != self._k_loss.CROSS_ENTROPY:
            weight_sum *= self.sizes[-1]
        scale = float(self.loss_weight) / weight_sum if weight_sum > 0 else 0.0
        return self.dtype.type(scale)

    def _optimizer_step(self, hyper, step, slot):
        """Queue the fused optimizer pass of update number ``step`` (1-based), gated on slot."""
        t = self.dtype.type
        step_size = inv_sqrt_bc2 = decay = t(1.0)
        if self.opt_code in (self._k_opt.ADAM, self._k_opt.ADAMW):
            # As kernels/cpu/optimizers.py: bias corrections in float64 from the step number.
            lr = float(hyper[0])
            bc1 = 1.0 - float(hyper[1]) ** step
            bc2 = 1.0 - float(hyper[2]) ** step
            step_size = t(lr / bc1)
            inv_sqrt_bc2 = t(1.0 / math.sqrt(bc2))
            if self.opt_code == self._k_opt.ADAMW:
                decay = t(1.0 - float(hyper[0] * hyper[4]))
        nt = self.threads
        blocks = max(1, min(-(-self.n_params // nt), 4096))
        self._launch(self._k_opt.optimizer_step, blocks, nt)(
            self.opt_code, self.params, self.grads, self.state, self._hyper, self.n_weights,
            self.l1, self.l2, step_size, inv_sqrt_bc2, decay, self._loss_parts, slot, self._bad,
        )  # fmt: skip

    def _set_hyper(self, hyper):
        hyper = np.asarray(hyper, dtype=self.dtype).reshape(-1)
        if hyper.size > 8:
            raise ValueError("at most 8 optimizer hyper-parameters are supported")
        padded = np.zeros(8, dtype=self.dtype)
        padded[: hyper.size] = hyper
        self._hyper.copy_to_device(padded)
        return hyper

    # ----------------------------------------------------------------------------- public
    def train_epoch(self, data, order, batch_size, hyper):
        """One epoch of mini-batch training, with the semantics of
        ``kernels.cpu.network.train_epoch``.

        Parameters
        ----------
        data : DeviceDataset or tuple (X, Y, sample_weight)
            From :meth:`dataset` (build it once per fit), or validated host arrays.
        order : ndarray of int (n,)
            Visiting order of the rows (a permutation when shuffling).
        batch_size : int
            Rows per update; the last batch may be smaller.
        hyper : ndarray
            ``optimizer.hyperparameters(dtype)``; read each epoch (schedules may change it).

        Returns
        -------
        loss_sum : float
            Weighted summed loss of the applied batches (before each update).
        correct : int
            Correct predictions of those batches.
        bad_batch : int
            Index of the first batch whose loss was not finite (its update and every later one
            were skipped), or -1.

        Notes
        -----
        Every batch is queued without waiting for the GPU; the only copies back are the
        per-batch loss and accuracy slots and the bad-batch flag, at the end. :attr:`step`
        counts the updates applied.
        """
        self._require_uploaded()
        data = self._as_dataset(data)
        order = np.ascontiguousarray(order, dtype=np.int64)
        n = order.size
        batch_size = int(batch_size)
        if n == 0:
            return 0.0, 0, -1
        rows_max = min(batch_size, n)
        self._check_rows(rows_max)
        n_batches = -(-n // batch_size)
        ws = self._ensure_workspace(rows_max)
        self._ensure_parts(n_batches)
        self._bad.copy_to_device(np.full(1, -1, dtype=np.int64))
        hyper = self._set_hyper(hyper)
        starts = np.arange(0, n, batch_size)
        weight_sums = np.add.reduceat(data.weight[order].astype(np.float64), starts)
        n_in, n_out = self.sizes[0], self.sizes[-1]
        if data.resident:
            if self._d_order is None or self._d_order.size != n:
                self._d_order = cuda.device_array(n, dtype=np.int64)
            self._d_order.copy_to_device(order)
            d_order = self._d_order
            gather_blocks = max(1, min(-(-max(n_in, n_out) // self.threads), 64))
        step0 = self.step
        for b in range(n_batches):
            start = b * batch_size
            rows = min(batch_size, n - start)
            if data.resident:
                self._launch(self._k_batch.gather_batch, (gather_blocks, min(rows, 65535)),
                             self.threads)(
                    data.d_X, data.d_Y, data.d_weight, d_order, start, rows, n_in, n_out,
                    self._Xbuf, self._Ybuf, self._Wbuf,
                )  # fmt: skip
            else:
                idx = order[start : start + rows]
                self._stream_inputs(data.X, order, start, rows)
                self._Ybuf[: rows * n_out].copy_to_device(data.Y[idx].reshape(-1))
                self._Wbuf[:rows].copy_to_device(data.weight[idx])
            step = step0 + b + 1
            self._forward(self._Xbuf, 0, rows, ws, False, True, True, self._batch_key(step))
            scale = self._batch_scale(float(weight_sums[b]))
            self._loss(self._Ybuf, 0, self._Wbuf, 0, rows, ws, scale, 1, b)
            self._backward(self._Xbuf, 0, rows, ws, True)
            if self.clipnorm is not None:
                self._clip(b)
            self._optimizer_step(hyper, step, b)
        loss_parts = self._loss_parts[:n_batches].copy_to_host()
        correct_parts = self._correct_parts[:n_batches].copy_to_host()
        bad = int(self._bad.copy_to_host()[0])
        good = n_batches if bad < 0 else bad
        self.step = step0 + good
        loss_sum = float(np.sum(loss_parts[:good], dtype=np.float64))
        return loss_sum, int(correct_parts[:good].sum()), bad

    def evaluate(self, data, batch_size=4096):
        """Weighted summed loss and correct predictions over a data set (targets required), as
        ``kernels.cpu.network.evaluate``; returns ``(loss_sum, correct)``."""
        self._require_uploaded()
        data = self._as_dataset(data)
        n = data.n_rows
        if n == 0:
            return 0.0, 0
        batch_size = int(batch_size)
        rows_max = min(batch_size, n)
        self._check_rows(rows_max)
        n_batches = -(-n // batch_size)
        ws = self._ensure_workspace(rows_max)
        self._ensure_parts(n_batches)
        n_in, n_out = self.sizes[0], self.sizes[-1]
        zero = self.dtype.type(0.0)
        for b in range(n_batches):
            start = b * batch_size
            rows = min(batch_size, n - start)
            if data.resident:
                X, x_off = data.d_X, start * n_in
                Y, y_off = data.d_Y, start * n_out
                W, w_off = data.d_weight, start
            else:
                self._stream_inputs(data.X, None, start, rows)
                self._Ybuf[: rows * n_out].copy_to_device(data.Y[start : start + rows].reshape(-1))
                self._Wbuf[:rows].copy_to_device(data.weight[start : start + rows])
                X, x_off, Y, y_off, W, w_off = self._Xbuf, 0, self._Ybuf, 0, self._Wbuf, 0
            self._forward(X, x_off, rows, ws, False)
            self._loss(Y, y_off, W, w_off, rows, ws, zero, 0, b)
        loss_parts = self._loss_parts[:n_batches].copy_to_host()
        correct_parts = self._correct_parts[:n_batches].copy_to_host()
        return float(np.sum(loss_parts, dtype=np.float64)), int(correct_parts.sum())

    def predict(self, data, batch_size=4096):
        """Output-layer activations for every row, as ``kernels.cpu.network.predict``.

        Parameters
        ----------
        data : DeviceDataset or ndarray (n, n_in)
        batch_size : int, default 4096

        Returns
        -------
        ndarray (n, n_out) of the engine's dtype
        """
        self._require_uploaded()
        data = self._as_dataset(data, need_targets=False)
        n = data.n_rows
        n_in, n_out = self.sizes[0], self.sizes[-1]
        out = np.empty((n, n_out), dtype=self.dtype)
        if n == 0:
            return out
        batch_size = int(batch_size)
        rows_max = min(batch_size, n)
        self._check_rows(rows_max)
        ws = self._ensure_workspace(rows_max)
        last = self.n_layers - 1
        d_out = cuda.device_array(n * n_out if data.resident else rows_max * n_out, self.dtype)
        nt = self.threads
        for start in range(0, n, batch_size):
            rows = min(batch_size, n - start)
            if data.resident:
                X, x_off, o_off = data.d_X, start * n_in, start * n_out
            else:
                self._stream_inputs(data.X, None, start, rows)
                X, x_off, o_off = self._Xbuf, 0, 0
            self._forward(X, x_off, rows, ws, False)
            self._launch(self._k_act.output_activation, -(-rows // nt), nt)(
                self.acts[last], self._Zbuf, ws[last], d_out, o_off, rows, n_out
            )
            if not data.resident:
                out[start : start + rows] = d_out[: rows * n_out].copy_to_host().reshape(rows, -1)
        if data.resident:
            d_out.copy_to_host(out.reshape(-1))
        return out

    def gradients(self, X, Y, sample_weight=None, training=False):
        """Loss and gradients of the weighted mean loss over ``(X, Y)`` as one batch, without
        updating anything (``kernels.cpu.network.forward_backward``); ``training``: batch
        statistics and the dropout masks of the next update.

        Returns
        -------
        loss_sum : float
            Weighted summed loss of the batch.
        correct : int
        grads : ndarray (n_params,)
            Flat gradient buffer, laid out like the parameters (penalty not included).
        """
        self._require_uploaded()
        data = self.dataset(X, Y, sample_weight, resident=False)
        rows = data.n_rows
        self._check_rows(rows)
        ws = self._ensure_workspace(rows)
        self._ensure_parts(1)
        n_out = self.sizes[-1]
        self._stream_inputs(data.X, None, 0, rows)
        self._Ybuf[: rows * n_out].copy_to_device(data.Y.reshape(-1))
        self._Wbuf[:rows].copy_to_device(data.weight)
        key = self._batch_key(self.step + 1)
        self._forward(self._Xbuf, 0, rows, ws, False, bool(training), False, key)
        scale = self._batch_scale(float(data.weight.astype(np.float64).sum()))
        self._loss(self._Ybuf, 0, self._Wbuf, 0, rows, ws, scale, 1, 0)
        self._backward(self._Xbuf, 0, rows, ws, bool(training))
        loss = float(self._loss_parts[:1].copy_to_host()[0])
        correct = int(self._correct_parts[:1].copy_to_host()[0])
        return loss, correct, self.grads.copy_to_host()


# ----------------------------------------------------------------------------- the model's engine
def _settings(model):
    """``(loss code, optimizer code, optimizer slots, l1, l2, loss weight, clipnorm)`` of a
    CUDA engine for the model's ``compile`` settings (an inference-only engine's before
    ``compile``)."""
    from ..kernels.cpu import losses, optimizers

    if model.loss is None:
        return losses.MSE, optimizers.SGD, 0, model.l1, model.l2, model.loss_weight, None
    opt = model.optimizer
    return (
        losses.LOSS_CODES[model.loss], opt.code, opt.n_slots, model.l1, model.l2,
        model.loss_weight, model.clipnorm,
    )  # fmt: skip


def new_engine(model):
    """A new :class:`CudaEngine` for ``model``'s layer table and ``compile`` settings; nothing
    is on the device until its ``upload``."""
    *settings, loss_weight, clipnorm = _settings(model)
    return CudaEngine(
        model._net, *settings, model.dtype, loss_weight=loss_weight,
        n_running=model._running.size, mask_key=model._mask_key, clipnorm=clipnorm,
    )  # fmt: skip


def _inference_engine(model, scratch):
    """A CUDA engine holding the model's current parameters and statistics, for predict,
    evaluate and gradients.

    It is kept in ``scratch`` between calls (rebuilt when the ``compile`` settings change): a
    repeated call (batch scoring in chunks) copies only the parameters to the device, instead
    of building an engine and allocating its buffers each time.
    """
    engine = scratch.cuda_engine(_settings(model), lambda: new_engine(model))
    if engine.params is None:
        engine.upload(model._params, running=model._running)
    else:
        engine.set_params(model._params)
        engine.set_running(model._running)
    engine.step = int(model._step[0])  # the dropout masks of the next update
    return engine


def predict(model, X, batch_size, scratch):
    """Output-layer activations of validated ``X`` (see :mod:`fastdnn.engines`)."""
    return _inference_engine(model, scratch).predict(X, batch_size)


def evaluate(model, X, Y, weight, batch_size, scratch):
    """``(summed weighted loss, correct predictions)`` over validated arrays."""
    return _inference_engine(model, scratch).evaluate((X, Y, weight), batch_size)


def gradients(model, X, Y, weight, grads, training, scratch):
    """The gradient of ``(X, Y)`` as one batch into ``grads``; returns the summed loss."""
    loss_sum, _, grads[:] = _inference_engine(model, scratch).gradients(X, Y, weight, training)
    return loss_sum


class EpochRunner(_cpu.EpochRunner):
    """Runs a fit's epochs on the GPU through :class:`CudaEngine`.

    Parameters, gradients, optimizer state and workspace stay on the device for the whole fit;
    the training (and validation) data are copied once when they fit in device memory. Each
    epoch brings back only its loss and accuracy sums and one small array of parameter
    statistics (finiteness and the penalty); :meth:`sync` copies the weights back.
    """

    def __init__(self, model, X, Y, weight, batch_size, scratch=None):
        # No super().__init__(): the CPU workspace (and ``scratch``) is not needed.
        self.model, self.batch_size = model, batch_size
        self.n_batches = -(-X.shape[0] // batch_size)
        self.comm_seconds = 0.0
        self.engine = new_engine(model)
        self.engine.upload(model._params, model._state, model._step, model._running)
        self.data = self.engine.dataset(X, Y, weight)
        self._validation = None
        self._stats = None

    def train(self, order, hyper):
        return self.engine.train_epoch(self.data, order, self.batch_size, hyper)

    def snapshot(self):
        self.engine.snapshot()

    def restore(self):
        self.engine.restore()
        self.sync()

    def params_finite(self):
        self._stats = self.engine.param_stats()
        return self._stats[2]

    def penalty(self):
        return self.engine.penalty(self._stats)

    def evaluate(self, X, Y, weight):
        if self._validation is None or self._validation[0] is not X:
            self._validation = (X, self.engine.dataset(X, Y, weight))
        return self.engine.evaluate(self._validation[1], 4096)

    def sync(self):
        m = self.model
        _, _, step = self.engine.download(m._params, m._state)
        self.engine.download_running(m._running)
        m._step[0] = step

    def reload(self):
        self.engine.set_params(self.model._params)
        self.engine.set_running(self.model._running)
