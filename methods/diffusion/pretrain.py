"""Phases 1 and 2 of DisDiff: the first stage and the unconditional DDPM, cached on disk.

DisDiff starts from a *pre-trained* DPM, so every seed and every rerun on the same
dataset shares one first stage and one DDPM. Each is an artifact file under
``<cache_dir>/disdiff/`` named by a hash of what determines it: the dataset (its
description plus a fingerprint of rendered images, so a dataset parameter that changes
the images changes the key) and the stage's configuration (architecture, schedule,
training steps, batch, learning rate, pre-training seed; phase 2 also the phase-1 key).
A file lock makes a second process wait for, then reuse, an artifact being trained.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from disbench.api import GroundTruthDataset
from disbench.methods.diffusion.first_stage import FirstStage, build_first_stage, downsampling
from disbench.methods.diffusion.schedule import Schedule
from disbench.methods.diffusion.unet import UNet, UNetConfig

FIRST_STAGE_KEYS = {
    "identity": ("first_stage", "pretrain_seed"),
    "avgpool": ("first_stage", "pool_factor", "pretrain_seed"),
    "kl": (
        "first_stage", "ae_channels", "ae_channel_mult", "ae_res_blocks", "ae_embed_dim",
        "ae_steps", "ae_batch_size", "ae_lr", "ae_kl_weight", "pretrain_seed",
    ),
}  # fmt: skip
DPM_KEYS = (
    "model_channels", "channel_mult", "num_res_blocks", "attention_resolutions", "num_heads",
    "timesteps", "linear_start", "linear_end", "scale_by_std", "dpm_steps", "dpm_batch_size",
    "dpm_lr", "dpm_warmup", "pretrain_seed",
)  # fmt: skip
LOG_EVERY = 10  # loss curves keep one value (a mean) per this many steps


@dataclass
class PretrainedDPM:
    """The frozen pieces phase 3 builds on, plus where they came from."""

    first_stage: FirstStage
    unet: UNet
    schedule: Schedule
    scale_factor: float  # latents are multiplied by this before the DDPM sees them
    info: dict[str, Any]

    def to_latent(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return self.scale_factor * self.first_stage.encode(x, generator)

    def to_image(self, y: torch.Tensor) -> torch.Tensor:
        return self.first_stage.decode(y / self.scale_factor)


def sample_images(
    dataset: GroundTruthDataset, n: int, rng: np.random.Generator, device: torch.device | str
) -> torch.Tensor:
    """``n`` observations drawn uniformly over the factor grid, scaled to [-1, 1] as DisDiff."""
    factors = torch.from_numpy(dataset.sample_factors(n, rng))
    return dataset.render_torch(factors, device).float() * 2.0 - 1.0


def dataset_fingerprint(dataset: GroundTruthDataset) -> dict[str, Any]:
    """The dataset's description and a hash of 8 images at fixed factors."""
    factors = dataset.sample_factors(8, np.random.default_rng(12345))
    images = np.ascontiguousarray(dataset.render(factors), dtype=np.float32)
    return {
        "class": f"{type(dataset).__module__}.{type(dataset).__qualname__}",
        "describe": dataset.describe(),
        "images_sha256": hashlib.sha256(np.round(images, 5).tobytes()).hexdigest(),
    }


def stage_key(dataset: GroundTruthDataset, cfg: dict[str, Any], stage: str) -> dict[str, Any]:
    """Everything that determines a stage's artifact (JSON-serialisable)."""
    if cfg["first_stage"] not in FIRST_STAGE_KEYS:
        raise ValueError(
            f"DisDiff: unknown first_stage {cfg['first_stage']!r}; "
            f"choose one of {sorted(FIRST_STAGE_KEYS)}"
        )
    fs = {k: cfg[k] for k in FIRST_STAGE_KEYS[cfg["first_stage"]]}
    key: dict[str, Any] = {"stage": "first_stage", "dataset": dataset_fingerprint(dataset), **fs}
    if stage == "dpm":
        key = {"stage": "dpm", "first_stage_key": key, **{k: cfg[k] for k in DPM_KEYS}}
    return json.loads(json.dumps(key))  # tuples -> lists, so equal configs give equal keys


