"""``li_ae``: a locally isometric autoencoder, then linear ICA (Horan, Richardson & Weiss 2021).

Horan, Richardson & Weiss propose encouraging an autoencoder to be a local isometry so
that, as for HLLE, its codes differ from independent factors only by a rigid motion that
ICA removes. Their exact loss and weight are not verified (no code, the paper body was
not readable), so the form here is our choice:

    loss = BCE(x, D(E(x))) + li_weight * mean_pairs (|E(x_i) - E(x_j)| / (s |x_i - x_j|) - 1)^2

over pairs (i, j) where x_j is one of the ``neighbours`` nearest observations of x_i in
pixel space, and s = exp(log_s) is one learned scalar. Why this form:

- Only neighbouring pairs: local isometry constrains the metric, not global distances
  (pixel distances between far-apart images saturate and are not geodesic).
- Relative error: each pair's distortion is dimensionless, so ``li_weight`` means the same
  for any image size and neighbour spacing, and close pairs weigh as much as far ones.
- The learned global scale s: the theory needs an isometry only up to a constant factor
  (a scaled rotation is un-mixed by ICA just as well), so the network is not forced to an
  absolute code scale set by pixel units.

Neighbours need a fixed set of observations: ``pool_size`` observations are drawn once
from the seed and every batch is ``batch_size / 2`` anchors plus one random neighbour
each (so a step costs what a plain AE step of the same batch costs). Exact duplicate
images are merged when finding neighbours (a zero pixel distance has no ratio).
``li_weight = 0`` is the plain autoencoder + ICA on the same pool and schedule: the
comparison the paper's claim needs. Codes: FastICA on the encoder means of the pool,
with ``num_latents`` (default: the dataset's number of factors, as the theory requires)
components; ``decode`` maps ICA codes back through the decoder.

The networks, initialisation, Adam settings and Bernoulli loss are the reference ones
shared with the VAE baselines (``methods/nn``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import numpy as np
import torch
from sklearn.decomposition import FastICA
from sklearn.neighbors import NearestNeighbors

from disbench.api import (
    FitContext,
    GroundTruthDataset,
    Method,
    Representation,
    TrainBudget,
    param,
    register,
)
from disbench.methods._hessian import distinct_rows, flush_subnormals, neighbourhoods
from disbench.methods._linear import fit_ica, num_codes
from disbench.methods.hlle_ica import sample_observations
from disbench.methods.nn import loop, losses
from disbench.methods.nn.architectures import check_reference_shape, init_like_tf
from disbench.methods.nn.vae import AutoEncoder, VAERepresentation, adam


class LIAERepresentation(Representation):
    """Codes = ICA of the autoencoder's codes; ``decode`` inverts the ICA, then decodes."""

    def __init__(self, autoencoder: VAERepresentation, ica: FastICA) -> None:
        self.autoencoder = autoencoder
        self.ica = ica

    def encode(self, x: np.ndarray) -> np.ndarray:
        # The pool was flushed the same way (``sample_observations``): same preprocessing.
        clean = flush_subnormals(np.array(x, dtype=np.float32))
        return self.ica.transform(self.autoencoder.encode(clean))

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return self.autoencoder.decode(self.ica.inverse_transform(np.asarray(codes)))


def isometry_penalty(
    z_a: torch.Tensor, z_b: torch.Tensor, pixel_dist: torch.Tensor, log_scale: torch.Tensor
) -> torch.Tensor:
    """Mean squared relative distortion of neighbour distances, code vs scaled pixel space."""
    code_dist = torch.sqrt((z_a - z_b).square().sum(1) + 1e-12)  # eps: finite grad at 0
    return (code_dist / (log_scale.exp() * pixel_dist) - 1).square().mean()


