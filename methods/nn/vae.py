"""The one training loop of every Locatello et al. 2019 VAE variant (and the plain AE).

A variant is a ``VAEMethod`` subclass (:mod:`disbench.methods.nn.vae_method`) that supplies
only ``regularizer(terms, hp, step)``: a pure function of the batch's latent terms, its
hyperparameters and the step, added to the Bernoulli reconstruction loss (dlib's
``BaseVAE.model_fn``). Variants that set ``uses_discriminator`` (FactorVAE) also get dlib's
discriminator, updated in the same step from the same forward pass, on codes permuted
across the batch. The loop, the networks, the optimiser settings and the representation
(the encoder mean) are shared; the loop sees the variant through the ``Variant`` protocol.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple, Protocol

import numpy as np
import torch
from torch import nn

from disbench.api import FitContext, GroundTruthDataset, Representation, TrainBudget
from disbench.methods.nn import losses
from disbench.methods.nn.architectures import (
    ConvEncoder,
    DeconvDecoder,
    FCDiscriminator,
    init_like_tf,
)

# Shared by every variant: dlib's unsupervised_study_v1 shared.gin (Adam 1e-4, 10 latents).
VAE_DEFAULTS: dict[str, Any] = {
    "num_latents": 10,
    "lr": 1e-4,
    "adam_beta1": 0.9,
    "adam_beta2": 0.999,
    "adam_eps": 1e-8,
    "precision": "fp32",  # or "bf16": autocast of the forward pass, losses in fp32
}
PRECISIONS = ("fp32", "bf16")
ENCODE_CHUNK = 512  # observations per forward pass when encoding/decoding: bounded memory
CURVE_POINTS = 20  # loss-curve points recorded in the run record
DRAW_STEPS = 64  # training steps of factors drawn per call on a run's data stream


class LatentTerms(NamedTuple):
    """What a regulariser sees of one batch: encoder outputs, sampled codes, mean KL."""

    mean: torch.Tensor  # [n, L]
    logvar: torch.Tensor  # [n, L]
    z: torch.Tensor  # [n, L] sampled codes (the means for the deterministic AE)
    kl: torch.Tensor  # scalar, batch mean of the per-sample KL to N(0, I)
    disc_logits: torch.Tensor | None  # [n, 2] discriminator logits of z (FactorVAE only)


class AutoEncoder(nn.Module):
    """dlib's conv encoder + deconv decoder; input channels follow the dataset."""

    def __init__(self, channels: int, num_latents: int) -> None:
        super().__init__()
        self.encoder = ConvEncoder(channels, num_latents)
        self.decoder = DeconvDecoder(channels, num_latents)


class VAERepresentation(Representation):
    """Codes = encoder means; ``decode`` = sigmoid of the decoder's logits.

    Pickles as config + CPU state dict (never the module object), so a saved file
    survives code changes that keep the architecture.
    """

    def __init__(self, model: AutoEncoder, config: dict[str, Any]) -> None:
        self.model = model.eval()
        self.config = config

    def _chunked(
        self,
        fn: Callable[[torch.Tensor], torch.Tensor],
        arr: np.ndarray,
        out_shape: tuple[int, ...],
    ) -> np.ndarray:
        """``fn`` over ENCODE_CHUNK rows at a time on the model's device: bounded memory."""
        device = next(self.model.parameters()).device
        out = [
            fn(torch.from_numpy(arr[i : i + ENCODE_CHUNK]).to(device)).float().cpu().numpy()
            for i in range(0, len(arr), ENCODE_CHUNK)
        ]
        return np.concatenate(out) if out else np.zeros((0, *out_shape), dtype=np.float32)

    @torch.inference_mode()
    def encode(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        expected = tuple(self.config["observation_shape"])
        if x.ndim != 4 or x.shape[1:] != expected:
            raise ValueError(
                f"{self.config['method']}: encode expects observations [n, {expected}], "
                f"got {list(x.shape)}"
            )
        return self._chunked(lambda b: self.model.encoder(b)[0], x, (self.config["num_latents"],))

    @torch.inference_mode()
    def decode(self, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes, dtype=np.float32)
        if codes.ndim != 2 or codes.shape[1] != self.config["num_latents"]:
            raise ValueError(
                f"{self.config['method']}: decode expects codes [n, {self.config['num_latents']}]"
                f", got {list(codes.shape)}"
            )
        shape = tuple(self.config["observation_shape"])
        return self._chunked(lambda b: torch.sigmoid(self.model.decoder(b)), codes, shape)

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        return {"config": self.config, "state_dict": state}

    def __setstate__(self, state: dict[str, Any]) -> None:
        config = state["config"]
        model = AutoEncoder(config["observation_shape"][0], config["num_latents"])
        model.load_state_dict(state["state_dict"])
        self.__init__(model, config)  # type: ignore[misc]


class Variant(Protocol):
    """What the loop needs of a VAE variant (:class:`~disbench.methods.nn.vae_method.Variant`)."""

    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]]
    stochastic: ClassVar[bool]
    uses_discriminator: ClassVar[bool]
    shared_hparams: ClassVar[tuple[str, ...]]

    @staticmethod
    def regularizer(terms: LatentTerms, hp: Mapping[str, Any], step: int) -> torch.Tensor: ...


