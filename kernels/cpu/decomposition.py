"""PCA kernels: centering, covariance, exact and randomized SVD, sign convention, projections.

Bandwidth- and GEMM-bound work runs in the dtype of the data (float32 or float64); the means,
sums of squares and the small factorisations of the randomized solver (an (l, l) Gram matrix,
the SVD of an (l, n_features) matrix) run in float64.

- :func:`fit_exact` computes every principal component. For tall data (``n_samples >=
  n_features``) it eigendecomposes the covariance matrix, accumulated by BLAS ``?syrk`` (half
  the arithmetic of a GEMM) from row blocks that are centred on the fly: no centred copy of
  ``X``, and no cancellation from subtracting the mean afterwards. Otherwise it takes LAPACK's
  SVD of the centred data.
- :func:`fit_randomized` is Halko, Martinsson & Tropp's randomized SVD (algorithm 4.4, subspace
  iteration) on the centred data: a Gaussian test matrix, ``n_iter`` power iterations, each
  product re-orthonormalised by :func:`orthonormalize` (SVQB: one small float64 eigenproblem and
  one GEMM instead of a Householder QR or LU of a tall matrix), then the SVD of ``Q.T @ A``.
- :func:`svd_flip_rows` fixes the signs as scikit-learn's ``svd_flip(u_based_decision=False)``:
  the entry of largest magnitude in each component is positive.

Every function takes arrays and scalars only; results go into arrays the caller passes or are
returned as new arrays (a fit is not a hot path, so its scratch buffers are allocated here).
``?syrk`` is not among the BLAS calls Numba binds: :func:`_call_c` calls SciPy's, whose address
the caller passes in (:data:`SYRK`) so that the compiled code stays cacheable.
"""

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import get_cython_function_address, intrinsic

from .._options import kernel

# Rows per block when the covariance is accumulated from centred row blocks.
COVARIANCE_BLOCK_ROWS = 2048

# Addresses of SciPy's BLAS ``ssyrk``/``dsyrk`` (the library Numba's own ``np.dot`` calls),
# looked up in each process and passed to the kernels as integers.
SYRK = {
    np.dtype(np.float32): get_cython_function_address("scipy.linalg.cython_blas", "ssyrk"),
    np.dtype(np.float64): get_cython_function_address("scipy.linalg.cython_blas", "dsyrk"),
}


@kernel
def column_mean(X, mean):
    """``mean[j] = X[:, j].mean()``, accumulated in float64 row by row (contiguous reads)."""
    n, m = X.shape
    acc = np.zeros(m, dtype=np.float64)
    for i in range(n):
        for j in range(m):
            acc[j] += X[i, j]
    for j in range(m):
        mean[j] = acc[j] / n


@kernel
def center(X, mean, out):
    """``out = X - mean`` row by row; returns the sum of squares of ``out`` in float64."""
    n, m = X.shape
    total = 0.0
    for i in range(n):
        row = np.float64(0.0)
        for j in range(m):
            value = X[i, j] - mean[j]
            out[i, j] = value
            row += np.float64(value) * np.float64(value)
        total += row
    return total


@intrinsic
def _call_c(typingctx, address, arrays):
    """Call the ``void f(void *, ...)`` at ``address`` with the data pointers of ``arrays``.

    ``address`` is passed at run time (from :data:`SYRK`), so nothing process-specific is
    compiled in and the callers stay cacheable. Passing the arrays, not their addresses, keeps
    them alive across the call.
    """
    if not isinstance(address, types.Integer) or not isinstance(arrays, types.BaseTuple):
        return None
    if not all(isinstance(a, types.Array) for a in arrays):
        return None

    def codegen(context, builder, signature, args):
        fn_address, values = args
        voidptr = ir.IntType(8).as_pointer()
        pointers = []
        for i, array_type in enumerate(arrays):
            array = context.make_array(array_type)(
                context, builder, builder.extract_value(values, i)
            )
            pointers.append(builder.bitcast(array.data, voidptr))
        fnty = ir.FunctionType(ir.VoidType(), [voidptr] * len(pointers))
        builder.call(builder.inttoptr(fn_address, fnty.as_pointer()), pointers)
        return context.get_dummy_value()

    return types.void(address, arrays), codegen