class Pool:
    """The fixed training observations and, for each, its nearest distinct neighbours."""

    def __init__(self, x: np.ndarray, neighbours: int, device: torch.device) -> None:
        first, self.inverse = distinct_rows(x)
        if len(first) <= neighbours:
            raise ValueError(
                f"li_ae: neighbours={neighbours} needs more than {neighbours} distinct "
                f"observations in the pool, got {len(first)} (raise pool_size)"
            )
        distinct = x[first]
        knn = NearestNeighbors(algorithm="brute").fit(distinct)
        nb = neighbourhoods(knn, distinct, neighbours)[:, 1:]  # drop the point itself
        self.partner = first[nb]  # [distinct, neighbours] pool rows
        self.dist = np.stack(
            [np.linalg.norm(distinct[nb[:, j]] - distinct, axis=1) for j in range(neighbours)],
            axis=1,
        )
        self.x = torch.from_numpy(x).to(device)
        self.distinct = len(first)

    def pairs(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """n random anchors (pool rows), one random neighbour each, their pixel distances."""
        anchors = rng.integers(0, len(self.inverse), size=n)
        slot = rng.integers(0, self.partner.shape[1], size=n)
        ids = self.inverse[anchors]
        return anchors, self.partner[ids, slot], self.dist[ids, slot]


@attrs.frozen(kw_only=True)
class LIAEParams:
    num_latents: int | None = param(None, int, ge=1)  # None: the dataset's number of factors
    li_weight: float = param(1000.0, ge=0)  # 0: the plain autoencoder + ICA
    neighbours: int = param(5, int, ge=1)
    pool_size: int = param(3000, int, ge=1)
    lr: float = param(1e-3, gt=0)
    adam_beta1: float = param(0.9, ge=0, lt=1)
    adam_beta2: float = param(0.999, ge=0, lt=1)
    adam_eps: float = param(1e-8, gt=0)
    ica_max_iter: int = param(1000, int, ge=1)


@register
class LocalIsometryAE(Method):
    name: ClassVar[str] = "li_ae"
    description: ClassVar[str] = (
        "autoencoder with a local-isometry penalty on neighbour pairs, then FastICA "
        "(Horan, Richardson & Weiss 2021; li_weight=0: plain AE + ICA)"
    )
    framework: ClassVar[str] = "torch"
    checkpoints: ClassVar[bool] = True
    Params = LIAEParams

    def fit(
        self,
        dataset: GroundTruthDataset,
        hparams: dict[str, Any],
        seed: int,
        budget: TrainBudget,
        ctx: FitContext,
    ) -> Representation:
        hp = self.typed(hparams)
        loop.check_budget(self.name, budget)
        check_reference_shape(self.name, dataset)
        latents = num_codes(hp.num_latents, dataset, ctx)
        device = torch.device(ctx.device)
        # The data stream draws the pool, then every step's pairs: a checkpoint at any step
        # resumes it exactly.
        streams = loop.Streams(seed, device)
        _, x = sample_observations(dataset, hp.pool_size, streams.data)
        pool = Pool(x, hp.neighbours, device)
        channels = dataset.observation_shape[0]
        model = init_like_tf(AutoEncoder(channels, latents), streams.init).to(device)
        log_scale = torch.zeros((), device=device, requires_grad=True)
        opt = adam([*model.parameters(), log_scale], hp)
        shape = (-1, *dataset.observation_shape)

        def step(i: int) -> dict[str, torch.Tensor]:
            anchors, partners, dist = pool.pairs(budget.batch_size // 2, streams.data)
            idx = torch.from_numpy(np.concatenate([anchors, partners])).to(device)
            batch = pool.x[idx].reshape(shape)
            pixel_dist = torch.from_numpy(dist).float().to(device)
            terms = self.loss(model, batch, pixel_dist, log_scale, hp.li_weight)
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            opt.step()
            return {k: v.detach() for k, v in terms.items()}

        state = {
            "model": model,
            "opt": opt,
            "log_scale": loop.Tensors(log_scale=log_scale),
            "streams": streams,
        }
        curve = loop.LossCurve(budget.steps)
        loop.run(self.name, [ctx], [seed], budget.steps, step, state, curve, save_every=1)

        config = {
            "method": self.name,
            "num_latents": latents,
            "observation_shape": list(dataset.observation_shape),
            "hparams": {**hparams, "num_latents": latents},
            "seed": seed,
            "steps": budget.steps,
        }
        autoencoder = VAERepresentation(model, config)
        codes = autoencoder.encode(x.reshape(shape))
        ica, converged = fit_ica(codes, latents, hp.ica_max_iter, seed, ctx)
        ctx.info.update(
            {
                "num_latents": latents,
                "distinct_pool_points": pool.distinct,
                "isometry_scale": float(log_scale.detach().exp()),
                "ica_iterations": int(ica.n_iter_),
                "ica_converged": converged,
            }
        )
        return LIAERepresentation(autoencoder, ica)

    @staticmethod
    def loss(
        model: AutoEncoder,
        batch: torch.Tensor,
        pixel_dist: torch.Tensor,
        log_scale: torch.Tensor,
        li_weight: float,
    ) -> dict[str, torch.Tensor]:
        """Reconstruction of every image plus the weighted penalty on the (anchor, partner)
        halves of the batch."""
        mean, _ = model.encoder(batch)
        recon = losses.bernoulli_reconstruction(batch, model.decoder(mean))
        half = len(pixel_dist)
        penalty = isometry_penalty(mean[:half], mean[half:], pixel_dist, log_scale)
        return {
            "loss": recon + float(li_weight) * penalty,
            "reconstruction": recon,
            "isometry": penalty,
        }