def adam(
    params: Any, hp: Mapping[str, Any], prefix: str = "", fused: bool | None = None
) -> torch.optim.Adam:
    """Adam with the run's (or, with ``prefix="disc_"``, the discriminator's) settings."""
    betas = (float(hp[f"{prefix}adam_beta1"]), float(hp[f"{prefix}adam_beta2"]))
    return torch.optim.Adam(
        params,
        lr=float(hp[f"{prefix}lr"]),
        betas=betas,
        eps=float(hp[f"{prefix}adam_eps"]),
        fused=fused,
    )


class Nets(NamedTuple):
    """The networks and optimisers of one run (the discriminator only for FactorVAE)."""

    model: AutoEncoder
    opt: torch.optim.Adam
    disc: FCDiscriminator | None
    disc_opt: torch.optim.Adam | None


class Streams(NamedTuple):
    """The run's random streams, all derived from its seed; nothing global."""

    init: torch.Generator  # initial weights (CPU)
    data: np.random.Generator  # factors of the training batches
    noise: torch.Generator  # reparameterisation noise and FactorVAE permutations (device)


def factor_batches(
    dataset: GroundTruthDataset, rng: np.random.Generator, batch: int
) -> Iterator[np.ndarray]:
    """A run's training factors, int64 [batch, K] per step, drawn DRAW_STEPS steps per call.

    One draw per DRAW_STEPS steps rather than per step: a batched group draws for
    hundreds of models every step, and a numpy call costs ~0.1 ms.
    """
    while True:
        yield from dataset.sample_factors(DRAW_STEPS * batch, rng).reshape(DRAW_STEPS, batch, -1)


def to_device(factors: np.ndarray, device: torch.device) -> torch.Tensor:
    """Factors on ``device``; on CUDA through pinned memory without blocking, so drawing
    the next batch overlaps the device's work on this one."""
    tensor = torch.from_numpy(factors)
    if device.type != "cuda":
        return tensor
    return tensor.pin_memory().to(device, non_blocking=True)


def memory_format(device: torch.device) -> torch.memory_format:
    """The single-model loop's conv layout: channels-last on the CPU, oneDNN's own layout
    (NCHW pays reorder copies: 1.5x slower per step, perf/train_throughput.txt); torch's
    default on GPUs, where the naive loop has not been measured in channels-last."""
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format


def random_streams(seed: int, device: torch.device) -> Streams:
    init_seed, data_seed, noise_seed = np.random.SeedSequence(seed).generate_state(3)
    return Streams(
        torch.Generator().manual_seed(int(init_seed)),
        np.random.default_rng(int(data_seed)),
        torch.Generator(device=device).manual_seed(int(noise_seed)),
    )


def build(
    method: Variant,
    channels: int,
    hp: Mapping[str, Any],
    init: torch.Generator,
    device: torch.device,
) -> Nets:
    """Networks with TF's initialisation drawn from ``init``, and their Adam optimisers."""
    latents = int(hp["num_latents"])
    model = init_like_tf(AutoEncoder(channels, latents), init).to(device)
    if not method.uses_discriminator:
        return Nets(model, adam(model.parameters(), hp), None, None)
    disc = init_like_tf(FCDiscriminator(latents), init).to(device)
    return Nets(model, adam(model.parameters(), hp), disc, adam(disc.parameters(), hp, "disc_"))


