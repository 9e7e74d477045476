"""``dip_vae_ii``: DIP-VAE-II (Kumar et al. 2018, Eq. 7), dlib's ``dip_vae`` with type "ii".

As DIP-VAE-I, but on the covariance of the aggregate posterior,
Cov[z] = E[diag(exp(logvar))] + Cov[mu], with lambda_d = lambda_od.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs
import torch

from disbench.api import param, register
from disbench.methods.nn.losses import covariance, dip_penalty
from disbench.methods.nn.vae import LatentTerms
from disbench.methods.nn.vae_method import VAEMethod, VAEParams


@attrs.frozen(kw_only=True)
class DIPVAEIIParams(VAEParams):
    lambda_od: float = param(10.0, ge=0)
    lambda_d_factor: float = param(1.0, ge=0)  # lambda_d = lambda_d_factor * lambda_od


@register
class DIPVAEII(VAEMethod):
    name: ClassVar[str] = "dip_vae_ii"
    description: ClassVar[str] = "DIP-VAE-II (Kumar et al. 2018): covariance of z -> I"
    Params = DIPVAEIIParams
    sweep: ClassVar[dict[str, list[Any]]] = {"lambda_od": [1.0, 2.0, 5.0, 10.0, 20.0, 50.0]}

    @staticmethod
    def regularizer(terms: LatentTerms, hp: Mapping[str, Any], step: int) -> torch.Tensor:
        cov_z = torch.diag(terms.logvar.exp().mean(0)) + covariance(terms.mean)
        lambda_d = hp["lambda_d_factor"] * hp["lambda_od"]
        return terms.kl + dip_penalty(cov_z, hp["lambda_od"], lambda_d)
