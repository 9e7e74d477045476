"""``blobs``: a small procedural dataset, a Gaussian blob on a black 64x64 canvas.

Three independent factors (x position, y position, size) that a person and every
method can see; cheap enough to render that the smoke profile runs in seconds.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from disbench.api import GroundTruthDataset, Kind, register


@register
class Blobs(GroundTruthDataset):
    """Gaussian blob: posX and posY on a grid over [0.2, 0.8] of the canvas, 4 widths."""

    name: ClassVar[str] = "blobs"

    kind: ClassVar[Kind] = "procedural"
    description: ClassVar[str] = (
        "procedural Gaussian blob, factors posX 16, posY 16, size 4; 64x64x1"
    )

    def __init__(self, positions: int = 16, sizes: int = 4, resolution: int = 64) -> None:
        if positions < 2 or sizes < 1 or resolution < 8:
            raise ValueError("blobs: need positions >= 2, sizes >= 1, resolution >= 8")
        self.factor_names = ("posX", "posY", "size")
        self.factor_sizes = (positions, positions, sizes)
        self.observation_shape = (1, resolution, resolution)

    def render_torch(self, factors: torch.Tensor, device: torch.device | str) -> torch.Tensor:
        f = factors.to(device=device, dtype=torch.float32)
        res = self.observation_shape[1]
        px, py, sz = self.factor_sizes
        cx = (0.2 + 0.6 * f[:, 0] / (px - 1)) * res
        cy = (0.2 + 0.6 * f[:, 1] / (py - 1)) * res
        sigma = res * (0.04 + 0.03 * f[:, 2] / max(sz - 1, 1))
        grid = torch.arange(res, device=device, dtype=torch.float32) + 0.5
        dx = (grid[None, None, :] - cx[:, None, None]) ** 2
        dy = (grid[None, :, None] - cy[:, None, None]) ** 2
        img = torch.exp(-(dx + dy) / (2 * sigma[:, None, None] ** 2))
        return img[:, None]

    def render(self, factors: np.ndarray) -> np.ndarray:
        factors = np.asarray(factors, dtype=np.int64)
        self.check_factors(factors)
        return self.render_torch(torch.from_numpy(factors), "cpu").numpy()
