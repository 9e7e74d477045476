"""FastICA on raw pixels: linear, but looks for independent (non-Gaussian) directions."""

from __future__ import annotations

from typing import Any, ClassVar

from sklearn.decomposition import FastICA

from benchmark.datasets.base import GroundTruthDataset
from benchmark.registry import register_method
from methods._linear import SklearnRepresentation, n_components, sample_flat
from methods.base import FitContext, Method, Representation, TrainBudget


@register_method
class FastICAMethod(Method):
    name: ClassVar[str] = "fastica"
    description: ClassVar[str] = "FastICA on flattened pixels (PCA whitening, then ICA rotation)"
    defaults: ClassVar[dict[str, Any]] = {"n_components": None, "num_points": 5000, "max_iter": 400}

    def fit(
        self,
        dataset: GroundTruthDataset,
        hparams: dict[str, Any],
        seed: int,
        budget: TrainBudget,
        ctx: FitContext,
    ) -> Representation:
        x = sample_flat(dataset, hparams["num_points"], seed)
        model = FastICA(
            n_components=n_components(hparams, dataset),
            whiten="unit-variance",
            max_iter=hparams["max_iter"],
            random_state=seed,
        ).fit(x)
        ctx.info["ica_iterations"] = int(model.n_iter_)
        return SklearnRepresentation(model)