def loss_terms(
    method: Variant,
    x: torch.Tensor,
    logits: torch.Tensor,
    latent: LatentTerms,
    hp: Mapping[str, Any],
    step: Any,
) -> dict[str, torch.Tensor]:
    """One model's loss and its parts; pure, so the batched trainer vmaps it over models."""
    recon = losses.bernoulli_reconstruction(x, logits)
    reg = method.regularizer(latent, hp, step)
    terms = {
        "loss": recon + reg,
        "reconstruction": recon,
        "regularizer": reg,
        "elbo": recon + latent.kl,
    }
    if method.stochastic:
        terms["kl"] = latent.kl
    return terms


def train_step(
    method: Variant,
    nets: Nets,
    x: torch.Tensor,
    hp: Mapping[str, Any],
    step: int,
    noise: torch.Generator,
    bf16: bool = False,
) -> dict[str, torch.Tensor]:
    """One update of every network on batch ``x``; returns the (detached) loss terms."""
    model, disc = nets.model, nets.disc
    autocast = torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16)
    with autocast:
        mean, logvar = model.encoder(x)
    mean, logvar = mean.float(), logvar.float()
    if method.stochastic:
        z = losses.sample_gaussian(mean, logvar, noise)
        kl = losses.gaussian_kl(mean, logvar)
    else:
        z, kl = mean, torch.zeros((), device=x.device)
    with autocast:
        logits = model.decoder(z)
        disc_logits = disc(z).float() if disc is not None else None
    terms = loss_terms(method, x, logits, LatentTerms(mean, logvar, z, kl, disc_logits), hp, step)
    loss = terms["loss"]

    nets.opt.zero_grad(set_to_none=True)
    if disc is None:
        loss.backward()
    else:
        assert nets.disc_opt is not None and disc_logits is not None
        # dlib: both updates use this step's forward pass; the VAE loss moves only the
        # encoder/decoder, the discriminator loss only the discriminator.
        with autocast:
            permuted_logits = disc(losses.permute_dims(z.detach(), noise)).float()
        terms["discriminator_loss"] = losses.discriminator_loss(disc_logits, permuted_logits)
        loss.backward(inputs=list(model.parameters()), retain_graph=True)
        nets.disc_opt.zero_grad(set_to_none=True)
        terms["discriminator_loss"].backward(inputs=list(disc.parameters()))
        nets.disc_opt.step()
    nets.opt.step()
    return {k: v.detach() for k, v in terms.items()}


def train(
    method: Variant,
    dataset: GroundTruthDataset,
    hp: dict[str, Any],
    seed: int,
    budget: TrainBudget,
    ctx: FitContext,
) -> VAERepresentation:
    """Train ``method`` for ``budget.steps`` steps on fresh batches rendered on the device.

    The same seed gives bit-identical weights on the CPU. ``ctx.info`` gets the loss
    terms averaged over the last 5% of steps and a 20-point loss curve.
    """
    device = torch.device(ctx.device)
    streams = random_streams(seed, device)
    nets = build(method, dataset.observation_shape[0], hp, streams.init, device)
    layout = memory_format(device)
    nets.model.to(memory_format=layout)
    bf16 = hp["precision"] == "bf16"

    curve = LossCurve(budget.steps)
    first = restore(ctx.checkpoint.load(), nets, [streams], curve) if ctx.checkpoint else 0
    batches = factor_batches(dataset, streams.data, budget.batch_size)
    start = time.perf_counter()
    for step in range(first, budget.steps):
        # Save at the start of a draw of factors: the data stream then resumes exactly.
        checkpoint = ctx.checkpoint
        if checkpoint and step > first and step % DRAW_STEPS == 0 and checkpoint.due():
            checkpoint.save(snapshot(step, nets, [streams], curve))
        x = dataset.render_torch(to_device(next(batches), device), device)
        x = x.contiguous(memory_format=layout)
        terms = train_step(method, nets, x, hp, step, streams.noise, bf16)
        if curve.add(step, terms):
            ctx.progress(step + 1, budget.steps)
    seconds = time.perf_counter() - start
    record_training(ctx, curve.curves[0], seconds, budget.steps, device, hp["precision"])
    check_finite(method, [(seed, ctx.info["final_losses"])])
    # Back to the default layout: encodes exactly as the model reloaded from its file does.
    model = nets.model.to(memory_format=torch.contiguous_format)
    return representation(method, model, dataset, hp, seed, budget)


