"""``beta_vae``: beta-VAE (Higgins et al. 2017, Eq. 4), dlib's ``vae``: loss = recon + beta KL."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs
import torch

from disbench.api import param, register
from disbench.methods.nn.vae import LatentTerms
from disbench.methods.nn.vae_method import VAEMethod, VAEParams


@attrs.frozen(kw_only=True)
class BetaVAEParams(VAEParams):
    beta: float = param(4.0, ge=0)  # weight of the KL


@register
class BetaVAE(VAEMethod):
    name: ClassVar[str] = "beta_vae"
    description: ClassVar[str] = "beta-VAE (Higgins et al. 2017): KL weighted by beta"
    Params = BetaVAEParams
    sweep: ClassVar[dict[str, list[Any]]] = {"beta": [1.0, 2.0, 4.0, 6.0, 8.0, 16.0]}

    @staticmethod
    def regularizer(terms: LatentTerms, hp: Mapping[str, Any], step: int) -> torch.Tensor:
        return hp["beta"] * terms.kl
