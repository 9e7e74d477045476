"""Shared array helpers with disentanglement_lib's exact definitions."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import mutual_info_score


def histogram_discretize(codes: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """Per code dimension: ``np.digitize`` against the left edges of a ``num_bins`` histogram.

    Same as disentanglement_lib's ``_histogram_discretize`` (codes here are [N, D]).
    """
    out = np.zeros(codes.shape, dtype=np.int64)
    for j in range(codes.shape[1]):
        edges = np.histogram(codes[:, j], num_bins)[1][:-1]
        out[:, j] = np.digitize(codes[:, j], edges)
    return out


def discrete_mutual_info(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """MI matrix [D, K] in nats between discrete codes [N, D] and factors [N, K]."""
    return np.array(
        [
            [mutual_info_score(factors[:, k], codes[:, j]) for k in range(factors.shape[1])]
            for j in range(codes.shape[1])
        ]
    )


def discrete_entropy(factors: np.ndarray) -> np.ndarray:
    """Entropy [K] in nats of each discrete column (``mutual_info_score(y, y)``)."""
    return np.array([mutual_info_score(factors[:, k], factors[:, k]) for k in range(factors.shape[1])])