@kernel
def syrk_upper(syrk_address, A, beta, C):
    """``C = A.T @ A + beta * C`` on the upper triangle of ``C`` (BLAS ``?syrk``).

    ``A`` (k, m) and ``C`` (m, m) are C-ordered: to column-major BLAS ``A`` is the (m, k) matrix
    ``A.T``, so ``uplo="L", trans="N"`` fills the row-major upper triangle with ``A.T @ A``.
    Half the arithmetic of the GEMM ``A.T @ A``.
    """
    k, m = A.shape
    flags = np.array([ord("L"), ord("N")], dtype=np.uint8)
    dims = np.array([m, k, m, m], dtype=np.int32)
    scalars = np.array([1.0, beta], dtype=A.dtype)
    _call_c(
        syrk_address,
        (flags[0:1], flags[1:2], dims[0:1], dims[1:2], scalars[0:1], A, dims[2:3],
         scalars[1:2], C, dims[3:4]),
    )  # fmt: skip


@kernel
def covariance_sum(X, mean, block_rows, syrk_address, C):
    """``C = (X - mean).T @ (X - mean)`` from centred blocks of ``block_rows`` rows.

    Each block is centred into a small buffer and added to ``C`` by one ``?syrk``; the data is
    read once and never copied whole, and no mean is subtracted after the fact (which would
    cancel digits when the mean is large against the spread). ``C`` has the dtype of ``X``.
    """
    n, m = X.shape
    rows = min(block_rows, n)
    buf = np.empty((rows, m), dtype=X.dtype)
    C[...] = 0
    one = X.dtype.type(1)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        block = buf[: stop - start]
        center(X[start:stop], mean, block)
        syrk_upper(syrk_address, block, one, C)
    for i in range(m):
        for j in range(i + 1, m):
            C[j, i] = C[i, j]


@kernel
def svd_flip_rows(V):
    """Flip the sign of each row of ``V`` so that its entry of largest magnitude is positive.

    scikit-learn's ``svd_flip(u, v, u_based_decision=False)``: ties go to the first such entry;
    an all-zero row is left as it is. Works in place.
    """
    k, m = V.shape
    for i in range(k):
        best = 0
        largest = abs(V[i, 0])
        for j in range(1, m):
            if abs(V[i, j]) > largest:
                largest = abs(V[i, j])
                best = j
        if V[i, best] < 0:
            for j in range(m):
                V[i, j] = -V[i, j]


@kernel
def orthonormalize(Y, out, rtol):
    """``out = Y @ M`` with orthonormal columns spanning the range of ``Y`` (SVQB).

    Stathopoulos & Wu's SVQB: with ``D = diag(Y.T Y)^-1/2`` and the float64 eigendecomposition
    ``D Y.T Y D = V diag(w) V.T``, ``M = D V diag(w)^-1/2``. Directions with ``w < rtol *
    max(w)`` (numerically outside the range) get a zero column instead. The result is
    orthonormal to about ``eps * cond(Y)``; a second call makes it orthonormal to working
    precision. ``out`` must not alias ``Y``.
    """
    l = Y.shape[1]
    Y64 = Y.astype(np.float64)
    G = np.dot(Y64.T, Y64)
    d = np.empty(l, dtype=np.float64)
    for j in range(l):
        d[j] = 1.0 / np.sqrt(G[j, j]) if G[j, j] > 0.0 else 0.0
    for i in range(l):
        for j in range(l):
            G[i, j] *= d[i] * d[j]
    w, V = np.linalg.eigh(G)
    floor = rtol * w[l - 1]
    M = np.empty((l, l), dtype=Y.dtype)
    for j in range(l):
        scale = 1.0 / np.sqrt(w[j]) if w[j] > floor and w[j] > 0.0 else 0.0
        for i in range(l):
            M[i, j] = d[i] * V[i, j] * scale
    np.dot(Y, M, out)


@kernel
def range_finder(A, omega, n_iter, rtol):
    """Orthonormal basis (rows(A), l) of the range of ``A @ omega`` after ``n_iter`` power
    iterations (Halko et al. 2011, algorithm 4.4), each product re-orthonormalised."""
    m, n = A.shape
    l = omega.shape[1]
    Y = np.empty((m, l), dtype=A.dtype)
    Q = np.empty((m, l), dtype=A.dtype)
    Z = np.empty((n, l), dtype=A.dtype)
    P = np.empty((n, l), dtype=A.dtype)
    np.dot(A, omega, Y)
    orthonormalize(Y, Q, rtol)
    for _ in range(n_iter):
        np.dot(A.T, Q, Z)
        orthonormalize(Z, P, rtol)
        np.dot(A, P, Y)
        orthonormalize(Y, Q, rtol)
    # Second pass: orthonormal to working precision (needed for the projection Q.T @ A).
    orthonormalize(Q, Y, rtol)
    return Y


