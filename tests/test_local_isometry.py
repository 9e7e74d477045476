"""The local-isometry score: exactly 1 for an isometry at any scale, falling monotonically
as a known distortion grows, 0 for codes that merge neighbours; through the evaluation
context it renders the distinct observations of the shared points."""

from __future__ import annotations

import numpy as np
import pytest

from disbench.api import EvalContext, MetricError
from disbench.datasets.blobs import Blobs
from disbench.metrics.local_isometry import LocalIsometryMetric, local_isometry


def _points() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(300, 6))


def test_an_isometry_at_any_scale_scores_exactly_one() -> None:
    x = _points()
    rotation, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(6, 6)))
    for scale in (1.0, 0.01, 250.0):
        out = local_isometry(scale * x @ rotation + 3.0, x, neighbours=5)
        assert out["LI"] == pytest.approx(1.0, abs=1e-12)
        assert out["scale"] == pytest.approx(scale, rel=1e-12)


def test_it_falls_monotonically_as_a_stretch_grows() -> None:
    x = _points()
    scores = []
    for stretch in (0.0, 0.1, 0.3, 1.0, 3.0, 10.0):
        codes = x.copy()
        codes[:, 0] *= 1 + stretch
        scores.append(local_isometry(codes, x, neighbours=5)["LI"])
    assert scores[0] == pytest.approx(1.0, abs=1e-12)
    assert all(a > b for a, b in zip(scores, scores[1:], strict=False))
    assert scores[-1] < 0.6


def test_one_pair_by_hand() -> None:
    # Three points on a line, one neighbour each: pairs (0,1), (1,0), (2,1) with pixel
    # distances 1, 1, 2 and code distances 1, 1, 4 -> log ratios 0, 0, log 2; median 0.
    x = np.array([[0.0], [1.0], [3.0]])
    codes = np.array([[0.0], [1.0], [5.0]])
    out = local_isometry(codes, x, neighbours=1)
    assert out["LI"] == pytest.approx(np.exp(-np.log(2.0) / 3))
    assert out["scale"] == pytest.approx(1.0)


def test_codes_that_merge_neighbours_score_zero() -> None:
    x = _points()
    assert local_isometry(np.zeros((300, 2)), x, neighbours=5)["LI"] == 0.0
    half = x[:, :1].copy()
    half[:150] = 0.0  # half the points merged into one code
    assert local_isometry(half, x, neighbours=5)["LI"] < 0.1


def test_bad_input_is_a_metric_error() -> None:
    with pytest.raises(MetricError, match="neighbours=5"):
        local_isometry(np.zeros((4, 2)), np.zeros((4, 3)), neighbours=5)
    with pytest.raises(MetricError, match="distinct observations, got 1"):
        local_isometry(np.arange(20.0)[:, None], np.zeros((20, 3)), neighbours=2)


def test_repeated_observations_count_once() -> None:
    x = _points()
    doubled = np.concatenate([x, x[:100]])
    codes = 2.0 * doubled
    assert local_isometry(codes, doubled, neighbours=5) == local_isometry(2.0 * x, x, 5)


def test_through_the_context_an_encoder_that_copies_pixels_scores_one() -> None:
    dataset = Blobs(positions=8, sizes=2)  # 128 distinct images: the 300 points repeat
    ctx = EvalContext(seed=0, dataset=dataset, encode=lambda x: 7.0 * x.reshape(len(x), -1))
    settings = LocalIsometryMetric.settings({"num_train": 300})
    ctx.prepare(300, 0)
    out = LocalIsometryMetric().compute(ctx, settings)
    assert out["LI"] == pytest.approx(1.0, abs=1e-6)  # float32 images
    assert out["scale"] == pytest.approx(7.0)
    squashed = EvalContext(seed=0, dataset=dataset, encode=lambda x: np.sqrt(x.reshape(len(x), -1)))
    squashed.prepare(300, 0)
    assert LocalIsometryMetric().compute(squashed, settings)["LI"] < 0.99


def test_without_a_dataset_it_says_what_it_needs() -> None:
    ctx = EvalContext.from_arrays(np.zeros((30, 2)), np.zeros((30, 1), dtype=np.int64))
    with pytest.raises(MetricError, match="needs the dataset"):
        LocalIsometryMetric().compute(ctx, LocalIsometryMetric.settings({"num_train": 10}))
