"""DCI: disentanglement, completeness, informativeness (Eastwood & Williams 2018), as
disentanglement_lib's ``_compute_dci``.

One gradient-boosted tree classifier per factor predicts the factor from all codes; the
absolute feature importances form the importance matrix R [D, K].

- disentanglement: per code, 1 - entropy (base K) of its row of R; averaged with weights
  = the code's share of total importance;
- completeness: per factor, 1 - entropy (base D) of its column; weighted by the factor's
  share;
- informativeness_train / _test: the classifiers' mean accuracy (not the paper's error).

Entropies are computed on R + 1e-11, as in disentanglement_lib (a perfect code scores
0.9999999993, not 1).

Modes (setting ``mode``):

- ``"exact"``: scikit-learn's ``GradientBoostingClassifier()`` with its defaults, exactly
  disentanglement_lib's learner, with an explicit ``random_state`` from the evaluation
  seed; the factors are fitted in parallel threads (``n_jobs``, 0 = one per core).
- ``"fast"``: the same boosting algorithm with splits searched between at most
  ``num_bins`` quantile bins of each code (:mod:`metrics._hist_boost`); about 20x faster.
  Its agreement with ``exact`` is measured in docs/metrics.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier

from benchmark.registry import register_metric
from metrics import _hist_boost
from metrics._utils import check_pair, parallel_map, varying_factors
from metrics.base import EvalContext, Metric, MetricError

MODES = ("exact", "fast")


def _normalised_entropy(p: np.ndarray, base: int) -> np.ndarray:
    """Entropy of each column of ``p`` (normalised to sum 1) in log base ``base``."""
    p = p / p.sum(axis=0, keepdims=True)
    return -np.sum(p * np.log(p), axis=0) / np.log(base)


def disentanglement(importance: np.ndarray) -> float:
    """Importance-weighted mean over codes of 1 - H_K(row). With K = 1 every code is
    trivially dedicated to the single factor and scores 1 (disentanglement_lib: NaN)."""
    k = importance.shape[1]
    per_code = np.ones(importance.shape[0])
    if k > 1:
        per_code = 1.0 - _normalised_entropy(importance.T + 1e-11, k)
    weights = importance if importance.sum() > 0 else np.ones_like(importance)
    return float(np.sum(per_code * weights.sum(axis=1) / weights.sum()))


def completeness(importance: np.ndarray) -> float:
    """Importance-weighted mean over factors of 1 - H_D(column). With D = 1 each factor is
    captured by the single code and scores 1 (disentanglement_lib: NaN)."""
    d = importance.shape[0]
    per_factor = np.ones(importance.shape[1])
    if d > 1:
        per_factor = 1.0 - _normalised_entropy(importance + 1e-11, d)
    weights = importance if importance.sum() > 0 else np.ones_like(importance)
    return float(np.sum(per_factor * weights.sum(axis=0) / weights.sum()))


def _exact(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    random_state: int,
    n_jobs: int,
) -> tuple[np.ndarray, float, float]:
    def fit(k: int) -> tuple[np.ndarray, float, float]:
        model = GradientBoostingClassifier(random_state=random_state)
        model.fit(x_train, y_train[:, k])
        return (
            np.abs(model.feature_importances_),
            float(np.mean(model.predict(x_train) == y_train[:, k])),
            float(np.mean(model.predict(x_test) == y_test[:, k])),
        )

    # Most classes first: one tree per class and stage, so this balances the threads.
    order = np.argsort(
        [-len(np.unique(y_train[:, k])) for k in range(y_train.shape[1])], kind="stable"
    )
    results = dict(zip(order, parallel_map(fit, order, n_jobs), strict=True))
    fits = [results[k] for k in range(y_train.shape[1])]
    importance = np.stack([f[0] for f in fits], axis=1)
    return importance, float(np.mean([f[1] for f in fits])), float(np.mean([f[2] for f in fits]))


def _fast(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    num_bins: int,
    n_jobs: int,
) -> tuple[np.ndarray, float, float]:
    classes = [np.unique(y_train[:, k]) for k in range(y_train.shape[1])]
    labels = [np.searchsorted(c, y_train[:, k]) for k, c in enumerate(classes)]

    def fit(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        imp, pred_train, pred_test = _hist_boost.fit_predict(x_train, labels[k], x_test, num_bins)
        return imp, classes[k][pred_train], classes[k][pred_test]

    # One booster per factor (its values never depend on n_jobs or on other factors), most
    # classes first to balance the threads.
    order = np.argsort([-len(c) for c in classes], kind="stable")
    fitted = dict(zip(order, parallel_map(fit, order, n_jobs), strict=True))
    importance = np.stack([fitted[k][0] for k in range(len(classes))], axis=1)
    acc_train = np.array([np.mean(fitted[k][1] == y_train[:, k]) for k in range(len(classes))])
    acc_test = np.array([np.mean(fitted[k][2] == y_test[:, k]) for k in range(len(classes))])
    return importance, float(acc_train.mean()), float(acc_test.mean())


def dci(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    mode: str = "exact",
    random_state: int = 0,
    n_jobs: int = 0,
    num_bins: int = 32,
) -> dict[str, float]:
    """DCI scores for codes [N, D] and integer factors [N, K] (train and test splits).

    Degenerate input (disentanglement_lib raises or gives NaN):

    - a factor with a single value in the train sample cannot train a classifier: it is
      left out (of R and of informativeness); if no factor varies, :class:`MetricError`;
    - a single code (D = 1): completeness is 1 (see :func:`completeness`); with a single
      varying factor, disentanglement is 1 (see :func:`disentanglement`);
    - codes that never split a tree (all constant): R = 0, disentanglement = completeness
      = 0 (disentanglement_lib's uniform weights), informativeness = the majority rate;
    - NaN/inf codes, fewer than 2 points, mismatched D between splits: :class:`MetricError`.
    """
    if mode not in MODES:
        raise MetricError(f"dci: unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    codes_train, factors_train = check_pair(codes_train, factors_train, "dci (train)")
    codes_test, factors_test = check_pair(codes_test, factors_test, "dci (test)", min_points=1)
    if (
        codes_test.shape[1] != codes_train.shape[1]
        or factors_test.shape[1] != factors_train.shape[1]
    ):
        raise MetricError(
            f"dci: train codes/factors {codes_train.shape[1]}/{factors_train.shape[1]} columns but "
            f"test {codes_test.shape[1]}/{factors_test.shape[1]}"
        )
    keep = varying_factors(factors_train)
    if not keep.any():
        raise MetricError("dci: every factor takes a single value in the train sample")
    y_train, y_test = factors_train[:, keep], factors_test[:, keep]
    if mode == "exact":
        importance, acc_train, acc_test = _exact(
            codes_train, y_train, codes_test, y_test, random_state, n_jobs
        )
    else:
        importance, acc_train, acc_test = _fast(
            codes_train, y_train, codes_test, y_test, num_bins, n_jobs
        )
    return {
        "informativeness_train": acc_train,
        "informativeness_test": acc_test,
        "disentanglement": disentanglement(importance),
        "completeness": completeness(importance),
    }


def _compute(ctx: EvalContext, settings: dict[str, Any]) -> dict[str, float]:
    codes_train, factors_train = ctx.points("train", settings["num_train"])
    codes_test, factors_test = ctx.points("test", settings["num_test"])
    return dci(
        codes_train,
        factors_train,
        codes_test,
        factors_test,
        mode=settings["mode"],
        random_state=ctx.random_state("dci"),
        n_jobs=settings["n_jobs"],
        num_bins=settings["num_bins"],
    )


METRIC = register_metric(
    Metric(
        name="dci",
        description="DCI disentanglement, completeness, informativeness (boosted trees)",
        primary="disentanglement",
        defaults={
            "num_train": 10000,
            "num_test": 5000,
            "mode": "exact",
            "n_jobs": 0,
            "num_bins": 32,
        },
        compute=_compute,
    )
)
