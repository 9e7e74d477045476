"""torch_ae: a disbench method (written by `disbench new-method`).

A fully connected autoencoder trained with Adam on the mean squared reconstruction error of
the flattened observations; the codes are the encoder's outputs. Replace the networks and
the loss with your method and keep the contract (disbench's docs/plugins.md): ``fit``
returns a Representation, ``encode`` maps float32 [n, C, H, W] to real codes [n, D], and
everything random flows from ``seed``.

``fit`` reads top to bottom: hyperparameters, networks, one training step, then disbench's
shared loop (``disbench.methods.nn.loop.run``), which resumes a killed run from its
checkpoint, reports progress and keeps the loss curve the leaderboard reads.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import numpy as np
import torch
from disbench.api import (
    FitContext,
    GroundTruthDataset,
    Method,
    Representation,
    TrainBudget,
    param,
    register,
)
from disbench.methods.nn import loop
from torch import nn


@attrs.frozen(kw_only=True)
class TorchAeMethodParams:
    """The hyperparameters with their bounds: a bad value is a one-line error naming it."""

    num_codes: int = param(10, int, ge=1)
    hidden: int = param(256, int, ge=1)
    lr: float = param(1e-3, gt=0)


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
    checkpoints: ClassVar[bool] = True  # the shared loop saves and resumes the run
    Params = TorchAeMethodParams  # `defaults` follows from it
    sweep: ClassVar[dict[str, list[Any]]] = {"num_codes": [5, 10, 20]}

    def fit(
        self,
        dataset: GroundTruthDataset,
        hparams: dict[str, Any],
        seed: int,
        budget: TrainBudget,
        ctx: FitContext,
    ) -> Representation:
        hp = self.typed(hparams)
        device = torch.device(ctx.device)
        streams = loop.Streams(seed, device)  # initial weights, data and noise, all from seed
        dim = int(np.prod(dataset.observation_shape))
        with torch.random.fork_rng():
            torch.manual_seed(streams.init.initial_seed())
            encoder = nn.Sequential(
                nn.Flatten(),
                nn.Linear(dim, hp.hidden),
                nn.ReLU(),
                nn.Linear(hp.hidden, hp.num_codes),
            )
            decoder = nn.Sequential(
                nn.Linear(hp.num_codes, hp.hidden), nn.ReLU(), nn.Linear(hp.hidden, dim)
            )
        encoder, decoder = encoder.to(device), decoder.to(device)
        optimiser = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=hp.lr)

        def step(i: int) -> dict[str, torch.Tensor]:
            _, obs = dataset.sample(budget.batch_size, streams.data)
            x = torch.from_numpy(obs).to(device).flatten(1)
            loss = ((decoder(encoder(x)) - x) ** 2).sum(1).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            return {"loss": loss.detach()}

        state = {"encoder": encoder, "decoder": decoder, "optimiser": optimiser, "streams": streams}
        curve = loop.LossCurve(budget.steps)
        loop.run(self.name, [ctx], [seed], budget.steps, step, state, curve, save_every=1)
        return TorchAeMethodRepresentation(encoder)
