"""Batched training: N models of one VAE variant trained in lockstep as one packed network.

The N models are packed side by side into one network whose every layer is N independent
layers run by a single kernel: convolutions and transposed convolutions become grouped
ones (``groups=N``: model i owns channel block i), dense layers one ``baddbmm`` over a
model axis. Adam runs on the packed tensors; it is elementwise, so that is exactly N
separate Adams. The loss is the sum of the N models' losses, whose gradient with respect
to model i's weights is model i's own gradient. Everything per model stays per model:
initial weights, data stream, noise stream (reparameterisation and FactorVAE's
permutations) come from its own seed through ``loop.Streams``, exactly as ``vae.train``
draws them; the loss terms and the variant's regulariser are the single-model functions
``vmap``-ed over the model axis, with each model's hyperparameters as a tensor, so
AnnealedVAE's schedule, beta-TCVAE's minibatch estimator and FactorVAE's discriminator
(packed too, with its own packed Adam) are batched by the same code that trains one model.

Why packed rather than ``torch.func`` (stacked state + ``functional_call`` + ``vmap``):
it measured faster on an H200 (grouped cuDNN convolutions, ``perf-anchors.md``) and on
the CPU (``perf/train_throughput.txt``); docs/batched-training.md has the numbers.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import vmap

from disbench.api import FitContext, GroundTruthDataset, TrainBudget
from disbench.methods.nn import loop, losses
from disbench.methods.nn.architectures import (
    ConvEncoder,
    DeconvDecoder,
    FCDiscriminator,
    SamePadConv,
)
from disbench.methods.nn.vae import (
    AutoEncoder,
    LatentTerms,
    VAERepresentation,
    Variant,
    adam,
    build,
    loss_terms,
    representation,
    train,
)

MAX_GROUP = 256  # beyond this the H200 anchors show no further gain per model
MEMORY_FRACTION = 0.5  # of the free GPU memory that auto_group_size plans to use
ASSUMED_BATCH = 64  # per-model batch auto_group_size plans for (the reference protocol)


class PackedLinear(nn.Module):
    """N independent dense layers: [N, B, in] -> [N, B, out], weight [N, out, in]."""

    def __init__(self, n: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(n, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))


def packed_layer(layer: nn.Module, n: int) -> nn.Module:
    """The N-model version of one layer of the reference networks."""
    if isinstance(layer, SamePadConv):
        return SamePadConv(
            n * layer.in_channels, n * layer.out_channels, layer.kernel_size, layer.stride, groups=n
        )
    if isinstance(layer, nn.ConvTranspose2d):
        return nn.ConvTranspose2d(
            n * layer.in_channels,
            n * layer.out_channels,
            layer.kernel_size,
            layer.stride,
            layer.padding,
            groups=n,
        )
    if isinstance(layer, nn.Linear):
        return PackedLinear(n, layer.in_features, layer.out_features)
    if isinstance(layer, nn.ReLU | nn.LeakyReLU):
        return layer
    raise TypeError(f"batched training: no packed form for layer {type(layer).__name__}")


def packed_sequential(seq: nn.Sequential, n: int) -> nn.Sequential:
    return nn.Sequential(*(packed_layer(layer, n) for layer in seq))


class PackedEncoder(nn.Module):
    """N ``ConvEncoder``s: images [B, N*C, 64, 64] -> (means, logvars) [N, B, L]."""

    def __init__(self, single: ConvEncoder, n: int) -> None:
        super().__init__()
        self.n = n
        self.convs = packed_sequential(single.convs, n)
        self.fc = packed_layer(single.fc, n)
        self.means = packed_layer(single.means, n)
        self.logvars = packed_layer(single.logvars, n)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.convs(x)
        b, nc, height, width = h.shape
        # Per model, flatten in TF's channels-last order as ConvEncoder does.
        h = h.reshape(b, self.n, nc // self.n, height, width).permute(1, 0, 3, 4, 2)
        h = F.relu(self.fc(h.reshape(self.n, b, -1)))
        return self.means(h), self.logvars(h)


class PackedDecoder(nn.Module):
    """N ``DeconvDecoder``s: codes [N, B, L] -> logits [B, N*C, 64, 64]."""

    def __init__(self, single: DeconvDecoder, n: int) -> None:
        super().__init__()
        self.n = n
        self.fc1 = packed_layer(single.fc1, n)
        self.fc2 = packed_layer(single.fc2, n)
        self.deconvs = packed_sequential(single.deconvs, n)
        self.channels = single.deconvs[0].in_channels
        self.side = math.isqrt(single.fc2.out_features // self.channels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.fc2(F.relu(self.fc1(z))))
        b = z.shape[1]
        h = h.reshape(self.n, b, self.side, self.side, self.channels).permute(1, 0, 4, 2, 3)
        return self.deconvs(h.reshape(b, self.n * self.channels, self.side, self.side))


class PackedAutoEncoder(nn.Module):
    """N ``AutoEncoder``s; parameter names match the single model's."""

    def __init__(self, channels: int, num_latents: int, n: int) -> None:
        super().__init__()
        self.encoder = PackedEncoder(ConvEncoder(channels, num_latents), n)
        self.decoder = PackedDecoder(DeconvDecoder(channels, num_latents), n)


