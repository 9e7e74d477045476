"""FastICA on raw pixels: linear, but looks for independent (non-Gaussian) directions.

The pixels are first projected on their top k principal components (k = the number of
factors unless set) and FastICA whitens and rotates those k scores. That is the subspace
FastICA's own whitening keeps, but scikit-learn reaches it through a full SVD of the
n x C*H*W pixel matrix: one to two minutes per ``cpu``-profile fit at 64x64 on one core,
and on ``proc_dsprites`` its whitening produced NaN sources. With PCA's randomized SVD
first, those fits take 1-5 s (``fit_s`` in the committed run records).
"""

from __future__ import annotations

from typing import Any, ClassVar

from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline

from disbench.api import (
    FitContext,
    GroundTruthDataset,
    Method,
    Representation,
    TrainBudget,
    register,
)
from disbench.methods._linear import SklearnRepresentation, fit_ica, n_components, sample_flat


@register
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
        k = n_components(hparams, dataset, ctx)
        pca = PCA(n_components=k, random_state=seed)
        ica, converged = fit_ica(pca.fit_transform(x), k, int(hparams["max_iter"]), seed, ctx)
        ctx.info.update({"ica_iterations": int(ica.n_iter_), "ica_converged": converged})
        return SklearnRepresentation(make_pipeline(pca, ica))
