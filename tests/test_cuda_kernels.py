"""Every CUDA kernel against its CPU twin (``kernels/cpu``) or a NumPy reference.

Without a GPU these run under Numba's CUDA simulator (enabled by ``conftest.py``), which is slow:
shapes stay small with 16-thread blocks, and the GEMMs run every tile configuration (the "tiny"
8 x 8 tile gives several blocks and partial edge tiles per product; the 256-thread production
tiles run one partial tile, and one test takes them past a load step of every operand). On a
GPU the same tests run natively.
"""

import numpy as np
import pytest

pytest.importorskip("numba_cuda", reason="the CUDA tests need numba-cuda (fastdnn[cuda])")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fastdnn.engines.cuda import cuda, require_cuda  # noqa: E402
from fastdnn.kernels.cpu import activations as cpu_act  # noqa: E402
from fastdnn.kernels.cpu import losses as cpu_loss  # noqa: E402
from fastdnn.kernels.cpu import network as cpu_net  # noqa: E402
from fastdnn.kernels.cpu import optimizers as cpu_opt  # noqa: E402

require_cuda()  # the simulator counts as available; a broken CUDA set-up fails loudly here

from fastdnn.kernels.cuda import activations, batches, dense, losses, optimizers  # noqa: E402

TILE = dense.TILES["tiny"]
GEMM_TILES = list(dense.TILES)  # the production tiles run 256 threads: ~1 s each simulated
THREADS = 16
ELEMENTWISE = [
    cpu_act.LINEAR,
    cpu_act.RELU,
    cpu_act.SIGMOID,
    cpu_act.TANH,
    cpu_act.LEAKY_RELU,
    cpu_act.ELU,
    cpu_act.GELU,
    cpu_act.SOFTPLUS,
    cpu_act.EXP,
]
TOL = {np.float32: {"rtol": 2e-5, "atol": 2e-6}, np.float64: {"rtol": 1e-12, "atol": 1e-13}}


def _rng(seed=0):
    return np.random.default_rng(seed)


def _dev(array):
    return cuda.to_device(np.ascontiguousarray(array).reshape(-1))


def _close(actual, expected, dtype=np.float32, scale=1.0):
    tol = TOL[np.dtype(dtype).type]
    np.testing.assert_allclose(actual, expected, rtol=tol["rtol"], atol=tol["atol"] * scale)


# ----------------------------------------------------------------------------- activations
@cuda.jit
def _activate_all(code, Z, A, D):
    i = cuda.grid(1)
    if i < Z.size:
        a = activations.activate(code, Z[i])
        A[i] = a
        D[i] = activations.derivative(code, Z[i], a)


@pytest.mark.parametrize("code", ELEMENTWISE)
def test_activation_and_derivative_device_functions(code):
    z = np.linspace(-6, 6, 30, dtype=np.float32).reshape(5, 6)
    z[0, :3] = [-0.0, 1e-4, -1e-4]
    a_ref = np.empty_like(z)
    cpu_act.activation(code, z, a_ref)
    d_ref = np.ones_like(z)
    cpu_act.scale_by_derivative(code, z, a_ref, d_ref)
    A, D = _dev(np.zeros_like(z)), _dev(np.zeros_like(z))
    _activate_all[2, THREADS](code, _dev(z), A, D)
    _close(A.copy_to_host().reshape(z.shape), a_ref)
    _close(D.copy_to_host().reshape(z.shape), d_ref)


@pytest.mark.parametrize("code", [cpu_act.SOFTMAX, cpu_act.SIGMOID, cpu_act.RELU])
def test_output_activation_rows(code):
    rows, n_out = 19, 5
    z = _rng(1).standard_normal((rows, n_out)).astype(np.float32) * 4
    z[3] += 80  # the max shift keeps softmax finite
    ref = np.empty_like(z)
    cpu_act.activation(code, z, ref)
    # Z at an offset of 7, the output at an offset of 2: the kernel reads flat buffers.
    Z = _dev(np.concatenate([np.zeros(7, np.float32), z.ravel()]))
    out = _dev(np.zeros(2 + z.size, np.float32))
    activations.output_activation[2, THREADS](code, Z, 7, out, 2, rows, n_out)
    _close(out.copy_to_host()[2:].reshape(rows, n_out), ref)


