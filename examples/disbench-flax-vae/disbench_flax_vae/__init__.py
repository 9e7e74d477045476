"""``flax_beta_vae``: beta-VAE (Higgins et al. 2017) in JAX/Flax on the reference networks.

The encoder and decoder are disentanglement_lib's ``conv_encoder`` / ``deconv_decoder``
(stride-2 convolutions of 32, 32, 64, 64 filters, 4x4, 4x4, 2x2, 2x2, a dense layer of
256 and the Gaussian head; dense 256 and 1024, then four 4x4 stride-2 transposed
convolutions), the loss its Bernoulli
reconstruction plus beta times the KL to N(0, I), the optimiser Adam. Flax lays images out
channels last, so observations are transposed once per batch. Everything random (the
initial weights, the reparameterisation noise, the data stream) flows from the run's seed.
"""

from __future__ import annotations

from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn

from disbench.api import (
    FitContext,
    GroundTruthDataset,
    Method,
    Representation,
    TrainBudget,
    register,
)

CURVE_POINTS = 20


class Encoder(nn.Module):
    num_latents: int

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        for features, kernel in ((32, 4), (32, 4), (64, 2), (64, 2)):
            x = nn.relu(nn.Conv(features, (kernel, kernel), strides=(2, 2), padding="SAME")(x))
        x = nn.relu(nn.Dense(256)(x.reshape(len(x), -1)))
        return nn.Dense(self.num_latents)(x), nn.Dense(self.num_latents)(x)


class Decoder(nn.Module):
    channels: int

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        x = nn.relu(nn.Dense(256)(z))
        x = nn.relu(nn.Dense(4 * 4 * 64)(x)).reshape(len(z), 4, 4, 64)
        for features in (64, 32, 32):
            x = nn.relu(nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding="SAME")(x))
        return nn.ConvTranspose(self.channels, (4, 4), strides=(2, 2), padding="SAME")(x)


def channels_last(obs: np.ndarray) -> jax.Array:
    return jnp.asarray(np.asarray(obs, dtype=np.float32).transpose(0, 2, 3, 1))


class FlaxVAERepresentation(Representation):
    """Codes = the encoder mean; parameters kept as numpy arrays so the model pickles."""

    def __init__(self, encoder: Encoder, params: Any) -> None:
        self.encoder = encoder
        self.params = jax.tree_util.tree_map(np.asarray, params)

    def encode(self, x: np.ndarray) -> np.ndarray:
        mean, _ = self.encoder.apply(self.params, channels_last(x))
        return np.asarray(mean)


@register
class FlaxBetaVAE(Method):
    name: ClassVar[str] = "flax_beta_vae"
    description: ClassVar[str] = "beta-VAE on the reference networks in JAX/Flax (example plugin)"
    version: ClassVar[int] = 1
    framework: ClassVar[str] = "jax"
    defaults: ClassVar[dict[str, Any]] = {"num_latents": 10, "beta": 4.0, "lr": 1e-4}
    sweep: ClassVar[dict[str, list[Any]]] = {"beta": [1.0, 2.0, 4.0, 6.0, 8.0, 16.0]}

    def fit(
        self,
        dataset: GroundTruthDataset,
        hparams: dict[str, Any],
        seed: int,
        budget: TrainBudget,
        ctx: FitContext,
    ) -> Representation:
        if tuple(dataset.observation_shape[1:]) != (64, 64):
            raise ValueError(
                f"method 'flax_beta_vae': the reference networks need 64x64 observations, "
                f"dataset {dataset.name!r} has {dataset.observation_shape}"
            )
        channels = dataset.observation_shape[0]
        encoder, decoder = Encoder(int(hparams["num_latents"])), Decoder(channels)
        init_key, noise_key = jax.random.split(jax.random.PRNGKey(seed))
        enc_key, dec_key = jax.random.split(init_key)
        params = {
            "encoder": encoder.init(enc_key, jnp.zeros((1, 64, 64, channels))),
            "decoder": decoder.init(dec_key, jnp.zeros((1, int(hparams["num_latents"])))),
        }
        optimiser = optax.adam(float(hparams["lr"]))
        state = optimiser.init(params)
        beta = float(hparams["beta"])

        def loss_fn(p: Any, x: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
            mean, logvar = encoder.apply(p["encoder"], x)
            z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape)
            logits = decoder.apply(p["decoder"], z)
            recon = optax.sigmoid_binary_cross_entropy(logits, x).reshape(len(x), -1).sum(1)
            kl = 0.5 * (mean**2 + jnp.exp(logvar) - logvar - 1).sum(1)
            return jnp.mean(recon + beta * kl), jnp.mean(kl)

        @jax.jit
        def train_step(p: Any, s: Any, x: jax.Array, key: jax.Array) -> tuple[Any, ...]:
            (loss, kl), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, x, key)
            updates, s = optimiser.update(grads, s, p)
            return optax.apply_updates(p, updates), s, loss, kl

        data_rng = np.random.default_rng(seed)
        every = max(1, budget.steps // CURVE_POINTS)
        curve = []
        for step in range(budget.steps):
            _, obs = dataset.sample(budget.batch_size, data_rng)
            noise_key, key = jax.random.split(noise_key)
            params, state, loss, kl = train_step(params, state, channels_last(obs), key)
            if (step + 1) % every == 0 or step + 1 == budget.steps:
                curve.append({"step": step + 1, "loss": float(loss), "kl": float(kl)})
                ctx.progress(step + 1, budget.steps)
        if not np.isfinite(curve[-1]["loss"]):
            raise FloatingPointError(f"method 'flax_beta_vae': the loss diverged ({curve[-1]})")
        ctx.info["loss_curve"] = curve
        return FlaxVAERepresentation(encoder, params["encoder"])
