"""Local-isometry (LI) score: how well a method's codes keep the distances between
neighbouring observations, up to one global scale (Horan, Richardson & Weiss 2021).

Horan et al. report an "LI" score per manifold and method, but its formula is not reachable
(their paper body and supplement could not be read). This definition is this project's:

1. Take ``num_train`` of the shared evaluation points and render their observations x
   (flattened pixels); the codes z are the shared codes. Repeated images are kept once
   (a pair at pixel distance 0 has no ratio).
2. Pair every point i with its ``neighbours`` nearest other observations j in pixel space.
3. Each pair's log ratio l_ij = log(|z_i - z_j| / |x_i - x_j|); the global scale is their
   median m (one scale for the whole map: the theory needs an isometry up to a constant).
4. LI = exp(-mean |l_ij - m|), in (0, 1].

Why this form: it is exactly 1 when every neighbour distance is scaled by the same factor
(an isometry up to scale, whatever that scale), it does not depend on the units of the
codes, it falls monotonically as an anisotropic stretch grows (each pair's log ratio moves
by an amount that grows with how much of the pair's direction is stretched), and a code
that merges neighbouring observations (ratio 0) drives it to 0, and LI is 0 when most
pairs are merged (no positive scale). exp(-x) of the mean
absolute log deviation reads as a typical multiplicative distortion: LI = 0.8 means
neighbour distances are off by a factor of about 1.25 from the global scale.

Pixel space is the space the theory's isometry is about (the map from factors to images);
neighbours are taken there, among observations only, so the score needs no factor values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from sklearn.neighbors import NearestNeighbors

from disbench.api import EvalContext, Metric, MetricError, register
from disbench.metrics._utils import check_codes


def local_isometry(
    codes: np.ndarray, observations: np.ndarray, neighbours: int
) -> dict[str, float]:
    """``{"LI": ..., "scale": ...}`` for codes [N, D] of observations [N, ...]."""
    codes = check_codes(codes, "local_isometry")
    x = np.asarray(observations, dtype=np.float64).reshape(len(observations), -1)
    if len(x) != len(codes):
        raise MetricError(f"local_isometry: {len(codes)} codes for {len(x)} observations")
    _, first = np.unique(x, axis=0, return_index=True)  # a repeated image has no ratio
    x, codes = x[np.sort(first)], codes[np.sort(first)]
    if len(x) <= neighbours:
        raise MetricError(
            f"local_isometry: needs more than neighbours={neighbours} distinct observations, "
            f"got {len(x)}"
        )
    _, idx = NearestNeighbors(n_neighbors=neighbours + 1, algorithm="brute").fit(x).kneighbors(x)
    anchors = np.repeat(np.arange(len(x)), neighbours)
    partners = np.concatenate([row[row != i][:neighbours] for i, row in enumerate(idx)])
    # Distances recomputed from differences: sklearn's |a|^2 + |b|^2 - 2ab form rounds.
    pixel = np.linalg.norm(x[anchors] - x[partners], axis=1)
    code_dist = np.linalg.norm(codes[anchors] - codes[partners], axis=1)
    ratio = code_dist / pixel
    if np.median(ratio) == 0:  # most neighbours merged: no positive scale to be isometric at
        return {"LI": 0.0, "scale": 0.0}
    # A merged pair (ratio 0) counts as the smallest positive ratio: it pulls LI towards 0.
    log_ratio = np.log(np.maximum(ratio, np.finfo(np.float64).tiny))
    centre = float(np.median(log_ratio))
    return {
        "LI": float(np.exp(-np.mean(np.abs(log_ratio - centre)))),
        "scale": float(np.exp(centre)),
    }


@register
class LocalIsometryMetric(Metric):
    name: ClassVar[str] = "local_isometry"
    description: ClassVar[str] = (
        "Local isometry: exp(-mean |log(code/pixel distance ratio) - median|) over pixel-space "
        "nearest neighbours (1 = distances kept up to one scale)"
    )
    primary: ClassVar[str] = "LI"
    defaults: ClassVar[dict[str, Any]] = {"num_train": 2000, "neighbours": 5}
    needs_dataset: ClassVar[bool] = True  # it renders the observations of the shared points
    # Not part of `names = "all"`: the studies that test Horan et al.'s claims name it, and
    # adding it to every study would change every committed run id.
    in_all: ClassVar[bool] = False

    @classmethod
    def sizes(cls, settings: Mapping[str, Any]) -> tuple[int, int]:
        """The shared train points it renders (it samples nothing of its own)."""
        return int(settings["num_train"]), 0

    def compute(self, ctx: EvalContext, settings: dict[str, Any]) -> dict[str, float]:
        if ctx.dataset is None:
            raise MetricError("local_isometry: needs the dataset to render the observations")
        codes, factors = ctx.points("train", settings["num_train"])
        _, first = np.unique(factors, axis=0, return_index=True)  # render each point once
        first = np.sort(first)
        observations = ctx.dataset.render(factors[first])
        return local_isometry(codes[first], observations, settings["neighbours"])
