"""``annealed_vae``: Burgess et al. 2018, Eq. 8, dlib's ``annealed_vae``.

Loss = recon + gamma |KL - C|, with the capacity C grown linearly from 0 to ``c_max``
over ``iteration_threshold`` steps, then held. The published study uses 100,000 of its
300,000 steps; the default ``None`` keeps that proportion (a third of the run's steps),
so a short profile still reaches ``c_max``. The run record gives the value used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs
import torch
from torch import Tensor

from disbench.api import FitContext, GroundTruthDataset, TrainBudget, param, register
from disbench.methods.nn.vae import LatentTerms
from disbench.methods.nn.vae_method import VAEMethod, VAEParams


def capacity(c_max: float | Tensor, step: int | Tensor, iteration_threshold: Any) -> Tensor:
    """C at ``step`` (0-based, dlib's global step before the update): min(c_max, c_max t / T).

    Tensor arithmetic, so per-model values stacked by the batched trainer vmap through it.
    """
    c_max = torch.as_tensor(c_max)
    return torch.minimum(c_max, c_max * step / iteration_threshold)


@attrs.frozen(kw_only=True)
class AnnealedVAEParams(VAEParams):
    c_max: float = param(25.0, ge=0)  # nats
    gamma: float = param(1000.0, ge=0)
    # None: a third of the run's steps (paper: 100,000)
    iteration_threshold: int | None = param(None, int, ge=1)


@register
class AnnealedVAE(VAEMethod):
    name: ClassVar[str] = "annealed_vae"
    description: ClassVar[str] = (
        "AnnealedVAE (Burgess et al. 2018): KL pulled to a rising capacity C"
    )
    Params = AnnealedVAEParams
    sweep: ClassVar[dict[str, list[Any]]] = {"c_max": [5.0, 10.0, 25.0, 50.0, 75.0, 100.0]}

    @staticmethod
    def regularizer(terms: LatentTerms, hp: Mapping[str, Any], step: int) -> torch.Tensor:
        c = capacity(hp["c_max"], step, hp["iteration_threshold"])
        return hp["gamma"] * torch.abs(terms.kl - c)

    def prepare(
        self,
        dataset: GroundTruthDataset,
        hparams: Mapping[str, Any],
        budget: TrainBudget,
        ctx: FitContext,
    ) -> dict[str, Any]:
        threshold = self.typed(dict(hparams)).iteration_threshold
        if threshold is None:
            threshold = max(1, round(budget.steps / 3))
        ctx.info["iteration_threshold"] = threshold
        return super().prepare(dataset, {**hparams, "iteration_threshold": threshold}, budget, ctx)
