"""Mutual Information Gap (Chen et al. 2018), disentanglement_lib's ``_compute_mig``.

Codes are histogram-discretised (20 equal-width bins over each code's train range),
factors are used as they are; MI is the plug-in estimate in nats; each factor's gap
between its best and second-best code is divided by the factor's empirical entropy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmark.registry import register_metric
from metrics._utils import discrete_entropy, discrete_mutual_info, histogram_discretize
from metrics.base import EvalContext, Metric, MetricError


def mig(codes: np.ndarray, factors: np.ndarray, num_bins: int = 20) -> dict[str, float]:
    """``{"discrete_mig": ...}`` for codes [N, D] and integer factors [N, K].

    Degenerate input: fewer than two code dimensions has no gap, and a factor with a
    single value has zero entropy; both raise :class:`MetricError` instead of
    disentanglement_lib's IndexError / NaN.
    """
    if codes.shape[1] < 2:
        raise MetricError("MIG needs at least 2 code dimensions (the gap is undefined)")
    entropy = discrete_entropy(factors)
    if (entropy <= 0).any():
        raise MetricError("MIG: a factor takes a single value in the sample (zero entropy)")
    m = discrete_mutual_info(histogram_discretize(codes, num_bins), factors)
    top = np.sort(m, axis=0)[::-1]
    return {"discrete_mig": float(np.mean((top[0] - top[1]) / entropy))}


def _compute(ctx: EvalContext, settings: dict[str, Any]) -> dict[str, float]:
    codes, factors = ctx.points("train", settings["num_train"])
    return mig(codes, factors, settings["num_bins"])


METRIC = register_metric(
    Metric(
        name="mig",
        description="Mutual Information Gap (histogram MI, normalised by factor entropy)",
        primary="discrete_mig",
        defaults={"num_train": 10000, "num_bins": 20},
        compute=_compute,
    )
)
