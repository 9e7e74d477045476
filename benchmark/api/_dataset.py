"""The ground-truth dataset interface shared by every method and metric.

A dataset is a grid of discrete factors (``factor_sizes``) and a way to turn factor
indices into observations (float32, channels first, values in [0, 1]). Procedural
datasets render on demand, in numpy and directly on the torch device; datasets read
from published files look observations up by their grid index.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np

if TYPE_CHECKING:
    import torch

Kind = Literal["procedural", "published"]


class GroundTruthDataset(ABC):
    """Factors -> observations. Subclasses set the class attributes and ``render``.

    The constructor's keyword arguments are the dataset's parameters (a profile's
    ``{name = "blobs", positions = 8}``). Bump ``version`` whenever what a given set of
    parameters renders changes: it enters every run id, so no stale record is reused.
    """

    name: ClassVar[str]
    kind: ClassVar[Kind]
    description: ClassVar[str] = ""
    version: ClassVar[int] = 1
    factor_names: tuple[str, ...]
    factor_sizes: tuple[int, ...]
    observation_shape: tuple[int, int, int]  # (C, H, W)

    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    @property
    def num_observations(self) -> int:
        return int(np.prod(self.factor_sizes, dtype=np.int64))

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Factor indices, int64 [n, K], each factor drawn independently and uniformly."""
        return np.stack([rng.integers(0, s, size=n) for s in self.factor_sizes], axis=1).astype(
            np.int64
        )

    def factor_values(self, factors: np.ndarray) -> np.ndarray:
        """Real-valued factors for metrics that correlate codes with factor values (MCC)."""
        return np.asarray(factors, dtype=np.float64)

    @abstractmethod
    def render(self, factors: np.ndarray) -> np.ndarray:
        """Observations float32 [n, C, H, W] in [0, 1] for factor indices int [n, K]."""

    def render_torch(self, factors: torch.Tensor, device: torch.device | str) -> torch.Tensor:
        """Observations on ``device``; procedural datasets override this to render there."""
        import torch  # only methods that train with torch call this; the API stays torch-free

        obs = self.render(factors.detach().cpu().numpy())
        return torch.from_numpy(obs).to(device)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(factors [n, K], observations [n, C, H, W])."""
        factors = self.sample_factors(n, rng)
        return factors, self.render(factors)

    def index_of(self, factors: np.ndarray) -> np.ndarray:
        """Row-major (last factor fastest) index of each factor vector in the grid."""
        factors = np.asarray(factors, dtype=np.int64)
        self.check_factors(factors)
        return np.ravel_multi_index(tuple(factors.T), self.factor_sizes).astype(np.int64)

    def factors_of(self, index: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`index_of`."""
        return np.stack(np.unravel_index(np.asarray(index), self.factor_sizes), axis=1).astype(
            np.int64
        )

    def check_factors(self, factors: np.ndarray) -> None:
        if factors.ndim != 2 or factors.shape[1] != self.num_factors:
            raise ValueError(
                f"{self.name}: factors must have shape [n, {self.num_factors}], got {factors.shape}"
            )
        sizes = np.asarray(self.factor_sizes)
        if (factors < 0).any() or (factors >= sizes).any():
            raise ValueError(
                f"{self.name}: factor index out of range for sizes {self.factor_sizes}"
            )

    def describe(self) -> dict[str, object]:
        """What the run record and the leaderboard say about this dataset."""
        return {
            "name": self.name,
            "kind": self.kind,
            "factor_names": list(self.factor_names),
            "factor_sizes": list(self.factor_sizes),
            "observation_shape": list(self.observation_shape),
        }
