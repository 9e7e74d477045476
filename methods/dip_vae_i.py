"""``dip_vae_i``: DIP-VAE-I (Kumar et al. 2018, Eq. 6), dlib's ``dip_vae`` with type "i".

Loss = recon + KL + lambda_od sum_{i!=j} Cov[mu]_ij^2 + lambda_d sum_i (Cov[mu]_ii - 1)^2,
the covariance taken over the batch's encoder means; lambda_d = 10 lambda_od.
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
class DIPVAEIParams(VAEParams):
    lambda_od: float = param(10.0, ge=0)
    lambda_d_factor: float = param(10.0, ge=0)  # lambda_d = lambda_d_factor * lambda_od


@register
class DIPVAEI(VAEMethod):
    name: ClassVar[str] = "dip_vae_i"
    description: ClassVar[str] = "DIP-VAE-I (Kumar et al. 2018): covariance of the means -> I"
    Params = DIPVAEIParams
    sweep: ClassVar[dict[str, list[Any]]] = {"lambda_od": [1.0, 2.0, 5.0, 10.0, 20.0, 50.0]}

    @staticmethod
    def regularizer(terms: LatentTerms, hp: Mapping[str, Any], step: int) -> torch.Tensor:
        lambda_d = hp["lambda_d_factor"] * hp["lambda_od"]
        return terms.kl + dip_penalty(covariance(terms.mean), hp["lambda_od"], lambda_d)
