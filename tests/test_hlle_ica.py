"""HLLE + ICA: known answers of the Hessian estimator, the method's evidence on the
isometric manifold (uniform -> MCC >= 0.9, Gaussian -> lower), out-of-sample encoding,
determinism and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.neighbors import NearestNeighbors
from threadpoolctl import threadpool_limits

from disbench.api import FitContext, Representation, TrainBudget
from disbench.datasets.blobs import Blobs
from disbench.datasets.isometric_manifold import IsometricManifold
from disbench.methods._hessian import (
    distinct_rows,
    hessian_alignment,
    neighbourhoods,
    null_embedding,
)
from disbench.methods.hlle_ica import HLLEICA, HLLEICARepresentation
from disbench.metrics.mcc import mcc
from disbench.registry import METHODS

BUDGET = TrainBudget(steps=1)


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    """One BLAS thread: on a shared 2-core machine OpenBLAS threads were ~100x slower."""
    with threadpool_limits(1):
        yield


def fit(dataset, seed: int = 0, ctx: FitContext | None = None, **hparams) -> Representation:
    return HLLEICA().fit(
        dataset, HLLEICA.resolve_hparams(hparams), seed, BUDGET, ctx or FitContext()
    )


def hlle(x: np.ndarray, d: int, k: int, solver: str = "dense"):
    """(alignment matrix, embedding) of the raw HLLE steps."""
    knn = NearestNeighbors(algorithm="brute").fit(x)
    w = hessian_alignment(x, neighbourhoods(knn, x, k), d)
    return w, null_embedding(w, d, solver, seed=0)[0]


def r2(embedding: np.ndarray, z: np.ndarray) -> float:
    """How well the true coordinates are an affine function of the embedding."""
    return LinearRegression().fit(embedding, z).score(embedding, z)


def flat_plane(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """z uniform in [0, 1]^2, isometrically (linearly) placed in R^30 by orthonormal columns."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(size=(n, 2))
    basis, _ = np.linalg.qr(rng.standard_normal((30, 2)))
    return z, z @ basis.T + 0.3


def test_hessian_of_affine_functions_is_zero_and_of_quadratics_is_not() -> None:
    # Hand computation: on flat data the estimated Hessian of 1, z1, z2 vanishes (W f = 0),
    # while z1^2 has Hessian diag(2, 0), so its energy f^T W f / f^T f is far from 0.
    z, x = flat_plane(300, seed=0)
    knn = NearestNeighbors(algorithm="brute").fit(x)
    w = hessian_alignment(x, neighbourhoods(knn, x, 10), d=2)
    for f in (np.ones(300), z[:, 0], z[:, 1], 2 * z[:, 0] - z[:, 1] + 5):
        assert np.abs(w @ f).max() < 1e-10 * np.abs(f).max()
    for f in (z[:, 0] ** 2, z[:, 0] * z[:, 1]):
        assert f @ (w @ f) / (f @ f) > 1e-5
    assert abs(w - w.T).max() < 1e-12  # symmetric, as a sum of H_i^T H_i


def test_flat_plane_embedding_is_affine_in_the_coordinates() -> None:
    z, x = flat_plane(300, seed=1)
    _, emb = hlle(x, d=2, k=10)
    assert r2(emb, z) > 1 - 1e-8
    # Centred, orthogonal, unit variance columns.
    np.testing.assert_allclose(emb.mean(axis=0), 0, atol=1e-10)
    np.testing.assert_allclose(emb.T @ emb / len(emb), np.eye(2), atol=1e-10)


def test_curved_isometric_strip_is_unrolled() -> None:
    # Half a cylinder of radius 1: (t, s) -> (cos t, sin t, s) is an isometry, not linear.
    rng = np.random.default_rng(2)
    t, s = rng.uniform(0, np.pi, 800), rng.uniform(0, 1.5, 800)
    x = np.stack([np.cos(t), np.sin(t), s], axis=1)
    _, emb = hlle(x, d=2, k=12)
    assert r2(emb, np.stack([t, s], axis=1)) > 0.99


def test_dense_and_arpack_find_the_same_subspace() -> None:
    z, x = flat_plane(500, seed=3)
    x = x + 0.02 * np.sin(7 * z[:, :1])  # a little curvature, so no exact degeneracy
    w, dense = hlle(x, d=2, k=12, solver="dense")
    sparse = null_embedding(w, 2, "arpack", seed=0)[0]
    # Cosines of the principal angles between the two column spaces.
    cosines = np.linalg.svd(dense.T @ sparse / len(dense), compute_uv=False)
    assert cosines.min() > 1 - 1e-8


