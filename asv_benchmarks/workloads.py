"""The workloads of the performance issue, shared by the asv suites and the peer comparison.

| name | network | loss | optimizer, batch |
|---|---|---|---|
| S | 64-128-10, ReLU | softmax cross-entropy | Adam, 32 |
| M | 784-512-256-10, ReLU | softmax cross-entropy | Adam, 128 |
| MD | M with BatchNorm + ReLU and Dropout 0.2 after each hidden layer | as M | as M |
| L | 784-2048-2048-10, ReLU | softmax cross-entropy | SGD momentum 0.9, 512 |
| AE | 784-256-32-256-784, ReLU | sigmoid output, MSE | Adam, 256 |
| INF | forward + argmax of M | - | batches of 4096 |

``FASTDNN_BENCH_SCALE`` (a float, default 1) scales every data set size, so that the smoke test
can run each suite on tiny data.
"""

import os
from dataclasses import dataclass

import numpy as np

import fastdnn as fd

DROPOUT = 0.2


@dataclass(frozen=True)
class Workload:
    """A network, its loss and optimizer, the batch size and a default data set size."""

    name: str
    sizes: tuple
    output: str
    loss: str
    optimizer: str
    batch_size: int
    n_samples: int
    #: Each hidden layer is Dense (linear), BatchNorm with the ReLU, then Dropout(DROPOUT).
    regularised: bool = False

    @property
    def weights(self):
        """Number of weights (multiply-adds per sample of one forward pass)."""
        return sum(a * b for a, b in zip(self.sizes[:-1], self.sizes[1:]))

    @property
    def train_flops(self):
        """FLOPs per training sample: forward, and two GEMMs backward, 2 FLOPs each."""
        return 6 * self.weights

    def samples(self):
        """Data set size after ``FASTDNN_BENCH_SCALE``."""
        scale = float(os.environ.get("FASTDNN_BENCH_SCALE", "1"))
        return max(self.batch_size, int(self.n_samples * scale))

    def data(self, n=None, seed=0):
        """Synthetic float32 inputs in [0, 1) and targets (labels, or the inputs for AE)."""
        n = self.samples() if n is None else n
        rng = np.random.default_rng(seed)
        X = rng.random((n, self.sizes[0]), dtype=np.float32)
        if self.loss == "mse":
            return X, X
        return X, rng.integers(0, self.sizes[-1], n)

    def optimizer_hyper(self):
        """``(name, kwargs)`` of the optimizer, shared by every library."""
        if self.optimizer == "sgd":
            return "sgd", {"lr": 0.01, "momentum": 0.9}
        return "adam", {"lr": 1e-3}

    def fastdnn_model(self, seed=0, device="cpu"):
        """The compiled ``fastdnn.Sequential`` of this workload on ``device``."""
        n = len(self.sizes) - 1
        layers = []
        for i in range(n - 1):
            if self.regularised:
                layers += [
                    fd.Dense(self.sizes[i], self.sizes[i + 1]),
                    fd.BatchNorm(self.sizes[i + 1], activation="relu"),
                    fd.Dropout(DROPOUT),
                ]
            else:
                layers.append(fd.Dense(self.sizes[i], self.sizes[i + 1], "relu"))
        layers.append(fd.Dense(self.sizes[-2], self.sizes[-1], self.output))
        model = fd.Sequential(layers, seed=seed, device=device)
        name, kwargs = self.optimizer_hyper()
        optimizer = fd.SGD(**kwargs) if name == "sgd" else fd.Adam(**kwargs)
        model.compile(loss=self.loss, optimizer=optimizer)
        return model


WORKLOADS = {
    "S": Workload("S", (64, 128, 10), "softmax", "cross_entropy", "adam", 32, 16384),
    "M": Workload("M", (784, 512, 256, 10), "softmax", "cross_entropy", "adam", 128, 8192),
    "MD": Workload(
        "MD", (784, 512, 256, 10), "softmax", "cross_entropy", "adam", 128, 8192, regularised=True
    ),
    "L": Workload("L", (784, 2048, 2048, 10), "softmax", "cross_entropy", "sgd", 512, 4096),
    "AE": Workload("AE", (784, 256, 32, 256, 784), "sigmoid", "mse", "adam", 256, 8192),
}
INFERENCE = WORKLOADS["M"]
INFERENCE_BATCH = 4096