# ----------------------------------------------------------------------------- GEMMs
def _layer(rng, rows, n_in, n_out, dtype):
    X = rng.standard_normal((rows, n_in)).astype(dtype)
    W = rng.standard_normal((n_out, n_in)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    # A flat parameter buffer with something before W and b, as in a multi-layer network.
    P = np.concatenate([rng.standard_normal(3), W.ravel(), rng.standard_normal(2), b]).astype(dtype)
    return X, W, b, P, 3, 3 + W.size + 2


def _forward_gpu(X, P, w_off, b_off, rows, n_in, n_out, act, store, dtype, tile=TILE):
    Z, A = _dev(np.zeros(5 + rows * n_out, dtype)), _dev(np.zeros(rows * n_out, dtype))
    forward = dense.gemm_kernels(np.dtype(dtype).name, tile).forward
    launch = forward[dense.grid(tile, rows, n_out), dense.threads_per_block(tile)]
    launch(_dev(X), 0, _dev(P), w_off, b_off, Z, 5, A, 0, rows, n_in, n_out, act, store)
    shape = (rows, n_out)
    return Z.copy_to_host()[5:].reshape(shape), A.copy_to_host().reshape(shape)


@pytest.mark.parametrize(
    "dtype, act",
    [(np.float32, cpu_act.RELU), (np.float32, cpu_act.GELU), (np.float64, cpu_act.TANH)],
)
@pytest.mark.parametrize("tile", GEMM_TILES)
def test_forward_gemm_fuses_bias_and_activation(dtype, act, tile):
    rows, n_in, n_out = 13, 11, 17  # partial tiles on every side, 3 x 2 blocks, 3 K steps
    X, W, b, P, w_off, b_off = _layer(_rng(2), rows, n_in, n_out, dtype)
    tile = dense.TILES[tile]
    Z, A = _forward_gpu(X, P, w_off, b_off, rows, n_in, n_out, act, 1, dtype, tile)
    z_ref = np.dot(X, W.T) + b
    a_ref = np.empty_like(z_ref)
    cpu_act.activation(act, z_ref, a_ref)
    _close(Z, z_ref, dtype, scale=10)
    _close(A, a_ref, dtype, scale=10)


def test_forward_gemm_output_layer_stores_only_z():
    X, W, b, P, w_off, b_off = _layer(_rng(3), 6, 5, 4, np.float32)
    Z, A = _forward_gpu(X, P, w_off, b_off, 6, 5, 4, cpu_act.SOFTMAX, 0, np.float32)
    _close(Z, X @ W.T + b, scale=10)
    assert not A.any()


@settings(max_examples=5, deadline=None, derandomize=True)
@given(
    rows=st.integers(1, 20), n_in=st.integers(1, 20), n_out=st.integers(1, 20), seed=st.integers()
)
def test_forward_gemm_any_shape(rows, n_in, n_out, seed):
    X, W, b, P, w_off, b_off = _layer(_rng(seed % 1000), rows, n_in, n_out, np.float32)
    Z, _ = _forward_gpu(X, P, w_off, b_off, rows, n_in, n_out, cpu_act.LINEAR, 0, np.float32)
    _close(Z, X @ W.T + b, scale=10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("tile", GEMM_TILES)
def test_weight_gradient_gemm_with_bias_column(dtype, tile):
    rows, n_in, n_out = 10, 15, 9  # n_in + 1 = 16: the ones column starts a new column tile
    rng = _rng(4)
    D = rng.standard_normal((rows, n_out)).astype(dtype)
    A_prev = rng.standard_normal((rows, n_in)).astype(dtype)
    n_params = 4 + n_out * n_in + 3 + n_out
    w_off, b_off = 4, 4 + n_out * n_in + 3
    G = _dev(np.full(n_params, 7.0, dtype))
    tile = dense.TILES[tile]
    weight_grad = dense.gemm_kernels(np.dtype(dtype).name, tile).weight_grad
    launch = weight_grad[dense.grid(tile, n_out, n_in + 1), dense.threads_per_block(tile)]
    # D and A_prev at offsets inside larger buffers, as in the workspace.
    D_buf = np.concatenate([np.zeros(6, dtype), D.ravel()])
    A_buf = np.concatenate([np.zeros(2, dtype), A_prev.ravel()])
    launch(_dev(D_buf), 6, _dev(A_buf), 2, G, w_off, b_off, rows, n_in, n_out)
    g = G.copy_to_host()
    dW_ref = np.zeros((n_out, n_in), dtype)
    np.dot(D.T, A_prev, dW_ref)
    db_ref = np.zeros(n_out, dtype)
    cpu_net.column_sum(D, db_ref)
    _close(g[w_off : b_off - 3].reshape(n_out, n_in), dW_ref, dtype, scale=10)
    _close(g[b_off:], db_ref, dtype, scale=10)
    # Nothing outside dW and db is written.
    assert (g[:w_off] == 7).all() and (g[b_off - 3 : b_off] == 7).all()


@pytest.mark.parametrize("dtype, act", [(np.float32, cpu_act.TANH), (np.float64, cpu_act.ELU)])
@pytest.mark.parametrize("tile", GEMM_TILES)
def test_input_gradient_gemm_applies_derivative(dtype, act, tile):
    rows, n_in, n_out = 11, 9, 14
    rng = _rng(5)
    D = rng.standard_normal((rows, n_out)).astype(dtype)
    W = rng.standard_normal((n_out, n_in)).astype(dtype)
    Z_prev = rng.standard_normal((rows, n_in)).astype(dtype)
    A_prev = np.empty_like(Z_prev)
    cpu_act.activation(act, Z_prev, A_prev)
    expected = np.zeros((rows, n_in), dtype)
    np.dot(D, W, expected)
    cpu_act.scale_by_derivative(act, Z_prev, A_prev, expected)
    # Workspace layout: the previous layer's block at offset 0, this layer's at rows * n_in.
    p_off, d_off = 0, rows * n_in
    D_buf = _dev(np.concatenate([np.zeros(rows * n_in, dtype), D.ravel()]))
    P = _dev(np.concatenate([np.zeros(5, dtype), W.ravel()]))
    pad = np.zeros(rows * n_out, dtype)
    Z_buf = _dev(np.concatenate([Z_prev.ravel(), pad]))
    A_buf = _dev(np.concatenate([A_prev.ravel(), pad]))
    tile = dense.TILES[tile]
    input_grad = dense.gemm_kernels(np.dtype(dtype).name, tile).input_grad
    launch = input_grad[dense.grid(tile, rows, n_in), dense.threads_per_block(tile)]
    launch(D_buf, d_off, P, 5, D_buf, p_off, Z_buf, A_buf, rows, n_in, n_out, act)
    out = D_buf.copy_to_host()
    _close(out[: rows * n_in].reshape(rows, n_in), expected, dtype, scale=10)
    np.testing.assert_array_equal(out[d_off:].reshape(rows, n_out), D)  # D is left as it was


@pytest.mark.parametrize("tile", [name for name in GEMM_TILES if name != "tiny"])
def test_gemms_with_several_loads_per_thread(tile):
    # Shapes past one load step of every operand of the production tiles (a 256-thread block
    # loads 32 rows of a k-contiguous operand, or 2 to 8 k of another, per step), with partial
    # row, column and K tiles: each thread's later loads are in, partly in or out of range.
    rows, n_in, n_out = 37, 19, 70
    tile = dense.TILES[tile]
    kernels = dense.gemm_kernels("float32", tile)
    weight_grad, input_grad = kernels.weight_grad, kernels.input_grad
    X, W, b, P, w_off, b_off = _layer(_rng(7), rows, n_in, n_out, np.float32)
    Z, _ = _forward_gpu(X, P, w_off, b_off, rows, n_in, n_out, cpu_act.LINEAR, 0, np.float32, tile)
    _close(Z, X @ W.T + b, scale=10)

    D = _rng(8).standard_normal((rows, n_out)).astype(np.float32)
    G = _dev(np.zeros(n_out * (n_in + 1), np.float32))
    weight_grad[dense.grid(tile, n_out, n_in + 1), dense.threads_per_block(tile)](
        _dev(D), 0, _dev(X), 0, G, 0, n_out * n_in, rows, n_in, n_out
    )
    g = G.copy_to_host()
    _close(g[: n_out * n_in].reshape(n_out, n_in), D.T @ X, scale=10)
    _close(g[n_out * n_in :], D.sum(axis=0), scale=10)

    # The input gradient of a 70-wide layer under a 12-wide one: its output is 37 x 70.
    n_in, n_out = 70, 12
    D = _rng(9).standard_normal((rows, n_out)).astype(np.float32)
    W = _rng(10).standard_normal((n_out, n_in)).astype(np.float32)
    D_prev = _dev(np.zeros(rows * n_in, np.float32))
    Z_prev = _dev(np.ones(rows * n_in, np.float32))  # linear: the derivative is 1
    input_grad[dense.grid(tile, rows, n_in), dense.threads_per_block(tile)](
        _dev(D), 0, _dev(W), 0, D_prev, 0, Z_prev, Z_prev, rows, n_in, n_out, cpu_act.LINEAR
    )
    _close(D_prev.copy_to_host().reshape(rows, n_in), D @ W, scale=10)


@pytest.mark.parametrize("tile", ["tiny", "huge"])
def test_backward_kernel_computes_both_gradients_of_a_hidden_layer(tile):
    # One launch: the first blocks take the weight gradient's tiles, the rest the input
    # gradient's; the tiny tile gives several blocks of each, with partial edges.
    rows, n_in, n_out, act = 11, 13, 9, cpu_act.TANH
    rng = _rng(11)
    D = rng.standard_normal((rows, n_out)).astype(np.float32)
    W = rng.standard_normal((n_out, n_in)).astype(np.float32)
    Z_prev = rng.standard_normal((rows, n_in)).astype(np.float32)
    A_prev = np.empty_like(Z_prev)
    cpu_act.activation(act, Z_prev, A_prev)
    expected_prev = np.zeros((rows, n_in), np.float32)
    np.dot(D, W, expected_prev)
    cpu_act.scale_by_derivative(act, Z_prev, A_prev, expected_prev)
    # Workspace layout: the previous layer's block at offset 0, this layer's after it.
    p_off, d_off = 0, rows * n_in
    pad = np.zeros(rows * n_out, np.float32)
    D_buf = _dev(np.concatenate([np.zeros(rows * n_in, np.float32), D.ravel()]))
    w_off, b_off = 2, 2 + W.size + 1
    P = _dev(np.concatenate([np.zeros(2), W.ravel(), np.zeros(1 + n_out)]).astype(np.float32))
    G = _dev(np.full(b_off + n_out, 7.0, np.float32))
    tile = dense.TILES[tile]
    backward = dense.gemm_kernels("float32", tile).backward
    launch = backward[dense.backward_blocks(tile, rows, n_in, n_out), dense.threads_per_block(tile)]
    launch(
        D_buf, d_off, P, w_off, b_off, G, D_buf, p_off,
        _dev(np.concatenate([Z_prev.ravel(), pad])), _dev(np.concatenate([A_prev.ravel(), pad])),
        rows, n_in, n_out, act,
    )  # fmt: skip
    g = G.copy_to_host()
    _close(g[w_off : w_off + W.size].reshape(n_out, n_in), D.T @ A_prev, scale=10)
    _close(g[b_off:], D.sum(axis=0), scale=10)
    assert (g[:w_off] == 7).all() and g[w_off + W.size] == 7  # nothing else written
    out = D_buf.copy_to_host()
    _close(out[: rows * n_in].reshape(rows, n_in), expected_prev, scale=10)
    np.testing.assert_array_equal(out[d_off:].reshape(rows, n_out), D)  # D is left as it was


def test_gemm_tile_must_divide():
    with pytest.raises(ValueError, match="TM must divide BM"):
        dense.gemm_kernels("float32", (8, 8, 4, 3, 2))
    with pytest.raises(ValueError, match="split"):
        dense.gemm_kernels("float32", (8, 8, 2, 1, 1))  # 64 threads, 16-element tiles
    with pytest.raises(ValueError, match="BK must be a multiple of 4"):
        dense.gemm_kernels("float32", (8, 8, 2, 2, 2))
    with pytest.raises(ValueError, match="multiples of 4"):
        dense.gemm_kernels("float32", (24, 12, 4, 6, 2))
    with pytest.raises(ValueError, match="at most 32 loads"):
        dense.gemm_kernels("float32", (64, 64, 64, 8, 8))  # 64 threads, 64 loads each


# ----------------------------------------------------------------------------- losses
def _targets(loss_code, rng, rows, n_out, dtype):
    if loss_code == cpu_loss.CROSS_ENTROPY:
        Y = np.zeros((rows, n_out), dtype)
        Y[np.arange(rows), rng.integers(0, n_out, rows)] = 1
        Y[0] = 1.0 / n_out  # a probability row
        return Y
    if loss_code == cpu_loss.BINARY_CROSS_ENTROPY:
        return rng.integers(0, 2, (rows, n_out)).astype(dtype)
    if loss_code == cpu_loss.POISSON:
        Y = rng.poisson(2.0, (rows, n_out)).astype(dtype)  # zeros among them
        Y[0] = [0.5, 30.0, 1e-3][:n_out]  # rates, and a count far from exp(z)
        return Y
    return rng.standard_normal((rows, n_out)).astype(dtype)


LOSS_CASES = [
    (cpu_loss.CROSS_ENTROPY, cpu_act.SOFTMAX, np.float32),
    (cpu_loss.CROSS_ENTROPY, cpu_act.SOFTMAX, np.float64),
    (cpu_loss.BINARY_CROSS_ENTROPY, cpu_act.SIGMOID, np.float32),
    (cpu_loss.MSE, cpu_act.TANH, np.float32),
    (cpu_loss.MSE, cpu_act.LINEAR, np.float64),
    (cpu_loss.POISSON, cpu_act.EXP, np.float32),
    (cpu_loss.POISSON, cpu_act.EXP, np.float64),
]


@pytest.mark.parametrize("loss_code, act, dtype", LOSS_CASES)
@pytest.mark.parametrize("write_delta", [1, 0])
def test_fused_loss_against_cpu(loss_code, act, dtype, write_delta):
    rows, n_out = 21, 3  # cross-entropy: 2 blocks of 16 rows; elementwise: 4 blocks
    rng = _rng(6)
    Z = (rng.standard_normal((rows, n_out)) * 3).astype(dtype)
    Y = _targets(loss_code, rng, rows, n_out, dtype)
    weight = (rng.random(rows) + 0.5).astype(dtype)
    scale = dtype(1.0 / 17.0)
    A_ref = np.empty_like(Z)
    loss_ref = cpu_loss.output_loss(loss_code, act, Z, Y, weight, A_ref)
    correct_ref = cpu_loss.count_correct(loss_code, A_ref, Y)
    D_ref = np.empty_like(Z)
    cpu_loss.output_delta(loss_code, act, Z, A_ref, Y, weight, scale, D_ref)

    off = 4  # the output block's offset in the workspace
    pad = np.zeros(off, dtype)
    Z_d = _dev(np.concatenate([pad, Z.ravel()]))
    A_d, D_d = _dev(np.zeros(off + Z.size, dtype)), _dev(np.zeros(off + Z.size, dtype))
    loss_parts = _dev(np.array([5.0, 0.0], dtype))  # adds into slot 1 only
    correct_parts = _dev(np.array([3, 0], np.int32))
    k = losses.loss_kernels(np.dtype(dtype).name, THREADS)
    if loss_code == cpu_loss.CROSS_ENTROPY:
        k.cross_entropy[-(-rows // THREADS), THREADS](
            Z_d, A_d, D_d, off, _dev(Y), 0, _dev(weight), 0, rows, n_out, scale, write_delta,
            loss_parts, correct_parts, 1,
        )  # fmt: skip
    else:
        k.elementwise[-(-rows * n_out // THREADS), THREADS](
            loss_code, act, Z_d, A_d, D_d, off, _dev(Y), 0, _dev(weight), 0, rows, n_out, scale,
            write_delta, loss_parts, correct_parts, 1,
        )  # fmt: skip
    parts = loss_parts.copy_to_host()
    assert parts[0] == 5 and correct_parts.copy_to_host().tolist() == [3, correct_ref]
    _close(parts[1], loss_ref, dtype, scale=10)
    _close(A_d.copy_to_host()[off:].reshape(rows, n_out), A_ref, dtype)
    D = D_d.copy_to_host()[off:].reshape(rows, n_out)
    if write_delta:
        _close(D, D_ref, dtype)
    else:
        assert not D.any()


def test_loss_threads_must_be_power_of_two():
    with pytest.raises(ValueError, match="power of two"):
        losses.loss_kernels("float32", 24)


# ----------------------------------------------------------------------------- optimizers
OPTIMIZERS = [
    ("sgd", cpu_opt.SGD, (0.1, 0.0, 0.0), 0),
    ("momentum", cpu_opt.SGD, (0.1, 0.9, 0.0), 1),
    ("nesterov", cpu_opt.SGD, (0.1, 0.9, 1.0), 1),
    ("adam", cpu_opt.ADAM, (0.01, 0.9, 0.999, 1e-8, 0.0), 2),
    ("adamw", cpu_opt.ADAMW, (0.01, 0.8, 0.99, 1e-6, 0.05), 2),
    ("rmsprop", cpu_opt.RMSPROP, (0.01, 0.99, 1e-8, 0.0), 1),
    ("rmsprop-momentum", cpu_opt.RMSPROP, (0.01, 0.9, 1e-8, 0.5), 2),
]


def _adam_factors(code, hyper, step, dtype):
    """What the engine passes for update ``step`` (as ``kernels.cpu.optimizers`` computes it)."""
    t = np.dtype(dtype).type
    if code not in (cpu_opt.ADAM, cpu_opt.ADAMW):
        return t(1), t(1), t(1)
    bc1 = 1.0 - float(hyper[1]) ** step
    bc2 = 1.0 - float(hyper[2]) ** step
    decay = t(1.0 - float(hyper[0] * hyper[4])) if code == cpu_opt.ADAMW else t(1)
    return t(float(hyper[0]) / bc1), t(1.0 / np.sqrt(bc2)), decay


@pytest.mark.parametrize("name, code, values, n_slots", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_optimizer_step_against_cpu(name, code, values, n_slots, dtype):
    n, n_weights = 37, 29
    rng = _rng(7)
    hyper = np.asarray(values, dtype)
    l1, l2 = dtype(1e-3), dtype(1e-2)
    params = rng.standard_normal(n).astype(dtype)
    params[3] = 0  # sign(0) = 0
    state = np.zeros((n_slots, n), dtype)
    p_d = _dev(params)
    s_d = cuda.to_device(np.zeros((max(n_slots, 1), n), dtype))
    loss_parts, bad = _dev(np.zeros(1, dtype)), _dev(np.array([-1], np.int64))
    for step in (1, 2, 3):
        grads = rng.standard_normal(n).astype(dtype)
        cpu_opt.optimizer_step(code, params, grads, state, hyper, step, n_weights, l1, l2)
        factors = _adam_factors(code, hyper, step, dtype)
        optimizers.optimizer_step[2, THREADS](  # 32 threads stride over 37 entries
            code, p_d, _dev(grads), s_d, _dev(hyper), n_weights, l1, l2, *factors, loss_parts, 0,
            bad,
        )  # fmt: skip
    _close(p_d.copy_to_host(), params, dtype)
    _close(s_d.copy_to_host()[:n_slots], state, dtype)
    assert bad.copy_to_host()[0] == -1


def test_optimizer_step_skips_non_finite_batches():
    n = 20
    params = np.arange(n, dtype=np.float32)
    p_d, s_d = _dev(params), cuda.to_device(np.zeros((1, n), np.float32))
    grads, hyper = _dev(np.ones(n, np.float32)), _dev(np.array([0.5, 0, 0], np.float32))
    loss_parts = _dev(np.array([1.0, np.nan, 2.0], np.float32))
    bad = _dev(np.array([-1], np.int64))
    one, zero = np.float32(1), np.float32(0)
    for slot in range(3):
        optimizers.optimizer_step[2, THREADS](
            cpu_opt.SGD, p_d, grads, s_d, hyper, n, zero, zero, one, one, one, loss_parts, slot,
            bad,
        )  # fmt: skip
    # Slot 0 applied; slot 1 not finite: skipped and recorded; slot 2 skipped after it.
    np.testing.assert_array_equal(p_d.copy_to_host(), params - 0.5)
    assert bad.copy_to_host()[0] == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_param_stats_against_cpu_penalty(dtype):
    n, n_weights = 45, 30
    params = _rng(8).standard_normal(n).astype(dtype)
    stats = optimizers.param_kernels(np.dtype(dtype).name, THREADS).stats
    partials = cuda.device_array((2, 3), dtype)
    stats[2, THREADS](_dev(params), n_weights, partials)
    abs_sum, sq_sum, n_bad = partials.copy_to_host().astype(np.float64).sum(axis=0)
    l1, l2 = dtype(0.01), dtype(0.1)
    expected = cpu_opt.penalty(params, n_weights, l1, l2)
    assert n_bad == 0
    np.testing.assert_allclose(float(l1) * abs_sum + 0.5 * float(l2) * sq_sum, expected, rtol=1e-6)
    params[40] = np.inf  # a bias: not in the penalty, but not finite
    params[2] = np.nan
    stats[2, THREADS](_dev(params), n_weights, partials)
    assert partials.copy_to_host()[:, 2].sum() == 2


# ----------------------------------------------------------------------------- batches
def test_gather_batch_against_cpu():
    n, n_in, n_out, rows, start = 12, 7, 3, 5, 4
    rng = _rng(9)
    X = rng.standard_normal((n, n_in)).astype(np.float32)
    Y = rng.standard_normal((n, n_out)).astype(np.float32)
    weight = rng.random(n).astype(np.float32)
    order = rng.permutation(n)
    Xbuf, Ybuf, Wbuf = (np.zeros(k, np.float32) for k in (rows * n_in, rows * n_out, rows))
    Xb, Yb, Wb = cpu_net.gather_batch(X, Y, weight, order, start, rows, Xbuf, Ybuf, Wbuf)
    Xd, Yd, Wd = (cuda.device_array(k, np.float32) for k in (8 * n_in, 8 * n_out, 8))
    # 2 x 3 blocks of 4 threads: strides over both the columns and the rows.
    batches.gather_batch[(2, 3), 4](
        _dev(X), _dev(Y), _dev(weight), _dev(order.astype(np.int64)), start, rows, n_in, n_out,
        Xd, Yd, Wd,
    )  # fmt: skip
    np.testing.assert_array_equal(Xd.copy_to_host()[: rows * n_in].reshape(rows, n_in), Xb)
    np.testing.assert_array_equal(Yd.copy_to_host()[: rows * n_out].reshape(rows, n_out), Yb)
    np.testing.assert_array_equal(Wd.copy_to_host()[:rows], Wb)


def test_choose_tile_fits_the_tile_to_the_output():
    n_sm = 132  # an H100/H200
    # Small outputs: the small tile, so that the grid has blocks for many multiprocessors.
    assert dense.choose_tile(128, 256, n_sm) == dense.TILES["small"]
    assert dense.choose_tile(512, 10, n_sm) == dense.TILES["small"]
    # Outputs that fill the GPU with big tiles get the most FMAs per shared-memory load.
    assert dense.choose_tile(4096, 512, n_sm) == dense.TILES["huge"]
    assert dense.choose_tile(512, 2048, n_sm) == dense.TILES["wide"]
    # Two such outputs in one launch (backward) fill the GPU with the bigger tile.
    assert dense.choose_tile(512, 2048, n_sm, also=(512, 2048)) == dense.TILES["huge"]
    # Never the simulator's tile, and always one whose cost estimate exists.
    for m, n in [(1, 1), (7, 3000), (65536, 64), (300, 300)]:
        assert dense.choose_tile(m, n, 8) in [dense.TILES[name] for name in dense.FMA_SHARE]
