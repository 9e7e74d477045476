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

import math
from functools import partial
from typing import Any, ClassVar

import attrs
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
    param,
    register,
)
from disbench.methods.nn import loop
from disbench.methods.nn.architectures import (
    ConvEncoder,
    DeconvDecoder,
    check_reference_shape,
    init_like_tf,
)

CHUNK = 512  # images per forward pass when encoding or decoding


@attrs.frozen(kw_only=True)
class CSDisMoParams:
    """C-S DisMo's hyperparameters (docs/methods-cs-dismo.md gives the reasons)."""

    content_dims: int = param(6, int, ge=1)
    style_dims: int = param(4, int, ge=1)
    num_images: int = param(2000, int, ge=1, doc="training images, each with its own codes")
    lr: float = param(1e-3, gt=0, doc="generator, affine map and encoders")
    code_lr: float = param(1e-2, gt=0, doc="the per-image content and style codes")
    encoder_share: float = param(0.3, gt=0, lt=1, doc="share of the steps for the encoders")


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
    Params = CSDisMoParams

    def fit(
        self,
        dataset: GroundTruthDataset,
        hparams: dict[str, Any],
        seed: int,
        budget: TrainBudget,
        ctx: FitContext,
    ) -> Representation:
        hp: CSDisMoParams = self.typed(hparams)
        check_reference_shape(self.name, dataset)
        loop.check_budget(self.name, budget)
        code_steps = stage_steps(hp.encoder_share, budget)
        device = torch.device(ctx.device)
        data = np.random.default_rng(seed)
        init = torch.Generator().manual_seed(seed)  # weights and initial codes
        _, images = dataset.sample(hp.num_images, data)
        x = torch.from_numpy(images).to(device)

        # Stage 1: the generator, the affine map and every image's free codes.
        channels, dc, ds = dataset.observation_shape[0], hp.content_dims, hp.style_dims
        model = init_like_tf(CSDisMo(channels, dc, ds), init).to(device)
        content = nn.Parameter(0.1 * torch.randn(len(x), dc, generator=init).to(device))
        style = nn.Parameter(0.1 * torch.randn(len(x), ds, generator=init).to(device))
        optimiser = torch.optim.Adam(
            [
                {"params": model.parameters(), "lr": hp.lr},
                {"params": [content, style], "lr": hp.code_lr},
            ]
        )

        def code_step(i: int) -> dict[str, torch.Tensor]:
            batch = torch.from_numpy(data.integers(0, len(x), budget.batch_size)).to(device)
            loss = reconstruction(model(standardise(content)[batch], style[batch]), x[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            return {"loss": loss.detach()}

        state: dict[str, Any] = {
            "model": model,
            "optimiser": optimiser,
            "codes": loop.Tensors(content=content, style=style),
            "streams": loop.Generators(data=data, init=init),
        }
        code_curve = loop.LossCurve(budget.steps, end=code_steps)
        # Two phases on one checkpoint; images are drawn per step, so any step can save.
        stage = partial(loop.run, self.name, [ctx], [seed], total=budget.steps, save_every=1)
        stage(range(0, code_steps), code_step, state, code_curve, curve_name="code_curve")

        # Stage 2: encoders regress the optimised codes of the training images.
        targets = torch.cat([standardise(content), style], dim=1).detach()
        encoder = init_like_tf(ConvEncoder(channels, dc + ds), init).to(device)
        enc_optimiser = torch.optim.Adam(encoder.parameters(), lr=hp.lr)

        def encoder_step(i: int) -> dict[str, torch.Tensor]:
            batch = torch.from_numpy(data.integers(0, len(x), budget.batch_size)).to(device)
            loss = ((encoder(x[batch])[0] - targets[batch]) ** 2).sum(1).mean()
            enc_optimiser.zero_grad()
            loss.backward()
            enc_optimiser.step()
            return {"encoder_loss": loss.detach()}

        state.update(code_curve=code_curve, encoder=encoder, enc_optimiser=enc_optimiser)
        encoder_curve = loop.LossCurve(budget.steps, start=code_steps)
        encoders = range(code_steps, budget.steps)
        done = stage(encoders, encoder_step, state, encoder_curve, record=False)
        final = encoder_curve.curves[0][-1]["encoder_loss"]
        if not math.isfinite(final):
            raise FloatingPointError(f"method 'cs_dismo': non-finite encoder loss (seed {seed})")

        rep = CSDisMoRepresentation(encoder, model, dc)
        encoded = rep.encode(images)
        fitted = targets.cpu().numpy()
        r2 = 1 - ((encoded - fitted) ** 2).sum(0) / ((fitted - fitted.mean(0)) ** 2).sum(0)
        seconds = ctx.info["train_seconds"] + done.seconds  # both stages
        ctx.info["final_losses"]["encoder_loss"] = final
        ctx.info.update(
            {
                "encoder_curve": encoder_curve.curves[0],
                "train_seconds": seconds,
                "steps_per_second": budget.steps / seconds if seconds > 0 else math.inf,
                "code_split": {"content": list(range(dc)), "style": list(range(dc, dc + ds))},
                "encoder_r2_train": [round(float(v), 4) for v in r2],
                "stage_steps": {"codes": code_steps, "encoders": budget.steps - code_steps},
            }
        )
        return rep


def stage_steps(encoder_share: float, budget: TrainBudget) -> int:
    """Steps of stage 1 (the codes); a one-line error when either stage would get none."""
    code_steps = budget.steps - int(round(encoder_share * budget.steps))
    if not 0 < code_steps < budget.steps:
        raise ValueError(
            f"method 'cs_dismo': encoder_share={encoder_share} of steps={budget.steps} leaves "
            "a stage without steps"
        )
    return code_steps


def reconstruction(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Bernoulli reconstruction loss (disentanglement_lib's), summed over pixels."""
    per_pixel = nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return per_pixel.flatten(1).sum(1).mean()
