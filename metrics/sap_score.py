"""Separated Attribute Predictability (Kumar et al. 2018), as disentanglement_lib's
``_compute_sap``.

A score matrix S [D, K] rates how well each single code predicts each factor; SAP is the
mean over factors of the gap between the best and second-best code.

- discrete factors (the default, ``continuous_factors=False``): S[j, k] = test accuracy of
  ``LinearSVC(C=0.01, class_weight="balanced")`` trained on code j alone. A 1-D one-vs-rest
  linear classifier cannot isolate middle classes, so even a perfect code scores about
  1/num_values; that is the published definition, kept for comparability.
- continuous factors: S[j, k] = squared Pearson correlation on the train split (0 for a
  code with variance <= 1e-12).
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC

from disbench.api import EvalContext, Metric, MetricError, register
from disbench.metrics._utils import check_pair, parallel_map, varying_factors


def _accuracy(code: np.ndarray, y: np.ndarray, code_test: np.ndarray, y_test: np.ndarray) -> float:
    """Test accuracy of the 1-D linear SVM. ``dual="auto"`` picks the primal solver here
    (more points than features), which is deterministic, so no random_state is needed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LinearSVC(C=0.01, class_weight="balanced").fit(code[:, None], y)
    return float(np.mean(clf.predict(code_test[:, None]) == y_test))


def score_matrix(
    codes: np.ndarray,
    factors: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    continuous_factors: bool = False,
    n_jobs: int = 0,
) -> np.ndarray:
    """S [D, K]: how well each code alone predicts each factor (see the module docstring)."""
    d, k = codes.shape[1], factors.shape[1]
    if continuous_factors:
        zc = codes - codes.mean(axis=0)
        zf = factors - factors.mean(axis=0)
        cov = zc.T @ zf / (len(codes) - 1)
        var_c = np.einsum("ij,ij->j", zc, zc) / (len(codes) - 1)
        var_f = np.einsum("ij,ij->j", zf, zf) / (len(codes) - 1)
        out = np.zeros((d, k))
        ok = var_c > 1e-12
        out[ok] = cov[ok] ** 2 / (var_c[ok, None] * var_f[None, :])
        return out
    pairs = [(j, m) for j in range(d) for m in range(k)]
    acc = parallel_map(
        lambda p: _accuracy(
            codes[:, p[0]], factors[:, p[1]], codes_test[:, p[0]], factors_test[:, p[1]]
        ),
        pairs,
        n_jobs,
    )
    return np.array(acc).reshape(d, k)


def sap(
    codes: np.ndarray,
    factors: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    continuous_factors: bool = False,
    n_jobs: int = 0,
) -> dict[str, float]:
    """``{"SAP_score": ...}`` for codes [N, D] / integer factors [N, K], train and test.

    Degenerate input (disentanglement_lib gives IndexError, ValueError or NaN):

    - a single code (D = 1): the second-best score is taken as 0, so SAP is the mean
      best score;
    - a factor with a single value in the train sample (no classifier can be trained,
      zero variance) is left out of the average; none varying: :class:`MetricError`;
    - a constant code scores 0 (continuous) or predicts one class (discrete);
    - NaN/inf codes or fewer than 2 points: :class:`MetricError`.
    """
    codes, factors = check_pair(codes, factors, "sap_score (train)")
    codes_test, factors_test = check_pair(codes_test, factors_test, "sap_score (test)", 1)
    keep = varying_factors(factors)
    if not keep.any():
        raise MetricError("sap_score: every factor takes a single value in the train sample")
    matrix = score_matrix(
        codes, factors[:, keep], codes_test, factors_test[:, keep], continuous_factors, n_jobs
    )
    if matrix.shape[0] == 1:
        matrix = np.vstack([matrix, np.zeros_like(matrix)])
    top = np.sort(matrix, axis=0)
    return {"SAP_score": float(np.mean(top[-1] - top[-2]))}


@register
class SapScoreMetric(Metric):
    name: ClassVar[str] = "sap_score"
    description: ClassVar[str] = (
        "SAP: gap between the two codes that best predict each factor on their own"
    )
    primary: ClassVar[str] = "SAP_score"
    defaults: ClassVar[dict[str, Any]] = {
        "num_train": 10000,
        "num_test": 5000,
        "continuous_factors": False,
        "n_jobs": 0,
    }

    def compute(self, ctx: EvalContext, settings: dict[str, Any]) -> dict[str, float]:
        codes, factors = ctx.points("train", settings["num_train"])
        codes_test, factors_test = ctx.points("test", settings["num_test"])
        return sap(
            codes,
            factors,
            codes_test,
            factors_test,
            bool(settings["continuous_factors"]),
            settings["n_jobs"],
        )
