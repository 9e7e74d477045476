"""Hessian eigenmaps (HLLE, Donoho & Grimes, PNAS 2003) and its out-of-sample extension.

Why HLLE and not Laplacian eigenmaps or LLE: the null space of the Hessian functional on a
flat (locally isometric) manifold is spanned by the constant and the d isometric coordinates,
so the bottom non-constant eigenvectors are the true factors up to an affine map. Other
spectral embeddings give non-linear functions of the factors (e.g. cos(pi z)).

Steps and their cost in the number of points N (D = pixels, k = neighbours, d = target
dimension, dp = d(d+1)/2):

1. kNN graph, brute force: O(N^2 D) time, O(N k) memory (sklearn chunks the distances).
2. Per point: centre the neighbourhood (itself + k neighbours), tangent coordinates from the
   (k+1)x(k+1) Gram matrix, QR of [1, U, U_a*U_b]: O(N k^2 D + N k (1+d+dp)^2); the points are
   processed in chunks so the gathered neighbourhoods never exceed ``CHUNK_BYTES``.
3. Alignment matrix W = sum_i H_i^T H_i as a scipy.sparse matrix: O(N (k+1)^2) non-zeros.
4. The d+1 smallest eigenvectors of W: dense ``eigh`` is O(N^3) time and O(N^2) memory (used for
   small N); ARPACK in shift-invert mode factorises W once (sparse LU, near-linear fill-in for
   a low-dimensional kNN graph) and iterates: roughly O(N k^2) per iteration.
"""

from __future__ import annotations

import hashlib
from contextlib import AbstractContextManager

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, eigsh
from sklearn.neighbors import NearestNeighbors
from threadpoolctl import ThreadpoolController

EIGEN_SOLVERS = ("auto", "dense", "arpack")
DENSE_MAX_POINTS = 1000  # "auto" uses the dense solver up to here, ARPACK beyond
CHUNK_BYTES = 16 * 2**20  # bound on the gathered neighbourhoods held at once
ARPACK_SHIFT = 1e-9  # shift-invert at -shift * mean(diag W): W + s I is definite, W is not
# The per-neighbourhood products are tiny (m x D times D x m): BLAS threads only add
# start-up cost, and on an oversubscribed machine OpenBLAS's spinning threads wait for
# cores the others hold, so those loops run with one BLAS thread.
LOCAL_BLAS_THREADS = 1
# Found once: the lookup scans every shared library the process has loaded.
_threadpools: list[ThreadpoolController] = []


def local_blas_threads() -> AbstractContextManager[object]:
    """Context manager limiting BLAS to ``LOCAL_BLAS_THREADS`` for the per-neighbourhood loops."""
    if not _threadpools:
        _threadpools.append(ThreadpoolController())
    return _threadpools[0].limit(limits=LOCAL_BLAS_THREADS, user_api="blas")


class HessianEigenmapError(ValueError):
    """HLLE cannot run on this input (too few points, an invalid k); the message says why."""


def flush_subnormals(x: np.ndarray) -> np.ndarray:
    """``x`` with values below sqrt(smallest normal float) (~1e-19 in float32) set to 0, in place.

    Rendered Gaussian blobs underflow far from their centre (~2% of the pixels of
    ``isometric_manifold`` are subnormal), and products of two tiny pixels are subnormal
    too; x86 arithmetic on subnormals takes a slow microcode path, which held up the
    float32 GEMM of the kNN search. Below this bound no product of two kept values
    underflows, and such values are far below float32 resolution near 1 anyway.
    """
    x[np.abs(x) < np.sqrt(np.finfo(x.dtype).tiny)] = 0
    return x


def distinct_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of each distinct row's first occurrence, inverse [n]: row -> distinct id).

    Rows are compared by a 128-bit hash of their bytes: ``np.unique(axis=0)`` sorts
    whole rows and is an order of magnitude slower for image-sized rows.
    """
    ids: dict[bytes, int] = {}
    inverse = np.empty(len(x), dtype=np.int64)
    first: list[int] = []
    for i, row in enumerate(np.ascontiguousarray(x)):
        key = hashlib.blake2b(row.tobytes(), digest_size=16).digest()
        if key not in ids:
            ids[key] = len(first)
            first.append(i)
        inverse[i] = ids[key]
    return np.asarray(first, dtype=np.int64), inverse


def min_neighbours(d: int) -> int:
    """Smallest valid k: the neighbourhood (point + k) must fit 1 + d + d(d+1)/2 columns."""
    return d * (d + 3) // 2 + 1


def check_neighbours(k: int, d: int, n_points: int, who: str) -> None:
    """Raise a one-line error naming ``who``'s option ``k`` when HLLE cannot use it."""
    if k <= d * (d + 3) // 2:
        raise HessianEigenmapError(
            f"{who}: k={k} neighbours is too small for d={d}; HLLE needs k > d(d+3)/2 = "
            f"{d * (d + 3) / 2:g} (set k >= {min_neighbours(d)} or lower d)"
        )
    if k + 1 > n_points:
        raise HessianEigenmapError(
            f"{who}: k={k} neighbours needs at least {k + 1} distinct observations, "
            f"got {n_points} (raise num_points or lower k)"
        )


