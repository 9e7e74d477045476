"""PCA on raw pixels: the linear floor every learned method should beat."""

from __future__ import annotations

from typing import Any, ClassVar

from sklearn.decomposition import PCA

from disbench.api import (
    FitContext,
    GroundTruthDataset,
    Method,
    Representation,
    TrainBudget,
    register,
)
from disbench.methods._linear import SklearnRepresentation, n_components, sample_flat


@register
class PCAMethod(Method):
    name: ClassVar[str] = "pca"
    description: ClassVar[str] = "PCA on flattened pixels (codes = top principal components)"
    defaults: ClassVar[dict[str, Any]] = {"n_components": None, "num_points": 5000}

    def fit(
        self,
        dataset: GroundTruthDataset,
        hparams: dict[str, Any],
        seed: int,
        budget: TrainBudget,
        ctx: FitContext,
    ) -> Representation:
        x = sample_flat(dataset, hparams["num_points"], seed)
        model = PCA(n_components=n_components(hparams, dataset, ctx), random_state=seed).fit(x)
        ctx.info["explained_variance_ratio"] = [float(v) for v in model.explained_variance_ratio_]
        return SklearnRepresentation(model)
