"""Kernels called directly on preallocated buffers: dense forward/backward, optimizer steps."""

import numpy as np

import fastdnn as fd
from fastdnn.engines import cpu as cpu_engine
from fastdnn.kernels.cpu import network as net
from fastdnn.kernels.cpu import optimizers as opt

# (batch, inputs, hidden, outputs): small (S-like) and large (M-like) shapes.
SHAPES = {"small": (32, 64, 128, 10), "large": (128, 784, 512, 10)}


class Dense:
    """Forward pass, and forward + backward, of a two-layer ReLU/softmax network."""

    params = list(SHAPES)
    param_names = ["shape"]

    def setup(self, shape):
        batch, n_in, hidden, n_out = SHAPES[shape]
        model = fd.Sequential(
            [fd.Dense(n_in, hidden, "relu"), fd.Dense(hidden, n_out, "softmax")], seed=0
        )
        model.compile("cross_entropy", fd.Adam())
        rng = np.random.default_rng(0)
        self.X = rng.random((batch, n_in), dtype=np.float32)
        self.Y = np.eye(n_out, dtype=np.float32)[rng.integers(0, n_out, batch)]
        self.w = np.ones(batch, dtype=np.float32)
        self.m = model
        self.features = cpu_engine.features(model, loss=True)
        self.ws_off, self.Z, self.A, self.D = cpu_engine.workspace(model, batch, ("Z", "A", "D"))
        self.grads = np.zeros_like(model._params)
        self.T = cpu_engine.first_layer_scratch(model, self.X, 0)  # unused by a dense X
        self.no_stats = np.empty(0, model.dtype)
        self.time_forward(shape)
        self.time_forward_backward(shape)

    def time_forward(self, shape):
        m = self.m
        net.forward(
            self.features, self.X, m._net, m._params, m._running, self.no_stats, False, False,
            np.uint64(0), self.ws_off, self.Z, self.A, self.T,
        )  # fmt: skip

    def time_forward_backward(self, shape):
        m = self.m
        net.forward_backward(
            self.features, self.X, self.Y, self.w, m._net, 1, m.dtype.type(1.0), m._params,
            self.grads, m._running, self.no_stats, False, False, np.uint64(0), self.ws_off, self.Z,
            self.A, self.D, self.T,
        )  # fmt: skip


class OptimizerStep:
    """One fused optimizer pass over a flat buffer of 10k (small) or 2M (large) parameters."""

    params = (["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop"], ["small", "large"])
    param_names = ["optimizer", "size"]

    def setup(self, name, size):
        n = 10_000 if size == "small" else 2_000_000
        optimizer = {
            "sgd": fd.SGD(0.01),
            "momentum": fd.SGD(0.01, momentum=0.9),
            "nesterov": fd.SGD(0.01, momentum=0.9, nesterov=True),
            "adam": fd.Adam(),
            "adamw": fd.AdamW(),
            "rmsprop": fd.RMSprop(),
        }[name]
        rng = np.random.default_rng(0)
        self.params_ = rng.standard_normal(n, dtype=np.float32)
        self.grads = rng.standard_normal(n, dtype=np.float32)
        self.state = np.zeros((optimizer.n_slots, n), dtype=np.float32)
        self.hyper = optimizer.hyperparameters(np.float32)
        self.code = optimizer.code
        self.n_weights = n * 9 // 10
        self.l2 = np.float32(1e-4)
        self.time_step(name, size)

    def time_step(self, name, size):
        opt.optimizer_step(
            self.code, self.params_, self.grads, self.state, self.hyper, 1, self.n_weights,
            np.float32(0.0), self.l2,
        )  # fmt: skip
