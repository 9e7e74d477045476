"""``proc_dsprites``: a procedural recreation of dSprites' factor grid, rendered on demand.

Same factors, value counts and ranges as the published file (and the same factor order as
disentanglement_lib's ``dsprites_full``, which drops the constant colour): shape 3 (square,
ellipse, heart), scale 6 (0.5 to 1), orientation 40 (0 to 2 pi, both ends included as in the
file), posX 32 and posY 32 (0 to 1). Images are 64x64 binary: a pixel is on when its centre
lies inside the sprite. The geometry (sprite size, position margins, ellipse aspect, heart
curve) is our own choice, so pixels differ from the published file; factor structure and
grid index arithmetic are the same. posX moves the sprite right (image columns), posY moves it
down (image rows).

There is one renderer, written in torch: ``render_torch`` draws a batch directly on the
training device and ``render`` is the same code on the CPU, so the two always agree.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch

from disbench.api import GroundTruthDataset, Kind, register

FACTOR_NAMES = ("shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES = (3, 6, 40, 32, 32)
SHAPES = ("square", "ellipse", "heart")
RESOLUTION = 64
SPRITE_SIZE = 18.0  # pixels: side of the square at scale 1
CENTRE_MIN, CENTRE_MAX = 12.0, 52.0  # pixel range of the sprite centre over posX / posY
ELLIPSE_AXES = (0.32, 0.64)  # semi-axes (x, y) in units of the sprite size
HEART_SCALE = 0.45  # the heart curve spans about [-1.14, 1.14] before scaling


def dsprites_factor_values(factors: np.ndarray) -> np.ndarray:
    """The published ``latents_values`` for factor indices (shape, scale, orient., posX, posY)."""
    f = np.asarray(factors, dtype=np.float64)
    return np.stack(
        [
            f[:, 0] + 1.0,  # the file labels shapes 1, 2, 3
            0.5 + 0.1 * f[:, 1],
            f[:, 2] * (2 * np.pi / 39),
            f[:, 3] / 31,
            f[:, 4] / 31,
        ],
        axis=1,
    )


@register
class ProcDSprites(GroundTruthDataset):
    """Binary 2D sprites: shape, scale, orientation, posX, posY on dSprites' exact grid."""

    name: ClassVar[str] = "proc_dsprites"

    kind: ClassVar[Kind] = "procedural"
    description: ClassVar[str] = (
        "procedural recreation of dSprites' grid (shape 3, scale 6, orientation 40, posX 32, "
        "posY 32); 64x64 binary, rendered on demand"
    )

    def __init__(self) -> None:
        self.factor_names = FACTOR_NAMES
        self.factor_sizes = FACTOR_SIZES
        self.observation_shape = (1, RESOLUTION, RESOLUTION)

    def factor_values(self, factors: np.ndarray) -> np.ndarray:
        return dsprites_factor_values(factors)

    def render(self, factors: np.ndarray) -> np.ndarray:
        factors = np.asarray(factors, dtype=np.int64)
        self.check_factors(factors)
        return self.render_torch(torch.from_numpy(factors), "cpu").numpy()

    def render_torch(self, factors: torch.Tensor, device: torch.device | str) -> torch.Tensor:
        f = factors.to(device=device, dtype=torch.float32)
        size = SPRITE_SIZE * (0.5 + 0.1 * f[:, 1])
        angle = f[:, 2] * (2 * math.pi / 39)
        step = (CENTRE_MAX - CENTRE_MIN) / 31
        cx, cy = CENTRE_MIN + step * f[:, 3], CENTRE_MIN + step * f[:, 4]
        grid = torch.arange(RESOLUTION, device=device, dtype=torch.float32) + 0.5
        dx = (grid[None, None, :] - cx[:, None, None]) / size[:, None, None]  # [n, 1, W]
        dy = (grid[None, :, None] - cy[:, None, None]) / size[:, None, None]  # [n, H, 1]
        cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
        u = cos * dx + sin * dy  # sprite coordinates: the canvas rotated back by the angle
        v = -sin * dx + cos * dy  # (v points down the image)
        inside = torch.empty(u.shape, dtype=torch.bool, device=device)
        for kind in range(len(SHAPES)):  # each row is drawn by its own shape only
            rows = (factors[:, 0] == kind).nonzero().squeeze(1).to(device)
            if len(rows):
                inside[rows] = _inside(kind, u[rows], v[rows])
        return inside.to(torch.float32)[:, None]


def _inside(kind: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Whether sprite coordinates (u right, v down; sprite size 1) fall inside the shape."""
    if kind == 0:  # square
        return torch.maximum(u.abs(), v.abs()) <= 0.5
    if kind == 1:  # ellipse, long axis vertical
        return (u / ELLIPSE_AXES[0]) ** 2 + (v / ELLIPSE_AXES[1]) ** 2 <= 1.0
    hx, hy = u / HEART_SCALE, -v / HEART_SCALE - 0.1  # heart curve: lobes up, point down
    return (hx**2 + hy**2 - 1) ** 3 - hx**2 * hy**3 <= 0.0
