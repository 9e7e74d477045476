"""The statistics of ``disbench verify`` across hardware: the permutation p-value matches an
enumeration by hand, its false-alarm rate is what the docs state when the rerun is only
fresh seeds, and the count of flags over many scores decides the verdict."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from disbench.run.verify import LEVEL, Report, permutation_p


def _enumerated(a: list[float], b: list[float]) -> float:
    """Two-sided p of the difference of means over every split of the pooled values."""
    pooled, n = a + b, len(a)
    observed = abs(np.mean(a) - np.mean(b))
    splits = list(itertools.combinations(range(len(pooled)), n))
    extreme = 0
    for chosen in splits:
        x = [pooled[i] for i in chosen]
        y = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        extreme += abs(np.mean(x) - np.mean(y)) >= observed - 1e-12
    return extreme / len(splits)


def test_the_permutation_p_value_matches_an_enumeration() -> None:
    assert permutation_p([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]) == pytest.approx(2 / 20)
    assert permutation_p([1.0, 2.0, 3.0], [3.0, 1.0, 2.0]) == 1.0  # the same values
    for a, b in [
        ([1.0, 5.0, 3.0], [2.0, 4.0, 6.0]),
        ([0.1, 0.2, 0.9, 0.4], [0.3, 0.35, 0.45, 0.5]),
    ]:
        assert permutation_p(a, b) == pytest.approx(_enumerated(a, b))


def test_fresh_seeds_are_flagged_at_the_stated_rate() -> None:
    """Rerun seeds drawn from the recorded seeds' distribution: about LEVEL of the cells are
    flagged (exactly 0.1 for 3 against 3 with continuous values)."""
    rng = np.random.default_rng(0)
    draws = rng.normal(size=(2000, 6))
    rate = np.mean([permutation_p(d[:3], d[3:]) <= LEVEL for d in draws])
    assert abs(rate - 0.1) < 0.02  # binomial sd over 2,000 cells: 0.007
    moved = draws + np.array([0, 0, 0, 3, 3, 3])  # three seed standard deviations apart
    assert np.mean([permutation_p(d[:3], d[3:]) <= LEVEL for d in moved]) > 0.8


def test_the_count_of_flags_decides() -> None:
    assert Report(tested=40, flagged=4).cells_agree  # what chance gives
    assert Report(tested=40, flagged=10).cells_agree is False  # P(>= 10 | 40, 0.1) = 0.005
    assert Report(tested=3, flagged=3).cells_agree is False  # 0.001
    assert Report().cells_agree and Report().count_p == 1.0