def key_digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def cached(
    cache_dir: Path, key: dict[str, Any], train: Callable[[], dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load the artifact for ``key`` or train, save (atomically) and return it.

    Returns (payload, record) where record says which file was used and whether it was
    reused. A file whose stored key differs from ``key`` (a hash collision or a stale
    format) is retrained and replaced.
    """
    path = Path(cache_dir) / "disdiff" / f"{key['stage']}-{key_digest(key)}.pt"
    with _locked(path):
        if path.exists():
            payload = torch.load(path, map_location="cpu", weights_only=True)
            if payload.get("key") == key:
                return payload, {"path": str(path), "reused": True}
        start = time.perf_counter()
        payload = {"key": key, **train()}
        payload["train_seconds"] = time.perf_counter() - start
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        torch.save(payload, tmp)
        os.replace(tmp, path)
    return payload, {"path": str(path), "reused": False}


def warmup_factor(step: int, warmup: int) -> float:
    """LDM's LambdaLinearScheduler: linear from 1e-6 to 1 over ``warmup`` steps, then 1."""
    if step >= warmup:
        return 1.0
    return 1e-6 + (1.0 - 1e-6) * step / warmup


def _curve(losses: list[float]) -> list[float]:
    n = len(losses) // LOG_EVERY * LOG_EVERY
    return np.asarray(losses[:n]).reshape(-1, LOG_EVERY).mean(axis=1).tolist() if n else losses


def _train_first_stage(
    dataset: GroundTruthDataset, cfg: dict[str, Any], device: torch.device
) -> dict[str, Any]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg["pretrain_seed"])
        model = build_first_stage(cfg, dataset.observation_shape[0]).to(device)
    if not model.trainable:
        return {"state_dict": {}, "losses": []}
    rng = np.random.default_rng([cfg["pretrain_seed"], 1])
    gen = torch.Generator(device=device).manual_seed(cfg["pretrain_seed"])
    opt = torch.optim.Adam(model.parameters(), lr=cfg["ae_lr"], betas=(0.5, 0.9))
    losses = []
    for _ in range(cfg["ae_steps"]):
        x = sample_images(dataset, cfg["ae_batch_size"], rng, device)
        loss = model.loss(x, gen, cfg["ae_kl_weight"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return {
        "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
        "losses": _curve(losses),
    }


def unet_config(cfg: dict[str, Any], latent_channels: int) -> UNetConfig:
    return UNetConfig(
        channels=latent_channels,
        model_channels=int(cfg["model_channels"]),
        channel_mult=tuple(cfg["channel_mult"]),
        num_res_blocks=int(cfg["num_res_blocks"]),
        attention_resolutions=tuple(cfg["attention_resolutions"]),
        num_heads=int(cfg["num_heads"]),
    )


def _train_dpm(
    dataset: GroundTruthDataset,
    cfg: dict[str, Any],
    first_stage: FirstStage,
    schedule: Schedule,
    device: torch.device,
) -> dict[str, Any]:
    """Unconditional epsilon-prediction DDPM with the L1 loss of the official configs."""
    seed = cfg["pretrain_seed"]
    rng = np.random.default_rng([seed, 2])
    gen = torch.Generator(device=device).manual_seed(seed + 1)
    with torch.no_grad():  # LDM's scale_by_std: 1 / std of the first batch's latents
        y = first_stage.encode(sample_images(dataset, cfg["dpm_batch_size"], rng, device), gen)
    scale = float(1.0 / y.flatten().std()) if cfg["scale_by_std"] else 1.0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet(unet_config(cfg, y.shape[1])).to(device)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg["dpm_lr"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_factor(s, cfg["dpm_warmup"]))
    losses = []
    for _ in range(cfg["dpm_steps"]):
        x = sample_images(dataset, cfg["dpm_batch_size"], rng, device)
        with torch.no_grad():
            y0 = scale * first_stage.encode(x, gen)
        t = torch.randint(0, schedule.timesteps, (len(x),), generator=gen, device=device)
        noise = torch.randn(y0.shape, generator=gen, device=device)
        loss = (unet(schedule.q_sample(y0, t, noise), t) - noise).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return {
        "state_dict": {k: v.cpu() for k, v in unet.state_dict().items()},
        "scale_factor": scale,
        "latent_channels": int(y.shape[1]),
        "losses": _curve(losses),
    }


def pretrained_dpm(
    dataset: GroundTruthDataset, cfg: dict[str, Any], cache_dir: Path, device: torch.device
) -> PretrainedDPM:
    """Phases 1 and 2, each loaded from the cache or trained once; everything frozen."""
    c, h, w = dataset.observation_shape
    f = downsampling(cfg)
    if h % f or w % f:
        raise ValueError(
            f"DisDiff: first stage {cfg['first_stage']!r} downsamples by {f}, which does not "
            f"divide dataset {dataset.name!r}'s {h}x{w} images"
        )
    fs_key = stage_key(dataset, cfg, "first_stage")
    fs_payload, fs_record = cached(
        cache_dir, fs_key, lambda: _train_first_stage(dataset, cfg, device)
    )
    with torch.random.fork_rng(devices=[]):  # weights come from the artifact; init is discarded
        first_stage = build_first_stage(cfg, c)
    first_stage.load_state_dict(fs_payload["state_dict"])
    first_stage.to(device).eval().requires_grad_(False)

    schedule = Schedule(cfg["timesteps"], cfg["linear_start"], cfg["linear_end"], device)
    dpm_key = stage_key(dataset, cfg, "dpm")
    dpm_payload, dpm_record = cached(
        cache_dir, dpm_key, lambda: _train_dpm(dataset, cfg, first_stage, schedule, device)
    )
    with torch.random.fork_rng(devices=[]):
        unet = UNet(unet_config(cfg, dpm_payload["latent_channels"]))
    unet.load_state_dict(dpm_payload["state_dict"])
    unet.to(device).eval().requires_grad_(False)

    def summary(payload: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
        losses = payload["losses"]
        return {
            **record,
            "digest": key_digest(payload["key"]),
            "train_seconds": round(float(payload["train_seconds"]), 2),
            "first_loss": losses[0] if losses else None,
            "final_loss": losses[-1] if losses else None,
        }

    info = {
        "first_stage": summary(fs_payload, fs_record),
        "dpm": summary(dpm_payload, dpm_record),
    }
    return PretrainedDPM(first_stage, unet, schedule, dpm_payload["scale_factor"], info)