def test_distinct_rows_merges_exact_duplicates() -> None:
    x = np.array([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0], [5.0, 6.0], [3.0, 4.0]], np.float32)
    first, inverse = distinct_rows(x)
    np.testing.assert_array_equal(first, [0, 1, 3])
    np.testing.assert_array_equal(inverse, [0, 1, 0, 2, 1])


def test_registered() -> None:
    assert METHODS.get("hlle_ica") is HLLEICA


def test_k_too_small_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"hlle_ica: k=5 .* d\(d\+3\)/2 = 5"):
        fit(IsometricManifold(), k=5, num_points=200)


def test_too_few_distinct_observations_is_a_clear_error() -> None:
    tiny = Blobs(positions=2, sizes=1)  # only 4 different images; d = 3 -> k = 13
    with pytest.raises(ValueError, match="k=13 neighbours needs at least 14 distinct .* got 4"):
        fit(tiny, num_points=100)


def test_unknown_eigen_solver_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"eigen_solver must be one of .*, got 'lapack'$"):
        fit(IsometricManifold(), num_points=200, eigen_solver="lapack")


def test_uniform_factors_are_recovered_out_of_sample() -> None:
    ds = IsometricManifold(distribution="uniform")
    ctx = FitContext()
    rep = fit(ds, seed=0, ctx=ctx, num_points=1000)
    factors, obs = ds.sample(1500, np.random.default_rng(123))  # fresh points
    codes = rep.encode(obs)
    assert codes.shape == (1500, 2)
    assert mcc(codes, ds.factor_values(factors))["MCC"] >= 0.99
    assert ctx.info["d"] == 2 and ctx.info["k"] == 12
    assert ctx.info["distinct_points"] < 1000  # a 64 x 64 grid has duplicates; merged
    assert ctx.info["knn_graph_components"] == 1


def test_gaussian_factors_lose_the_rotation() -> None:
    # Theory: a rotation of independent Gaussians is again independent Gaussians, so ICA
    # leaves an arbitrary rotation; for d = 2 the expected MCC of a random rotation is
    # E max(|cos a|, |sin a|) = 2 sqrt(2) / pi = 0.90. Uniform factors give ~1.
    scores = {}
    for dist in ("uniform", "gaussian"):
        ds = IsometricManifold(distribution=dist)
        factors, obs = ds.sample(1000, np.random.default_rng(7))
        scores[dist] = [
            mcc(fit(ds, seed=s, num_points=1000).encode(obs), ds.factor_values(factors))["MCC"]
            for s in range(4)
        ]
    assert min(scores["uniform"]) >= 0.99
    assert np.mean(scores["gaussian"]) < min(scores["uniform"]) - 0.05


def test_encoding_the_training_points_reproduces_the_embedding() -> None:
    ds = IsometricManifold()
    rep = fit(ds, num_points=1500)  # > 1000 distinct points: the ARPACK path
    assert isinstance(rep, HLLEICARepresentation)
    train = rep.train_x.reshape(-1, *ds.observation_shape)
    again = rep.embed(train)
    err = again - rep.embedding  # embedding columns have unit variance
    assert np.sqrt(np.mean(err**2)) < 0.01
    assert np.abs(err).max() < 0.1
    np.testing.assert_allclose(rep.encode(train), rep.ica.transform(rep.embedding), atol=0.1)


def test_same_seed_same_codes_and_save_load(tmp_path) -> None:
    ds = IsometricManifold()
    obs = ds.sample(200, np.random.default_rng(5))[1]
    a, b = fit(ds, seed=3, num_points=600), fit(ds, seed=3, num_points=600)
    np.testing.assert_array_equal(a.encode(obs), b.encode(obs))
    assert not np.array_equal(a.encode(obs), fit(ds, seed=4, num_points=600).encode(obs))
    a.save(tmp_path / "rep.pkl")
    np.testing.assert_array_equal(
        Representation.load(tmp_path / "rep.pkl").encode(obs), a.encode(obs)
    )


def test_discrete_non_isometric_dataset_still_finishes() -> None:
    # blobs: a grid with a size factor (not an isometry); HLLE need not succeed, but the
    # fit must end with finite codes and record its diagnostics.
    ds = Blobs()
    ctx = FitContext()
    rep = fit(ds, ctx=ctx, num_points=600)
    codes = rep.encode(ds.sample(100, np.random.default_rng(0))[1])
    assert codes.shape == (100, 3) and np.isfinite(codes).all()
    assert {"smallest_eigenvalues", "knn_graph_components", "ica_converged"} <= set(ctx.info)


def test_wrong_observation_size_is_a_clear_error() -> None:
    rep = fit(IsometricManifold(), num_points=300)
    with pytest.raises(ValueError, match="hlle_ica: observations have 1024 values"):
        rep.encode(np.zeros((2, 1, 32, 32), np.float32))
