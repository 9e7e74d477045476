"""FastICA on raw pixels: linear, but looks for independent (non-Gaussian) directions.

The pixels are first projected on their top k principal components (k = the number of
factors unless set) and FastICA whitens and rotates those k scores. That is the subspace
FastICA's own whitening keeps, but scikit-learn reaches it through a full SVD of the
n x C*H*W pixel matrix, where PCA's randomized SVD computes only the top k (the fit times
are ``fit_s`` in the committed run records); and on ``proc_dsprites`` FastICA's whitening
produced NaN sources.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline

from disbench.api import (
    FitContext,
    GroundTruthDataset,
    Method,
    Representation,
    TrainBudget,
    param,
    register,
)
from disbench.methods._linear import (
    PixelParams,
    SklearnRepresentation,
    fit_ica,
    num_codes,
    sample_flat,
)


@attrs.frozen(kw_only=True)
class FastICAParams(PixelParams):
    max_iter: int = param(400, int, ge=1, doc="FastICA iterations (unconverged: flagged)")


@register
class FastICAMethod(Method):
    name: ClassVar[str] = "fastica"
    description: ClassVar[str] = "FastICA on flattened pixels (PCA whitening, then ICA rotation)"
    Params = FastICAParams

    def fit(
        self,
        dataset: GroundTruthDataset,
        hparams: dict[str, Any],
        seed: int,
        budget: TrainBudget,
        ctx: FitContext,
    ) -> Representation:
        hp: FastICAParams = self.typed(hparams)
        x = sample_flat(dataset, hp.num_points, seed)
        k = num_codes(hp.n_components, dataset, ctx)
        pca = PCA(n_components=k, random_state=seed)
        ica, converged = fit_ica(pca.fit_transform(x), k, hp.max_iter, seed, ctx)
        ctx.info.update({"ica_iterations": int(ica.n_iter_), "ica_converged": converged})
        return SklearnRepresentation(make_pipeline(pca, ica))
