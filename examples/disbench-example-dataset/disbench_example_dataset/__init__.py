"""``two_bars``: a horizontal and a vertical bar on a 64x64 grey canvas.

Factors: ``row`` (where the horizontal bar is), ``column`` (where the vertical bar is) and
``thickness`` (of both bars). Rendered on demand in numpy; the harness turns batches into
tensors on the training device itself.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from disbench.api import GroundTruthDataset, Kind, register

SIZE = 64


@register
class TwoBars(GroundTruthDataset):
    name: ClassVar[str] = "two_bars"
    kind: ClassVar[Kind] = "procedural"
    description: ClassVar[str] = (
        "example plugin: a horizontal and a vertical bar (row, column, thickness)"
    )
    version: ClassVar[int] = 1

    def __init__(self, positions: int = 16, thicknesses: int = 3) -> None:
        if not 2 <= positions <= 32 or not 1 <= thicknesses <= 4:
            raise ValueError("two_bars: need 2 <= positions <= 32 and 1 <= thicknesses <= 4")
        self.factor_names = ("row", "column", "thickness")
        self.factor_sizes = (positions, positions, thicknesses)
        self.observation_shape = (1, SIZE, SIZE)
        # bar starts spread evenly over the canvas, leaving room for the thickest bar
        self.starts = np.linspace(4, SIZE - 4 - 2 * thicknesses, positions).round().astype(int)

    def render(self, factors: np.ndarray) -> np.ndarray:
        factors = np.asarray(factors, dtype=np.int64)
        self.check_factors(factors)
        grid = np.arange(SIZE)
        row = self.starts[factors[:, 0]][:, None]
        col = self.starts[factors[:, 1]][:, None]
        width = 2 * (factors[:, 2][:, None] + 1)
        horizontal = (grid >= row) & (grid < row + width)  # [n, H]
        vertical = (grid >= col) & (grid < col + width)  # [n, W]
        image = horizontal[:, :, None] | vertical[:, None, :]
        return image[:, None].astype(np.float32)
