"""Training throughput of the performance issue's workloads S, M, L and AE."""

from .workloads import WORKLOADS


class Training:
    """One epoch of ``fit`` over synthetic data; kernels are compiled in ``setup``."""

    params = list(WORKLOADS)
    param_names = ["workload"]
    timeout = 600

    def setup(self, name):
        self.workload = WORKLOADS[name]
        self.X, self.y = self.workload.data()
        self.model = self.workload.fastdnn_model()
        warm = 2 * self.workload.batch_size
        self.model.fit(self.X[:warm], self.y[:warm], epochs=1, batch_size=warm // 2, verbose=0)

    def _fit(self, epochs):
        return self.model.fit(
            self.X, self.y, epochs=epochs, batch_size=self.workload.batch_size, verbose=0
        )

    def time_epoch(self, name):
        self._fit(1)

    def track_samples_per_second(self, name):
        return self.X.shape[0] / min(self._fit(2).epoch_seconds)

    track_samples_per_second.unit = "samples/s"

    def track_gflops(self, name):
        return self.workload.train_flops * self.track_samples_per_second(name) / 1e9

    track_gflops.unit = "GFLOP/s"