def neighbourhoods(knn: NearestNeighbors, x: np.ndarray, k: int) -> np.ndarray:
    """Indices [n, k+1] of each training point and its k nearest others, the point first.

    Ties and rounding can put another point before the point itself (or push it out of
    the k+1 returned), so the point is placed first explicitly.
    """
    n = len(x)
    found = knn.kneighbors(x, n_neighbors=k + 1, return_distance=False)
    is_self = found == np.arange(n)[:, None]
    is_self[~is_self.any(axis=1), -1] = True  # self missing: drop the farthest instead
    others = found[~is_self].reshape(n, k)
    return np.concatenate([np.arange(n)[:, None], others], axis=1)


def centred(x: np.ndarray, nb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gathered neighbourhoods [c, m, D] minus their means [c, 1, D], in x's dtype.

    Kept in float32 for float32 observations: the D-long products are the dominant cost,
    and the small Gram matrices built from them are solved in float64.
    """
    g = x[nb]
    centre = g.mean(axis=1, keepdims=True)
    return g - centre, centre


def local_frames(g: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-d tangent frames of centred neighbourhoods g [c, m, D].

    Returns (unit-norm tangent coordinates [c, m, d] of the m neighbours, the Gram
    eigenvalues [c, d]). The Gram matrix g g^T (m x m) replaces an SVD of the m x D
    block: its eigenvectors are g's left singular vectors, at m^2 D cost.
    """
    gram = np.matmul(g, g.transpose(0, 2, 1)).astype(np.float64)
    evals, evecs = np.linalg.eigh(gram)  # ascending
    return evecs[:, :, ::-1][:, :, :d], evals[:, ::-1][:, :d]


def hessian_alignment(x: np.ndarray, nb: np.ndarray, d: int) -> sp.csr_matrix:
    """W = sum_i H_i^T H_i [n, n]: the quadratic form of the estimated Hessian energy.

    H_i holds the last d(d+1)/2 orthonormal columns of QR([1, U_i, U_ia*U_ib]): the part of
    the quadratic terms orthogonal to affine functions, i.e. a local second-derivative
    estimator. Its rows are orthogonal to the constant, so W 1 = 0 exactly.
    """
    n, m = nb.shape
    dp = d * (d + 1) // 2
    ia, ib = np.triu_indices(d)
    chunk = max(1, CHUNK_BYTES // (m * x.shape[1] * x.itemsize))
    weights = np.empty((n, dp, m))
    with local_blas_threads():
        for start in range(0, n, chunk):
            u, _ = local_frames(centred(x, nb[start : start + chunk])[0], d)
            ones = np.ones(u.shape[:2] + (1,))
            design = np.concatenate([ones, u, u[:, :, ia] * u[:, :, ib]], axis=2)
            q, _ = np.linalg.qr(design)
            weights[start : start + chunk] = q[:, :, d + 1 :].transpose(0, 2, 1)
    rows = np.repeat(np.arange(n * dp), m)
    cols = np.repeat(nb, dp, axis=0).ravel()
    h = sp.csr_matrix((weights.ravel(), (rows, cols)), shape=(n * dp, n))
    return (h.T @ h).tocsr()


def null_embedding(
    w: sp.csr_matrix, d: int, solver: str, seed: int
) -> tuple[np.ndarray, np.ndarray, str]:
    """The span of W's d+1 smallest eigenvectors without the constant, as [n, d].

    Returns (embedding, the d+1 smallest eigenvalues, the solver used). The columns are
    centred and orthogonal with unit variance. The constant is projected out of the whole
    (d+1)-dim span rather than dropping "the first" eigenvector, because near-zero
    eigenvalues of a real manifold can come in any order with the exact zero.
    """
    n = w.shape[0]
    if solver not in EIGEN_SOLVERS:
        raise HessianEigenmapError(f"HLLE: eigen_solver={solver!r}; choose one of {EIGEN_SOLVERS}")
    if solver == "auto":
        solver = "dense" if n <= DENSE_MAX_POINTS else "arpack"
    if solver == "dense":
        evals, vecs = scipy.linalg.eigh(w.toarray(), subset_by_index=[0, d])
    else:
        shift = ARPACK_SHIFT * float(w.diagonal().mean())
        v0 = np.random.default_rng(seed).uniform(-1.0, 1.0, n)
        try:
            evals, vecs = eigsh(w.tocsc(), k=d + 1, sigma=-shift, which="LM", v0=v0, maxiter=5000)
        except (ArpackNoConvergence, ArpackError, RuntimeError) as exc:
            raise HessianEigenmapError(
                f"HLLE: ARPACK did not converge on the {n}-point alignment matrix ({exc}); "
                "try eigen_solver='dense' or a larger k"
            ) from exc
    vecs = vecs - vecs.mean(axis=0)
    basis, _, _ = np.linalg.svd(vecs, full_matrices=False)
    return basis[:, :d] * np.sqrt(n), np.sort(evals), solver


def count_components(nb: np.ndarray) -> int:
    """Connected components of the kNN graph; more than one makes the null space larger."""
    n, m = nb.shape
    graph = sp.csr_matrix((np.ones(n * m), (np.repeat(np.arange(n), m), nb.ravel())), (n, n))
    return int(connected_components(graph, directed=False)[0])


def nearest_rows(
    train_x: np.ndarray, sq_norms: np.ndarray, queries: np.ndarray, m: int
) -> np.ndarray:
    """Indices [n, m] (unordered) of the m training rows nearest to each query.

    Ranks |x|^2 - 2 x.q from one float32 GEMM per chunk of queries: faster than sklearn's
    brute search, which upcasts to float64 and re-validates the training set on every
    call; that matters because ``encode`` serves the sampling metrics hundreds of
    thousands of observations. (The training graph in ``fit`` uses sklearn's float64
    search; float32 rounding can only reorder near-ties here.)
    """
    out = np.empty((len(queries), m), dtype=np.int64)
    chunk = max(1, CHUNK_BYTES // (len(train_x) * 4))
    for start in range(0, len(queries), chunk):
        d2 = sq_norms[None, :] - 2 * (queries[start : start + chunk] @ train_x.T)
        out[start : start + chunk] = np.argpartition(d2, m - 1, axis=1)[:, :m]
    return out


def tangent_affine_extension(
    queries: np.ndarray,
    train_x: np.ndarray,
    sq_norms: np.ndarray,
    embedding: np.ndarray,
    k: int,
) -> np.ndarray:
    """Embedding [m, d] of new points by a local affine fit in tangent coordinates.

    For each query: take its k+1 nearest training points (the size of a training
    neighbourhood; ``sq_norms`` are the rows' squared norms), their d-dim tangent frame,
    fit embedding = a + B t by least squares over those points, and evaluate at the
    query's own tangent coordinates. Why this extension: HLLE's embedding is, by
    construction, the function whose local Hessians vanish, i.e. the locally affine one,
    so a local affine fit is its natural continuation (and on a training point it
    reproduces the embedding up to the small local residual).
    """
    queries = queries.astype(train_x.dtype, copy=False)
    nb = nearest_rows(train_x, sq_norms, queries, k + 1)
    out = np.empty((len(queries), embedding.shape[1]))
    chunk = max(1, CHUNK_BYTES // ((k + 1) * train_x.shape[1] * train_x.itemsize))
    with local_blas_threads():
        for start in range(0, len(queries), chunk):
            idx = nb[start : start + chunk]
            q = queries[start : start + chunk]
            out[start : start + chunk] = _affine_predict(q, train_x, idx, embedding[idx])
    return out


def _affine_predict(
    q: np.ndarray, train_x: np.ndarray, idx: np.ndarray, target: np.ndarray
) -> np.ndarray:
    """Local affine fits of ``target`` [c, m, d] on tangent coordinates, evaluated at q [c, D]."""
    d = target.shape[2]
    g, centre = centred(train_x, idx)
    u, evals = local_frames(g, d)
    scale = np.sqrt(np.maximum(evals, 0.0))  # [c, d], descending
    coords = u * scale[:, None, :]  # the neighbours' tangent coordinates
    # q's coordinate along the unit direction g^T u_a / s_a is u_a^T g (q - centre) / s_a;
    # directions with s_a ~ 0 (a degenerate neighbourhood) get coordinate 0.
    gq = np.matmul(g, (q[:, None, :] - centre).transpose(0, 2, 1))[:, :, 0].astype(np.float64)
    safe = np.where(scale > 1e-12 * scale[:, :1], scale, np.inf)
    q_coords = np.einsum("cm,cmd->cd", gq, u) / safe
    design = np.concatenate([np.ones(coords.shape[:2] + (1,)), coords], axis=2)
    gram = np.einsum("cmi,cmj->cij", design, design)
    ridge = 1e-10 * np.trace(gram, axis1=1, axis2=2)[:, None, None] * np.eye(d + 1)
    coef = np.linalg.solve(gram + ridge, np.einsum("cmi,cmj->cij", design, target))
    q_design = np.concatenate([np.ones((len(q), 1)), q_coords], axis=1)
    return np.einsum("ci,cij->cj", q_design, coef)
