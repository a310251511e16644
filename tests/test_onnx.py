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


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_onnx_exports_normalisations_and_leaves_dropout_out(tmp_path, dtype):
    onnx = pytest.importorskip("onnx")
    model = fd.Sequential(
        [
            fd.Dense(6, 8),
            fd.BatchNorm(8, activation="relu"),
            fd.Dropout(0.3),
            fd.Dense(8, 5, activation="gelu"),
            # ONNX stores epsilon as a float32 attribute: an eps that float32 holds exactly.
            fd.LayerNorm(5, eps=2.0**-10, activation="tanh"),
            fd.Dropout(0.3),
            fd.Dense(5, 3, activation="softmax"),
        ],
        dtype=dtype,
        seed=0,
    )
    # Running statistics and normalisation parameters away from their initial 0/1.
    rng = np.random.default_rng(1)
    weights = model.get_weights()
    weights[1] = (rng.uniform(0.5, 1.5, 8), rng.normal(size=8), rng.normal(size=8),
                  rng.uniform(0.5, 2.0, 8))  # fmt: skip
    weights[4] = (rng.uniform(0.5, 1.5, 5), rng.normal(size=5))
    model.set_weights(weights)
    X = rng.normal(scale=2.0, size=(17, 6)).astype(dtype)
    path = model.to_onnx(tmp_path / "m.onnx")
    ops = [node.op_type for node in onnx.load(str(path)).graph.node]
    assert "BatchNormalization" in ops and "LayerNormalization" in ops and "Dropout" not in ops
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(["output"], {"input": X})
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(onnx_out, model.predict(X), rtol=tol, atol=tol)
    with pytest.raises(ValueError, match="LayerNorm needs ONNX opset 17"):
        model.to_onnx(tmp_path / "old.onnx", opset=13)
