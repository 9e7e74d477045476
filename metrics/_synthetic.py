"""Synthetic codes with a known relation to their factors, for the metric tests and
``perf/metrics.py`` (no dataset or encoder needed).

Factors are drawn uniformly; their values v = index / (size - 1) lie in [0, 1]. The codes
are v mapped by a chosen matrix, plus optional pure-noise dimensions and Gaussian noise:

- ``perfect``: z = v (one code per factor);
- ``permuted``: the codes of ``perfect``, shuffled and rescaled (signs flipped too);
- ``rotated``: z = v Q for a random orthogonal Q (fully entangled, same information);
- ``mixed``: z = v (I + alpha G) for a Gaussian G (partly entangled).

``drop`` removes the last codes (D < K); ``extra`` appends noise codes (D > K).
:class:`FactorVectorDataset` is the matching dataset for the sampling metrics.
"""

from __future__ import annotations

import numpy as np

from disbench.api import GroundTruthDataset

KINDS = ("perfect", "permuted", "rotated", "mixed")


def synthetic_codes(
    n: int,
    sizes: tuple[int, ...] = (10, 10, 10, 8, 6),
    kind: str = "mixed",
    alpha: float = 0.3,
    extra: int = 0,
    drop: int = 0,
    noise: float = 0.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(codes float64 [n, K - drop + extra], factors int64 [n, K])."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    rng = np.random.default_rng(seed)
    k = len(sizes)
    factors = np.stack([rng.integers(0, s, size=n) for s in sizes], axis=1)
    values = factors / (np.asarray(sizes, dtype=np.float64) - 1)
    if kind == "perfect":
        matrix = np.eye(k)
    elif kind == "permuted":
        scale = rng.uniform(0.5, 3.0, size=k) * rng.choice([-1.0, 1.0], size=k)
        matrix = np.eye(k)[:, rng.permutation(k)] * scale
    elif kind == "rotated":
        matrix = np.linalg.qr(rng.standard_normal((k, k)))[0]
    else:
        matrix = np.eye(k) + alpha * rng.standard_normal((k, k))
    codes = values @ matrix
    codes = codes[:, : k - drop]
    if extra:
        codes = np.concatenate([codes, rng.standard_normal((n, extra))], axis=1)
    if noise:
        codes = codes + noise * rng.standard_normal(codes.shape)
    return codes, factors


class FactorVectorDataset(GroundTruthDataset):
    """A ground-truth dataset whose observation is the factor value vector itself
    ([n, 1, 1, K], values in [0, 1]): the sampling metrics' own overhead can be measured
    and tested with a cheap numpy encoder and no rendering cost. Not registered."""

    kind = "procedural"

    def __init__(self, sizes: tuple[int, ...] = (10, 10, 10, 8, 6)) -> None:
        self.name = "factor_vector"
        self.factor_sizes = tuple(sizes)
        self.factor_names = tuple(f"f{i}" for i in range(len(sizes)))
        self.observation_shape = (1, 1, len(sizes))

    def render(self, factors: np.ndarray) -> np.ndarray:
        values = np.asarray(factors) / (np.asarray(self.factor_sizes, dtype=np.float64) - 1)
        return values.astype(np.float32).reshape(len(values), 1, 1, -1)