def snapshot(step: int, nets: Any, streams: Sequence[Streams], curve: LossCurve) -> dict[str, Any]:
    """Everything the rest of a run (or a packed group, one stream per model) depends on,
    at the start of ``step``; ``nets`` is a ``Nets`` or a packed group's networks."""
    return {
        "step": step,
        "nets": {k: None if v is None else v.state_dict() for k, v in nets._asdict().items()},
        "data": [s.data.bit_generator.state for s in streams],
        "noise": [s.noise.get_state() for s in streams],
        "curves": curve.curves,
        "acc": curve._acc,
    }


def restore(
    saved: dict[str, Any] | None, nets: Any, streams: Sequence[Streams], curve: LossCurve
) -> int:
    """Load a :func:`snapshot` into the run; returns the step to continue from (0: none)."""
    if saved is None:
        return 0
    for name, state in saved["nets"].items():
        if state is not None:
            getattr(nets, name).load_state_dict(state)
    for stream, data, noise in zip(streams, saved["data"], saved["noise"], strict=True):
        stream.data.bit_generator.state = data
        stream.noise.set_state(noise)
    curve.curves, curve._acc = saved["curves"], saved["acc"]
    return int(saved["step"])


class LossCurve:
    """CURVE_POINTS-point loss curves of one model or of a packed group of models.

    Loss terms (scalars, or [N] for N packed models) are summed on the device between
    points, so training never waits for the device except at a point.
    """

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.chunk = max(1, math.ceil(steps / CURVE_POINTS))
        self.curves: list[list[dict[str, float]]] = []  # one curve per model
        self._acc: torch.Tensor | None = None

    def add(self, step: int, terms: Mapping[str, torch.Tensor]) -> bool:
        """Add step ``step``'s terms; True when it closed a curve point."""
        values = torch.stack(list(terms.values()), -1)  # [T] or [N, T]
        self._acc = values if self._acc is None else self._acc + values
        if (step + 1) % self.chunk and step + 1 != self.steps:
            return False
        means = (self._acc / ((step % self.chunk) + 1)).reshape(-1, len(terms)).tolist()
        self.curves = self.curves or [[] for _ in means]
        for curve, row in zip(self.curves, means, strict=True):
            curve.append({"step": step + 1, **dict(zip(terms, row, strict=True))})
        self._acc = None
        return True


def record_training(
    ctx: FitContext,
    curve: list[dict[str, float]],
    seconds: float,
    steps: int,
    device: torch.device,
    precision: str,
) -> None:
    """Put the final losses (last curve point), the curve and the timings into ``ctx.info``."""
    ctx.info.update(
        {
            "final_losses": {k: v for k, v in curve[-1].items() if k != "step"},
            "loss_curve": curve,
            "train_seconds": seconds,
            "steps_per_second": steps / seconds,
            "device": str(device),
            "precision": precision,
        }
    )
    if device.type == "cuda":
        ctx.info["deterministic_algorithms"] = torch.are_deterministic_algorithms_enabled()
        ctx.info["cudnn_deterministic"] = bool(torch.backends.cudnn.deterministic)


def check_finite(method: Variant, finals: Sequence[tuple[int, dict[str, float]]]) -> None:
    """Raise naming the runs, by seed, whose final (seed, loss terms) are not finite."""
    bad = [(seed, f) for seed, f in finals if not all(math.isfinite(v) for v in f.values())]
    if bad:
        raise FloatingPointError(
            f"method {method.name!r}: non-finite loss terms (seed, terms): {bad}"
        )


def representation(
    method: Variant,
    model: AutoEncoder,
    dataset: GroundTruthDataset,
    hp: dict[str, Any],
    seed: int,
    budget: TrainBudget,
) -> VAERepresentation:
    """The trained run as the harness keeps it: the model plus what produced it."""
    config = {
        "method": method.name,
        "num_latents": int(hp["num_latents"]),
        "observation_shape": list(dataset.observation_shape),
        "hparams": hp,
        "seed": seed,
        "steps": budget.steps,
    }
    return VAERepresentation(model=model, config=config)
