"""Unsupervised scores of the codes alone, as disentanglement_lib's ``unsupervised_metrics``.

From the codes' covariance C (train split, ``np.cov``, ddof 1):

- gaussian_total_correlation: KL between N(0, C) and the product of its marginals,
  0.5 (sum log diag C - log det C);
- gaussian_wasserstein_correlation: squared 2-Wasserstein distance between the same two
  Gaussians, 2 tr C - 2 tr sqrt(C diag(C)) (written with the symmetric square root of
  diag^1/2 C diag^1/2, which has the same trace and is stable);
- gaussian_wasserstein_correlation_norm: the latter divided by tr C;
- mutual_info_score: mean pairwise MI (nats) between 20-bin histogram-discretised codes.

Lower is "more factorised" for all four.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from disbench.api import EvalContext, Metric, MetricError, register
from disbench.metrics._utils import check_codes, discrete_mutual_info, histogram_discretize


def gaussian_total_correlation(cov: np.ndarray) -> float:
    """0.5 (sum log diag - log det) of a positive definite covariance."""
    sign, logdet = np.linalg.slogdet(cov)
    if sign <= 0 or not np.isfinite(logdet):
        raise MetricError(
            "unsupervised: the codes' covariance is singular (some codes are linear "
            "combinations of others), so the Gaussian total correlation is infinite"
        )
    return float(0.5 * (np.sum(np.log(np.diag(cov))) - logdet))


def gaussian_wasserstein_correlation(cov: np.ndarray) -> float:
    """2 tr C - 2 tr sqrt(C diag C); the eigenvalues of diag^1/2 C diag^1/2 are those of
    C diag C, so the trace of its symmetric square root is the same number."""
    s = np.sqrt(np.diag(cov))
    eig = np.linalg.eigvalsh(cov * s[:, None] * s[None, :])
    return float(2 * np.trace(cov) - 2 * np.sum(np.sqrt(np.clip(eig, 0, None))))


def unsupervised(codes: np.ndarray, num_bins: int = 20) -> dict[str, float]:
    """The four scores for codes [N, D].

    Degenerate input (disentanglement_lib gives NaN, inf or a division by zero):

    - exactly constant codes are left out of the covariance scores (their log variance
      is -inf); if every code is constant, both Gaussian scores are 0 and the
      normalised Wasserstein score is 0 (no variance to normalise by);
    - codes that are linear combinations of others (a singular covariance): the total
      correlation is infinite, so :class:`MetricError`;
    - a single code (D = 1): every score is 0 (nothing to be correlated with);
    - NaN/inf codes or fewer than 2 points: :class:`MetricError`.
    """
    codes = check_codes(codes, "unsupervised")
    d = codes.shape[1]
    varying = codes[:, codes.var(axis=0) > 0]
    if varying.shape[1] == 0:
        tc = wc = wc_norm = 0.0
    else:
        cov = np.atleast_2d(np.cov(varying, rowvar=False))
        tc = gaussian_total_correlation(cov)
        wc = gaussian_wasserstein_correlation(cov)
        wc_norm = wc / float(np.trace(cov))
    mi = 0.0
    if d > 1:
        binned = histogram_discretize(codes, num_bins)
        matrix = discrete_mutual_info(binned, binned)
        np.fill_diagonal(matrix, 0)
        mi = float(matrix.sum() / (d * d - d))
    return {
        "gaussian_total_correlation": tc,
        "gaussian_wasserstein_correlation": wc,
        "gaussian_wasserstein_correlation_norm": wc_norm,
        "mutual_info_score": mi,
    }


@register
class UnsupervisedMetric(Metric):
    name: ClassVar[str] = "unsupervised"
    description: ClassVar[str] = (
        "Gaussian total correlation, Wasserstein correlation and mean MI of the codes"
    )
    primary: ClassVar[str] = "gaussian_total_correlation"
    defaults: ClassVar[dict[str, Any]] = {"num_train": 10000, "num_bins": 20}
    higher_is_better: ClassVar[bool] = False

    def compute(self, ctx: EvalContext, settings: dict[str, Any]) -> dict[str, float]:
        codes, _ = ctx.points("train", settings["num_train"])
        return unsupervised(codes, settings["num_bins"])
