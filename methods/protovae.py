"""ProtoVAE (Patil, Evanusa & JaJa 2023, arXiv 2305.09092; an ICLR 2023 submission): a VAE
whose decoder a prototypical network constrains. Rebuilt from the abstract, without code.

The authors released no code, and of the paper only the abstracts (arXiv, OpenReview) and
the first lines of the introduction were reachable here. What the abstracts fix: a VAE-based
model with "a deep metric learning Prototypical network trained using self-supervision",
which "constrains the mapping of the representation space to data space to ensure that
controlled changes in the representation space are mapped to changes in the factors of
variations in the data space"; the model "actively change[s] or intervene[s] in the latent
space during training to enforce each dimension of the representation to uniquely and
consistently transform the data"; it needs no "a priori knowledge of the dataset, including
the number of factors". Everything else is this project's choice (the docs list each with
its alternatives):

1. **VAE**: disentanglement_lib's reference encoder and decoder, Bernoulli reconstruction
   plus ``beta`` times the KL to N(0, I) (the beta-VAE loss), reparameterised codes.
2. **Active dimensions** (the unknown number of factors): at each step, dimension k is
   active when its batch-mean KL(q(z_k | x) || N(0, 1)) is at least ``active_kl`` nats;
   only active dimensions are intervened on, and they are the episode's classes
   (n_way = their number). With fewer than two there is nothing to tell apart: the
   prototypical loss is 0 that step.
3. **Interventions**: the base codes are the encoder means of the first
   ``k_shot + k_query`` images of the batch (detached); each is intervened on once per
   active dimension k: z'_k = z_k + delta, delta ~ U(shift_min, shift_max) from the run's
   noise stream, every other coordinate unchanged. The shift is always positive, so the
   changes made by one dimension can share one prototype.
4. **Prototypical network**: a small conv net f (4 convs 4x4 stride 2, 32-32-64-64, then a
   linear map to ``embed_dim``) embeds the pair (decoded base x, decoded intervened x',
   both sigmoid images) as f(x') - f(x), scaled to unit length. Unscaled, the differences
   start near 0 (about 1e-4: the untrained decoder barely responds to a shift), where the
   loss sits at log n_way with a vanishing gradient, and how long it stays there depended
   on the seed and on the CPU's rounding; on the unit sphere the classes' directions,
   already apart at initialisation, give a gradient from the first step.
5. **Episodes**: the pairs of the first ``k_shot`` bases are the support set, those of the
   other ``k_query`` the query set, labelled by the intervened dimension; prototypes are the
   support means, and the loss is Snell et al.'s: the query mean of -log softmax over
   classes of minus the squared Euclidean distance to each prototype, divided by
   ``temperature`` (:func:`prototypical_loss`).
6. **Optimisation**: loss = reconstruction + beta KL + ``proto_weight`` x prototypical
   loss, one Adam over encoder, decoder and f, jointly at every step. The prototypical loss
   reaches the decoder and f, not the encoder (the base codes are detached): the abstract
   has it constrain the map from representation space to data space.

The representation is the encoder mean; ``decode`` is the decoder's sigmoid (the reference
VAE's representation). Not batchable: the episode's classes (the active dimensions) differ
per model and per step, so a packed group would need ragged episodes, while the batched
trainer (``methods.nn.batched``) vmaps only a fixed-shape regulariser.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from disbench.api import (
    FitContext,
    GroundTruthDataset,
    Method,
    Representation,
    TrainBudget,
    param,
    register,
)
from disbench.methods.nn import loop, losses
from disbench.methods.nn.architectures import SamePadConv, check_reference_shape, init_like_tf
from disbench.methods.nn.vae import AutoEncoder, VAERepresentation, adam


class Embedder(nn.Module):
    """The prototypical network's embedding: image [n, C, 64, 64] -> [n, dim]."""

    def __init__(self, channels: int, dim: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            SamePadConv(channels, 32, 4, 2), nn.ReLU(),
            SamePadConv(32, 32, 4, 2), nn.ReLU(),
            SamePadConv(32, 64, 4, 2), nn.ReLU(),
            SamePadConv(64, 64, 4, 2), nn.ReLU(),
        )  # fmt: skip
        self.fc = nn.Linear(64 * 4 * 4, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convs(x).flatten(1))