@kernel
def fit_exact(X, block_rows, syrk_address, mean):
    """All principal axes of ``X``; writes ``mean``. ``syrk_address``: ``SYRK[X.dtype]``.

    Returns
    -------
    S : float64 array (r,)
        Singular values of the centred data, descending; ``r = min(n_samples, n_features)``.
    components : array (r, n_features), dtype of X
        Right singular vectors (rows), signs as :func:`svd_flip_rows`.
    total_ss : float
        Sum of squares of the centred data (the total variance times ``n_samples - 1``).
    """
    n, m = X.shape
    column_mean(X, mean)
    if n >= m:
        C = np.empty((m, m), dtype=X.dtype)
        covariance_sum(X, mean, block_rows, syrk_address, C)
        total_ss = 0.0
        for j in range(m):
            total_ss += np.float64(C[j, j])
        w, V = np.linalg.eigh(C)
        S = np.empty(m, dtype=np.float64)
        components = np.empty((m, m), dtype=X.dtype)
        for i in range(m):
            # eigh sorts ascending; rounding can leave tiny negative eigenvalues.
            S[i] = np.sqrt(max(np.float64(w[m - 1 - i]), 0.0))
            for j in range(m):
                components[i, j] = V[j, m - 1 - i]
    else:
        Xc = np.empty((n, m), dtype=X.dtype)
        total_ss = center(X, mean, Xc)
        _, s, Vt = np.linalg.svd(Xc, full_matrices=False)
        S = s.astype(np.float64)
        components = np.ascontiguousarray(Vt)
    svd_flip_rows(components)
    return S, components, total_ss


@kernel
def fit_randomized(X, omega, n_iter, rtol, n_components, mean):
    """The leading ``n_components`` principal axes of ``X`` by randomized SVD; writes ``mean``.

    ``omega`` is the Gaussian test matrix, (n_features, l) for tall data and (n_samples, l) for
    wide data (which is handled as its transpose, as scikit-learn does), with ``l >=
    n_components``. Returns ``(S, components, total_ss)`` like :func:`fit_exact`, truncated to
    ``n_components``.
    """
    n, m = X.shape
    column_mean(X, mean)
    Xc = np.empty((n, m), dtype=X.dtype)
    total_ss = center(X, mean, Xc)
    k = n_components
    if n >= m:
        Q = range_finder(Xc, omega, n_iter, rtol)
        B = np.empty((Q.shape[1], m), dtype=X.dtype)
        np.dot(Q.T, Xc, B)
        _, s, Vt = np.linalg.svd(B.astype(np.float64), full_matrices=False)
        components = Vt[:k].astype(X.dtype)
    else:
        # Xc.T = Q Uh diag(s) Vt, so the principal axes are the rows of (Q Uh).T.
        A = Xc.T
        Q = range_finder(A, omega, n_iter, rtol)
        B = np.empty((Q.shape[1], n), dtype=X.dtype)
        np.dot(Q.T, A, B)
        Uh, s, _ = np.linalg.svd(B.astype(np.float64), full_matrices=False)
        Uk = np.ascontiguousarray(Uh[:, :k].T).astype(X.dtype)
        components = np.empty((k, m), dtype=X.dtype)
        np.dot(Uk, Q.T, components)
    svd_flip_rows(components)
    return s[:k].copy(), components, total_ss


@kernel
def project(X, mean, components, scale, out):
    """``out = (X - mean) @ components.T * scale`` (``scale`` per component).

    One GEMM on the raw data, then the mean's projection is subtracted (float64) and each
    column scaled in one pass.
    """
    k, m = components.shape
    np.dot(X, components.T, out)
    offset = np.zeros(k, dtype=np.float64)
    for c in range(k):
        for j in range(m):
            offset[c] += np.float64(components[c, j]) * np.float64(mean[j])
    shift = offset.astype(out.dtype)
    for i in range(out.shape[0]):
        for c in range(k):
            out[i, c] = (out[i, c] - shift[c]) * scale[c]


@kernel
def reconstruct(Z, basis, mean, out):
    """``out = Z @ basis + mean``: maps component scores back to feature space."""
    np.dot(Z, basis, out)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] += mean[j]
