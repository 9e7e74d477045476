"""Interventional Robustness Score (Suter et al. 2019), as disentanglement_lib's
``compute_irs`` / ``scalable_disentanglement_score``.

Factors are discretised with the same 20-bin histogram as the codes elsewhere (so a
factor with more than 20 values has merged bins). Exactly constant codes are dropped.
For each factor and each of its values, the ``diff_quantile`` quantile (0.99; the paper's
version is 1.0) of each code's absolute deviation from its mean within that value is
averaged over values, divided by the code's largest deviation from its overall mean;
IRS matrix = 1 - that. Each code's score is its best factor's entry; IRS is the mean over
codes weighted by their largest deviation. Uses the train split only.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from disbench.api import EvalContext, Metric, register
from disbench.metrics._utils import check_pair, histogram_discretize


def irs_matrix(factors: np.ndarray, codes: np.ndarray, diff_quantile: float = 0.99) -> np.ndarray:
    """The IRS matrix [D, K] for discrete factors [N, K] and non-constant codes [N, D]."""
    max_dev = np.max(np.abs(codes - codes.mean(axis=0)), axis=0)
    cum = np.zeros((codes.shape[1], factors.shape[1]))
    for k in range(factors.shape[1]):
        order = np.argsort(factors[:, k], kind="stable")
        values, starts = np.unique(factors[order, k], return_index=True)
        for group in np.split(order, starts[1:]):
            sub = codes[group]
            cum[:, k] += np.percentile(np.abs(sub - sub.mean(axis=0)), diff_quantile * 100, axis=0)
        cum[:, k] /= len(values)
    return 1.0 - cum / max_dev[:, None]


def irs(
    codes: np.ndarray, factors: np.ndarray, diff_quantile: float = 0.99, num_bins: int = 20
) -> dict[str, float]:
    """``{"IRS": ..., "num_active_dims": ...}`` for codes [N, D] and integer factors [N, K].

    ``num_active_dims`` is the number of non-constant codes. disentanglement_lib reports
    ``np.sum(active_mus)``, the sum of the active codes' *values* (it can be negative);
    that is a bug, and the count is reported here under the same key. IRS itself equals
    disentanglement_lib's.

    Degenerate input: all codes constant gives IRS 0 and 0 active dims (as in
    disentanglement_lib); a single-valued factor is harmless (one group, whose
    deviation is the code's own spread); NaN/inf codes or fewer than 2 points:
    :class:`MetricError`.
    """
    codes, factors = check_pair(codes, factors, "irs")
    active = codes.var(axis=0) > 0
    if not active.any():
        return {"IRS": 0.0, "num_active_dims": 0.0}
    latents = codes[:, active]
    matrix = irs_matrix(histogram_discretize(factors, num_bins), latents, diff_quantile)
    max_dev = np.max(np.abs(latents - latents.mean(axis=0)), axis=0)
    score = np.average(matrix.max(axis=1), weights=max_dev)
    return {"IRS": float(score), "num_active_dims": float(active.sum())}


@register
class IrsMetric(Metric):
    name: ClassVar[str] = "irs"
    description: ClassVar[str] = (
        "Interventional Robustness Score (code stability under other factors' changes)"
    )
    primary: ClassVar[str] = "IRS"
    defaults: ClassVar[dict[str, Any]] = {"num_train": 10000, "diff_quantile": 0.99, "num_bins": 20}

    def compute(self, ctx: EvalContext, settings: dict[str, Any]) -> dict[str, float]:
        codes, factors = ctx.points("train", settings["num_train"])
        return irs(codes, factors, settings["diff_quantile"], settings["num_bins"])
