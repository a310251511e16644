"""The scikit-learn drop-in: MLPClassifier fits on digits, fastdnn's and scikit-learn's."""

import os
import warnings

from .sklearn_mlp import _params, dataset


class DigitsFit:
    """One ``fit`` of each solver on the digits split, for both implementations and dtypes."""

    params = (["fastdnn", "scikit-learn"], ["adam", "sgd", "lbfgs"], ["float64", "float32"])
    param_names = ["implementation", "solver", "dtype"]
    timeout = 300

    def setup(self, implementation, solver, dtype):
        if implementation == "fastdnn":
            from fastdnn import MLPClassifier
        else:
            from sklearn.neural_network import MLPClassifier
        X_train, X_test, y_train, y_test = dataset("digits")
        # FASTDNN_BENCH_SCALE (the smoke test's 0.01) shrinks the iterations and the data.
        scale = float(os.environ.get("FASTDNN_BENCH_SCALE", "1"))
        rows = max(100, int(len(X_train) * scale))
        self.X, self.y = X_train[:rows].astype(dtype), y_train[:rows]
        params = _params("digits", solver, scale)
        self.make = lambda: MLPClassifier(**params)
        self._fit()  # compiles fastdnn's kernels for this path

    def _fit(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.make().fit(self.X, self.y)

    def time_fit(self, implementation, solver, dtype):
        self._fit()
