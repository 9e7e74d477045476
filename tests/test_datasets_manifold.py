"""The synthetic manifold family: distributions as configured, the map locally isometric."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from disbench.datasets.isometric_manifold import SIGMA, TRAVEL
from disbench.registry import DATASETS


def make(**kw):
    return DATASETS.get("isometric_manifold")(**kw)


def test_grid_and_shapes():
    ds = make()
    assert ds.kind == "procedural"
    assert ds.factor_sizes == (64, 64)
    assert ds.observation_shape == (1, 64, 64)
    three = make(num_factors=3)
    assert three.observation_shape == (3, 64, 64)
    img = three.render(three.sample_factors(5, np.random.default_rng(0)))
    assert img[:, :2].max() > 0.9 and img[:, 2].max() == 0  # two blobs; no third factor pair
    assert make(num_factors=5, embedding="random", values=10).factor_sizes == (10,) * 5
    np.testing.assert_allclose(
        ds.factor_values(np.array([[0, 63], [21, 42]])), [[0, 1], [1 / 3, 2 / 3]]
    )


def test_sprite_matches_closed_form_gaussian():
    ds = make(values=11)
    img = ds.render(np.array([[2, 7]]))[0, 0].astype(np.float64)
    cx, cy = 3 * SIGMA + TRAVEL * 0.2, 3 * SIGMA + TRAVEL * 0.7
    p = np.arange(64) + 0.5
    expected = np.exp(-((p[None, :] - cx) ** 2 + (p[:, None] - cy) ** 2) / (2 * SIGMA**2))
    np.testing.assert_allclose(img, expected, atol=1e-6)


@pytest.mark.parametrize("kw", [{}, {"num_factors": 5}, {"embedding": "random", "num_factors": 3}])
def test_each_factor_changes_image_and_render_is_deterministic(kw):
    ds = make(**kw)
    base = np.full((1, ds.num_factors), 30)
    img = ds.render(base)
    assert img.dtype == np.float32 and img.shape == (1, *ds.observation_shape)
    assert 0.0 <= img.min() and img.max() <= 1.0
    np.testing.assert_array_equal(img, ds.render(base.copy()))
    for k in range(ds.num_factors):
        moved = base.copy()
        moved[0, k] = 31
        assert np.abs(ds.render(moved) - img).max() > 1e-3, f"factor {k} changes nothing"
    torch_img = ds.render_torch(torch.from_numpy(base), "cpu")
    np.testing.assert_array_equal(torch_img.numpy(), img)


@pytest.mark.parametrize("kw", [{}, {"num_factors": 4}, {"embedding": "random", "num_factors": 3}])
def test_map_is_locally_isometric(kw):
    """J^T J by central differences is the same multiple of I at every point."""
    ds = make(values=1001, **kw)
    k, h = ds.num_factors, 1 / 1000
    grams = []
    for row in ds.sample_factors(4, np.random.default_rng(1)).clip(1, 999):
        cols = []
        for j in range(k):
            up, down = row.copy(), row.copy()
            up[j] += 1
            down[j] -= 1
            pair = ds.render(np.stack([up, down])).astype(np.float64)
            cols.append(((pair[0] - pair[1]) / (2 * h)).ravel())
        jac = np.stack(cols, axis=1)
        grams.append(jac.T @ jac)
    grams = np.array(grams) / grams[0][0, 0]
    np.testing.assert_allclose(grams, np.broadcast_to(np.eye(k), grams.shape), atol=2e-3)


def moments(x):
    c = x - x.mean(axis=0)
    return x.mean(axis=0), c.std(axis=0), (c**4).mean(axis=0) / c.var(axis=0) ** 2 - 3


def test_uniform_vs_gaussian_vs_nonuniform_moments():
    rng = np.random.default_rng(0)
    n = 40_000
    u = make(distribution="uniform", values=101)
    zu = u.factor_values(u.sample_factors(n, rng))
    mean, sd, kurt = moments(zu)
    np.testing.assert_allclose(mean, 0.5, atol=0.01)
    np.testing.assert_allclose(sd, np.sqrt((101**2 - 1) / 12) / 100, atol=0.01)
    np.testing.assert_allclose(kurt, -1.2, atol=0.05)

    g = make(distribution="gaussian", values=101)
    zg = g.factor_values(g.sample_factors(n, rng))
    mean, sd, kurt = moments(zg)
    np.testing.assert_allclose(mean, 0.5, atol=0.01)
    np.testing.assert_allclose(sd, 0.15, atol=0.01)
    np.testing.assert_allclose(kurt, 0.0, atol=0.15)  # truncation at 3.3 sd barely shows

    nu = make(distribution="nonuniform", values=101)
    zn = nu.factor_values(nu.sample_factors(n, rng))
    # density (1 + 3z) / 2.5 on [0, 1]: mean = (1/2 + 1) / 2.5 = 0.6
    np.testing.assert_allclose(zn.mean(axis=0), 0.6, atol=0.01)
    for z in (zu, zg, zn):
        assert abs(np.corrcoef(z.T)[0, 1]) < 0.03  # independent factors


def test_correlated_pairs_correlate_and_keep_uniform_marginals():
    ds = make(distribution="correlated", num_factors=5, correlation=0.8)
    f = ds.sample_factors(40_000, np.random.default_rng(0))
    corr = np.corrcoef(ds.factor_values(f).T)
    # Gaussian copula: corr of the uniform marginals = (6 / pi) arcsin(rho / 2)
    expected = 6 / np.pi * np.arcsin(0.4)
    np.testing.assert_allclose([corr[0, 1], corr[2, 3]], expected, atol=0.02)
    off_pairs = corr[np.ix_([0, 1], [2, 3, 4])]
    assert np.abs(off_pairs).max() < 0.03
    counts = np.bincount(f[:, 0], minlength=64)
    assert counts.min() > 0.8 * counts.mean() and counts.max() < 1.2 * counts.mean()


def test_describe_names_the_options():
    d = make(distribution="correlated", correlation=0.5).describe()
    assert d["kind"] == "procedural" and d["factor_sizes"] == [64, 64]
    assert d["params"] == {"distribution": "correlated", "embedding": "sprite", "correlation": 0.5}


def test_same_seed_same_factors():
    ds = make(distribution="nonuniform")
    a = ds.sample_factors(100, np.random.default_rng(7))
    b = ds.sample_factors(100, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.int64 and a.min() >= 0 and a.max() < 64


@pytest.mark.parametrize(
    "kw, word",
    [
        ({"distribution": "laplace"}, "distribution"),
        ({"embedding": "swiss"}, "embedding"),
        ({"num_factors": 7}, "num_factors"),
        ({"values": 1}, "values"),
        ({"correlation": 1.0}, "correlation"),
    ],
)
def test_bad_options_name_the_option(kw, word):
    with pytest.raises(ValueError, match=f"isometric_manifold: {word}"):
        make(**kw)
