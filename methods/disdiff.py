"""DisDiff: unsupervised disentanglement of a diffusion probabilistic model
(Yang, Wang, Lu, Zheng, NeurIPS 2023; official code ThomasMrY/DisDiff, re-implemented).

Given a pre-trained unconditional DPM eps_theta (phases 1-2, ``methods/diffusion``,
cached and shared by all seeds), phase 3 learns

- an image encoder E: x0 -> z = (z_1 .. z_N), N units of d dims (official 6 x 32), and
- a decoder G that turns (y_t, z_c, c, t) into one sub-gradient per unit (zero at init),

with two losses per sample (y0 = first-stage latent, y_t its noised version):

- reconstruction: | eps - (eps_theta(y_t) + shift_coef_t * sum_c G_c) |_1, so the sum of
  sub-gradients explains what the unconditional DPM cannot predict without z;
- disentangling, for a random unit c: predict y0 without G and with only G_c
  (through ddim_coef_t), decode both, re-encode with a frozen copy of E, then two
  cross-entropies over units ask that unit c be the one that moved towards z_c
  ("variant") and the only one that changed ("invariant"); weighted per sample by
  mean((y0_hat - sg(y0_hat_c))^2) and by ``dis_weight`` (0.05; 0.01 on MPI3D).

The representation is the official one: per unit, the first principal component of
E's output, giving an N-dim code (``representation = "raw"`` gives all N x d numbers).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, ClassVar

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from disbench.api import (
    FitContext,
    GroundTruthDataset,
    Method,
    PaperResult,
    Representation,
    TrainBudget,
    param,
    register,
)
from disbench.methods.diffusion.first_stage import FIRST_STAGES
from disbench.methods.diffusion.pretrain import (
    PretrainedDPM,
    pretrained_dpm,
    sample_images,
    warmup_factor,
)
from disbench.methods.diffusion.unet import SubGradientDecoder
from disbench.methods.nn import loop

_SOURCE = "Yang et al., NeurIPS 2023, Table 1 (mean over seeds; checked via the wizwand listing)"
# The paper's verified numbers, on the published datasets they name (never computed here).
PAPER_RESULTS: tuple[PaperResult, ...] = (
    PaperResult("shapes3d", "factor_vae", 0.902, _SOURCE),
    PaperResult("shapes3d", "dci", 0.723, _SOURCE),
    PaperResult("mpi3d_toy", "factor_vae", 0.617, _SOURCE),
    PaperResult("mpi3d_toy", "dci", 0.337, _SOURCE),
    PaperResult("cars3d", "factor_vae", 0.976, _SOURCE),
)

# Small CPU configuration: fixed average-pool first stage to a 16x16 latent grid, a small
# two-level UNet, short pre-training and warm-up. Phase 3 steps and batch come from the budget.
CPU_PRESET: dict[str, Any] = {
    "first_stage": "avgpool",
    "pool_factor": 8,
    "model_channels": 16,
    "channel_mult": (1, 2),
    "num_res_blocks": 1,
    "attention_resolutions": (2,),
    "num_heads": 4,
    "dpm_steps": 300,
    "dpm_batch_size": 32,
    "dpm_lr": 2e-3,
    "dpm_warmup": 30,
    "scale_by_std": False,
    "latent_unit": 6,
    "unit_dim": 8,
    "encoder_channels": 16,
    "lr": 1e-3,
    "warmup_steps": 20,
    "pca_points": 5000,
}
# The official configuration (configs/latent-diffusion/*-kl-4-16[-dis].yaml and
# configs/autoencoder/*_kl_4_16.yaml). Learning rates are the official base rates scaled
# by batch (and accumulation), as main.py --scale_lr does. The configs set no step counts:
# ae_steps and dpm_steps are our choice (see docs/methods-disdiff.md).
OFFICIAL_PRESET: dict[str, Any] = {
    "first_stage": "kl",
    "ae_channels": 32,
    "ae_channel_mult": (1, 2, 4),
    "ae_res_blocks": 2,
    "ae_embed_dim": 4,
    "ae_steps": 50000,
    "ae_batch_size": 256,  # batch 128 x accumulate_grad_batches 2
    "ae_lr": 4.5e-6 * 256,
    "ae_kl_weight": 1e-6,
    "model_channels": 64,
    "channel_mult": (1, 2, 4, 4),
    "num_res_blocks": 2,
    "attention_resolutions": (1, 2, 4),
    "num_heads": 8,
    "dpm_steps": 100000,
    "dpm_batch_size": 128,
    "dpm_lr": 2e-6 * 128,
    "dpm_warmup": 10000,
    "scale_by_std": True,
    "latent_unit": 6,
    "unit_dim": 32,
    "encoder_channels": 128,
    "lr": 2e-6 * 128,
    "warmup_steps": 10000,
    "pca_points": 10000,
}
# Keys shared by both presets (schedule and losses are the official ones everywhere).
COMMON: dict[str, Any] = {
    "timesteps": 1000,
    "linear_start": 0.0015,
    "linear_end": 0.0155,
    "dis_weight": None,  # None: 0.05, or 0.01 on MPI3D datasets, as the official configs
    "dis_loss_type": "Z",
    "representation": "pca",
    "pretrain_seed": 0,
    "pool_factor": 4,
    "ae_channels": 32,
    "ae_channel_mult": (1, 2, 4),
    "ae_res_blocks": 2,
    "ae_embed_dim": 4,
    "ae_steps": 2000,
    "ae_batch_size": 64,
    "ae_lr": 1e-3,
    "ae_kl_weight": 1e-6,
}
PRESETS = {"cpu": {**COMMON, **CPU_PRESET}, "official": {**COMMON, **OFFICIAL_PRESET}}


@attrs.frozen(kw_only=True)
class DisDiffParams:
    """DisDiff's hyperparameters: a preset, and any of its keys overridden (None: the
    preset's value; the presets above give the reasons)."""

    preset: str = param("cpu", str, choices=tuple(PRESETS))
    timesteps: int | None = param(None, int, ge=2)
    linear_start: float | None = param(None, gt=0, lt=1)
    linear_end: float | None = param(None, gt=0, lt=1)
    dis_weight: float | None = param(None, ge=0, doc="None: 0.05, or 0.01 on MPI3D datasets")
    dis_loss_type: str | None = param(None, str, choices=("Z", "IM"))
    representation: str | None = param(None, str, choices=("pca", "raw"))
    pretrain_seed: int | None = param(None, int, ge=0)
    pool_factor: int | None = param(None, int, ge=1)
    ae_channels: int | None = param(None, int, ge=1)
    ae_channel_mult: Sequence[int] | None = param(None, Sequence)
    ae_res_blocks: int | None = param(None, int, ge=0)
    ae_embed_dim: int | None = param(None, int, ge=1)
    ae_steps: int | None = param(None, int, ge=0)
    ae_batch_size: int | None = param(None, int, ge=1)
    ae_lr: float | None = param(None, gt=0)
    ae_kl_weight: float | None = param(None, ge=0)
    first_stage: str | None = param(None, str, choices=FIRST_STAGES)
    model_channels: int | None = param(None, int, ge=1)
    channel_mult: Sequence[int] | None = param(None, Sequence)
    num_res_blocks: int | None = param(None, int, ge=0)
    attention_resolutions: Sequence[int] | None = param(None, Sequence)
    num_heads: int | None = param(None, int, ge=1)
    dpm_steps: int | None = param(None, int, ge=0)
    dpm_batch_size: int | None = param(None, int, ge=1)
    dpm_lr: float | None = param(None, gt=0)
    dpm_warmup: int | None = param(None, int, ge=0)
    scale_by_std: bool | None = param(None, bool)
    latent_unit: int | None = param(None, int, ge=1)
    unit_dim: int | None = param(None, int, ge=1)
    encoder_channels: int | None = param(None, int, ge=1)
    lr: float | None = param(None, gt=0)
    warmup_steps: int | None = param(None, int, ge=0)
    pca_points: int | None = param(None, int, ge=2, doc="observations the per-unit PCA sees")