class PackedDiscriminator(nn.Module):
    """N ``FCDiscriminator``s: codes [N, B, L] -> logits [N, B, 2]."""

    def __init__(self, num_latents: int, n: int) -> None:
        super().__init__()
        self.net = packed_sequential(FCDiscriminator(num_latents).net, n)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def model_slot(packed: torch.Tensor, i: int, shape: torch.Size) -> torch.Tensor:
    """Model i's part of a packed tensor: index i of a stacked one (dense layers), else
    block i along dim 0 (grouped convolutions: output, or transposed input, channels)."""
    if packed.dim() == len(shape) + 1:
        return packed[i]
    return packed[i * shape[0] : (i + 1) * shape[0]]


def copy_in(packed: nn.Module, i: int, single: nn.Module) -> None:
    """Write ``single``'s weights into model slot i of ``packed``."""
    params = dict(single.named_parameters())
    with torch.no_grad():
        for name, p in packed.named_parameters():
            model_slot(p, i, params[name].shape).copy_(params[name])


def copy_out(packed: nn.Module, i: int, single: nn.Module) -> nn.Module:
    """Write model slot i of ``packed`` into ``single``; returns ``single``."""
    params = dict(single.named_parameters())
    with torch.no_grad():
        for name, p in packed.named_parameters():
            params[name].copy_(model_slot(p, i, params[name].shape))
    return single


@dataclass(frozen=True)
class PackedOptions:
    """Speed options that do not change what is computed beyond floating-point rounding."""

    channels_last: bool = False  # NHWC activations and conv weights
    fused_adam: bool | None = None  # None: torch's default (foreach on CUDA)

    @classmethod
    def for_device(cls, device: torch.device) -> PackedOptions:
        """Channels-last everywhere (oneDNN's native layout on the CPU, where NCHW grouped
        convolutions pay reorder copies; the H200 anchors' fastest packed layout); fused
        Adam on CUDA, torch's default Adam on the CPU."""
        return cls(channels_last=True, fused_adam=True if device.type == "cuda" else None)


class PackedNets(NamedTuple):
    model: PackedAutoEncoder
    opt: torch.optim.Adam
    disc: PackedDiscriminator | None
    disc_opt: torch.optim.Adam | None

    def state(self) -> dict[str, Any]:
        """The networks and optimisers a checkpoint holds (those the group has)."""
        return {name: net for name, net in self._asdict().items() if net is not None}


def build_packed(
    method: Variant,
    channels: int,
    hp: Mapping[str, Any],
    inits: Sequence[torch.Generator],
    device: torch.device,
    options: PackedOptions,
) -> PackedNets:
    """N models' networks, each initialised by ``build`` from its own generator, packed."""
    n, latents = len(inits), int(hp["num_latents"])
    with torch.device("meta"):  # every parameter is overwritten below: allocate, don't init
        model = PackedAutoEncoder(channels, latents, n)
        disc = PackedDiscriminator(latents, n) if method.uses_discriminator else None
    model = model.to_empty(device=device)
    disc = disc.to_empty(device=device) if disc is not None else None
    for i, init in enumerate(inits):
        single = build(method, channels, hp, init, torch.device("cpu"))
        copy_in(model, i, single.model)
        if disc is not None:
            copy_in(disc, i, single.disc)
    if options.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = adam(model.parameters(), hp, fused=options.fused_adam)
    if disc is None:
        return PackedNets(model, opt, None, None)
    return PackedNets(model, opt, disc, adam(disc.parameters(), hp, "disc_", options.fused_adam))


def varies(method: Variant, key: str, value: Any) -> bool:
    """Whether hyperparameter ``key`` may differ between the models of one group."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return number and key not in method.shared_hparams


def group_key(method: Variant, hp: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """Jobs with equal keys can train as one packed group."""
    return tuple(sorted((k, repr(v)) for k, v in hp.items() if not varies(method, k, v)))


def split_hparams(
    method: Variant, hps: Sequence[Mapping[str, Any]], device: torch.device
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(values shared by the group, per-model values as float32 [N] tensors for vmap)."""
    shared = {k: v for k, v in hps[0].items() if not varies(method, k, v)}
    per_model = {
        k: torch.tensor([float(hp[k]) for hp in hps], dtype=torch.float32, device=device)
        for k in hps[0]
        if k not in shared
    }
    return shared, per_model


