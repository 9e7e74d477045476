"""The linear floors learn what linear methods can: on pixels that are a fixed linear mix
of independent uniform factors, PCA finds the factors' subspace and FastICA also undoes
the mixing (the rotation PCA leaves is fixed by non-Gaussianity)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from disbench.api import FitContext, GroundTruthDataset, Kind, TrainBudget
from disbench.methods.ica import FastICAMethod
from disbench.methods.pca import PCAMethod
from disbench.metrics.mcc import mcc


class LinearMixture(GroundTruthDataset):
    """3 uniform factors of 16 values, mixed into 8x8 grey pixels by a fixed random matrix."""

    name: ClassVar[str] = "linear_mixture"
    kind: ClassVar[Kind] = "procedural"

    def __init__(self) -> None:
        self.factor_names = ("a", "b", "c")
        self.factor_sizes = (16, 16, 16)
        self.observation_shape = (1, 8, 8)
        self.mixing = np.random.default_rng(0).normal(size=(3, 64))

    def render(self, factors: np.ndarray) -> np.ndarray:
        centred = (np.asarray(factors, dtype=np.float64) - 7.5) / 16
        pixels = 0.5 + 0.1 * centred @ self.mixing
        return pixels.reshape(-1, 1, 8, 8).astype(np.float32)


def test_pca_finds_the_subspace_and_fastica_the_factors() -> None:
    ds = LinearMixture()
    factors, obs = ds.sample(2000, np.random.default_rng(1))
    values = ds.factor_values(factors)
    hp = {"n_components": None, "num_points": 3000}
    budget = TrainBudget(0)
    pca = PCAMethod().fit(ds, hp, 0, budget, FitContext()).encode(obs)
    ctx = FitContext()
    ica = FastICAMethod().fit(ds, {**hp, "max_iter": 400}, 0, budget, ctx).encode(obs)

    assert pca.shape == ica.shape == (2000, 3)
    design = np.c_[pca, np.ones(len(pca))]
    fitted = design @ np.linalg.lstsq(design, values, rcond=None)[0]
    r2 = 1 - ((values - fitted) ** 2).sum(0) / ((values - values.mean(0)) ** 2).sum(0)
    assert r2.min() > 0.999  # every factor is a linear function of the PCA codes
    assert mcc(ica, values)["MCC"] > 0.99 and ctx.info["ica_converged"]
    assert mcc(pca, values)["MCC"] < 0.95  # ... but PCA's axes are not the factors


def test_runs_flag_privileged_information_and_an_unconverged_ica() -> None:
    """Told the number of factors (n_components = None) is privileged; FastICA stopped at
    max_iter = 1 did not converge. A run given neither has no caveat."""
    ds, budget = LinearMixture(), TrainBudget(0)
    told, free = FitContext(), FitContext()
    PCAMethod().fit(ds, {"n_components": None, "num_points": 500}, 0, budget, told)
    PCAMethod().fit(ds, {"n_components": 3, "num_points": 500}, 0, budget, free)
    assert told.info["caveats"] == {"privileged": "given the true number of factors (3)"}
    assert "caveats" not in free.info

    stopped = FitContext()
    hp = {"n_components": 3, "num_points": 500, "max_iter": 1}
    FastICAMethod().fit(ds, hp, 0, budget, stopped)
    assert stopped.info["ica_converged"] is False
    assert stopped.info["caveats"] == {"not_converged": "FastICA stopped at max_iter=1 unconverged"}


def test_a_bad_hyperparameter_is_one_line_naming_it() -> None:
    with pytest.raises(ValueError) as info:
        FastICAMethod.resolve_hparams({"n_components": 0})
    assert str(info.value) == "method 'fastica': hyperparameter n_components must be >= 1, got 0"
    with pytest.raises(ValueError, match="method 'pca': hyperparameter num_points must be an int"):
        PCAMethod.resolve_hparams({"num_points": 500.0})
