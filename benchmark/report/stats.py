"""The leaderboard's statistics: mean ranks, the best row's bootstrap significance, and
whether a training loss was still falling. Numbers only; :mod:`.wording` says them."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy import stats


class Row(Protocol):
    """What the statistics read of a leaderboard row (``pooling.Row``): its label and its
    primary values per metric."""

    label: str
    values: dict[str, list[float]]

    def median(self, metric: str) -> float | None: ...


FALLING = 0.02  # a loss that fell by more than 2% over the last fifth of training
BOOTSTRAP_RESAMPLES = 9999
SIGNIFICANCE_LEVEL = 0.95


@dataclass
class Significance:
    best: str
    runner_up: str
    low: float
    high: float

    @property
    def significant(self) -> bool:
        return self.low > 0


def still_falling(curve: list[dict[str, float]] | None) -> bool:
    """Whether the loss fell by more than ``FALLING`` (relative) over the last fifth of the
    recorded curve: training stopped while the model was still improving fast."""
    if not curve or len(curve) < 5 or "loss" not in curve[0]:
        return False
    losses = [float(p["loss"]) for p in curve]
    start = losses[int(0.8 * (len(losses) - 1))]
    return start > 0 and (start - losses[-1]) / start > FALLING


def mean_ranks(dataset: str, rows: list[Row], ranked: list[str]) -> dict[tuple[str, str], float]:
    """Mean over the ranked metrics of each row's rank by median (1 best, ties averaged)."""
    per_row: dict[str, list[float]] = defaultdict(list)
    for metric in ranked:
        scored = [(r.label, r.median(metric)) for r in rows if r.median(metric) is not None]
        if not scored:
            continue
        order = stats.rankdata([-m for _, m in scored], method="average")
        for (label, _), rank in zip(scored, order, strict=True):
            per_row[label].append(float(rank))
    return {(dataset, label): float(np.mean(r)) for label, r in per_row.items()}


def significance(rows: list[Row], metric: str) -> Significance | None:
    """Best row against the runner-up (by median) on ``metric``: a percentile bootstrap
    interval of the difference of medians, resampling each row's seeds."""
    scored = [r for r in rows if len(r.values.get(metric, [])) >= 2]
    if len(scored) < 2:
        return None
    scored.sort(key=lambda r: (-(r.median(metric) or 0.0), r.label))
    best, second = scored[0], scored[1]
    a, b = np.asarray(best.values[metric]), np.asarray(second.values[metric])
    if np.ptp(np.r_[a, b]) == 0:
        return Significance(best.label, second.label, 0.0, 0.0)
    res = stats.bootstrap(
        (a, b),
        lambda x, y, axis=-1: np.median(x, axis=axis) - np.median(y, axis=axis),
        n_resamples=BOOTSTRAP_RESAMPLES,
        confidence_level=SIGNIFICANCE_LEVEL,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(0),
    )
    low, high = res.confidence_interval
    return Significance(best.label, second.label, float(low), float(high))
