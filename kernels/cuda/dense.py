"""Tiled shared-memory GEMMs of a dense layer, each with its work around the product fused in.

Three products cover a dense layer (``W`` is (out, in), row-major, inside the flat parameter
buffer ``P``; activations and deltas are (rows, width) row-major blocks of flat buffers):

- :func:`forward`: ``Z = X @ W.T + b`` with the activation ``A = f(Z)`` in the epilogue;
- weight gradient: ``dW = D.T @ A_prev`` and, in the same pass, ``db`` = the column sums of
  ``D`` (``A_prev`` is read with an extra column of ones, so ``db`` is the product's last column
  and costs no extra launch);
- input gradient: ``D_prev = (D @ W) * f'(Z_prev)``, the derivative applied in the epilogue.

``backward`` computes a hidden layer's two gradients in one launch (its first blocks take the
weight gradient's tiles, the rest the input gradient's): one launch fewer per hidden layer and
batch, for small layers whose GEMMs take less GPU time than numba-cuda's Python launch path
(its cost on a GPU is not measured yet).

Every kernel takes flat buffers plus integer offsets, so the host never slices device arrays on
the hot path. A block computes a ``BM x BN`` tile of the output with ``(BM/TM) * (BN/TN)``
threads, each accumulating a ``TM x TN`` register tile made of runs of up to 4 consecutive rows
and columns (each run one vector load from shared memory; neighbouring threads hold
neighbouring runs, so the loads are free of bank conflicts); K advances ``BK`` at a time through
two shared-memory tiles stored k-major (padded by 4 elements against bank conflicts of the
transposed stores), the next tiles' global loads prefetched into registers while the current
ones are multiplied. Tile sizes must be compile-time constants, so :func:`gemm_kernels` builds
one kernel set per ``(dtype, tile)`` and caches it.
"""

import functools
import inspect
from types import SimpleNamespace

import numba
import numpy as np

from ...engines.cuda import cuda, simulator_enabled
from .activations import activate, derivative

#: Tile configurations ``(BM, BN, BK, TM, TN)``, all of 256 threads but "tiny": "huge" (8 x 8
#: per thread) and "wide" (8 x 4) for products big enough to fill the GPU with them, "large" and
#: "small" (more blocks per output) for smaller batches and layers, "tiny" for tests under the
#: simulator.
TILES = {
    "huge": (128, 128, 8, 8, 8),
    "wide": (128, 64, 8, 8, 4),
    "large": (64, 64, 16, 4, 4),
    "small": (32, 32, 32, 2, 2),
    "tiny": (8, 8, 4, 2, 2),
}

#: Share of FMAs among the instructions of one K step of the forward kernel (float32, sm_90
#: SASS from ptxas 13.5, per thread): the rest is shared-memory loads, address arithmetic and the
#: next tile's global loads. Bigger register tiles reuse each shared load for more FMAs. Static
#: counts, not timings (``python -m asv_benchmarks.gpu_sass`` recomputes them without a GPU); a
#: GPU run of ``python -m asv_benchmarks.gpu_gemm`` checks the choice.
FMA_SHARE = {"huge": 0.74, "wide": 0.66, "large": 0.59, "small": 0.34}


