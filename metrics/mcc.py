"""Mean Correlation Coefficient, the score of nonlinear-ICA work and of Horan et al. 2021.

The absolute Pearson correlation between every code and every factor value is computed on
the train split; codes and factors are matched one-to-one to maximise the total absolute
correlation (Hungarian algorithm, ``scipy.optimize.linear_sum_assignment``); MCC is the
mean over factors of the matched correlation. It is invariant to permuting, rescaling
and flipping the sign of codes, and rewards codes that are *linearly* related to the
factors. Factor values are the dataset's real values (``factor_values``: angles, scales,
positions) when a dataset is known, else the integer factor indices.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from scipy.optimize import linear_sum_assignment

from disbench.api import EvalContext, Metric, MetricError, register
from disbench.metrics._utils import check_codes


def abs_correlation(codes: np.ndarray, values: np.ndarray) -> np.ndarray:
    """|Pearson r| [D, K]; 0 wherever a code or a factor is constant."""
    zc = codes - codes.mean(axis=0)
    zv = values - values.mean(axis=0)
    nc = np.sqrt(np.einsum("ij,ij->j", zc, zc))
    nv = np.sqrt(np.einsum("ij,ij->j", zv, zv))
    denom = np.outer(nc, nv)
    out = np.zeros(denom.shape)
    np.divide(np.abs(zc.T @ zv), denom, out=out, where=denom > 0)
    return np.clip(out, 0.0, 1.0)


def mcc(codes: np.ndarray, values: np.ndarray) -> dict[str, float]:
    """``{"MCC": ...}`` for codes [N, D] and real factor values [N, K].

    Shapes: with D > K the extra codes stay unmatched; with D < K the factors left without
    a code count as correlation 0, so the score is the sum of matched correlations / K.

    Degenerate input: a constant code correlates 0 with everything; a constant factor is
    left out (it has no variation to capture); if every factor is constant, or the codes
    are NaN/inf, or there are fewer than 2 points, :class:`MetricError`.
    """
    codes = check_codes(codes, "mcc")
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or len(values) != len(codes):
        raise MetricError(
            f"mcc: factor values must have shape [{len(codes)}, K], got {values.shape}"
        )
    if not np.isfinite(values).all():
        raise MetricError("mcc: factor values contain NaN or infinite values")
    values = values[:, values.var(axis=0) > 0]
    if values.shape[1] == 0:
        raise MetricError("mcc: every factor takes a single value in the sample")
    corr = abs_correlation(codes, values)
    rows, cols = linear_sum_assignment(corr, maximize=True)
    return {"MCC": float(corr[rows, cols].sum() / values.shape[1])}


@register
class MccMetric(Metric):
    name: ClassVar[str] = "mcc"
    description: ClassVar[str] = (
        "Mean absolute correlation of codes and factors after optimal matching"
    )
    primary: ClassVar[str] = "MCC"
    defaults: ClassVar[dict[str, Any]] = {"num_train": 10000}

    def compute(self, ctx: EvalContext, settings: dict[str, Any]) -> dict[str, float]:
        codes, factors = ctx.points("train", settings["num_train"])
        values = factors if ctx.dataset is None else ctx.dataset.factor_values(factors)
        return mcc(codes, values)