def resolve_config(hp: DisDiffParams, dataset: GroundTruthDataset) -> dict[str, Any]:
    """The preset named by ``hp.preset`` overlaid with every hyperparameter that is set."""
    given = {k: v for k, v in attrs.asdict(hp, recurse=False).items() if v is not None}
    cfg = {**PRESETS[given.pop("preset")], **given}
    if cfg["dis_weight"] is None:
        cfg["dis_weight"] = 0.01 if "mpi3d" in dataset.name.lower() else 0.05
    return cfg


class ImageEncoder(nn.Module):
    """DisDiff's image encoder (official ``Encoder4``), reading the raw image in [-1, 1]:
    four 4x4 stride-2 convs with BatchNorm, two residual blocks, a linear map to N x d."""

    def __init__(self, in_channels: int, image_hw: tuple[int, int], width: int, out: int) -> None:
        super().__init__()
        h, w = image_hw
        if h % 16 or w % 16:
            raise ValueError(f"DisDiff: image encoder needs sides divisible by 16, got {h}x{w}")
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 4, 2, 1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 4, 2, 1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 4, 2, 1), nn.BatchNorm2d(width),
            nn.Conv2d(width, width, 4, 2, 1), nn.BatchNorm2d(width), nn.ReLU(),
            _EncoderRes(width), nn.BatchNorm2d(width), nn.ReLU(), _EncoderRes(width),
            nn.Flatten(), nn.Linear(width * (h // 16) * (w // 16), out),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _EncoderRes(nn.Module):
    """x + conv1x1(relu(bn(conv3x3(relu(x)))))."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(), nn.Conv2d(ch, ch, 3, padding=1), nn.BatchNorm2d(ch), nn.ReLU(),
            nn.Conv2d(ch, ch, 1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def disdiff_losses(
    encoder: ImageEncoder,
    frozen_encoder: ImageEncoder,
    decoder: SubGradientDecoder,
    dpm: PretrainedDPM,
    x: torch.Tensor,
    y0: torch.Tensor,
    t: torch.Tensor,
    noise: torch.Tensor,
    unit: torch.Tensor,
    dis_weight: float,
    dis_loss_type: str = "Z",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample (reconstruction loss, disentangling loss) as in the official ``p_losses``.

    ``x`` images in [-1, 1], ``y0`` their (scaled) latents, ``t`` timesteps, ``noise`` the
    forward-process noise, ``unit`` the sampled unit c per sample. ``frozen_encoder`` is a
    gradient-free, eval-mode copy of ``encoder`` (refreshed by the caller every step).
    """
    sched, n, units = dpm.schedule, len(x), decoder.latent_unit
    z = encoder(x).reshape(n, units, -1)
    y_t = sched.q_sample(y0, t, noise)
    with torch.no_grad():  # the frozen DPM: encoder half features and its own epsilon
        h, skips, emb = dpm.unet.encode(y_t, t)
        eps = dpm.unet.decoder(h, skips, emb)
    sub = decoder(h, skips, emb, z)  # [N, n, C, H, W]
    eps_hat = eps + sched.at(sched.shift_coef, t, y0) * sub.sum(0)
    rec = (noise - eps_hat).abs().mean(dim=(1, 2, 3))

    with torch.no_grad():
        y0_hat = sched.predict_x0(y_t, t, eps)
        x_hat = dpm.to_image(y0_hat)
        z_hat = frozen_encoder(x_hat).reshape(n, units, -1)
    sub_c = sub[unit, torch.arange(n, device=x.device)]
    y0_c = sched.predict_x0(y_t, t, eps + sched.at(sched.ddim_coef, t, y0) * sub_c)
    x_c = dpm.to_image(y0_c)
    z_c = frozen_encoder(x_c).reshape(n, units, -1)
    target = z.detach()
    variant = (z_hat - target).norm(dim=-1) - (z_c - target).norm(dim=-1)  # moved towards z_k
    invariant = (z_hat - z_c).norm(dim=-1)  # changed at all
    ce = F.cross_entropy(variant, unit, reduction="none")
    ce = ce + F.cross_entropy(invariant, unit, reduction="none")
    if dis_loss_type == "Z":
        weight = ((y0_hat - y0_c.detach()) ** 2).mean(dim=(1, 2, 3))
    else:  # "IM": the same in image space
        weight = ((x_hat - x_c.detach()) ** 2).mean(dim=(1, 2, 3))
    return rec, dis_weight * weight * ce


class DisDiffRepresentation(Representation):
    """Codes = per-unit first principal component of E(x) (or the raw N x d output)."""

    def __init__(
        self,
        encoder: ImageEncoder,
        latent_unit: int,
        pca_mean: np.ndarray,
        pca_components: np.ndarray,
        representation: str,
        device: str = "cpu",
    ) -> None:
        self.encoder = encoder.eval()
        self.latent_unit = latent_unit
        self.pca_mean = pca_mean  # [N, d]
        self.pca_components = pca_components  # [N, d], unit length
        self.representation = representation
        self.device = device  # encode where it trained, when that device exists

    def encode(self, x: np.ndarray) -> np.ndarray:
        device = self.device if self.device == "cpu" or torch.cuda.is_available() else "cpu"
        z = encode_units(self.encoder.to(device), x, self.latent_unit)
        if self.representation == "raw":
            return z.reshape(len(x), -1)
        return np.einsum("nud,ud->nu", z - self.pca_mean, self.pca_components)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle with the encoder on the CPU so a saved model loads on any machine."""
        state = dict(self.__dict__)
        state["encoder"] = copy.deepcopy(self.encoder).cpu()
        return state


def encode_units(encoder: ImageEncoder, x: np.ndarray, units: int, batch: int = 500) -> np.ndarray:
    """E's output [n, N, d] (float64) for observations in [0, 1], in eval mode."""
    device = next(encoder.parameters()).device
    encoder.eval()
    parts = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = torch.as_tensor(np.asarray(x[i : i + batch], dtype=np.float32), device=device)
            parts.append(encoder(xb * 2.0 - 1.0).reshape(len(xb), units, -1).cpu().numpy())
    return np.concatenate(parts).astype(np.float64)


def per_unit_pca(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean [N, d], first component [N, d], explained variance ratio [N]) per unit.

    The sign is fixed so each component's largest-magnitude entry is positive, which
    makes the codes deterministic.
    """
    mean = z.mean(axis=0)
    comps, ratios = [], []
    for u in range(z.shape[1]):
        vals, vecs = np.linalg.eigh(np.cov(z[:, u] - mean[u], rowvar=False))
        v = vecs[:, -1]
        comps.append(v * np.sign(v[np.argmax(np.abs(v))]))
        ratios.append(vals[-1] / max(vals.sum(), 1e-300))
    return mean, np.stack(comps), np.asarray(ratios)


def train_phase3(
    dataset: GroundTruthDataset,
    dpm: PretrainedDPM,
    cfg: dict[str, Any],
    seed: int,
    budget: TrainBudget,
    ctx: FitContext | None = None,
) -> tuple[ImageEncoder, SubGradientDecoder, list[dict[str, float]]]:
    """Train E and G on the frozen DPM with AdamW and linear warm-up (official phase 3).

    Returns the encoder, the decoder and the loss curve (``rec_loss``, ``dis_loss``), also
    in ``ctx.info``. With ``ctx.checkpoint`` the run saves and resumes on the shared loop
    (the pretrained stages resume through their cache).
    """
    ctx = FitContext() if ctx is None else ctx
    device = dpm.schedule.betas.device
    c, h, w = dataset.observation_shape
    units, dim = cfg["latent_unit"], cfg["unit_dim"]
    with torch.random.fork_rng(devices=[]):  # initial weights from the seed only
        torch.manual_seed(seed)
        encoder = ImageEncoder(c, (h, w), cfg["encoder_channels"], units * dim)
        decoder = SubGradientDecoder(dpm.unet.cfg, dpm.unet.skip_channels, units, dim)
    encoder.to(device).train()
    decoder.to(device).train()
    # The frozen copy E' that re-encodes predictions: refreshed from E every step, no grad.
    frozen = copy.deepcopy(encoder).eval().requires_grad_(False)
    opt = torch.optim.AdamW([*encoder.parameters(), *decoder.parameters()], lr=cfg["lr"])
    warmup = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_factor(s, cfg["warmup_steps"]))
    images = np.random.default_rng([seed, 0])
    noise_gen = torch.Generator(device=device).manual_seed(seed)

    def step(i: int) -> dict[str, torch.Tensor]:
        x = sample_images(dataset, budget.batch_size, images, device)
        with torch.no_grad():
            y0 = dpm.to_latent(x, noise_gen)
        t = torch.randint(0, dpm.schedule.timesteps, (len(x),), generator=noise_gen, device=device)
        noise = torch.randn(y0.shape, generator=noise_gen, device=device)
        unit = torch.randint(0, units, (len(x),), generator=noise_gen, device=device)
        frozen.load_state_dict(encoder.state_dict())
        rec, dis = disdiff_losses(
            encoder, frozen, decoder, dpm, x, y0, t, noise, unit,
            cfg["dis_weight"], cfg["dis_loss_type"],
        )  # fmt: skip
        opt.zero_grad(set_to_none=True)
        (rec.mean() + dis.mean()).backward()
        opt.step()
        warmup.step()
        return {"rec_loss": rec.mean().detach(), "dis_loss": dis.mean().detach()}

    state = {
        "encoder": encoder,
        "decoder": decoder,
        "optimiser": opt,
        "warmup": warmup,
        "streams": loop.Generators(images=images, noise=noise_gen),
    }
    curve = loop.LossCurve(budget.steps)
    # Images are drawn per step, so any step is a checkpoint point.
    loop.run("disdiff", [ctx], [seed], budget.steps, step, state, curve, save_every=1)
    return encoder, decoder, curve.curves[0] if curve.curves else []


@register
class DisDiff(Method):
    name: ClassVar[str] = "disdiff"
    description: ClassVar[str] = (
        "DisDiff (Yang et al. 2023): encoder + sub-gradient decoder on a frozen, cached DDPM; "
        "codes = first principal component per latent unit"
    )
    Params = DisDiffParams
    framework: ClassVar[str] = "torch"
    checkpoints: ClassVar[bool] = True
    paper_results: ClassVar[tuple[PaperResult, ...]] = PAPER_RESULTS

    def fit(
        self,
        dataset: GroundTruthDataset,
        hparams: dict[str, Any],
        seed: int,
        budget: TrainBudget,
        ctx: FitContext,
    ) -> Representation:
        cfg = resolve_config(self.typed(hparams), dataset)
        device = torch.device(ctx.device)
        ctx.info["config"] = {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}
        dpm = pretrained_dpm(dataset, cfg, ctx.cache_dir, device)
        ctx.info["artifacts"] = dpm.info
        encoder, _, _ = train_phase3(dataset, dpm, cfg, seed, budget, ctx)
        units = cfg["latent_unit"]

        # The official representation fits PCA-1 per unit on the whole (evaluation) dataset;
        # we fit it once here, on pca_points observations drawn with the run's seed.
        factors = dataset.sample_factors(cfg["pca_points"], np.random.default_rng([seed, 1]))
        z = np.concatenate(
            [
                encode_units(encoder, dataset.render(factors[i : i + 1000]), units)
                for i in range(0, len(factors), 1000)
            ]
        )
        mean, components, ratio = per_unit_pca(z)
        ctx.info["pca_explained_variance_ratio"] = [round(float(r), 4) for r in ratio]
        return DisDiffRepresentation(
            encoder, units, mean, components, cfg["representation"], str(device)
        )
