"""BetaVAE score (Higgins et al. 2017), as disentanglement_lib's ``compute_beta_vae_sklearn``.

One training point: pick a factor uniformly, draw two batches of ``batch_size``
observations that agree on that factor's value (row by row) and differ elsewhere; the
feature is the mean over the batch of |code(x1) - code(x2)|, the label is the factor.
A ``LogisticRegression`` (scikit-learn defaults, explicit ``random_state``) is fitted on
``num_train`` points; the scores are its accuracy on them (train_accuracy) and on
``num_eval`` fresh points (eval_accuracy).

disentanglement_lib's results come from the scikit-learn of its time (liblinear,
one-vs-rest); with today's defaults (lbfgs, multinomial) values agree in distribution,
and random draws here come from a ``numpy.random.Generator`` seeded by the evaluation seed.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from disbench.api import EvalContext, GroundTruthDataset, Metric, MetricError, register
from disbench.metrics._utils import CHUNK, Encoder, VoteScore, encode_factors


def training_points(
    dataset: GroundTruthDataset,
    encode: Encoder,
    rng: np.random.Generator,
    num_points: int,
    batch_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(features [num_points, D], labels [num_points]) as described in the module docstring."""
    k = dataset.num_factors
    features, labels = [], []
    per_chunk = max(1, CHUNK // (2 * batch_size))
    for start in range(0, num_points, per_chunk):
        m = min(per_chunk, num_points - start)
        fixed = rng.integers(0, k, size=m)
        first = dataset.sample_factors(m * batch_size, rng).reshape(m, batch_size, k)
        second = dataset.sample_factors(m * batch_size, rng).reshape(m, batch_size, k)
        rows = np.arange(m)
        second[rows, :, fixed] = first[rows, :, fixed]
        both = np.concatenate([first, second]).reshape(2 * m * batch_size, k)
        codes = encode_factors(dataset, encode, both).reshape(2, m, batch_size, -1)
        features.append(np.mean(np.abs(codes[0] - codes[1]), axis=1))
        labels.append(fixed)
    return np.concatenate(features), np.concatenate(labels)


def beta_vae_score(
    dataset: GroundTruthDataset,
    encode: Encoder,
    rng: np.random.Generator,
    random_state: int = 0,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
) -> dict[str, float]:
    """BetaVAE score of ``encode`` on ``dataset`` (see the module docstring).

    Degenerate input: fewer than 2 factors, ``batch_size``, ``num_train`` or ``num_eval``
    < 1, or a training sample in which one factor was never drawn (too few points):
    :class:`MetricError`; constant codes give all-zero features, so the classifier
    falls back to the majority label; NaN/inf codes fail in the encoder check.
    """
    if dataset.num_factors < 2:
        raise MetricError("beta_vae: needs at least 2 factors to tell apart")
    if batch_size < 1 or num_train < 1 or num_eval < 1:
        raise MetricError(
            f"beta_vae: needs batch_size, num_train and num_eval >= 1, got "
            f"{batch_size}, {num_train}, {num_eval}"
        )
    x_train, y_train = training_points(dataset, encode, rng, num_train, batch_size)
    if len(np.unique(y_train)) < 2:
        raise MetricError(f"beta_vae: num_train={num_train} points drew a single factor")
    with warnings.catch_warnings(), threadpool_limits(1):  # small BLAS calls: one thread
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LogisticRegression(random_state=random_state).fit(x_train, y_train)
    x_eval, y_eval = training_points(dataset, encode, rng, num_eval, batch_size)
    return {
        "train_accuracy": float(np.mean(model.predict(x_train) == y_train)),
        "eval_accuracy": float(np.mean(model.predict(x_eval) == y_eval)),
    }


@register
class BetaVaeMetric(VoteScore, Metric):
    name: ClassVar[str] = "beta_vae"
    description: ClassVar[str] = (
        "BetaVAE score: linear classifier names the fixed factor from code differences"
    )
    primary: ClassVar[str] = "eval_accuracy"
    defaults: ClassVar[dict[str, Any]] = {"batch_size": 64, "num_train": 10000, "num_eval": 5000}
    needs_dataset: ClassVar[bool] = True

    def compute(self, ctx: EvalContext, settings: dict[str, Any]) -> dict[str, float]:
        if ctx.dataset is None:
            raise MetricError("beta_vae samples its own interventions and needs a dataset")
        return beta_vae_score(
            ctx.dataset,
            ctx.encode_observations,
            ctx.rng("beta_vae"),
            random_state=ctx.random_state("beta_vae:classifier"),
            batch_size=settings["batch_size"],
            num_train=settings["num_train"],
            num_eval=settings["num_eval"],
        )
