"""The one metric loop, shared by ``disbench run`` (a trained model) and ``disbench score``
(a researcher's arrays): draw and encode the points once, run every metric on them."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from disbench.api import EvalContext, GroundTruthDataset, MetricError
from disbench.registry import METRICS

Scores = dict[str, dict[str, float]]


def run_metrics(
    ctx: EvalContext, settings: dict[str, dict[str, Any]]
) -> tuple[Scores, dict[str, str], dict[str, float]]:
    """(scores per metric, per-metric errors, seconds per metric) of the chosen metrics.

    A metric that finds the codes degenerate (:class:`MetricError`) or returns a
    non-finite value is recorded with its reason and the others still run.
    """
    scores: Scores = {}
    errors: dict[str, str] = {}
    timings: dict[str, float] = {}
    for name, given in settings.items():
        start = time.perf_counter()
        try:
            result = METRICS.get(name)().compute(ctx, dict(given))
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


def evaluate(
    dataset: GroundTruthDataset,
    encode: Callable[[np.ndarray], np.ndarray],
    metrics: dict[str, dict[str, Any]],
    eval_seed: int,
    representation: Any = None,
) -> tuple[Scores, dict[str, str], dict[str, float]]:
    """:func:`run_metrics` on points drawn from ``dataset`` and encoded once (metrics that
    decode, such as ``cs_transfer``, also get the ``representation``).

    Codes that are NaN or of the wrong shape make the shared encoding fail, which fails
    the run; ``timings["encode"]`` is the time to draw and encode the points.
    """
    ctx = EvalContext(seed=eval_seed, dataset=dataset, encode=encode, representation=representation)
    sizes = [METRICS.get(name).sizes(given) for name, given in metrics.items()]
    start = time.perf_counter()
    ctx.prepare(max((s[0] for s in sizes), default=0), max((s[1] for s in sizes), default=0))
    encode_s = time.perf_counter() - start
    scores, errors, timings = run_metrics(ctx, metrics)
    return scores, errors, {"encode": encode_s, **timings}
