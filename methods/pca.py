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
from disbench.methods._linear import PixelParams, SklearnRepresentation, num_codes, sample_flat


@register
class PCAMethod(Method):
    name: ClassVar[str] = "pca"
    description: ClassVar[str] = "PCA on flattened pixels (codes = top principal components)"
    Params = PixelParams

    def fit(
        self,
        dataset: GroundTruthDataset,
        hparams: dict[str, Any],
        seed: int,
        budget: TrainBudget,
        ctx: FitContext,
    ) -> Representation:
        hp: PixelParams = self.typed(hparams)
        x = sample_flat(dataset, hp.num_points, seed)
        model = PCA(n_components=num_codes(hp.n_components, dataset, ctx), random_state=seed)
        model.fit(x)
        ctx.info["explained_variance_ratio"] = [float(v) for v in model.explained_variance_ratio_]
        return SklearnRepresentation(model)
