"""Tiled shared-memory GEMMs of a dense layer, each with its work around the product fused in.

Three products cover a dense layer (``W`` is (out, in), row-major, inside the flat parameter
buffer ``P``; activations and deltas are (rows, width) row-major blocks of flat buffers):

- :func:`forward`: ``Z = X @ W.T + b`` with the activation ``A = f(Z)`` in the epilogue;
- weight gradient: ``dW = D.T @ A_prev`` and, in the same pass, ``db`` = the column sums of
  ``D`` (``A_prev`` is read with an extra column of ones, so ``db`` is the product's last column
  and costs no extra launch);
- input gradient: ``D_prev = (D @ W) * f'(Z_prev)``, the derivative applied in the epilogue.

Every kernel takes flat buffers plus integer offsets, so the host never slices device arrays on
the hot path. A block computes a ``BM x BN`` tile of the output with ``(BM/TM) * (BN/TN)``
threads, each accumulating a ``TM x TN`` register tile (strided by the thread grid, so global
stores coalesce and shared-memory reads are conflict-free); K advances ``BK`` at a time through
two shared-memory tiles stored k-major (padded by one column against bank conflicts), the next
tiles' global loads prefetched into registers while the current ones are multiplied. Tile sizes
must be compile-time constants, so :func:`gemm_kernels` builds one kernel set per
``(dtype, tile)`` and caches it.
"""

import functools

import numba
import numpy as np

from ...backends.cuda import cuda
from .activations import activate, derivative

#: Tile configurations ``(BM, BN, BK, TM, TN)``: "large" for grids that fill the GPU, "small"
#: (more blocks per output) for small batches and layers, "tiny" for tests under the simulator.
TILES = {
    "large": (64, 64, 16, 4, 4),
    "small": (32, 32, 32, 2, 2),
    "tiny": (8, 8, 4, 2, 2),
}


