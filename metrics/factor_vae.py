"""FactorVAE score (Kim & Mnih 2018), as disentanglement_lib's ``compute_factor_vae``.

1. Encode ``num_variance_estimate`` random observations; each code's variance (ddof 1)
   is its global scale. Codes whose standard deviation is below ``prune_threshold``
   (0.05, the published study's ``prune_dims.threshold``; the raw std, so a genuine code
   with a small scale is pruned too) are dropped as collapsed.
2. One vote: pick a factor uniformly, draw ``batch_size`` observations that share a random
   value of that factor, and vote for the active code with the smallest variance relative
   to its global variance (ddof 1).
3. A majority-vote classifier maps each code to the factor it collected most votes for
   on ``num_train`` votes; train_accuracy / eval_accuracy are the share of votes (train,
   and ``num_eval`` fresh ones) that it classifies correctly.

Differences from disentanglement_lib, all documented here:

- ``num_active_dims`` is the number of codes kept after pruning; disentanglement_lib
  reports ``len(mask)``, the total number of codes;
- exactly constant codes are always dropped (with ``prune_threshold=0``
  disentanglement_lib divides 0 by 0 and votes for the NaN);
- random draws come from a ``numpy.random.Generator`` seeded by the evaluation seed, so
  values equal disentanglement_lib's in distribution, not draw for draw.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from disbench.api import EvalContext, GroundTruthDataset, Metric, MetricError, register
from disbench.metrics._utils import CHUNK, Encoder, VoteScore, encode_factors


def global_variances(
    dataset: GroundTruthDataset, encode: Encoder, num: int, rng: np.random.Generator
) -> np.ndarray:
    """Variance (ddof 1) of each code over ``num`` random observations."""
    if num < 2:
        raise MetricError(f"factor_vae: num_variance_estimate must be >= 2, got {num}")
    return np.var(encode_factors(dataset, encode, dataset.sample_factors(num, rng)), axis=0, ddof=1)


def votes(
    dataset: GroundTruthDataset,
    encode: Encoder,
    rng: np.random.Generator,
    num_points: int,
    batch_size: int,
    scale: np.ndarray,
    active: np.ndarray,
) -> np.ndarray:
    """Vote counts [K, num active codes] from ``num_points`` fixed-factor batches."""
    k = dataset.num_factors
    counts = np.zeros((k, int(active.sum())), dtype=np.int64)
    per_chunk = max(1, CHUNK // batch_size)
    for start in range(0, num_points, per_chunk):
        m = min(per_chunk, num_points - start)
        fixed = rng.integers(0, k, size=m)
        factors = dataset.sample_factors(m * batch_size, rng).reshape(m, batch_size, k)
        rows = np.arange(m)
        factors[rows, :, fixed] = factors[rows, 0, fixed][:, None]
        codes = encode_factors(dataset, encode, factors.reshape(m * batch_size, k))
        local = np.var(codes.reshape(m, batch_size, -1), axis=1, ddof=1)
        choice = np.argmin(local[:, active] / scale[active], axis=1)
        np.add.at(counts, (fixed, choice), 1)
    return counts


def majority_vote_accuracy(train_votes: np.ndarray, eval_votes: np.ndarray) -> tuple[float, float]:
    """(train, eval) accuracy of the classifier code -> its most-voted factor."""
    classifier = np.argmax(train_votes, axis=0)
    cols = np.arange(train_votes.shape[1])
    train = train_votes[classifier, cols].sum() / train_votes.sum()
    evaluation = eval_votes[classifier, cols].sum() / eval_votes.sum()
    return float(train), float(evaluation)


def factor_vae_score(
    dataset: GroundTruthDataset,
    encode: Encoder,
    rng: np.random.Generator,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
    num_variance_estimate: int = 10000,
    prune_threshold: float = 0.05,
) -> dict[str, float]:
    """FactorVAE score of ``encode`` on ``dataset`` (see the module docstring).

    Degenerate input: every code pruned gives accuracies 0 and 0 active dims (as in
    disentanglement_lib); ``batch_size`` < 2 (no variance), ``num_train`` or ``num_eval`` < 1:
    :class:`MetricError`; NaN/inf codes fail in the encoder check (:class:`MetricError`).
    """
    if batch_size < 2 or num_train < 1 or num_eval < 1:
        raise MetricError(
            f"factor_vae: needs batch_size >= 2, num_train >= 1 and num_eval >= 1, got "
            f"{batch_size}, {num_train}, {num_eval}"
        )
    scale = global_variances(dataset, encode, num_variance_estimate, rng)
    active = (np.sqrt(scale) >= prune_threshold) & (scale > 0)
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0.0}
    train_votes = votes(dataset, encode, rng, num_train, batch_size, scale, active)
    eval_votes = votes(dataset, encode, rng, num_eval, batch_size, scale, active)
    train, evaluation = majority_vote_accuracy(train_votes, eval_votes)
    return {
        "train_accuracy": train,
        "eval_accuracy": evaluation,
        "num_active_dims": float(active.sum()),
    }


@register
class FactorVaeMetric(VoteScore, Metric):
    name: ClassVar[str] = "factor_vae"
    description: ClassVar[str] = (
        "FactorVAE score: majority vote of the least-varying code per fixed factor"
    )
    primary: ClassVar[str] = "eval_accuracy"
    defaults: ClassVar[dict[str, Any]] = {
        "batch_size": 64,
        "num_train": 10000,
        "num_eval": 5000,
        "num_variance_estimate": 10000,
        "prune_threshold": 0.05,
    }
    needs_dataset: ClassVar[bool] = True

    def compute(self, ctx: EvalContext, settings: dict[str, Any]) -> dict[str, float]:
        if ctx.dataset is None:
            raise MetricError("factor_vae samples its own interventions and needs a dataset")
        return factor_vae_score(
            ctx.dataset,
            ctx.encode_observations,
            ctx.rng("factor_vae"),
            batch_size=settings["batch_size"],
            num_train=settings["num_train"],
            num_eval=settings["num_eval"],
            num_variance_estimate=settings["num_variance_estimate"],
            prune_threshold=settings["prune_threshold"],
        )
