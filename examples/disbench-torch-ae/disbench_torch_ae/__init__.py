"""torch_ae: a disbench method (written by `disbench new-method`).

A fully connected autoencoder trained with Adam on the mean squared reconstruction error of
the flattened observations; the codes are the encoder's outputs. Replace the networks and
the loss with your method and keep the contract (disbench's docs/plugins.md): ``fit``
returns a Representation, ``encode`` maps float32 [n, C, H, W] to real codes [n, D], and
everything random flows from ``seed``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from disbench.api import (
    FitContext,
    GroundTruthDataset,
    Method,
    Representation,
    TrainBudget,
    register,
)
from torch import nn

CURVE_POINTS = 20  # loss values kept in the run record (the leaderboard plots them)


class TorchAeMethodRepresentation(Representation):
    """Codes = the trained encoder's outputs (on the CPU, so the model pickles anywhere)."""

    def __init__(self, encoder: nn.Module) -> None:
        self.encoder = encoder.cpu().eval()

    def encode(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.encoder(torch.from_numpy(np.asarray(x, dtype=np.float32))).numpy()


@register
class TorchAeMethod(Method):
    name: ClassVar[str] = "torch_ae"
    description: ClassVar[str] = "torch_ae: fully connected autoencoder (torch)"
    version: ClassVar[int] = 1  # bump when a change would change results
    framework: ClassVar[str] = "torch"
    defaults: ClassVar[dict[str, Any]] = {"num_codes": 10, "hidden": 256, "lr": 1e-3}
    sweep: ClassVar[dict[str, list[Any]]] = {"num_codes": [5, 10, 20]}

    def fit(
        self,
        dataset: GroundTruthDataset,
        hparams: dict[str, Any],
        seed: int,
        budget: TrainBudget,
        ctx: FitContext,
    ) -> Representation:
        torch.manual_seed(seed)  # initial weights
        rng = np.random.default_rng(seed)  # the data stream
        device = torch.device(ctx.device)
        dim = int(np.prod(dataset.observation_shape))
        hidden, k = hparams["hidden"], hparams["num_codes"]
        encoder = nn.Sequential(
            nn.Flatten(), nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, k)
        )
        decoder = nn.Sequential(nn.Linear(k, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        encoder, decoder = encoder.to(device), decoder.to(device)
        weights = [*encoder.parameters(), *decoder.parameters()]
        optimiser = torch.optim.Adam(weights, lr=hparams["lr"])
        every = max(1, budget.steps // CURVE_POINTS)
        curve = []
        for step in range(budget.steps):
            _, obs = dataset.sample(budget.batch_size, rng)
            x = torch.from_numpy(obs).to(device).flatten(1)
            loss = ((decoder(encoder(x)) - x) ** 2).sum(1).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if (step + 1) % every == 0 or step + 1 == budget.steps:
                curve.append({"step": step + 1, "loss": float(loss)})
                ctx.progress(step + 1, budget.steps)
        ctx.info["loss_curve"] = curve
        return TorchAeMethodRepresentation(encoder)
