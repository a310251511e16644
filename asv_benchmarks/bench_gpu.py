"""GPU training throughput (``device="cuda"``) of the performance issue's workloads M and L.

Skipped (``NotImplementedError`` in ``setup``) unless a real, usable GPU is present: never under
the CUDA simulator, which is orders of magnitude too slow to time.

- ``GpuEngineTraining`` drives :class:`fastdnn.engines.cuda.CudaEngine` directly: the data set
  resident on the device, one ``train_epoch`` call per epoch (kernel throughput, no Python model
  layer).
- ``GpuFitTraining`` times ``Sequential(..., device="cuda").fit`` end to end; it is skipped as
  well while ``Sequential`` does not accept ``device``.
"""

import numpy as np

from fastdnn.engines.cuda import gpu_available

from .workloads import WORKLOADS

GPU_WORKLOADS = ["M", "L"]


def _require_gpu():
    if not gpu_available():
        raise NotImplementedError("no usable CUDA GPU (or the CUDA simulator is on)")


class GpuEngineTraining:
    """Epochs of ``CudaEngine.train_epoch`` over device-resident synthetic data."""

    params = GPU_WORKLOADS
    param_names = ["workload"]
    timeout = 600

    def setup(self, name):
        _require_gpu()
        from fastdnn.engines.cuda import cuda, new_engine

        self.workload = WORKLOADS[name]
        X, y = self.workload.data()
        model = self.workload.fastdnn_model()
        Y = model._targets(y, "y", X.shape[0])
        self.engine = new_engine(model)
        self.engine.upload(model._params, model._state, model._step)
        self.data = self.engine.dataset(X, Y, resident=True)
        self.hyper = model.optimizer.hyperparameters(model.dtype)
        self.rng = np.random.default_rng(0)
        self.n = X.shape[0]
        self.sync = cuda.synchronize
        self._epoch()  # compile every kernel

    def _epoch(self):
        order = self.rng.permutation(self.n)
        self.engine.train_epoch(self.data, order, self.workload.batch_size, self.hyper)

    def time_epoch(self, name):
        self._epoch()

    def track_samples_per_second(self, name):
        import time

        best = float("inf")
        for _ in range(3):
            self.sync()
            start = time.perf_counter()
            self._epoch()  # returns after copying the epoch's sums back: the GPU is done
            best = min(best, time.perf_counter() - start)
        return self.n / best

    track_samples_per_second.unit = "samples/s"

    def track_gflops(self, name):
        return self.workload.train_flops * self.track_samples_per_second(name) / 1e9

    track_gflops.unit = "GFLOP/s"


class GpuFitTraining:
    """``Sequential.fit`` with ``device="cuda"``, end to end."""

    params = GPU_WORKLOADS
    param_names = ["workload"]
    timeout = 600

    def setup(self, name):
        _require_gpu()
        import fastdnn as fd

        self.workload = WORKLOADS[name]
        self.X, self.y = self.workload.data()
        sizes = self.workload.sizes
        n = len(sizes) - 1
        layers = [
            fd.Dense(sizes[i], sizes[i + 1], "relu" if i < n - 1 else self.workload.output)
            for i in range(n)
        ]
        try:
            self.model = fd.Sequential(layers, seed=0, device="cuda")
        except TypeError as error:
            raise NotImplementedError("Sequential does not take device= yet") from error
        opt_name, kwargs = self.workload.optimizer_hyper()
        optimizer = fd.SGD(**kwargs) if opt_name == "sgd" else fd.Adam(**kwargs)
        self.model.compile(loss=self.workload.loss, optimizer=optimizer)
        warm = 2 * self.workload.batch_size
        self.model.fit(self.X[:warm], self.y[:warm], epochs=1, batch_size=warm // 2, verbose=0)

    def _fit(self, epochs):
        return self.model.fit(
            self.X, self.y, epochs=epochs, batch_size=self.workload.batch_size, verbose=0
        )

    def time_epoch(self, name):
        self._fit(1)

    def track_samples_per_second(self, name):
        return self.X.shape[0] / min(self._fit(3).epoch_seconds)

    track_samples_per_second.unit = "samples/s"
