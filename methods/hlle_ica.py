"""HLLE + ICA: the spectral method of Horan, Richardson & Weiss (NeurIPS 2021).

Theory: if observations are a local isometry of independent, non-Gaussian factors, every
locally isometric flat parametrisation differs from the factors by a rigid motion, and
linear ICA removes the remaining rotation. Hessian eigenmaps (``methods/_hessian.py``)
finds such a parametrisation without a network; FastICA then un-rotates it. With Gaussian
factors the rotation is unidentifiable, so the result is an arbitrary rotation of them.

No official code exists; this is written from the algorithm's description (Donoho & Grimes
2003 for HLLE). HLLE is transductive: ``encode`` extends the training embedding to new
observations by a local affine fit in tangent coordinates (see
:func:`methods._hessian.tangent_affine_extension`). Exact duplicate observations (common
on discrete factor grids) are merged before HLLE, since each duplicate pair would add a
spurious null vector, and get the same code; ICA still sees every sample, so the factor
distribution it un-mixes is the sampled one.

Cost: see ``methods/_hessian.py``; the budget's ``steps`` are not used (HLLE is not
iterative), ``num_points`` sets the cost.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import numpy as np
from sklearn.decomposition import FastICA
from sklearn.neighbors import NearestNeighbors

from disbench.api import (
    FitContext,
    GroundTruthDataset,
    Method,
    PaperResult,
    Representation,
    TrainBudget,
    param,
    register,
)
from disbench.methods._hessian import (
    EIGEN_SOLVERS,
    check_neighbours,
    count_components,
    distinct_rows,
    flush_subnormals,
    hessian_alignment,
    neighbourhoods,
    null_embedding,
    tangent_affine_extension,
)
from disbench.methods._linear import fit_ica, num_codes

RENDER_CHUNK = 1024  # observations rendered at once while sampling the training set


def default_neighbours(d: int) -> int:
    """k when not given: at least 12, and d + 1 above the minimum so the fit is overdetermined."""
    return max(12, d * (d + 3) // 2 + d + 1)


def sample_observations(
    dataset: GroundTruthDataset, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(factor indices [n, K], flattened float32 observations [n, C*H*W]), rendered in chunks.

    Subnormal pixel values are flushed to 0 (see :func:`methods._hessian.flush_subnormals`).
    """
    factors = dataset.sample_factors(n, rng)
    size = int(np.prod(dataset.observation_shape))
    x = np.empty((n, size), dtype=np.float32)
    for i in range(0, n, RENDER_CHUNK):
        x[i : i + RENDER_CHUNK] = dataset.render(factors[i : i + RENDER_CHUNK]).reshape(-1, size)
    return factors, flush_subnormals(x)


@attrs.frozen(kw_only=True)
class HLLEICAParams:
    """HLLE + ICA's hyperparameters; ``num_points`` sets the cost (the budget's steps: unused)."""

    d: int | None = param(None, int, ge=1, doc="target dimension; None: the number of factors")
    k: int | None = param(None, int, ge=1, doc="neighbours; None: default_neighbours(d)")
    num_points: int = param(2000, int, ge=2, doc="training observations (duplicates merged)")
    eigen_solver: str = param(
        "auto", str, choices=EIGEN_SOLVERS, doc="dense up to 1000 distinct points, then arpack"
    )
    ica_max_iter: int = param(1000, int, ge=1)


class HLLEICARepresentation(Representation):
    """Codes = ICA(HLLE embedding), extended to new observations by local affine fits."""

    def __init__(self, train_x: np.ndarray, embedding: np.ndarray, k: int, ica: FastICA) -> None:
        self.train_x = train_x  # distinct training observations, float32 [n, D]
        self.sq_norms = np.einsum("ij,ij->i", train_x, train_x)
        self.embedding = embedding  # their HLLE coordinates [n, d] (before ICA)
        self.k = k
        self.ica = ica

    def embed(self, x: np.ndarray) -> np.ndarray:
        """HLLE coordinates [n, d] of observations [n, C, H, W] (before ICA)."""
        flat = flush_subnormals(np.array(x, dtype=np.float32).reshape(len(x), -1))
        if flat.shape[1] != self.train_x.shape[1]:
            raise ValueError(
                f"hlle_ica: observations have {flat.shape[1]} values each, the training "
                f"set had {self.train_x.shape[1]}"
            )
        return tangent_affine_extension(flat, self.train_x, self.sq_norms, self.embedding, self.k)

    def encode(self, x: np.ndarray) -> np.ndarray:
        return self.ica.transform(self.embed(x))


@register
class HLLEICA(Method):
    name: ClassVar[str] = "hlle_ica"
    description: ClassVar[str] = (
        "Hessian eigenmaps (HLLE) to d dims, then FastICA (Horan, Richardson & Weiss 2021)"
    )
    Params = HLLEICAParams
    # Verified from the paper's Fig. 1 (shared notes, methods.md section 3.5); "cat1" is the
    # paper's own GAN-generated image manifold, which disbench cannot build.
    paper_results: ClassVar[tuple[PaperResult, ...]] = (
        PaperResult(
            "cat1 (the paper's GAN image manifold)",
            "mcc",
            0.96952,
            "Horan, Richardson & Weiss, NeurIPS 2021, Fig. 1 (IRMAE: 0.39009)",
        ),
    )

    def fit(
        self,
        dataset: GroundTruthDataset,
        hparams: dict[str, Any],
        seed: int,
        budget: TrainBudget,
        ctx: FitContext,
    ) -> Representation:
        hp: HLLEICAParams = self.typed(hparams)
        d = num_codes(hp.d, dataset, ctx)
        k = default_neighbours(d) if hp.k is None else hp.k
        rng = np.random.default_rng(seed)
        _, x = sample_observations(dataset, hp.num_points, rng)
        ctx.progress(1, 4)
        first, inverse = distinct_rows(x)
        distinct = x[first]
        del x
        check_neighbours(k, d, len(distinct), "hlle_ica")
        knn = NearestNeighbors(algorithm="brute").fit(distinct)
        nb = neighbourhoods(knn, distinct, k)
        ctx.progress(2, 4)
        w = hessian_alignment(distinct, nb, d)
        embedding, evals, solver = null_embedding(w, d, hp.eigen_solver, seed)
        ctx.progress(3, 4)
        ica, converged = fit_ica(embedding[inverse], d, hp.ica_max_iter, seed, ctx)
        ctx.progress(4, 4)
        components = count_components(nb)
        ctx.info.update(
            {
                "d": d,
                "k": k,
                "distinct_points": len(distinct),
                "eigen_solver": solver,
                "smallest_eigenvalues": [float(v) for v in evals],
                "knn_graph_components": components,
                "ica_iterations": int(ica.n_iter_),
                "ica_converged": converged,
            }
        )
        if components > 1:
            ctx.info["warning"] = (
                f"the kNN graph has {components} connected components: HLLE's null space "
                "then holds per-component indicators, not only the factors"
            )
        return HLLEICARepresentation(distinct, embedding, k, ica)
