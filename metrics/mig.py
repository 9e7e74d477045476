"""Mutual Information Gap (Chen et al. 2018), as disentanglement_lib's ``_compute_mig``.

Codes are histogram-discretised (20 equal-width bins over each code's train range),
factors are used as they are; MI is the plug-in estimate in nats; each factor's gap
between its best and second-best code is divided by the factor's empirical entropy,
and the gaps are averaged over factors. Uses the train split only.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from disbench.api import EvalContext, Metric, MetricError, register
from disbench.metrics._utils import (
    check_pair,
    discrete_entropy,
    discrete_mutual_info,
    histogram_discretize,
    varying_factors,
)


def mig(codes: np.ndarray, factors: np.ndarray, num_bins: int = 20) -> dict[str, float]:
    """``{"discrete_mig": ...}`` for codes [N, D] and integer factors [N, K].

    Degenerate input (disentanglement_lib gives IndexError or NaN):

    - a single code dimension (D = 1): the second-best MI is taken as 0, so each factor
      scores I(z; v_k) / H(v_k) (the gap to an absent second code);
    - a factor with a single value in the sample has zero entropy and no gap to measure:
      it is left out of the average; if no factor varies, :class:`MetricError`;
    - a constant code has zero MI with every factor (it falls into one bin);
    - NaN/inf codes or fewer than 2 points: :class:`MetricError`.
    """
    codes, factors = check_pair(codes, factors, "mig")
    keep = varying_factors(factors)
    if not keep.any():
        raise MetricError("mig: every factor takes a single value in the sample")
    factors = factors[:, keep]
    m = discrete_mutual_info(histogram_discretize(codes, num_bins), factors)
    if m.shape[0] == 1:
        m = np.vstack([m, np.zeros_like(m)])
    top = np.sort(m, axis=0)[::-1]
    return {"discrete_mig": float(np.mean((top[0] - top[1]) / discrete_entropy(factors)))}


@register
class MigMetric(Metric):
    name: ClassVar[str] = "mig"
    description: ClassVar[str] = (
        "Mutual Information Gap (histogram MI, normalised by factor entropy)"
    )
    primary: ClassVar[str] = "discrete_mig"
    defaults: ClassVar[dict[str, Any]] = {"num_train": 10000, "num_bins": 20}

    def compute(self, ctx: EvalContext, settings: dict[str, Any]) -> dict[str, float]:
        codes, factors = ctx.points("train", settings["num_train"])
        return mig(codes, factors, settings["num_bins"])
