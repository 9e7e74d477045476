"""DisDiff: schedule coefficients, sub-gradient decoder, losses, caching, representation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import disbench.methods.diffusion.pretrain as pretrain
from disbench.api import FitContext, TrainBudget
from disbench.datasets.blobs import Blobs
from disbench.methods.diffusion.first_stage import KLAutoencoder
from disbench.methods.diffusion.schedule import Schedule
from disbench.methods.diffusion.unet import SubGradientDecoder, UNet, UNetConfig
from disbench.methods.disdiff import (
    PAPER_RESULTS,
    DisDiff,
    disdiff_losses,
    per_unit_pca,
    resolve_config,
    train_phase3,
)

# A small configuration: 32x32 two-factor blobs, 4x4 average-pool latents, 2 units x 4 dims.
# The DDPM gets 200 steps: with a poorer DDPM the growing disentangling term hides the fall
# of the reconstruction loss in short runs (see docs/methods-disdiff.md).
TINY = {
    "pool_factor": 8,
    "model_channels": 16,
    "channel_mult": (1, 2),
    "num_res_blocks": 1,
    "attention_resolutions": (2,),
    "num_heads": 4,
    "dpm_steps": 200,
    "dpm_batch_size": 16,
    "dpm_lr": 2e-3,
    "dpm_warmup": 5,
    "latent_unit": 2,
    "unit_dim": 4,
    "encoder_channels": 16,
    "lr": 1e-3,
    "warmup_steps": 5,
    "pca_points": 300,
}
FAST = {"dpm_steps": 10}  # for tests of plumbing rather than learning


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine two threads are many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def blobs() -> Blobs:
    return Blobs(positions=8, sizes=1, resolution=32)  # posX and posY vary, size is fixed


def tiny_cfg(dataset: Blobs, **over: object) -> dict:
    return resolve_config(DisDiff.typed({**DisDiff.defaults, **TINY, **over}), dataset)


def test_schedule_matches_hand_computation():
    s = Schedule(1000, 0.0015, 0.0155)
    betas = np.linspace(0.0015**0.5, 0.0155**0.5, 1000) ** 2
    abar = np.cumprod(1 - betas)
    t = 500
    assert s.betas[0].item() == pytest.approx(0.0015)
    assert s.betas[-1].item() == pytest.approx(0.0155)
    shift = -np.sqrt(1 - betas[t]) * (1 - abar[t - 1]) / np.sqrt(1 - abar[t])
    assert s.shift_coef[t].item() == pytest.approx(shift, rel=1e-5)
    assert s.ddim_coef[t].item() == pytest.approx(-np.sqrt(1 - abar[t]), rel=1e-5)
    assert s.shift_coef[0].item() == 0.0  # abar_{-1} = 1: no shift at the last denoising step
    x0, noise = torch.randn(4, 2, 3, 3), torch.randn(4, 2, 3, 3)
    tt = torch.tensor([0, 10, 500, 999])
    x_t = s.q_sample(x0, tt, noise)
    torch.testing.assert_close(s.predict_x0(x_t, tt, noise), x0, atol=1e-3, rtol=1e-4)


def test_subgradient_decoder_is_zero_at_init_and_learns():
    torch.manual_seed(0)
    cfg = UNetConfig(channels=2, model_channels=16, channel_mult=(1, 2), num_res_blocks=1,
                     attention_resolutions=(2,), num_heads=4)  # fmt: skip
    unet = UNet(cfg).requires_grad_(False)
    g = SubGradientDecoder(cfg, unet.skip_channels, latent_unit=3, unit_dim=4)
    y, t, z = torch.randn(5, 2, 8, 8), torch.randint(0, 1000, (5,)), torch.randn(5, 3, 4)
    h, skips, emb = unet.encode(y, t)
    out = g(h, skips, emb, z)
    assert out.shape == (3, 5, 2, 8, 8)
    assert torch.count_nonzero(out) == 0
    opt = torch.optim.SGD(g.parameters(), lr=0.1)
    for _ in range(3):  # the first step moves only the zero-initialised output conv
        opt.zero_grad()
        (g(h, skips, emb, z) - 1.0).pow(2).mean().backward()
        opt.step()
    out = g(h, skips, emb, z)
    assert torch.count_nonzero(out) == out.numel()
    assert not torch.allclose(out[0], out[1])  # units differ through their identity embedding


def test_frozen_dpm_unchanged_and_losses_fall(blobs, tmp_path):
    cfg = tiny_cfg(blobs)
    dpm = pretrain.pretrained_dpm(blobs, cfg, tmp_path, torch.device("cpu"))
    assert dpm.info["dpm"]["final_loss"] < 0.5 * dpm.info["dpm"]["first_loss"]  # phase 2 learnt
    before = {k: v.clone() for k, v in dpm.unet.state_dict().items()}
    assert not any(p.requires_grad for p in dpm.unet.parameters())

    # A fixed batch, to compare the losses before and after training on the same inputs.
    gen = torch.Generator().manual_seed(7)
    x = pretrain.sample_images(blobs, 256, np.random.default_rng(7), "cpu")
    y0 = dpm.to_latent(x, None)
    t = torch.randint(0, 1000, (256,), generator=gen)
    noise = torch.randn(y0.shape, generator=gen)
    unit = torch.randint(0, 2, (256,), generator=gen)

    def fixed_batch_losses(encoder, decoder):
        frozen = type(encoder)(1, (32, 32), 16, 8)
        frozen.load_state_dict(encoder.state_dict())
        frozen.eval().requires_grad_(False)
        with torch.no_grad():
            return disdiff_losses(encoder, frozen, decoder, dpm, x, y0, t, noise, unit, 0.05)

    # Two seeds: the reconstruction loss falls on each. The disentangling loss starts at
    # exactly 0 (G = 0 at init makes its per-sample weight 0), so it can only grow at first,
    # and at this budget its cross-entropy is still near chance (log 2 per term: it fell on
    # one seed and rose on another), so neither it nor the sum is asked to fall.
    for seed in (0, 1):
        enc0, dec0, _ = train_phase3(blobs, dpm, cfg, seed=seed, budget=TrainBudget(0, 16))
        rec0, dis0 = fixed_batch_losses(enc0.eval(), dec0)
        assert torch.count_nonzero(dis0) == 0  # G = 0 at init, so the per-sample weight is 0

        ctx = FitContext()
        enc, dec, curve = train_phase3(blobs, dpm, cfg, seed, TrainBudget(150, 16), ctx)
        assert curve == ctx.info["loss_curve"] and len(curve) == 19  # means of 8 steps, 6 last
        assert all(np.isfinite([p["rec_loss"], p["dis_loss"]]).all() for p in curve)
        rec1, dis1 = fixed_batch_losses(enc.eval(), dec)
        assert torch.isfinite(rec1).all() and torch.isfinite(dis1).all()
        assert (dis1 > 0).any()  # the disentangling loss is active once G is non-zero
        assert rec1.mean() < 0.95 * rec0.mean(), (seed, rec0.mean().item(), rec1.mean().item())

    after = dpm.unet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def fit(dataset, cache: Path, seed: int = 0, steps: int = 20, **over: object):
    ctx = FitContext(cache_dir=cache)
    hp = DisDiff.resolve_hparams({**TINY, **FAST, **over})
    rep = DisDiff().fit(dataset, hp, seed, TrainBudget(steps, 16), ctx)
    return rep, ctx


def test_representation_dims_determinism_and_cache_reuse(blobs, tmp_path, monkeypatch):
    rep, ctx = fit(blobs, tmp_path)
    art = ctx.info["artifacts"]
    assert art["first_stage"]["reused"] is False and art["dpm"]["reused"] is False
    assert Path(art["dpm"]["path"]).is_file()
    factors, obs = blobs.sample(200, np.random.default_rng(3))
    codes = rep.encode(obs)
    assert codes.shape == (200, 2)  # N units -> N-dim code
    assert np.isfinite(codes).all() and (codes.std(axis=0) > 0).all()

    # Phases 1 and 2 must come from the cache now: training them again would fail.
    def no_training(*args, **kwargs):
        raise AssertionError("a cached stage was retrained")

    monkeypatch.setattr(pretrain, "_train_dpm", no_training)
    monkeypatch.setattr(pretrain, "_train_first_stage", no_training)
    rep2, ctx2 = fit(blobs, tmp_path)
    assert ctx2.info["artifacts"]["dpm"]["reused"] is True
    assert ctx2.info["artifacts"]["dpm"]["path"] == art["dpm"]["path"]
    np.testing.assert_array_equal(rep2.encode(obs), codes)  # same seed, same codes

    rep3, ctx3 = fit(blobs, tmp_path, seed=1, representation="raw")
    assert ctx3.info["artifacts"]["dpm"]["reused"] is True  # another seed shares the DPM
    assert rep3.encode(obs).shape == (200, 2 * 4)
    with pytest.raises(AssertionError, match="retrained"):  # another DPM config is a new key
        fit(blobs, tmp_path, dpm_steps=11)


def test_saved_representation_round_trips(blobs, tmp_path):
    rep, _ = fit(blobs, tmp_path, steps=2)
    rep.save(tmp_path / "rep.pkl")
    loaded = type(rep).load(tmp_path / "rep.pkl")
    _, obs = blobs.sample(50, np.random.default_rng(0))
    np.testing.assert_array_equal(loaded.encode(obs), rep.encode(obs))


def test_per_unit_pca_recovers_known_directions():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(2000, 2))
    dirs = np.array([[0.6, 0.8, 0.0], [0.0, -1.0, 0.0]])
    z = s[:, :, None] * dirs[None] * 3 + 0.01 * rng.normal(size=(2000, 2, 3)) + 5.0
    mean, comps, ratio = per_unit_pca(z)
    np.testing.assert_allclose(mean, np.full((2, 3), 5.0), atol=0.2)
    np.testing.assert_allclose(comps, [[0.6, 0.8, 0.0], [0.0, 1.0, 0.0]], atol=1e-3)
    assert (ratio > 0.99).all()


def test_kl_first_stage_is_f4_and_trains(blobs):
    torch.manual_seed(0)
    ae = KLAutoencoder(1, ch=8, ch_mult=(1, 2, 4), num_res_blocks=1, embed_dim=4)
    _, obs = blobs.sample(16, np.random.default_rng(0))
    x = torch.from_numpy(obs) * 2 - 1
    assert ae.encode(x).shape == (16, 4, 8, 8)  # f4: 32x32 -> 8x8, 4 channels
    assert ae.decode(ae.encode(x)).shape == x.shape
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(ae.parameters(), lr=1e-3, betas=(0.5, 0.9))
    first = ae.loss(x, gen, 1e-6).item()
    for _ in range(20):
        loss = ae.loss(x, gen, 1e-6)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert ae.loss(x, gen, 1e-6).item() < 0.7 * first


def test_config_resolution_and_errors(blobs):
    assert tiny_cfg(blobs)["dis_weight"] == 0.05
    mpi = Blobs(positions=8, sizes=1, resolution=32)
    mpi.name = "mpi3d_toy"
    assert resolve_config(DisDiff.typed(DisDiff.defaults), mpi)["dis_weight"] == 0.01
    official = resolve_config(DisDiff.typed({"preset": "official"}), blobs)
    assert (official["latent_unit"], official["unit_dim"], official["model_channels"]) == (
        6,
        32,
        64,
    )
    assert official["first_stage"] == "kl" and official["lr"] == pytest.approx(2.56e-4)
    with pytest.raises(ValueError, match=r"preset must be one of \['cpu', 'official'\]"):
        DisDiff.resolve_hparams({"preset": "gpu"})
    with pytest.raises(ValueError, match="hyperparameter representation must be one of"):
        tiny_cfg(blobs, representation="mean")
    with pytest.raises(ValueError, match="hyperparameter channel_mult must be Sequence, got 2"):
        DisDiff.resolve_hparams({"channel_mult": 2})
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        DisDiff.resolve_hparams({"latent_units": 6})
    with pytest.raises(ValueError, match="does not divide dataset 'blobs'"):
        pretrain.pretrained_dpm(blobs, tiny_cfg(blobs, pool_factor=5), Path("/nonexistent"), "cpu")


def test_paper_results_are_the_verified_numbers():
    got = {(r.dataset, r.metric): r.value for r in PAPER_RESULTS}
    assert got == {
        ("shapes3d", "factor_vae"): 0.902,
        ("shapes3d", "dci"): 0.723,
        ("mpi3d_toy", "factor_vae"): 0.617,
        ("mpi3d_toy", "dci"): 0.337,
        ("cars3d", "factor_vae"): 0.976,
    }
    assert DisDiff.paper_results == PAPER_RESULTS
