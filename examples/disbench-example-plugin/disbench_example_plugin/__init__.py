"""An out-of-tree method: a fixed Gaussian random projection of the pixels.

Installing this package registers ``random_projection`` through the ``disbench.methods``
entry point; ``disbench list`` then shows it and ``[methods."*"]`` profiles include it.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from disbench.api import (
    FitContext,
    GroundTruthDataset,
    Method,
    Representation,
    TrainBudget,
    register,
)


class RandomProjection(Representation):
    def __init__(self, weights: np.ndarray) -> None:
        self.weights = weights

    def encode(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64).reshape(len(x), -1) @ self.weights


@register
class RandomProjectionMethod(Method):
    name: ClassVar[str] = "random_projection"
    description: ClassVar[str] = "example plugin: fixed Gaussian random projection of the pixels"
    defaults: ClassVar[dict[str, Any]] = {"num_codes": 10}

    def fit(
        self,
        dataset: GroundTruthDataset,
        hparams: dict[str, Any],
        seed: int,
        budget: TrainBudget,
        ctx: FitContext,
    ) -> Representation:
        dim = int(np.prod(dataset.observation_shape))
        rng = np.random.default_rng(seed)
        weights = rng.normal(size=(dim, hparams["num_codes"])) / np.sqrt(dim)
        return RandomProjection(weights)
