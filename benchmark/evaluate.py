"""The evaluator: draw the evaluation points once, encode them once, run every metric."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmark.datasets.base import GroundTruthDataset
from benchmark.registry import METRICS
from metrics.base import EvalContext, MetricError


def evaluate(
    dataset: GroundTruthDataset,
    encode: Callable[[np.ndarray], np.ndarray],
    metrics: dict[str, dict[str, Any]],
    eval_seed: int,
) -> tuple[dict[str, dict[str, float]], dict[str, str], dict[str, float]]:
    """(scores per metric, per-metric errors, seconds per metric).

    A metric that finds the codes degenerate (:class:`MetricError`) is recorded with its
    reason and the others still run; codes that are NaN or of the wrong shape make the
    shared encoding fail, which fails the run.
    """
    ctx = EvalContext(seed=eval_seed, dataset=dataset, encode=encode)
    chosen = {name: METRICS.get(name) for name in metrics}
    sizes = [m.sizes(metrics[name]) for name, m in chosen.items()]
    start = time.perf_counter()
    ctx.prepare(max((s[0] for s in sizes), default=0), max((s[1] for s in sizes), default=0))
    timings = {"encode": time.perf_counter() - start}
    scores: dict[str, dict[str, float]] = {}
    errors: dict[str, str] = {}
    for name, metric in chosen.items():
        start = time.perf_counter()
        try:
            result = metric.compute(ctx, dict(metrics[name]))
        except MetricError as exc:
            errors[name] = str(exc)
        else:
            bad = [k for k, v in result.items() if not np.isfinite(v)]
            if bad:
                errors[name] = f"non-finite value for {bad}"
            else:
                scores[name] = {k: float(v) for k, v in result.items()}
        timings[name] = time.perf_counter() - start
    return scores, errors, timings
