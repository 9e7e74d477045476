"""Modularity and explicitness (Ridgeway & Mozer 2018), as disentanglement_lib's
``compute_modularity_explicitness``.

- modularity_score: from the MI matrix m [D, K] between 20-bin histogram-discretised codes
  and factors (train split): per code, 1 - (sum_k m^2 - max_k m^2) / (max_k m^2 (K - 1)),
  i.e. how close the code's squared-MI profile is to a one-hot template; a code with zero
  MI scores 0; averaged over codes.
- explicitness_score_train / _test: per factor, the macro one-vs-rest ROC-AUC of a
  ``LogisticRegression()`` (scikit-learn defaults) predicting the factor from all codes,
  z-scored with the train mean and standard deviation; averaged over factors.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np
from scipy.stats import rankdata
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from disbench.api import EvalContext, Metric, MetricError, register
from disbench.metrics._utils import (
    check_pair,
    discrete_mutual_info,
    histogram_discretize,
    parallel_map,
    varying_factors,
)


def modularity(mutual_information: np.ndarray) -> float:
    """Mean over codes of the one-hot-template score of the squared MI matrix [D, K].
    With K = 1 every code with non-zero MI is perfectly modular (disentanglement_lib: NaN)."""
    squared = np.square(mutual_information)
    top = squared.max(axis=1)
    k = squared.shape[1]
    score = np.zeros(len(top))
    ok = top > 0
    if k == 1:
        score[ok] = 1.0
    else:
        score[ok] = 1.0 - (squared[ok].sum(axis=1) - top[ok]) / (top[ok] * (k - 1.0))
    return float(np.mean(score))


def _macro_auc(classes: np.ndarray, y: np.ndarray, proba: np.ndarray) -> float:
    """Mean one-vs-rest ROC-AUC over the classes that occur in ``y`` next to other classes.

    Each AUC is the Mann-Whitney statistic on average ranks (ties count one half), the
    same number as ``roc_auc_score``. This equals disentanglement_lib's
    ``roc_auc_score(MultiLabelBinarizer(y), proba)`` whenever every class of the classifier
    occurs in ``y`` (otherwise disentanglement_lib fails).
    """
    ranks = rankdata(proba, axis=0)
    aucs = []
    for c, column in zip(classes, ranks.T, strict=True):
        positive = y == c
        n_pos = int(positive.sum())
        n_neg = len(y) - n_pos
        if n_pos and n_neg:
            aucs.append((column[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    return float(np.mean(aucs)) if aucs else 0.5


def explicitness_per_factor(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> tuple[float, float]:
    """(train AUC, test AUC) of a default logistic regression on normalised codes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LogisticRegression().fit(x_train, y_train)
    proba_train, proba_test = clf.predict_proba(x_train), clf.predict_proba(x_test)
    return (
        _macro_auc(clf.classes_, y_train, proba_train),
        _macro_auc(clf.classes_, y_test, proba_test),
    )


def modularity_explicitness(
    codes: np.ndarray,
    factors: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    num_bins: int = 20,
    n_jobs: int = 0,
) -> dict[str, float]:
    """Modularity and explicitness for codes [N, D] / integer factors [N, K], train and test.

    Degenerate input (disentanglement_lib raises on the first two):

    - a constant code has standard deviation 0: it is normalised to 0 instead of 0/0 = NaN
      (it carries no information either way) and has zero MI, so modularity 0;
    - a factor with a single value in the train sample cannot train a classifier: it is
      left out of explicitness (its MI column is 0 and stays in modularity, as in
      disentanglement_lib); none varying: :class:`MetricError`;
    - a class missing from the test split is left out of that factor's macro AUC;
    - a single factor (K = 1): see :func:`modularity`;
    - NaN/inf codes or fewer than 2 points: :class:`MetricError`.
    """
    codes, factors = check_pair(codes, factors, "modularity_explicitness (train)")
    codes_test, factors_test = check_pair(
        codes_test, factors_test, "modularity_explicitness (test)", 1
    )
    keep = varying_factors(factors)
    if not keep.any():
        raise MetricError(
            "modularity_explicitness: every factor takes a single value in the train sample"
        )
    mi = discrete_mutual_info(histogram_discretize(codes, num_bins), factors)
    mean, std = codes.mean(axis=0), codes.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    x_train, x_test = (codes - mean) / std, (codes_test - mean) / std
    aucs = parallel_map(
        lambda k: explicitness_per_factor(x_train, factors[:, k], x_test, factors_test[:, k]),
        np.flatnonzero(keep),
        n_jobs,
    )
    return {
        "modularity_score": modularity(mi),
        "explicitness_score_train": float(np.mean([a[0] for a in aucs])),
        "explicitness_score_test": float(np.mean([a[1] for a in aucs])),
    }


@register
class ModularityExplicitnessMetric(Metric):
    name: ClassVar[str] = "modularity_explicitness"
    description: ClassVar[str] = (
        "Modularity (one-hot MI profile per code) and explicitness (logistic ROC-AUC)"
    )
    primary: ClassVar[str] = "modularity_score"
    defaults: ClassVar[dict[str, Any]] = {
        "num_train": 10000,
        "num_test": 5000,
        "num_bins": 20,
        "n_jobs": 0,
    }

    def compute(self, ctx: EvalContext, settings: dict[str, Any]) -> dict[str, float]:
        codes, factors = ctx.points("train", settings["num_train"])
        codes_test, factors_test = ctx.points("test", settings["num_test"])
        return modularity_explicitness(
            codes, factors, codes_test, factors_test, settings["num_bins"], settings["n_jobs"]
        )