def packed_step(
    method: Variant,
    nets: PackedNets,
    x: torch.Tensor,
    shared: Mapping[str, Any],
    per_model: Mapping[str, torch.Tensor],
    step: int,
    noises: Sequence[torch.Generator],
    bf16: bool = False,
    channels_last: bool = False,
) -> dict[str, torch.Tensor]:
    """One update of N packed models on ``x`` [N*B, C, H, W] (model i's batch in block i);
    the N-model counterpart of ``vae.train_step``. Returns detached [N] loss terms."""
    n = len(noises)
    b, (c, height, width) = len(x) // n, x.shape[1:]
    xp = x.reshape(n, b, c, height, width).transpose(0, 1).reshape(b, n * c, height, width)
    if channels_last:
        xp = xp.contiguous(memory_format=torch.channels_last)
    model, disc = nets.model, nets.disc
    autocast = torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16)
    with autocast:
        mean, logvar = model.encoder(xp)
    mean, logvar = mean.float(), logvar.float()
    if method.stochastic:
        eps = torch.stack(
            [
                torch.randn(mean.shape[1:], generator=g, device=x.device, dtype=mean.dtype)
                for g in noises
            ]
        )
        z = mean + torch.exp(logvar / 2) * eps  # losses.sample_gaussian, per model
        kl = vmap(losses.gaussian_kl)(mean, logvar)
    else:
        z, kl = mean, torch.zeros(n, device=x.device)
    with autocast:
        logits = model.decoder(z)
        disc_logits = disc(z).float() if disc is not None else None

    def one_model(
        xi: torch.Tensor, li: torch.Tensor, latent: LatentTerms, hp: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        return loss_terms(method, xi, li, latent, {**shared, **hp}, step)

    per_image = (b, n, c, height, width)
    latent_dims = LatentTerms(0, 0, 0, 0, None if disc_logits is None else 0)
    terms = vmap(one_model, in_dims=(1, 1, latent_dims, 0))(
        xp.reshape(per_image),
        logits.reshape(per_image),
        LatentTerms(mean, logvar, z, kl, disc_logits),
        dict(per_model),
    )
    loss = terms["loss"].sum()  # d(sum)/d(model i's weights) = model i's own gradient

    nets.opt.zero_grad(set_to_none=True)
    if disc is None:
        loss.backward()
    else:
        assert nets.disc_opt is not None and disc_logits is not None
        # losses.permute_dims per model: each model's permutation from its own stream.
        u = torch.stack([torch.rand(z.shape[1:], generator=g, device=z.device) for g in noises])
        permuted = torch.gather(z.detach(), 1, torch.argsort(u, dim=1))
        with autocast:
            permuted_logits = disc(permuted).float()
        terms["discriminator_loss"] = vmap(losses.discriminator_loss)(disc_logits, permuted_logits)
        loss.backward(inputs=list(model.parameters()), retain_graph=True)
        nets.disc_opt.zero_grad(set_to_none=True)
        terms["discriminator_loss"].sum().backward(inputs=list(disc.parameters()))
        nets.disc_opt.step()
    nets.opt.step()
    return {k: v.detach() for k, v in terms.items()}


def next_batches(
    dataset: GroundTruthDataset, batches: Sequence[Iterator[np.ndarray]], device: torch.device
) -> torch.Tensor:
    """Each model's next batch (``loop.factor_batches`` of its own data stream), all
    rendered on the device by one call: [N*B, C, H, W], model i's batch in block i."""
    factors = np.concatenate([next(it) for it in batches])
    return dataset.render_torch(loop.to_device(factors, device), device)


def train_packed(
    method: Variant,
    dataset: GroundTruthDataset,
    jobs: Sequence[tuple[dict[str, Any], int, FitContext]],
    budget: TrainBudget,
    options: PackedOptions | None = None,
) -> list[VAERepresentation | FloatingPointError]:
    """Train the jobs (equal ``group_key``) as one packed group; one representation each,
    each job's ``ctx.info`` filled as ``train`` fills it, plus the group size. A model whose
    final losses are not finite gets the error instead: the models share no value (every
    layer and optimiser moment is per model, the summed loss gives each its own gradient),
    so one diverging does not touch the others."""
    hps = [hp for hp, _, _ in jobs]
    seeds = [seed for _, seed, _ in jobs]
    contexts = [ctx for _, _, ctx in jobs]
    device = torch.device(contexts[0].device)
    options = options or PackedOptions.for_device(device)
    streams = [loop.Streams(seed, device) for seed in seeds]
    channels = dataset.observation_shape[0]
    nets = build_packed(method, channels, hps[0], [s.init for s in streams], device, options)
    shared, per_model = split_hparams(method, hps, device)
    bf16 = shared["precision"] == "bf16"
    noises = [s.noise for s in streams]
    batches = [loop.factor_batches(dataset, s.data, budget.batch_size) for s in streams]

    def step(i: int) -> dict[str, torch.Tensor]:
        x = next_batches(dataset, batches, device)
        return packed_step(
            method, nets, x, shared, per_model, i, noises, bf16, options.channels_last
        )

    # The group's state lives in its first run's checkpoint, valid for the same members only.
    members = [(seed, sorted(hp.items())) for seed, hp in zip(seeds, hps, strict=True)]
    finished = loop.run(
        method.name,
        contexts,
        seeds,
        budget.steps,
        step,
        {**nets.state(), "streams": streams},
        loop.LossCurve(budget.steps),
        key=members,
        precision=shared["precision"],
    )
    for ctx in contexts:
        ctx.info["batched_group_size"] = len(jobs)
        ctx.info["model_steps_per_second"] = len(jobs) * budget.steps / finished.seconds
    outcomes: list[VAERepresentation | FloatingPointError] = []
    for i, (hp, seed, diverged) in enumerate(zip(hps, seeds, finished.diverged, strict=True)):
        if diverged is not None:
            outcomes.append(diverged)
            continue
        single = AutoEncoder(channels, int(hp["num_latents"])).to(device)
        model = copy_out(nets.model, i, single)
        outcomes.append(representation(method, model, dataset, hp, seed, budget))
    return outcomes


def fit_many(
    method: Variant,
    dataset: GroundTruthDataset,
    jobs: Sequence[tuple[dict[str, Any], int, FitContext]],
    budget: TrainBudget,
    options: PackedOptions | None = None,
) -> list[VAERepresentation | FloatingPointError]:
    """Train prepared jobs: packed groups of compatible jobs, a lone job by ``train``;
    a diverged job's slot holds its ``FloatingPointError``."""
    groups: dict[Any, list[int]] = defaultdict(list)
    for i, (hp, _, _) in enumerate(jobs):
        groups[group_key(method, hp)].append(i)
    outcomes: list[VAERepresentation | FloatingPointError | None] = [None] * len(jobs)
    for members in groups.values():
        fitted: list[VAERepresentation | FloatingPointError]
        if len(members) == 1:
            hp, seed, ctx = jobs[members[0]]
            ctx.info["batched_group_size"] = 1
            try:
                fitted = [train(method, dataset, hp, seed, budget, ctx)]
            except FloatingPointError as exc:
                fitted = [exc]
        else:
            fitted = train_packed(method, dataset, [jobs[i] for i in members], budget, options)
        for i, outcome in zip(members, fitted, strict=True):
            outcomes[i] = outcome
    assert all(outcome is not None for outcome in outcomes)
    return outcomes  # type: ignore[return-value]


@functools.cache  # the runner asks once per run of a study
def bytes_per_model(method_cls: type[Variant], channels: int = 3, batch: int = 64) -> int:
    """Training memory of one model: weights, gradients and two Adam moments (4 copies of
    the parameters) plus twice the activations autograd saves for the backward pass at
    ``batch`` (room for the activation gradients), counted on the meta device."""
    method = method_cls()
    latents = int(method.defaults["num_latents"])
    with torch.device("meta"):
        nets = [AutoEncoder(channels, latents)]
        if method.uses_discriminator:
            nets.append(FCDiscriminator(latents))
    weights = {id(p) for net in nets for p in net.parameters()}
    saved = 0

    def count(t: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        if id(t) not in weights and id(t._base) not in weights:  # weights are counted apart
            saved += t.numel() * t.element_size()
        return t

    with torch.device("meta"), torch.autograd.graph.saved_tensors_hooks(count, lambda t: t):
        x = torch.empty(batch, channels, 64, 64)
        mean, logvar = nets[0].encoder(x)
        z = mean + torch.exp(logvar / 2) * torch.empty_like(mean)
        loss = losses.bernoulli_reconstruction(x, nets[0].decoder(z))
        loss = loss + losses.gaussian_kl(mean, logvar)
        if method.uses_discriminator:
            loss = loss + nets[1](z).sum() + nets[1](z.detach()).sum()
    params = sum(p.numel() * p.element_size() for net in nets for p in net.parameters())
    return 4 * params + 2 * saved


def auto_group_size(method_cls: type[Variant], device: torch.device) -> int:
    """Models per group: MEMORY_FRACTION of the free CUDA memory over ``bytes_per_model``
    (3 channels, batch ASSUMED_BATCH), between 1 and MAX_GROUP; 1 off CUDA."""
    if device.type != "cuda":
        return 1
    free, _ = torch.cuda.mem_get_info(device)
    fits = int(MEMORY_FRACTION * free) // bytes_per_model(method_cls, batch=ASSUMED_BATCH)
    return max(1, min(MAX_GROUP, fits))
