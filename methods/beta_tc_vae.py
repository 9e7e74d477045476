"""``beta_tc_vae``: beta-TCVAE (Chen et al. 2018, Eq. 4 with alpha = gamma = 1), dlib's.

Loss = recon + KL + (beta - 1) TC, TC estimated on the batch by minibatch-weighted
sampling (``methods.nn.losses.total_correlation``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs
import torch

from disbench.api import param, register
from disbench.methods.nn.losses import total_correlation
from disbench.methods.nn.vae import LatentTerms
from disbench.methods.nn.vae_method import VAEMethod, VAEParams


@attrs.frozen(kw_only=True)
class BetaTCVAEParams(VAEParams):
    beta: float = param(6.0, ge=0)  # weight of the total correlation (beta - 1 on top of the KL)


@register
class BetaTCVAE(VAEMethod):
    name: ClassVar[str] = "beta_tc_vae"
    description: ClassVar[str] = "beta-TCVAE (Chen et al. 2018): total correlation weighted by beta"
    Params = BetaTCVAEParams
    sweep: ClassVar[dict[str, list[Any]]] = {"beta": [1.0, 2.0, 4.0, 6.0, 8.0, 10.0]}

    @staticmethod
    def regularizer(terms: LatentTerms, hp: Mapping[str, Any], step: int) -> torch.Tensor:
        return terms.kl + (hp["beta"] - 1.0) * total_correlation(terms.z, terms.mean, terms.logvar)
