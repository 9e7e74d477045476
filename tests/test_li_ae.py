"""li_ae: the isometry penalty's known values, training lowers it, plain AE + ICA scores
below hlle_ica on the isometric manifold, determinism, decode and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from disbench.api import FitContext, Representation, TrainBudget
from disbench.datasets.blobs import Blobs
from disbench.datasets.isometric_manifold import IsometricManifold
from disbench.methods.hlle_ica import HLLEICA
from disbench.methods.li_ae import LocalIsometryAE, isometry_penalty
from disbench.metrics.mcc import mcc
from disbench.registry import METHODS


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One torch and BLAS thread: stable timings on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(before)


def fit_li(dataset, steps: int, batch: int, seed: int = 0, **hp) -> tuple[Representation, dict]:
    ctx = FitContext()
    hparams = LocalIsometryAE.resolve_hparams(hp)
    rep = LocalIsometryAE().fit(dataset, hparams, seed, TrainBudget(steps, batch), ctx)
    return rep, ctx.info


def test_registered() -> None:
    assert METHODS.get("li_ae") is LocalIsometryAE


def test_isometry_penalty_known_values() -> None:
    z_a = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    z_b = torch.tensor([[3.0, 4.0], [1.0, 2.0]])  # code distances 5 and 1
    pixel = torch.tensor([2.5, 0.5])
    log2 = torch.tensor(np.log(2.0), dtype=torch.float32)
    # Distances exactly 2x the pixel distances: a scaled isometry, no penalty at s = 2.
    assert isometry_penalty(z_a, z_b, pixel, log2).item() == pytest.approx(0.0, abs=1e-6)
    # At s = 1 both ratios are 2: relative error 1 each.
    assert isometry_penalty(z_a, z_b, pixel, torch.tensor(0.0)).item() == pytest.approx(1.0)
    # Ratios 2 and 4 at s = 1: mean of 1^2 and 3^2.
    pixel2 = torch.tensor([2.5, 0.25])
    assert isometry_penalty(z_a, z_b, pixel2, torch.tensor(0.0)).item() == pytest.approx(5.0)


def test_training_lowers_the_loss_and_the_distortion() -> None:
    _, info = fit_li(IsometricManifold(), steps=60, batch=32, pool_size=600)
    first, last = info["loss_curve"][0], info["loss_curve"][-1]
    assert last["loss"] < 0.5 * first["loss"]
    assert last["isometry"] < 0.5 * first["isometry"]
    assert last["loss"] == pytest.approx(last["reconstruction"] + 1000.0 * last["isometry"])
    assert info["distinct_pool_points"] < 600  # grid duplicates merged for neighbours


def test_plain_autoencoder_plus_ica_scores_below_hlle_ica() -> None:
    # The paper's claim, small: on the isometric manifold with uniform factors the
    # spectral method recovers the factors; an autoencoder + ICA (li_weight = 0) does not.
    ds = IsometricManifold(distribution="uniform")
    factors, obs = ds.sample(1000, np.random.default_rng(11))
    values = ds.factor_values(factors)
    hlle = HLLEICA().fit(
        ds, HLLEICA.resolve_hparams({"num_points": 1000}), 0, TrainBudget(1), FitContext()
    )
    ae, info = fit_li(ds, steps=150, batch=32, li_weight=0.0, pool_size=1000)
    hlle_mcc, ae_mcc = mcc(hlle.encode(obs), values)["MCC"], mcc(ae.encode(obs), values)["MCC"]
    assert hlle_mcc >= 0.99
    assert ae_mcc < hlle_mcc - 0.1
    assert info["final_losses"]["isometry"] > 0.1  # nothing made the plain AE isometric


def test_same_seed_same_codes_decode_and_save_load(tmp_path) -> None:
    ds = IsometricManifold()
    obs = ds.sample(20, np.random.default_rng(3))[1]
    a, info = fit_li(ds, steps=5, batch=8, seed=1, pool_size=200)
    b, _ = fit_li(ds, steps=5, batch=8, seed=1, pool_size=200)
    codes = a.encode(obs)
    assert codes.shape == (20, 2) and info["num_latents"] == 2
    np.testing.assert_array_equal(codes, b.encode(obs))
    c, _ = fit_li(ds, steps=5, batch=8, seed=2, pool_size=200)
    assert not np.array_equal(codes, c.encode(obs))
    images = a.decode(codes)
    assert images.shape == obs.shape and images.min() >= 0 and images.max() <= 1
    a.save(tmp_path / "li.pkl")
    np.testing.assert_array_equal(Representation.load(tmp_path / "li.pkl").encode(obs), codes)


def test_three_channel_dataset_and_latents_override() -> None:
    ds = IsometricManifold(num_factors=3)  # RGB
    rep, info = fit_li(ds, steps=3, batch=8, pool_size=100, num_latents=4)
    assert rep.encode(ds.sample(5, np.random.default_rng(0))[1]).shape == (5, 4)
    assert info["num_latents"] == 4


def test_bad_options_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="li_ae.*64x64 observations.*blobs"):
        fit_li(Blobs(resolution=32), steps=2, batch=8)
    with pytest.raises(ValueError, match="neighbours=5 needs more than 5 distinct.* got 4"):
        fit_li(Blobs(positions=2, sizes=1), steps=2, batch=8, pool_size=50)
    with pytest.raises(
        ValueError, match="method 'li_ae': hyperparameter li_weight must be >= 0, got -1.0"
    ):
        fit_li(IsometricManifold(), steps=2, batch=8, li_weight=-1.0)
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        fit_li(IsometricManifold(), steps=2, batch=8, weight=1.0)
