"""C-S DisMo (Ren, Yang, Wang, Zeng, ICCVW 2021): content and style, rebuilt without code.

The authors released no code. What the abstract fixes: content embeddings "sampled from a
shared distribution across the dataset", and a style embedding per image that customises
that shared distribution "through an affine transformation"; content holds the factors most
important for reconstruction. Everything else below is this project's choice
(docs/methods-cs-dismo.md lists each with its alternatives):

1. **Latent optimisation** (the LORD / GLO family the paper belongs to): each of
   ``num_images`` training images owns a learnable content code c_i and style code s_i,
   optimised with the generator by Adam on the reconstruction loss.
2. **The shared distribution**: the content codes are standardised across the whole
   training set, per dimension (zero mean, unit variance), at every step:
   c^_i = (c_i - mean_j c_j) / std_j c_j.
3. **The affine customisation**: a linear map of s_i gives a scale and a shift per content
   dimension, z_i = (1 + g(s_i)) * c^_i + b(s_i); the generator sees z_i only.
4. **Generator and loss**: disentanglement_lib's reference deconvolutional decoder and its
   Bernoulli (pixel) reconstruction loss. No perceptual term: it needs a pretrained network
   (VGG) whose weights cannot be downloaded here.
5. **Encoders** (stage 2, the last ``encoder_share`` of the steps): the reference
   convolutional encoder regresses [c^_i, s_i] of the training images (mean squared error),
   so unseen images can be encoded. The representation is [content, style]; decoding a code
   runs the affine map and the generator, so any content pairs with any style.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from disbench.api import (
    ContentStyle,
    FitContext,
    GroundTruthDataset,
    Method,
    Representation,
    TrainBudget,
    register,
)
from disbench.methods.nn.architectures import (
    ConvEncoder,
    DeconvDecoder,
    check_reference_shape,
    init_like_tf,
)

CURVE_POINTS = 20
CHUNK = 512  # images per forward pass when encoding or decoding


def standardise(codes: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """The shared distribution: every dimension at zero mean and unit variance across the
    training set (the rows of ``codes``)."""
    return (codes - codes.mean(0)) / (codes.std(0, unbiased=False) + eps)


class CSDisMo(nn.Module):
    """Style -> (scale, shift) per content dimension; the customised content -> the image."""

    def __init__(self, channels: int, content_dims: int, style_dims: int) -> None:
        super().__init__()
        self.content_dims = content_dims
        self.affine = nn.Linear(style_dims, 2 * content_dims)
        self.generator = DeconvDecoder(channels, content_dims)

    def customise(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        scale, shift = self.affine(style).split(self.content_dims, dim=1)
        return (1 + scale) * content + shift

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.generator(self.customise(content, style))


class CSDisMoRepresentation(ContentStyle):
    """Codes = [content, style] from the encoder; decode = affine customisation + generator."""

    def __init__(self, encoder: ConvEncoder, model: CSDisMo, content_dims: int) -> None:
        self.encoder = encoder.cpu().eval()
        self.model = model.cpu().eval()
        self.content_dims = content_dims

    @torch.no_grad()
    def encode(self, x: np.ndarray) -> np.ndarray:
        parts = [
            self.encoder(torch.from_numpy(np.asarray(x[i : i + CHUNK], np.float32)))[0]
            for i in range(0, len(x), CHUNK)
        ]
        return torch.cat(parts).numpy()

    @torch.no_grad()
    def decode(self, codes: np.ndarray) -> np.ndarray:
        z = torch.from_numpy(np.asarray(codes, np.float32))
        content, style = z[:, : self.content_dims], z[:, self.content_dims :]
        return torch.sigmoid(self.model(content, style)).numpy()


@register
class CSDisMoMethod(Method):
    name: ClassVar[str] = "cs_dismo"
    description: ClassVar[str] = (
        "C-S DisMo: content codes on a shared distribution, style as an affine customisation "
        "(rebuilt from the abstract)"
    )
    version: ClassVar[int] = 1
    framework: ClassVar[str] = "torch"
    reference_code: ClassVar[bool] = False
    checkpoints: ClassVar[bool] = True
    defaults: ClassVar[dict[str, Any]] = {
        "content_dims": 6,
        "style_dims": 4,
        "num_images": 2000,
        "lr": 1e-3,
        "code_lr": 1e-2,
        "encoder_share": 0.3,
    }

    def fit(
        self,
        dataset: GroundTruthDataset,
        hparams: dict[str, Any],
        seed: int,
        budget: TrainBudget,
        ctx: FitContext,
    ) -> Representation:
        hp = self._check(dataset, hparams, budget)
        device = torch.device(ctx.device)
        data_rng = np.random.default_rng(seed)
        init = torch.Generator().manual_seed(seed)  # weights and initial codes
        _, images = dataset.sample(hp["num_images"], data_rng)
        x = torch.from_numpy(images).to(device)
        channels, dc, ds = dataset.observation_shape[0], hp["content_dims"], hp["style_dims"]
        model = init_like_tf(CSDisMo(channels, dc, ds), init).to(device)
        content = nn.Parameter(0.1 * torch.randn(len(x), dc, generator=init).to(device))
        style = nn.Parameter(0.1 * torch.randn(len(x), ds, generator=init).to(device))
        optimiser = torch.optim.Adam(
            [
                {"params": model.parameters(), "lr": hp["lr"]},
                {"params": [content, style], "lr": hp["code_lr"]},
            ]
        )
        code_steps = budget.steps - int(round(hp["encoder_share"] * budget.steps))
        every = max(1, budget.steps // CURVE_POINTS)
        curve: list[dict[str, float]] = []
        checkpoint = ctx.checkpoint
        saved = checkpoint.load() if checkpoint else None
        first = 0
        if saved is not None:  # resume: everything the rest of the run depends on
            model.load_state_dict(saved["model"])
            optimiser.load_state_dict(saved["optimiser"])
            with torch.no_grad():
                content.copy_(saved["content"])
                style.copy_(saved["style"])
            data_rng.bit_generator.state = saved["data"]
            init.set_state(saved["init"])
            curve, first = saved["curve"], saved["step"]

        def state(step: int, **extra: Any) -> dict[str, Any]:
            return {
                "step": step,
                "model": model.state_dict(),
                "optimiser": optimiser.state_dict(),
                "content": content.detach().clone(),
                "style": style.detach().clone(),
                "data": data_rng.bit_generator.state,
                "init": init.get_state(),
                "curve": list(curve),
                **extra,
            }

        for step in range(first, code_steps):
            if checkpoint and step > first and checkpoint.due():
                checkpoint.save(state(step))
            batch = torch.from_numpy(data_rng.integers(0, len(x), budget.batch_size)).to(device)
            logits = model(standardise(content)[batch], style[batch])
            loss = reconstruction(logits, x[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if (step + 1) % every == 0 or step + 1 == code_steps:
                curve.append({"step": step + 1, "loss": loss.item(), "stage": 1.0})
                ctx.progress(step + 1, budget.steps)

        targets = torch.cat([standardise(content), style], dim=1).detach()
        encoder = init_like_tf(ConvEncoder(channels, dc + ds), init).to(device)
        enc_optimiser = torch.optim.Adam(encoder.parameters(), lr=hp["lr"])
        if saved is not None and "encoder" in saved:
            encoder.load_state_dict(saved["encoder"])
            enc_optimiser.load_state_dict(saved["enc_optimiser"])
        for step in range(max(first, code_steps), budget.steps):
            if checkpoint and step > first and checkpoint.due():
                extra = {
                    "encoder": encoder.state_dict(),
                    "enc_optimiser": enc_optimiser.state_dict(),
                }
                checkpoint.save(state(step, **extra))
            batch = torch.from_numpy(data_rng.integers(0, len(x), budget.batch_size)).to(device)
            loss = ((encoder(x[batch])[0] - targets[batch]) ** 2).sum(1).mean()
            enc_optimiser.zero_grad()
            loss.backward()
            enc_optimiser.step()
            if (step + 1) % every == 0 or step + 1 == budget.steps:
                curve.append({"step": step + 1, "encoder_loss": loss.item(), "stage": 2.0})
                ctx.progress(step + 1, budget.steps)

        rep = CSDisMoRepresentation(encoder, model, dc)
        encoded = rep.encode(images)
        fitted = targets.cpu().numpy()
        r2 = 1 - ((encoded - fitted) ** 2).sum(0) / ((fitted - fitted.mean(0)) ** 2).sum(0)
        ctx.info.update(
            {
                "loss_curve": [p for p in curve if "loss" in p],
                "encoder_curve": [p for p in curve if "encoder_loss" in p],
                "code_split": {"content": list(range(dc)), "style": list(range(dc, dc + ds))},
                "encoder_r2_train": [round(float(v), 4) for v in r2],
                "stage_steps": {"codes": code_steps, "encoders": budget.steps - code_steps},
            }
        )
        return rep

    def _check(
        self, dataset: GroundTruthDataset, hparams: dict[str, Any], budget: TrainBudget
    ) -> dict[str, Any]:
        """Resolved hyperparameters; a one-line error naming the option at fault."""
        hp = dict(hparams)
        for key in ("content_dims", "style_dims", "num_images"):
            hp[key] = int(hp[key])
            if hp[key] < 1:
                raise ValueError(f"method 'cs_dismo': {key}={hp[key]} must be >= 1")
        if not 0 < float(hp["encoder_share"]) < 1:
            raise ValueError("method 'cs_dismo': encoder_share must be in (0, 1)")
        check_reference_shape(self.name, dataset)
        if budget.steps < 2 or budget.batch_size < 2:
            raise ValueError(
                f"method 'cs_dismo': need steps >= 2 and batch_size >= 2, got {budget}"
            )
        return hp


def reconstruction(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Bernoulli reconstruction loss (disentanglement_lib's), summed over pixels."""
    per_pixel = nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return per_pixel.flatten(1).sum(1).mean()
