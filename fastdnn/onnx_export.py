"""Export a ``Sequential`` to an ONNX graph (optional extra ``fastdnn[onnx]``)."""

from pathlib import Path

import numpy as np

_GELU_C = 0.7978845608028654  # sqrt(2 / pi), as in kernels/cpu/activations.py
_GELU_A = 0.044715


def to_onnx(model, path, opset=17):
    """Write ``model`` as an ONNX graph: per layer one ``Gemm`` (``transB=1``), a
    ``BatchNormalization`` (the running statistics) or a ``LayerNormalization`` (opset 17 and
    later), then its activation; dropout, the identity at inference, is left out.

    Parameters
    ----------
    model : Sequential
    path : str or os.PathLike
    opset : int, default 17
        ONNX operator set version.

    Returns
    -------
    pathlib.Path
        The written file. Its input ``input`` is (batch, n_features) and its output ``output``
        is (batch, n_outputs), both in the model's dtype; the output matches ``model.predict``
        (ONNX holds a normalisation's ``epsilon`` as a float32 attribute: a float64 model
        whose ``eps`` float32 cannot represent exactly differs by that rounding).
    """
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as exc:
        raise ImportError("to_onnx needs the onnx package: pip install 'fastdnn[onnx]'") from exc

    if opset < 17 and any(type(layer).__name__ == "LayerNorm" for layer in model.layers):
        raise ValueError(
            f"LayerNorm needs ONNX opset 17 or later (LayerNormalization), got {opset}"
        )
    elem = TensorProto.FLOAT if model.dtype == np.float32 else TensorProto.DOUBLE
    nodes, initializers = [], []

    def constant(name, value):
        if name not in {init.name for init in initializers}:
            array = np.asarray(value, dtype=model.dtype)
            initializers.append(numpy_helper.from_array(array, name))
        return name

    counter = iter(range(1 << 30))

    def emit(op, *inputs, **attrs):
        out = f"t{next(counter)}"
        nodes.append(helper.make_node(op, list(inputs), [out], **attrs))
        return out

    zero, one, half = constant("zero", 0.0), constant("one", 1.0), constant("half", 0.5)

    def gelu(z):
        cube = emit("Mul", z, emit("Mul", z, z))
        inner = emit("Add", z, emit("Mul", constant("gelu_a", _GELU_A), cube))
        t = emit("Tanh", emit("Mul", constant("gelu_c", _GELU_C), inner))
        return emit("Mul", emit("Mul", half, z), emit("Add", one, t))

    # Built from primitives where onnxruntime lacks a float64 kernel (Elu, Softplus,
    # LeakyRelu) or an opset-17 operator (tanh-form Gelu); same formulas as the kernels.
    activations = {
        "linear": lambda z: z,
        "relu": lambda z: emit("Relu", z),
        "sigmoid": lambda z: emit("Sigmoid", z),
        "tanh": lambda z: emit("Tanh", z),
        "exp": lambda z: emit("Exp", z),
        "softmax": lambda z: emit("Softmax", z, axis=-1),
        "leaky_relu": lambda z: emit(
            "Where", emit("Greater", z, zero), z, emit("Mul", constant("slope", 0.01), z)
        ),
        "elu": lambda z: emit(
            "Where", emit("Greater", z, zero), z, emit("Sub", emit("Exp", z), one)
        ),
        "softplus": lambda z: emit(
            "Add",
            emit("Relu", z),
            emit("Log", emit("Add", one, emit("Exp", emit("Neg", emit("Abs", z))))),
        ),
        "gelu": gelu,
    }
    current = "input"
    for i, ((slots, arrays), layer) in enumerate(zip(model._weight_views(), model.layers)):
        kind = type(layer).__name__
        if kind == "Dropout":
            continue  # the identity at inference
        names = [constant(f"{slot}{i}", array) for slot, array in zip(slots, arrays)]
        if kind == "Dense":
            z = emit("Gemm", current, *names, transB=1)
        elif kind == "BatchNorm":  # gamma, beta, running mean, running variance
            z = emit("BatchNormalization", current, *names, epsilon=layer.eps)
        else:
            z = emit("LayerNormalization", current, *names, axis=-1, epsilon=layer.eps)
        current = activations[layer.activation](z)
    nodes.append(helper.make_node("Identity", [current], ["output"]))
    graph = helper.make_graph(
        nodes,
        "fastdnn_sequential",
        [helper.make_tensor_value_info("input", elem, ["batch", model.n_features_in])],
        [helper.make_tensor_value_info("output", elem, ["batch", model.n_outputs])],
        initializers,
    )
    onnx_model = helper.make_model(
        graph, producer_name="fastdnn", opset_imports=[helper.make_opsetid("", opset)]
    )
    onnx.checker.check_model(onnx_model)
    path = Path(path)
    onnx.save(onnx_model, path)
    return path
