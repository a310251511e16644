"""ONNX export: onnxruntime reproduces predict for every activation and both dtypes."""

import numpy as np
import pytest

import fastdnn as fd

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

HIDDEN = ["linear", "relu", "sigmoid", "tanh", "leaky_relu", "elu", "gelu", "softplus"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("output", ["softmax", "sigmoid", "linear", "exp"])
def test_onnx_matches_predict(tmp_path, dtype, output):
    layers = [fd.Dense(6 if i == 0 else 5, 5, activation=a) for i, a in enumerate(HIDDEN)]
    layers.append(fd.Dense(5, 3, activation=output))
    model = fd.Sequential(layers, dtype=dtype, seed=0)
    X = np.random.default_rng(0).normal(scale=2.0, size=(17, 6)).astype(dtype)
    path = model.to_onnx(tmp_path / "m.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(["output"], {"input": X})
    expected = model.predict(X)
    assert onnx_out.dtype == expected.dtype
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(onnx_out, expected, rtol=tol, atol=tol)
