"""Inference: forward pass + argmax of the M network in batches of 4096 (workload INF)."""

import time

import numpy as np

from .workloads import INFERENCE, INFERENCE_BATCH


class Inference:
    """``predict`` then argmax over the classes."""

    timeout = 300

    def setup(self):
        self.model = INFERENCE.fastdnn_model()
        self.X, _ = INFERENCE.data(n=max(INFERENCE_BATCH, INFERENCE.samples() * 2))
        self.model.predict(self.X[:8], batch_size=INFERENCE_BATCH)

    def time_predict_argmax(self):
        np.argmax(self.model.predict(self.X, batch_size=INFERENCE_BATCH), axis=1)

    def track_samples_per_second(self):
        start = time.perf_counter()
        self.time_predict_argmax()
        return self.X.shape[0] / (time.perf_counter() - start)

    track_samples_per_second.unit = "samples/s"
