"""``factor_vae``: FactorVAE (Kim & Mnih 2018, Eq. 2), dlib's ``factor_vae``.

Loss = recon + KL + gamma TC, with TC estimated by the density-ratio trick: the mean
over the batch of the discriminator's logit difference (real minus permuted). The
discriminator (6 x FC 1000) learns, in the same step and from the same forward pass, to
tell the batch's codes from codes permuted independently per latent across the batch
(Adam 1e-4, betas 0.5 / 0.9); the shared step (``methods.nn.vae.train_step``) does that update.

Difference from dlib: its two ``minimize`` calls both increment the global step, so its
"300,000 steps" are 150,000 updates of each network; here a step is one update of each.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs
import torch

from disbench.api import param, register
from disbench.methods.nn.losses import density_ratio_tc
from disbench.methods.nn.vae import LatentTerms
from disbench.methods.nn.vae_method import VAEMethod, VAEParams


@attrs.frozen(kw_only=True)
class FactorVAEParams(VAEParams):
    gamma: float = param(10.0, ge=0)  # weight of the density-ratio TC
    disc_lr: float = param(1e-4, gt=0)  # the discriminator's Adam
    disc_adam_beta1: float = param(0.5, ge=0, lt=1)
    disc_adam_beta2: float = param(0.9, ge=0, lt=1)
    disc_adam_eps: float = param(1e-8, gt=0)


@register
class FactorVAE(VAEMethod):
    name: ClassVar[str] = "factor_vae"
    description: ClassVar[str] = "FactorVAE (Kim & Mnih 2018): TC penalised via a discriminator"
    Params = FactorVAEParams
    sweep: ClassVar[dict[str, list[Any]]] = {"gamma": [10.0, 20.0, 30.0, 40.0, 50.0, 100.0]}
    uses_discriminator: ClassVar[bool] = True
    shared_hparams: ClassVar[tuple[str, ...]] = (
        *VAEMethod.shared_hparams,
        "disc_lr",
        "disc_adam_beta1",
        "disc_adam_beta2",
        "disc_adam_eps",
    )  # one packed discriminator Adam per batched group

    @staticmethod
    def regularizer(terms: LatentTerms, hp: Mapping[str, Any], step: int) -> torch.Tensor:
        assert terms.disc_logits is not None
        return terms.kl + hp["gamma"] * density_ratio_tc(terms.disc_logits)