def choose_tile(m, n, n_sm, also=None):
    """The production tile of least estimated time for an ``m x n`` output on ``n_sm``
    multiprocessors (and, in the same launch, an output of shape ``also``).

    The estimate is the GEMM's instruction-issue time on the busiest multiprocessor: the blocks
    it runs (``ceil(blocks / n_sm)``) times a block's FMAs over the tile's :data:`FMA_SHARE`.
    Big tiles win on big outputs; on small ones they leave multiprocessors idle.

    Parameters
    ----------
    m, n : int
        Rows and columns of the output.
    n_sm : int
        Multiprocessors of the GPU.
    also : tuple of int, optional
        ``(m, n)`` of a second output computed by the same launch (``backward``).

    Returns
    -------
    tuple of int
        ``(BM, BN, BK, TM, TN)``, a value of :data:`TILES`.
    """
    shapes = [(m, n)] if also is None else [(m, n), tuple(also)]

    def cost(name):
        tile = TILES[name]
        blocks = sum(cols * rows for cols, rows in (grid(tile, *shape) for shape in shapes))
        return -(-blocks // n_sm) * tile[0] * tile[1] / FMA_SHARE[name]

    return TILES[min(FMA_SHARE, key=cost)]


#: Whether ``cuda.jit`` takes ``launch_bounds`` (recent numba-cuda releases; never the simulator).
_JIT_TAKES_LAUNCH_BOUNDS = (
    not simulator_enabled() and "launch_bounds" in inspect.signature(cuda.jit).parameters
)


def threads_per_block(tile):
    """Threads of one GEMM block for ``tile = (BM, BN, BK, TM, TN)``."""
    bm, bn, _, tm, tn = tile
    return (bm // tm) * (bn // tn)


def grid(tile, m, n):
    """Launch grid ``(column tiles, row tiles)`` covering an ``m x n`` output."""
    bm, bn = tile[0], tile[1]
    return (-(-n // bn), -(-m // bm))


def backward_blocks(tile, rows, n_in, n_out):
    """Blocks of a ``backward`` launch: the weight gradient's (n_out x (n_in + 1)) output tiles,
    then the input gradient's (rows x n_in)."""
    cols_w, rows_w = grid(tile, n_out, n_in + 1)
    cols_i, rows_i = grid(tile, rows, n_in)
    return cols_w * rows_w + cols_i * rows_i


@functools.cache
def gemm_kernels(dtype, tile):
    """The three dense-layer GEMM kernels for ``dtype`` and ``tile = (BM, BN, BK, TM, TN)``.

    Parameters
    ----------
    dtype : str or numpy.dtype
        Element type of every floating-point buffer ("float32" or "float64").
    tile : tuple of int
        ``(BM, BN, BK, TM, TN)`` with ``TM`` dividing ``BM`` and ``TN`` dividing ``BN``; launch
        with ``threads_per_block(tile)`` threads in one dimension and ``grid(tile, m, n)``.

    Returns
    -------
    types.SimpleNamespace
        The kernels ``forward``, ``weight_grad``, ``input_grad`` and ``backward`` (the last two
        of a hidden layer in one launch); see each kernel's docstring for its arguments.
    """
    BM, BN, BK, TM, TN = (int(v) for v in tile)
    if BM % TM or BN % TN:
        raise ValueError(f"tile {tile}: TM must divide BM and TN must divide BN")
    TX = BN // TN  # threads along the output's columns
    TY = BM // TM  # threads along the output's rows
    NT = TX * TY
    if (BM * BK) % NT or (BN * BK) % NT or NT % BK or NT % BM or NT % BN:
        raise ValueError(
            f"tile {tile}: the {NT} threads must split BM*BK and BN*BK evenly, and be a multiple "
            "of BK, BM and BN"
        )
    if BK % 4:
        raise ValueError(f"tile {tile}: BK must be a multiple of 4 (the unrolled K steps)")
    if max(BM, BN) * BK // NT > 32:
        raise ValueError(f"tile {tile}: at most 32 loads per thread and tile (a bit mask each)")
    # A thread's TM rows are TM / VM runs of VM consecutive rows (and likewise its columns), so
    # that each run is one vector load from shared memory; consecutive threads hold consecutive
    # runs, so a quarter warp's vector loads cover 128 contiguous bytes (no bank conflict).
    VM = min(4, TM)
    VN = min(4, TN)
    if TM % VM or TN % VN:
        raise ValueError(f"tile {tile}: TM and TN must be at most 4 or multiples of 4")
    # Shared tiles padded by 4 elements against bank conflicts of the transposed stores, which
    # keeps every run 16-byte aligned.
    BMP = BM + 4
    BNP = BN + 4
    dt = numba.from_dtype(np.dtype(dtype))
    u64 = numba.uint64
    # K steps per multiply loop iteration: 4, but 2 for 8 x 8 register tiles, where 4 took
    # 168 registers per thread. In float32 those are also compiled for at least two resident
    # blocks per multiprocessor (at most 128 registers per thread; 2 steps alone took 130). The
    # smaller tiles stay under that bound by themselves and lose 2-7 % of FMA share when given
    # it; float64 accumulators alone fill 128 registers (the bound made them spill). The
    # simulator takes no launch bounds.
    big = TM * TN >= 64
    UNROLL = 2 if big else 4
    bounded = big and np.dtype(dtype).itemsize == 4 and _JIT_TAKES_LAUNCH_BOUNDS
    options = {"launch_bounds": (NT, 2)} if bounded else {}

    # Tile loads go global -> registers (``fetch``) -> shared memory (``stash``), so that the
    # next K tile's global loads are in flight while the current tile is multiplied. Every loop
    # has a constant trip count, so the register arrays stay in registers. Load ``q`` of a thread
    # is element ``e = tid + q * NT`` of the tile; since NT is a multiple of the tile's
    # contiguous extent, its position is the thread's fixed position plus a constant step per q
    # (no division in the K loop). Indices are cast to unsigned so that Numba emits no
    # negative-index wraparound code, which kept the compiler from unrolling and from folding
    # the constant offsets into the shared-memory loads.
    def operand(k_contiguous, extent, with_ones):
        """``(locate, fetch, stash, n_loads)`` of an operand tile of ``extent`` rows (BM or BN)
        by BK.

        Element (rr, kk) of the tile is ``src[off + (r0 + rr) * ld + k0 + kk]`` when the matrix
        is k-contiguous (consecutive threads read consecutive k), else
        ``src[off + (k0 + kk) * ld + r0 + rr]`` (consecutive threads read consecutive rr): both
        coalesced. Outside the matrix it is 0, except that row ``ones_at`` reads 1 when
        ``with_ones`` (a compile-time flag, so the other operands pay no compare). The shared
        tile is k-major, padded by 4 elements against bank conflicts.

        ``locate`` computes, once per kernel, where a thread's loads are: the flat index of its
        first load at ``k0 = 0``, the index step between its loads and between K tiles, the
        row-validity bits and the k of its first load. ``fetch`` then only adds: the index
        arithmetic (64-bit multiplies) and row compares stay out of the K loop.
        """
        n_loads = extent * BK // NT
        step = NT // BK if k_contiguous else NT // extent  # rows (or k) further per load

        @cuda.jit(device=True, inline="always")
        def locate(off, ld, r0, r_lim, ones_at, tid):
            if k_contiguous:
                r = r0 + tid // BK
                k = tid % BK
                base = off + r * ld + k
                valid = 0  # bit q: load q's row is inside the matrix
                for q in range(n_loads):
                    if r + q * step < r_lim:
                        valid |= 1 << q
                return base, step * ld, BK, valid, k
            r = r0 + tid % extent
            k = tid // extent
            valid = 0  # bit 0: the row is inside the matrix; bit 1: it is the ones row
            if r < r_lim:
                valid = 1
            elif with_ones and r == ones_at:
                valid = 2
            return off + k * ld + r, step * ld, BK * ld, valid, k

        @cuda.jit(device=True, inline="always")
        def fetch(src, index, index_step, valid, k, k_lim, regs):
            for q in range(n_loads):
                v = dt(0.0)
                if k_contiguous:
                    if k < k_lim and (valid >> q) & 1:
                        v = src[u64(index)]
                elif k < k_lim:
                    if valid == 1:
                        v = src[u64(index)]
                    elif with_ones and valid == 2:
                        v = dt(1.0)
                regs[q] = v
                index += index_step
                if not k_contiguous:
                    k += step

        @cuda.jit(device=True, inline="always")
        def stash(regs, sh, tid):
            for q in range(n_loads):
                if k_contiguous:
                    sh[u64(tid % BK), u64(tid // BK + q * step)] = regs[q]
                else:
                    sh[u64(tid // extent + q * step), u64(tid % extent)] = regs[q]

        return locate, fetch, stash, n_loads

    @cuda.jit(device=True, inline="always")
    def row_step(i):
        # Row of accumulator row i relative to the thread's first row.
        return (i // VM) * (TY * VM) + i % VM

    @cuda.jit(device=True, inline="always")
    def col_step(j):
        return (j // VN) * (TX * VN) + j % VN

    @cuda.jit(device=True, inline="always")
    def multiply_step(As, Bs, acc, a, b, k, tx, ty):
        for i in range(TM):
            a[i] = As[k, u64(ty * VM + row_step(i))]
        for j in range(TN):
            b[j] = Bs[k, u64(tx * VN + col_step(j))]
        for i in range(TM):
            for j in range(TN):
                acc[i, j] += a[i] * b[j]

    @cuda.jit(device=True, inline="always")
    def multiply_tiles(As, Bs, acc, tx, ty):
        a = cuda.local.array(TM, dt)
        b = cuda.local.array(TN, dt)
        # Several k per iteration: the compiler does not unroll a loop this long by itself, and
        # the loop's own counting and addressing cost about as much as a step's shared loads.
        for kk in range(0, BK, UNROLL):
            multiply_step(As, Bs, acc, a, b, u64(kk), tx, ty)
            multiply_step(As, Bs, acc, a, b, u64(kk + 1), tx, ty)
            if UNROLL == 4:
                multiply_step(As, Bs, acc, a, b, u64(kk + 2), tx, ty)
                multiply_step(As, Bs, acc, a, b, u64(kk + 3), tx, ty)

    def block_product(a_k_contiguous, b_k_contiguous, b_with_ones):
        """A device function accumulating the ``BM x BN`` output tile ``(by, bx)`` of
        ``A @ B.T`` into ``acc`` (each thread its ``TM x TN`` share), over ``depth`` (K)
        elements.

        ``A`` has ``a_lim`` rows (of the output), ``B`` has ``b_lim`` rows (the output's
        columns); each is k-contiguous or not, with leading dimension ``*_ld`` at offset
        ``*_off``; if ``b_with_ones``, row ``ones_at`` of ``B`` past ``b_lim`` reads ones.
        """
        locate_a, fetch_a, stash_a, la = operand(a_k_contiguous, BM, False)
        locate_b, fetch_b, stash_b, lb = operand(b_k_contiguous, BN, b_with_ones)

        @cuda.jit(device=True, inline="always")
        def product(A, a_off, a_ld, a_lim, B, b_off, b_ld, b_lim, ones_at, depth, acc, bx, by):
            As = cuda.shared.array((BK, BMP), dt)
            Bs = cuda.shared.array((BK, BNP), dt)
            ra = cuda.local.array(la, dt)
            rb = cuda.local.array(lb, dt)
            tid = cuda.threadIdx.x
            r0 = by * BM
            c0 = bx * BN
            for i in range(TM):
                for j in range(TN):
                    acc[i, j] = dt(0.0)
            a_index, a_step, a_tile_step, a_valid, a_k = locate_a(a_off, a_ld, r0, a_lim, -1, tid)
            b_index, b_step, b_tile_step, b_valid, b_k = locate_b(
                b_off, b_ld, c0, b_lim, ones_at, tid
            )
            fetch_a(A, a_index, a_step, a_valid, a_k, depth, ra)
            fetch_b(B, b_index, b_step, b_valid, b_k, depth, rb)
            for k0 in range(0, depth, BK):
                stash_a(ra, As, tid)
                stash_b(rb, Bs, tid)
                cuda.syncthreads()
                if k0 + BK < depth:
                    a_index += a_tile_step
                    b_index += b_tile_step
                    a_k += BK
                    b_k += BK
                    fetch_a(A, a_index, a_step, a_valid, a_k, depth, ra)
                    fetch_b(B, b_index, b_step, b_valid, b_k, depth, rb)
                multiply_tiles(As, Bs, acc, tid % TX, tid // TX)
                cuda.syncthreads()

        return product

    @cuda.jit(device=True, inline="always")
    def thread_origin(bx, by):
        # Output row and column of the thread's first accumulator in output tile (by, bx)
        # (the others: see row_step, col_step).
        tid = cuda.threadIdx.x
        return by * BM + (tid // TX) * VM, bx * BN + (tid % TX) * VN

    forward_product = block_product(True, True, False)  # X (rows, n_in) and W (n_out, n_in)
    weight_grad_product = block_product(False, False, True)  # D.T, [A_prev | 1].T; k: batch row
    input_grad_product = block_product(True, False, False)  # D (rows, n_out) and W.T

    @cuda.jit(cache=True, **options)
    def forward(X, x_off, P, w_off, b_off, Z, z_off, A, a_off, rows, n_in, n_out, act, store_act):
        """``Z = X @ W.T + b`` and, if ``store_act``, ``A = f(Z)`` for activation code ``act``.

        ``X`` is (rows, n_in) at ``X[x_off:]``; ``W`` (n_out, n_in) at ``P[w_off:]``; ``b`` at
        ``P[b_off:]``; ``Z``/``A`` are (rows, n_out) at ``Z[z_off:]``/``A[a_off:]``. Softmax is
        never applied here (the loss or the output kernel does it).
        """
        bx, by = cuda.blockIdx.x, cuda.blockIdx.y
        acc = cuda.local.array((TM, TN), dt)
        forward_product(X, x_off, n_in, rows, P, w_off, n_in, n_out, -1, n_in, acc, bx, by)
        r0, c0 = thread_origin(bx, by)
        for i in range(TM):
            r = r0 + row_step(i)
            if r < rows:
                for j in range(TN):
                    c = c0 + col_step(j)
                    if c < n_out:
                        z = acc[i, j] + P[b_off + c]
                        Z[z_off + r * n_out + c] = z
                        if store_act:
                            A[a_off + r * n_out + c] = activate(act, z)

    @cuda.jit(device=True, inline="always")
    def weight_grad_tile(D, d_off, A_prev, a_off, G, w_off, b_off, rows, n_in, n_out, bx, by):
        acc = cuda.local.array((TM, TN), dt)
        weight_grad_product(
            D, d_off, n_out, n_out, A_prev, a_off, n_in, n_in, n_in, rows, acc, bx, by
        )
        r0, c0 = thread_origin(bx, by)
        for i in range(TM):
            o = r0 + row_step(i)
            if o < n_out:
                for j in range(TN):
                    c = c0 + col_step(j)
                    if c < n_in:
                        G[w_off + o * n_in + c] = acc[i, j]
                    elif c == n_in:
                        G[b_off + o] = acc[i, j]

    @cuda.jit(device=True, inline="always")
    def input_grad_tile(D, d_off, P, w_off, D_prev, p_off, Z_prev, A_prev, rows, n_in, n_out, act,
                        bx, by):  # fmt: skip
        acc = cuda.local.array((TM, TN), dt)
        input_grad_product(D, d_off, n_out, rows, P, w_off, n_in, n_in, -1, n_out, acc, bx, by)
        r0, c0 = thread_origin(bx, by)
        for i in range(TM):
            r = r0 + row_step(i)
            if r < rows:
                for j in range(TN):
                    c = c0 + col_step(j)
                    if c < n_in:
                        idx = p_off + r * n_in + c
                        D_prev[idx] = acc[i, j] * derivative(act, Z_prev[idx], A_prev[idx])

    @cuda.jit(cache=True, **options)
    def weight_grad(D, d_off, A_prev, a_off, G, w_off, b_off, rows, n_in, n_out):
        """``dW = D.T @ A_prev`` into ``G[w_off:]`` and ``db = sum_rows D`` into ``G[b_off:]``.

        ``D`` is (rows, n_out) at ``D[d_off:]``, ``A_prev`` (rows, n_in) at ``A_prev[a_off:]``.
        The output is (n_out, n_in + 1): column ``n_in`` multiplies ``D`` by ones (the bias
        gradient). Launch over ``grid(tile, n_out, n_in + 1)``.
        """
        weight_grad_tile(
            D, d_off, A_prev, a_off, G, w_off, b_off, rows, n_in, n_out, cuda.blockIdx.x,
            cuda.blockIdx.y,
        )  # fmt: skip

    @cuda.jit(cache=True, **options)
    def input_grad(D, d_off, P, w_off, D_prev, p_off, Z_prev, A_prev, rows, n_in, n_out, act):
        """``D_prev = (D @ W) * f'(Z_prev)`` for the previous layer's activation code ``act``.

        ``D`` is (rows, n_out) at ``D[d_off:]``; ``W`` (n_out, n_in) at ``P[w_off:]``;
        ``D_prev``, ``Z_prev`` and ``A_prev`` are (rows, n_in) blocks at the same offset
        ``p_off`` of their buffers (the workspace layout).
        """
        input_grad_tile(
            D, d_off, P, w_off, D_prev, p_off, Z_prev, A_prev, rows, n_in, n_out, act,
            cuda.blockIdx.x, cuda.blockIdx.y,
        )  # fmt: skip

    @cuda.jit(cache=True, **options)
    def backward(D, d_off, P, w_off, b_off, G, D_prev, p_off, Z_prev, A_prev, rows, n_in, n_out,
                 act):  # fmt: skip
        """Both gradients of a hidden layer in one launch: :func:`weight_grad` (``A_prev`` at
        ``p_off``) and :func:`input_grad`, which read the same ``D`` and write apart.

        Launch with ``backward_blocks(tile, rows, n_in, n_out)`` blocks in one dimension: the
        first ones take the weight gradient's output tiles, the rest the input gradient's.
        """
        b = cuda.blockIdx.x
        w_cols = (n_in + BN) // BN  # (n_in + 1) columns, rounded up
        w_blocks = w_cols * ((n_out + BM - 1) // BM)
        if b < w_blocks:
            weight_grad_tile(
                D, d_off, A_prev, p_off, G, w_off, b_off, rows, n_in, n_out, b % w_cols,
                b // w_cols,
            )  # fmt: skip
        else:
            b -= w_blocks
            i_cols = (n_in + BN - 1) // BN
            input_grad_tile(
                D, d_off, P, w_off, D_prev, p_off, Z_prev, A_prev, rows, n_in, n_out, act,
                b % i_cols, b // i_cols,
            )  # fmt: skip

    return SimpleNamespace(
        forward=forward, weight_grad=weight_grad, input_grad=input_grad, backward=backward
    )
