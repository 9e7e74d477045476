"""IRMAE (Jing, Zbontar & LeCun 2020): an autoencoder with linear layers in its bottleneck.

Implicit rank minimisation: ``num_linear`` bias-free square linear layers between the
encoder and the decoder (8 by default, the paper's setting) make gradient descent favour
low-rank codes. Networks, loss and optimiser are the reference autoencoder's (the plain
``ae``: disentanglement_lib's conv encoder mean and deconv decoder, Bernoulli loss, Adam);
with ``num_linear = 0`` it is exactly that autoencoder. The codes are taken after the
linear layers; ``ica = true`` rotates them with FastICA, as ``li_ae`` does (Horan et al.
2021 compare against IRMAE with ICA).
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import numpy as np
import torch
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
from disbench.methods._linear import fit_ica
from disbench.methods.nn import loop, losses
from disbench.methods.nn.architectures import (
    ConvEncoder,
    DeconvDecoder,
    check_reference_shape,
    init_like_tf,
)
from disbench.methods.nn.vae import ENCODE_CHUNK, adam


class IRMAEModel(nn.Module):
    """Encoder mean -> ``num_linear`` bias-free linear maps -> decoder."""

    def __init__(self, channels: int, num_latents: int, num_linear: int) -> None:
        super().__init__()
        self.encoder = ConvEncoder(channels, num_latents)
        self.linear = nn.Sequential(
            *(nn.Linear(num_latents, num_latents, bias=False) for _ in range(num_linear))
        )
        self.decoder = DeconvDecoder(channels, num_latents)

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.encoder(x)[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.codes(x))


class IRMAERepresentation(Representation):
    """Codes after the linear layers (optionally ICA-rotated); ``decode`` inverts the ICA,
    then decodes. Pickles as its configuration and CPU weights."""

    def __init__(self, model: IRMAEModel, config: dict[str, Any], ica: Any = None) -> None:
        self.model = model.cpu().eval()
        self.config = config
        self.ica = ica

    @torch.inference_mode()
    def encode(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        codes = np.concatenate(
            [
                self.model.codes(torch.from_numpy(x[i : i + ENCODE_CHUNK])).numpy()
                for i in range(0, len(x), ENCODE_CHUNK)
            ]
        )
        return codes if self.ica is None else self.ica.transform(codes.astype(np.float64))

    @torch.inference_mode()
    def decode(self, codes: np.ndarray) -> np.ndarray:
        z = np.asarray(codes, dtype=np.float64)
        if self.ica is not None:
            z = self.ica.inverse_transform(z)
        logits = self.model.decoder(torch.from_numpy(z.astype(np.float32)))
        return torch.sigmoid(logits).numpy()

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        return {"config": self.config, "state_dict": state, "ica": self.ica}

    def __setstate__(self, state: dict[str, Any]) -> None:
        c = state["config"]
        model = IRMAEModel(c["channels"], c["num_latents"], c["num_linear"])
        model.load_state_dict(state["state_dict"])
        self.__init__(model, c, state["ica"])  # type: ignore[misc]


@attrs.frozen(kw_only=True)
class IRMAEParams:
    num_latents: int = param(10, int, ge=1)
    num_linear: int = param(8, int, ge=0)  # 0: the plain reference autoencoder
    lr: float = param(1e-4, gt=0)
    adam_beta1: float = param(0.9, ge=0, lt=1)
    adam_beta2: float = param(0.999, ge=0, lt=1)
    adam_eps: float = param(1e-8, gt=0)
    ica: bool = param(False, bool)
    ica_max_iter: int = param(1000, int, ge=1)


@register
class IRMAE(Method):
    name: ClassVar[str] = "irmae"
    description: ClassVar[str] = (
        "IRMAE: reference autoencoder with bias-free linear layers in the bottleneck"
    )
    framework: ClassVar[str] = "torch"
    checkpoints: ClassVar[bool] = True
    Params = IRMAEParams
    sweep: ClassVar[dict[str, list[Any]]] = {"num_linear": [0, 2, 4, 8]}

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
        loop.check_budget(self.name, budget, min_batch=1)
        device = torch.device(ctx.device)
        streams = loop.Streams(seed, device)
        channels = dataset.observation_shape[0]
        model = IRMAEModel(channels, hp.num_latents, hp.num_linear)
        model = init_like_tf(model, streams.init).to(device)
        opt = adam(model.parameters(), hp)
        batches = loop.factor_batches(dataset, streams.data, budget.batch_size)

        def step(i: int) -> dict[str, torch.Tensor]:
            x = dataset.render_torch(loop.to_device(next(batches), device), device)
            loss = losses.bernoulli_reconstruction(x, model(x))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return {"loss": loss.detach()}

        state = {"model": model, "opt": opt, "streams": streams}
        loop.run(self.name, [ctx], [seed], budget.steps, step, state, loop.LossCurve(budget.steps))
        config = {"channels": channels, "num_latents": hp.num_latents, "num_linear": hp.num_linear}
        rep = IRMAERepresentation(model, config)
        if hp.ica:
            _, x = dataset.sample(5000, np.random.default_rng([seed, 1]))
            codes = rep.encode(x).astype(np.float64)
            rep.ica, converged = fit_ica(codes, hp.num_latents, hp.ica_max_iter, seed, ctx)
            ctx.info["ica_converged"] = converged
        return rep