def threads_per_block(tile):
    """Threads of one GEMM block for ``tile = (BM, BN, BK, TM, TN)``."""
    bm, bn, _, tm, tn = tile
    return (bm // tm) * (bn // tn)


def grid(tile, m, n):
    """Launch grid ``(column tiles, row tiles)`` covering an ``m x n`` output."""
    bm, bn = tile[0], tile[1]
    return (-(-n // bn), -(-m // bm))


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
    forward, weight_grad, input_grad : numba CUDA kernels
        See each kernel's docstring for its arguments.
    """
    BM, BN, BK, TM, TN = (int(v) for v in tile)
    if BM % TM or BN % TN:
        raise ValueError(f"tile {tile}: TM must divide BM and TN must divide BN")
    TX = BN // TN  # threads along the output's columns
    TY = BM // TM  # threads along the output's rows
    NT = TX * TY
    if (BM * BK) % NT or (BN * BK) % NT:
        raise ValueError(f"tile {tile}: the {NT} threads must split BM*BK and BN*BK evenly")
    LA = BM * BK // NT  # elements of the A tile each thread loads
    LB = BN * BK // NT
    BMP = BM + 1  # padded shared-tile widths
    BNP = BN + 1
    dt = numba.from_dtype(np.dtype(dtype))

    # Tile loads go global -> registers (``fetch_*``) -> shared memory (``stash_*``), so that the
    # next K tile's global loads are in flight while the current tile is multiplied. Every loop
    # has a constant trip count, so the register arrays stay in registers.
    @cuda.jit(device=True, inline="always")
    def fetch_k_contiguous(src, off, ld, r0, r_lim, k0, k_lim, regs, width, n_loads, tid):
        # Element (rr, kk) of the tile is src[off + (r0 + rr) * ld + k0 + kk], zero outside the
        # matrix. Consecutive threads read consecutive k: coalesced.
        for q in range(n_loads):
            e = tid + q * NT
            r = r0 + e // BK
            k = k0 + e % BK
            v = dt(0.0)
            if r < r_lim and k < k_lim:
                v = src[off + r * ld + k]
            regs[q] = v

    @cuda.jit(device=True, inline="always")
    def stash_k_contiguous(regs, sh, n_loads, tid):
        # The transposed store (sh is k-major) is padded by one column against bank conflicts.
        for q in range(n_loads):
            e = tid + q * NT
            sh[e % BK, e // BK] = regs[q]

    @cuda.jit(device=True, inline="always")
    def fetch_r_contiguous(src, off, ld, r0, r_lim, k0, k_lim, ones_at, regs, width, n_loads, tid):
        # Element (rr, kk) is src[off + (k0 + kk) * ld + r0 + rr]; column ``ones_at`` reads 1.
        for q in range(n_loads):
            e = tid + q * NT
            r = r0 + e % width
            k = k0 + e // width
            v = dt(0.0)
            if k < k_lim:
                if r < r_lim:
                    v = src[off + k * ld + r]
                elif r == ones_at:
                    v = dt(1.0)
            regs[q] = v

    @cuda.jit(device=True, inline="always")
    def stash_r_contiguous(regs, sh, width, n_loads, tid):
        for q in range(n_loads):
            e = tid + q * NT
            sh[e // width, e % width] = regs[q]

    @cuda.jit(device=True, inline="always")
    def multiply_tiles(As, Bs, acc, tx, ty):
        a = cuda.local.array(TM, dt)
        b = cuda.local.array(TN, dt)
        for kk in range(BK):
            for i in range(TM):
                a[i] = As[kk, ty + i * TY]
            for j in range(TN):
                b[j] = Bs[kk, tx + j * TX]
            for i in range(TM):
                for j in range(TN):
                    acc[i, j] += a[i] * b[j]

    @cuda.jit(device=True, inline="always")
    def clear(acc):
        for i in range(TM):
            for j in range(TN):
                acc[i, j] = dt(0.0)

    @cuda.jit(cache=True)
    def forward(X, x_off, P, w_off, b_off, Z, z_off, A, a_off, rows, n_in, n_out, act, store_act):
        """``Z = X @ W.T + b`` and, if ``store_act``, ``A = f(Z)`` for activation code ``act``.

        ``X`` is (rows, n_in) at ``X[x_off:]``; ``W`` (n_out, n_in) at ``P[w_off:]``; ``b`` at
        ``P[b_off:]``; ``Z``/``A`` are (rows, n_out) at ``Z[z_off:]``/``A[a_off:]``. Softmax is
        never applied here (the loss or the output kernel does it).
        """
        As = cuda.shared.array((BK, BMP), dt)
        Bs = cuda.shared.array((BK, BNP), dt)
        acc = cuda.local.array((TM, TN), dt)
        ra = cuda.local.array(LA, dt)
        rb = cuda.local.array(LB, dt)
        tid = cuda.threadIdx.x
        tx = tid % TX
        ty = tid // TX
        r0 = cuda.blockIdx.y * BM
        c0 = cuda.blockIdx.x * BN
        clear(acc)
        fetch_k_contiguous(X, x_off, n_in, r0, rows, 0, n_in, ra, BM, LA, tid)
        fetch_k_contiguous(P, w_off, n_in, c0, n_out, 0, n_in, rb, BN, LB, tid)
        for k0 in range(0, n_in, BK):
            stash_k_contiguous(ra, As, LA, tid)
            stash_k_contiguous(rb, Bs, LB, tid)
            cuda.syncthreads()
            if k0 + BK < n_in:
                fetch_k_contiguous(X, x_off, n_in, r0, rows, k0 + BK, n_in, ra, BM, LA, tid)
                fetch_k_contiguous(P, w_off, n_in, c0, n_out, k0 + BK, n_in, rb, BN, LB, tid)
            multiply_tiles(As, Bs, acc, tx, ty)
            cuda.syncthreads()
        for i in range(TM):
            r = r0 + ty + i * TY
            if r < rows:
                for j in range(TN):
                    c = c0 + tx + j * TX
                    if c < n_out:
                        z = acc[i, j] + P[b_off + c]
                        Z[z_off + r * n_out + c] = z
                        if store_act:
                            A[a_off + r * n_out + c] = activate(act, z)

    @cuda.jit(cache=True)
    def weight_grad(D, d_off, A_prev, a_off, G, w_off, b_off, rows, n_in, n_out):
        """``dW = D.T @ A_prev`` into ``G[w_off:]`` and ``db = sum_rows D`` into ``G[b_off:]``.

        ``D`` is (rows, n_out) at ``D[d_off:]``, ``A_prev`` (rows, n_in) at ``A_prev[a_off:]``.
        The output is (n_out, n_in + 1): column ``n_in`` multiplies ``D`` by ones (the bias
        gradient). Launch over ``grid(tile, n_out, n_in + 1)``.
        """
        As = cuda.shared.array((BK, BMP), dt)
        Bs = cuda.shared.array((BK, BNP), dt)
        acc = cuda.local.array((TM, TN), dt)
        ra = cuda.local.array(LA, dt)
        rb = cuda.local.array(LB, dt)
        tid = cuda.threadIdx.x
        tx = tid % TX
        ty = tid // TX
        r0 = cuda.blockIdx.y * BM
        c0 = cuda.blockIdx.x * BN
        clear(acc)
        fetch_r_contiguous(D, d_off, n_out, r0, n_out, 0, rows, -1, ra, BM, LA, tid)
        fetch_r_contiguous(A_prev, a_off, n_in, c0, n_in, 0, rows, n_in, rb, BN, LB, tid)
        for k0 in range(0, rows, BK):
            stash_r_contiguous(ra, As, BM, LA, tid)
            stash_r_contiguous(rb, Bs, BN, LB, tid)
            cuda.syncthreads()
            if k0 + BK < rows:
                k1 = k0 + BK
                fetch_r_contiguous(D, d_off, n_out, r0, n_out, k1, rows, -1, ra, BM, LA, tid)
                fetch_r_contiguous(A_prev, a_off, n_in, c0, n_in, k1, rows, n_in, rb, BN, LB, tid)
            multiply_tiles(As, Bs, acc, tx, ty)
            cuda.syncthreads()
        for i in range(TM):
            o = r0 + ty + i * TY
            if o < n_out:
                for j in range(TN):
                    c = c0 + tx + j * TX
                    if c < n_in:
                        G[w_off + o * n_in + c] = acc[i, j]
                    elif c == n_in:
                        G[b_off + o] = acc[i, j]

    @cuda.jit(cache=True)
    def input_grad(D, d_off, P, w_off, D_prev, p_off, Z_prev, A_prev, rows, n_in, n_out, act):
        """``D_prev = (D @ W) * f'(Z_prev)`` for the previous layer's activation code ``act``.

        ``D`` is (rows, n_out) at ``D[d_off:]``; ``W`` (n_out, n_in) at ``P[w_off:]``;
        ``D_prev``, ``Z_prev`` and ``A_prev`` are (rows, n_in) blocks at the same offset
        ``p_off`` of their buffers (the workspace layout).
        """
        As = cuda.shared.array((BK, BMP), dt)
        Bs = cuda.shared.array((BK, BNP), dt)
        acc = cuda.local.array((TM, TN), dt)
        ra = cuda.local.array(LA, dt)
        rb = cuda.local.array(LB, dt)
        tid = cuda.threadIdx.x
        tx = tid % TX
        ty = tid // TX
        r0 = cuda.blockIdx.y * BM
        c0 = cuda.blockIdx.x * BN
        clear(acc)
        fetch_k_contiguous(D, d_off, n_out, r0, rows, 0, n_out, ra, BM, LA, tid)
        fetch_r_contiguous(P, w_off, n_in, c0, n_in, 0, n_out, -1, rb, BN, LB, tid)
        for k0 in range(0, n_out, BK):
            stash_k_contiguous(ra, As, LA, tid)
            stash_r_contiguous(rb, Bs, BN, LB, tid)
            cuda.syncthreads()
            if k0 + BK < n_out:
                fetch_k_contiguous(D, d_off, n_out, r0, rows, k0 + BK, n_out, ra, BM, LA, tid)
                fetch_r_contiguous(P, w_off, n_in, c0, n_in, k0 + BK, n_out, -1, rb, BN, LB, tid)
            multiply_tiles(As, Bs, acc, tx, ty)
            cuda.syncthreads()
        for i in range(TM):
            r = r0 + ty + i * TY
            if r < rows:
                for j in range(TN):
                    c = c0 + tx + j * TX
                    if c < n_in:
                        idx = p_off + r * n_in + c
                        D_prev[idx] = acc[i, j] * derivative(act, Z_prev[idx], A_prev[idx])

    return forward, weight_grad, input_grad
