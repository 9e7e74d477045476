"""``ae``: the reference networks as a plain deterministic autoencoder, the floor for the VAEs.

No sampling and no regulariser: the decoder reads the encoder mean and the loss is the
Bernoulli reconstruction alone, so any disentanglement it shows comes from the
architecture and the data, not from a prior.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from disbench.api import register
from disbench.methods.nn.vae import LatentTerms
from disbench.methods.nn.vae_method import VAEMethod, VAEParams


@register
class AE(VAEMethod):
    name: ClassVar[str] = "ae"
    description: ClassVar[str] = "plain autoencoder with the reference conv networks (no prior)"
    Params = VAEParams  # the shared settings only: no regulariser, nothing to weigh
    sweep: ClassVar[dict[str, list[Any]]] = {}
    stochastic: ClassVar[bool] = False

    @staticmethod
    def regularizer(terms: LatentTerms, hp: Mapping[str, Any], step: int) -> torch.Tensor:
        return torch.zeros((), device=terms.mean.device)
