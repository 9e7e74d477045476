"""``beta_vae``: beta-VAE (Higgins et al. 2017, Eq. 4), dlib's ``vae``: loss = recon + beta KL."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from disbench.api import register
from disbench.methods.nn.vae import VAE_DEFAULTS, LatentTerms
from disbench.methods.nn.vae_method import VAEMethod


@register
class BetaVAE(VAEMethod):
    name: ClassVar[str] = "beta_vae"
    description: ClassVar[str] = "beta-VAE (Higgins et al. 2017): KL weighted by beta"
    defaults: ClassVar[dict[str, Any]] = {**VAE_DEFAULTS, "beta": 4.0}
    sweep: ClassVar[dict[str, list[Any]]] = {"beta": [1.0, 2.0, 4.0, 6.0, 8.0, 16.0]}

    @staticmethod
    def regularizer(terms: LatentTerms, hp: Mapping[str, Any], step: int) -> torch.Tensor:
        return hp["beta"] * terms.kl
