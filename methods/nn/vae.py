"""The training step of every Locatello et al. 2019 VAE variant (and the plain AE).

A variant is a ``VAEMethod`` subclass (:mod:`disbench.methods.nn.vae_method`) that supplies
only ``regularizer(terms, hp, step)``: a pure function of the batch's latent terms, its
hyperparameters and the step, added to the Bernoulli reconstruction loss (dlib's
``BaseVAE.model_fn``). Variants that set ``uses_discriminator`` (FactorVAE) also get dlib's
discriminator, updated in the same step from the same forward pass, on codes permuted
across the batch. The networks, the step, the optimiser settings and the representation
(the encoder mean) are shared; :func:`train` hands the step to the one training loop
(:func:`disbench.methods.nn.loop.run`) and sees the variant through ``Variant``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple, Protocol

import attrs
import numpy as np
import torch
from torch import nn

from disbench.api import FitContext, GroundTruthDataset, Representation, TrainBudget
from disbench.methods.nn import loop, losses
from disbench.methods.nn.architectures import (
    ConvEncoder,
    DeconvDecoder,
    FCDiscriminator,
    init_like_tf,
)

PRECISIONS = ("fp32", "bf16")  # bf16: autocast of the forward pass, losses in fp32
ENCODE_CHUNK = 512  # observations per forward pass when encoding/decoding: bounded memory


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


def adam(params: Any, hp: Any, prefix: str = "", fused: bool | None = None) -> torch.optim.Adam:
    """Adam with the run's (or, with ``prefix="disc_"``, the discriminator's) settings;
    ``hp`` is the hyperparameter dict or the method's typed ``Params``."""
    hp = attrs.asdict(hp) if attrs.has(type(hp)) else hp
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

    def state(self) -> dict[str, Any]:
        """The networks and optimisers a checkpoint holds (those the run has)."""
        return {name: net for name, net in self._asdict().items() if net is not None}


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
    """Train ``method`` for ``budget.steps`` steps on fresh batches rendered on the device
    (``hp`` checked by ``VAEMethod.prepare``). The same seed gives bit-identical weights
    on the CPU."""
    device = torch.device(ctx.device)
    streams = loop.Streams(seed, device)
    nets = build(method, dataset.observation_shape[0], hp, streams.init, device)
    layout = loop.memory_format(device)
    nets.model.to(memory_format=layout)
    bf16 = hp["precision"] == "bf16"
    batches = loop.factor_batches(dataset, streams.data, budget.batch_size)

    def step(i: int) -> dict[str, torch.Tensor]:
        x = dataset.render_torch(loop.to_device(next(batches), device), device)
        x = x.contiguous(memory_format=layout)
        return train_step(method, nets, x, hp, i, streams.noise, bf16)

    state = {**nets.state(), "streams": streams}
    curve = loop.LossCurve(budget.steps)
    loop.run(
        method.name, [ctx], [seed], budget.steps, step, state, curve, precision=hp["precision"]
    )
    # Back to the default layout: encodes exactly as the model reloaded from its file does.
    model = nets.model.to(memory_format=torch.contiguous_format)
    return representation(method, model, dataset, hp, seed, budget)


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
