"""``mig_sup``: MIG-sup (Li et al., ICLR 2020), MIG's transpose.

For each code j, with I[j, k] the mutual information between the histogram-discretised
code and factor k, normalised by the factor's entropy H(v_k): the gap between the largest
and the second largest I[j, :]; the score is the mean gap over the codes. A code that
carries one factor alone scores 1, a code that mixes two equally 0. The discretisation is
disentanglement_lib's (``num_bins`` equal bins over each code's range), as in MIG.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from sklearn.metrics import mutual_info_score

from disbench.api import EvalContext, Metric, MetricError, register


def discretise(code: np.ndarray, num_bins: int) -> np.ndarray:
    """``num_bins`` equal bins over the code's range (disentanglement_lib's histogram)."""
    return np.digitize(code, np.histogram(code, num_bins)[1][:-1])


def mig_sup(codes: np.ndarray, factors: np.ndarray, num_bins: int = 20) -> dict[str, float]:
    """MIG-sup of codes [n, D] for integer factors [n, K] (constant factors left out)."""
    codes, factors = np.asarray(codes, dtype=np.float64), np.asarray(factors)
    factors = factors[:, [len(np.unique(f)) > 1 for f in factors.T]]
    if factors.shape[1] < 2 or len(codes) < 2:
        raise MetricError("mig_sup: needs two points and two factors that vary in the sample")
    binned = [discretise(c, num_bins) for c in codes.T]
    mi = np.array([[mutual_info_score(f, c) for f in factors.T] for c in binned])  # [D, K]
    entropy = np.array([mutual_info_score(f, f) for f in factors.T])
    normalised = mi / entropy[None, :]
    top = np.sort(normalised, axis=1)[:, ::-1]
    return {"mig_sup": float(np.mean(top[:, 0] - top[:, 1]))}


@register
class MIGSup(Metric):
    name: ClassVar[str] = "mig_sup"
    description: ClassVar[str] = (
        "MIG-sup (Li et al. 2020): per code, the MI gap between its two top factors"
    )
    primary: ClassVar[str] = "mig_sup"
    defaults: ClassVar[dict[str, Any]] = {"num_train": 10000, "num_bins": 20}

    def compute(self, ctx: EvalContext, settings: dict[str, Any]) -> dict[str, float]:
        codes, factors = ctx.points("train", settings["num_train"])
        return mig_sup(codes, factors, settings["num_bins"])
