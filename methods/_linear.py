"""Shared pieces of the non-deep baselines: sample observations, flatten, fit a sklearn model."""

from __future__ import annotations

import warnings
from typing import Any

import attrs
import numpy as np
from sklearn.decomposition import FastICA
from sklearn.exceptions import ConvergenceWarning

from disbench.api import FitContext, GroundTruthDataset, Representation, param


@attrs.frozen(kw_only=True)
class PixelParams:
    """The hyperparameters of a linear map of the pixels (PCA; FastICA adds its own)."""

    n_components: int | None = param(
        None, int, ge=1, doc="codes; None: the dataset's number of factors (privileged)"
    )
    num_points: int = param(5000, int, ge=2, doc="training observations")


class SklearnRepresentation(Representation):
    """Codes = a fitted sklearn transformer applied to flattened observations."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def encode(self, x: np.ndarray) -> np.ndarray:
        return self.model.transform(np.asarray(x, dtype=np.float64).reshape(len(x), -1))


def sample_flat(dataset: GroundTruthDataset, n: int, seed: int) -> np.ndarray:
    """``n`` observations drawn with ``seed``, flattened to [n, C*H*W] float64."""
    _, obs = dataset.sample(n, np.random.default_rng(seed))
    return obs.reshape(n, -1).astype(np.float64)


def num_codes(given: Any, dataset: GroundTruthDataset, ctx: FitContext) -> int:
    """``given``, or when None the dataset's number of factors, flagged as privileged (a
    learned model is not told it)."""
    if given is not None:
        return int(given)
    ctx.caveat("privileged", f"given the true number of factors ({dataset.num_factors})")
    return dataset.num_factors


def fit_ica(
    y: np.ndarray, n_components: int, max_iter: int, seed: int, ctx: FitContext
) -> tuple[FastICA, bool]:
    """FastICA (unit-variance whitening, ``random_state=seed``) on y; also whether it
    converged (a run whose ICA did not is flagged ``not_converged``)."""
    ica = FastICA(
        n_components=n_components, whiten="unit-variance", max_iter=max_iter, random_state=seed
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        ica.fit(y)
    converged = not any(issubclass(c.category, ConvergenceWarning) for c in caught)
    if not converged:
        ctx.caveat("not_converged", f"FastICA stopped at max_iter={max_iter} unconverged")
    return ica, converged
