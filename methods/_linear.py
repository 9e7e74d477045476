"""Shared pieces of the non-deep baselines: sample observations, flatten, fit a sklearn model."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.decomposition import FastICA
from sklearn.exceptions import ConvergenceWarning

from disbench.api import GroundTruthDataset, Representation


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


def n_components(hparams: dict[str, Any], dataset: GroundTruthDataset) -> int:
    """``hparams['n_components']``, or the dataset's number of factors when it is None."""
    k = hparams["n_components"]
    return dataset.num_factors if k is None else int(k)


def fit_ica(y: np.ndarray, n_components: int, max_iter: int, seed: int) -> tuple[FastICA, bool]:
    """FastICA (unit-variance whitening, ``random_state=seed``) on y; also whether it converged."""
    ica = FastICA(
        n_components=n_components, whiten="unit-variance", max_iter=max_iter, random_state=seed
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        ica.fit(y)
    return ica, not any(issubclass(c.category, ConvergenceWarning) for c in caught)
