"""Shared array helpers with disentanglement_lib's exact definitions, vectorised.

Layout everywhere in disbench: codes [N, D] (float), factors [N, K] (integer), one row
per observation. disentanglement_lib uses the transpose ([D, N]); its results are
reproduced here to floating-point rounding (tests compare both on the same arrays).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, TypeVar

import numpy as np
from threadpoolctl import threadpool_limits

from disbench.api import GroundTruthDataset, MetricError

T = TypeVar("T")
R = TypeVar("R")
Encoder = Callable[[np.ndarray], np.ndarray]
CHUNK = 2048  # observations rendered and encoded together by the sampling metrics


def check_codes(codes: np.ndarray, metric: str, min_points: int = 2) -> np.ndarray:
    """Codes as float64 [N, D]; a :class:`MetricError` for NaN/inf, a wrong rank or too few rows."""
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2 or codes.shape[1] == 0:
        raise MetricError(f"{metric}: codes must have shape [N, D] with D >= 1, got {codes.shape}")
    if len(codes) < min_points:
        raise MetricError(f"{metric}: needs at least {min_points} points, got {len(codes)}")
    if not np.isfinite(codes).all():
        raise MetricError(f"{metric}: codes contain NaN or infinite values")
    return codes


def check_pair(
    codes: np.ndarray, factors: np.ndarray, metric: str, min_points: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Checked (codes float64 [N, D], factors int64 [N, K]) with matching N."""
    codes = check_codes(codes, metric, min_points)
    factors = np.asarray(factors)
    if factors.ndim != 2 or factors.shape[1] == 0:
        raise MetricError(
            f"{metric}: factors must have shape [N, K] with K >= 1, got {factors.shape}"
        )
    if len(factors) != len(codes):
        raise MetricError(
            f"{metric}: {len(codes)} code rows but {len(factors)} factor rows; they must match"
        )
    if not np.issubdtype(factors.dtype, np.integer):
        if not np.all(np.isfinite(factors)) or not np.all(factors == np.round(factors)):
            raise MetricError(f"{metric}: factors must be integer values")
    return codes, factors.astype(np.int64)


def varying_factors(factors: np.ndarray) -> np.ndarray:
    """Boolean [K]: which factor columns take more than one value."""
    return (factors != factors[:1]).any(axis=0)


def histogram_discretize(codes: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """Per column: ``np.digitize`` against the left edges of a ``num_bins`` histogram.

    The same bins as disentanglement_lib's ``_histogram_discretize`` (equal-width over the
    column's min..max; a constant column gets numpy's default range value +- 0.5). Values
    are 1..num_bins (the maximum lands in the last bin).
    """
    codes = np.asarray(codes, dtype=np.float64)
    out = np.empty(codes.shape, dtype=np.int64)
    for j in range(codes.shape[1]):
        edges = np.histogram_bin_edges(codes[:, j], num_bins)[:-1]
        out[:, j] = np.digitize(codes[:, j], edges)
    return out


def _labels(column: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense labels 0..n-1 of a discrete column and the number of distinct values."""
    uniq, inverse = np.unique(column, return_inverse=True)
    return inverse.reshape(-1), len(uniq)


def _mutual_info(a: np.ndarray, na: int, b: np.ndarray, nb: int) -> float:
    """Plug-in MI in nats of two dense label arrays (sklearn's ``mutual_info_score``)."""
    n = len(a)
    joint = np.bincount(a * nb + b, minlength=na * nb).reshape(na, nb)
    nz_a, nz_b = np.nonzero(joint)
    count = joint[nz_a, nz_b].astype(np.float64)
    pa = joint.sum(axis=1).astype(np.float64)[nz_a]
    pb = joint.sum(axis=0).astype(np.float64)[nz_b]
    mi = np.sum(count / n * (np.log(count) + np.log(n) - np.log(pa) - np.log(pb)))
    return max(float(mi), 0.0)


def discrete_mutual_info(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """MI matrix [D, K] in nats between discrete codes [N, D] and discrete factors [N, K]."""
    a = [_labels(codes[:, j]) for j in range(codes.shape[1])]
    b = [_labels(factors[:, k]) for k in range(factors.shape[1])]
    out = np.empty((len(a), len(b)))
    for j, (x, nx) in enumerate(a):
        for k, (y, ny) in enumerate(b):
            out[j, k] = _mutual_info(x, nx, y, ny)
    return out


def discrete_entropy(factors: np.ndarray) -> np.ndarray:
    """Entropy [K] in nats of each discrete column (``mutual_info_score(y, y)``)."""
    out = np.empty(factors.shape[1])
    for k in range(factors.shape[1]):
        counts = np.unique(factors[:, k], return_counts=True)[1].astype(np.float64)
        p = counts / counts.sum()
        out[k] = max(float(-np.sum(p * np.log(p))), 0.0)
    return out


def parallel_map(fn: Callable[[T], R], items: Iterable[T], n_jobs: int = 0) -> list[R]:
    """``[fn(x) for x in items]`` on a thread pool; ``n_jobs`` 0 means one thread per core.

    Threads suffice because the heavy work (scikit-learn's tree builders, liblinear, BLAS)
    releases the GIL; results come back in input order, so they never depend on timing.
    BLAS is limited to one thread meanwhile: the estimators here make many small BLAS
    calls, which multi-threaded BLAS slows down (3x the CPU time for a logistic regression).
    """
    items = list(items)
    workers = min(len(items), n_jobs if n_jobs > 0 else (os.cpu_count() or 1))
    with threadpool_limits(1):  # small BLAS calls run several times faster on one thread
        if workers <= 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(fn, items))


def encode_factors(dataset: GroundTruthDataset, encode: Encoder, factors: np.ndarray) -> np.ndarray:
    """Codes [n, D] of the observations rendered from factor indices [n, K], in chunks
    (bounds the memory of rendered images)."""
    parts = [encode(dataset.render(factors[i : i + CHUNK])) for i in range(0, len(factors), CHUNK)]
    return np.concatenate(parts, axis=0)


class VoteScore:
    """Mixin of the BetaVAE and FactorVAE metrics, whose scores are fractions of votes:
    fewer votes than the published protocol (the defaults) give a coarser, noisier score."""

    defaults: ClassVar[Mapping[str, Any]]

    @classmethod
    def caveats(cls, settings: Mapping[str, Any]) -> list[str]:
        out = []
        for key, what in (("num_eval", "evaluation votes"), ("num_train", "training votes")):
            if int(settings[key]) < int(cls.defaults[key]):
                out.append(f"{settings[key]} {what} (published {cls.defaults[key]:,})")
        return out

    @classmethod
    def resolution(cls, settings: Mapping[str, Any]) -> float | None:
        return 1.0 / int(settings["num_eval"])