class ProtoNets(NamedTuple):
    """One run's networks and their optimiser."""

    model: AutoEncoder
    embedder: Embedder
    opt: torch.optim.Adam


def prototypical_loss(
    support: torch.Tensor, query: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """Snell et al. 2017: support [m, s, d] and query [m, q, d], row i of class i.

    Prototype c_i = mean of class i's support embeddings; the loss is the mean over the
    queries e of class i of -log softmax_j(-||e - c_j||^2 / temperature) at j = i.
    """
    prototypes = support.mean(1)  # [m, d]
    distances = (query[:, :, None, :] - prototypes[None, None]).square().sum(-1)  # [m, q, m]
    log_p = torch.log_softmax(-distances / temperature, dim=-1)
    return -torch.diagonal(log_p, dim1=0, dim2=2).mean()


def active_dims(kl: torch.Tensor, threshold: float) -> torch.Tensor:
    """Indices of the dimensions whose KL (nats) is at least ``threshold``."""
    return torch.nonzero(kl >= threshold).flatten()


def intervene(z: torch.Tensor, dims: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Codes z [b, L] -> [b, m, L]: entry (j, i) is z[j] with dimension dims[i] shifted by
    shifts[j, i]; every other coordinate is z[j]'s own (it adds an exact zero)."""
    one_hot = F.one_hot(dims, z.shape[1]).to(z.dtype)  # [m, L]
    return z[:, None, :] + shifts[:, :, None] * one_hot[None]


def episode_loss(
    nets: ProtoNets,
    mean: torch.Tensor,
    dims: torch.Tensor,
    hp: ProtoVAEParams,
    noise: torch.Generator,
) -> torch.Tensor:
    """The prototypical loss of one episode on the batch's encoder means ``mean``."""
    shots = hp.k_shot
    base = mean[: shots + hp.k_query].detach()
    low, high = float(hp.shift_min), float(hp.shift_max)
    u = torch.rand((len(base), len(dims)), generator=noise, device=base.device)
    moved = intervene(base, dims, low + (high - low) * u)  # [b, m, L]
    images = torch.sigmoid(nets.model.decoder(torch.cat([base, moved.flatten(0, 1)])))
    embedded = nets.embedder(images)
    before = embedded[: len(base)]
    after = embedded[len(base) :].reshape(len(base), len(dims), -1)
    pairs = F.normalize((after - before[:, None]).transpose(0, 1), dim=-1)  # [m, b, d]
    return prototypical_loss(pairs[:, :shots], pairs[:, shots:], float(hp.temperature))


@attrs.frozen(kw_only=True)
class ProtoVAEParams:
    num_latents: int = param(10, int, ge=1)
    beta: float = param(4.0, ge=0)  # weight of the KL
    proto_weight: float = param(50.0, ge=0)  # weight of the prototypical loss
    k_shot: int = param(2, int, ge=1)  # support bases per episode
    k_query: int = param(2, int, ge=1)  # query bases per episode
    shift_min: float = param(0.5, gt=0)  # interventions: z_k + U(shift_min, shift_max)
    shift_max: float = param(1.5, gt=0)
    active_kl: float = param(0.1, ge=0)  # nats: a dimension this far from its prior is active
    embed_dim: int = param(64, int, ge=1)
    temperature: float = param(0.1, gt=0)
    lr: float = param(1e-4, gt=0)
    adam_beta1: float = param(0.9, ge=0, lt=1)
    adam_beta2: float = param(0.999, ge=0, lt=1)
    adam_eps: float = param(1e-8, gt=0)

    def __attrs_post_init__(self) -> None:
        if self.shift_min > self.shift_max:
            raise ValueError(f"shift_min {self.shift_min} must be <= shift_max {self.shift_max}")


@register
class ProtoVAE(Method):
    name: ClassVar[str] = "protovae"
    description: ClassVar[str] = (
        "ProtoVAE (Patil et al. 2023), rebuilt from the abstract without code: a beta-VAE "
        "whose decoder a prototypical network trains to make each active latent dimension's "
        "interventions recognisable"
    )
    version: ClassVar[int] = 2  # 2: unit-length pair embeddings and a temperature
    framework: ClassVar[str] = "torch"
    reference_code: ClassVar[bool] = False
    checkpoints: ClassVar[bool] = True
    Params = ProtoVAEParams

    def fit(
        self,
        dataset: GroundTruthDataset,
        hparams: dict[str, Any],
        seed: int,
        budget: TrainBudget,
        ctx: FitContext,
    ) -> Representation:
        hp = self.typed(hparams)
        check_reference_shape(self.name, dataset)
        bases = hp.k_shot + hp.k_query
        if budget.batch_size < bases:
            raise ValueError(
                f"method 'protovae': batch_size {budget.batch_size} is smaller than "
                f"k_shot + k_query = {bases} (the episode's bases)"
            )
        loop.check_budget(self.name, budget)
        device = torch.device(ctx.device)
        layout = loop.memory_format(device)
        streams = loop.Streams(seed, device)
        channels = dataset.observation_shape[0]
        model = init_like_tf(AutoEncoder(channels, hp.num_latents), streams.init)
        embedder = init_like_tf(Embedder(channels, hp.embed_dim), streams.init)
        model = model.to(device, memory_format=layout)
        embedder = embedder.to(device, memory_format=layout)
        params = [*model.parameters(), *embedder.parameters()]
        nets = ProtoNets(model, embedder, adam(params, hp))
        batches = loop.factor_batches(dataset, streams.data, budget.batch_size)
        dims = torch.zeros(0, dtype=torch.long)  # the active dimensions of the latest step

        def step(i: int) -> dict[str, torch.Tensor]:
            nonlocal dims
            x = dataset.render_torch(loop.to_device(next(batches), device), device)
            x = x.contiguous(memory_format=layout)
            mean, logvar = model.encoder(x)
            z = losses.sample_gaussian(mean, logvar, streams.noise)
            recon = losses.bernoulli_reconstruction(x, model.decoder(z))
            kl_dims = losses.gaussian_kl_per_dim(mean, logvar)
            kl = kl_dims.sum()
            dims = active_dims(kl_dims.detach(), hp.active_kl)
            proto = (
                episode_loss(nets, mean, dims, hp, streams.noise)
                if len(dims) >= 2
                else torch.zeros((), device=device)
            )
            loss = recon + hp.beta * kl + hp.proto_weight * proto
            nets.opt.zero_grad(set_to_none=True)
            loss.backward()
            nets.opt.step()
            terms = {
                "loss": loss,
                "reconstruction": recon,
                "kl": kl,
                "elbo": recon + kl,
                "proto": proto,
                "active_dims": torch.tensor(float(len(dims)), device=device),
            }
            return {k: v.detach() for k, v in terms.items()}

        state = {**nets._asdict(), "streams": streams}
        loop.run(self.name, [ctx], [seed], budget.steps, step, state, loop.LossCurve(budget.steps))
        ctx.info["active_dims_last_step"] = dims.tolist()
        config = {
            "method": self.name,
            "num_latents": hp.num_latents,
            "observation_shape": list(dataset.observation_shape),
            "hparams": dict(hparams),
            "seed": seed,
            "steps": budget.steps,
        }
        # Back to the default layout: encodes exactly as the model reloaded from its file.
        return VAERepresentation(model.to(memory_format=torch.contiguous_format), config)
