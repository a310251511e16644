"""Peak memory of a fit (workload M): the data, the model and one workspace, nothing per step."""

from .workloads import WORKLOADS


class FitMemory:
    """``peakmem_`` of three epochs of workload M."""

    timeout = 600

    def setup(self):
        self.workload = WORKLOADS["M"]
        self.X, self.y = self.workload.data()
        self.model = self.workload.fastdnn_model()
        self.model.fit(self.X[:256], self.y[:256], epochs=1, batch_size=128, verbose=0)

    def peakmem_fit_three_epochs(self):
        self.model.fit(self.X, self.y, epochs=3, batch_size=self.workload.batch_size, verbose=0)
