"""Loss terms of the Locatello et al. 2019 VAEs, as disentanglement_lib computes them.

Every function is a pure function of batch tensors (no module state, no global RNG
except where a ``generator`` is passed), so a batched multi-model trainer can vmap it.
Conventions follow dlib: per-sample sums over pixels or latents, then a batch mean.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def bernoulli_reconstruction(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Sigmoid cross-entropy summed over pixels, mean over the batch (dlib ``bernoulli_loss``).

    Targets are grey levels in [0, 1], so the minimum is the images' entropy, not zero
    (dlib's default ``subtract_true_image_entropy=False`` keeps it in).
    """
    dtype = torch.promote_types(logits.dtype, torch.float32)  # bf16 logits: loss in fp32
    per_pixel = F.binary_cross_entropy_with_logits(logits.to(dtype), x.to(dtype), reduction="none")
    return per_pixel.flatten(1).sum(1).mean()


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) summed over latents, mean over the batch."""
    return (0.5 * (mean.square() + logvar.exp() - logvar - 1).sum(1)).mean()


def gaussian_kl_per_dim(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)) per latent dimension, mean over the batch: [L].
    (Methods that switch dimensions on or off by the information they carry read it.)"""
    return (0.5 * (mean.square() + logvar.exp() - logvar - 1)).mean(0)


def sample_gaussian(
    mean: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Reparameterised sample mean + exp(logvar / 2) * eps, eps drawn from ``generator``."""
    eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + torch.exp(logvar / 2) * eps


def gaussian_log_density(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(z; mean, exp(logvar)) (broadcasting)."""
    return -0.5 * ((z - mean).square() * torch.exp(-logvar) + logvar + math.log(2 * math.pi))


def total_correlation(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Minibatch-weighted-sampling estimate of TC(q(z)) on one batch (dlib, beta-TCVAE).

    mean_j [log sum_i q(z_j | x_i) - sum_l log sum_i q(z_jl | x_i)]. The dropped constant
    (L - 1) log(batch * dataset size) does not change the gradient.
    """
    log_q = gaussian_log_density(z[:, None, :], mean[None, :, :], logvar[None, :, :])  # [j, i, l]
    log_qz_product = torch.logsumexp(log_q, dim=1).sum(1)
    log_qz = torch.logsumexp(log_q.sum(2), dim=1)
    return (log_qz - log_qz_product).mean()


def covariance(x: torch.Tensor) -> torch.Tensor:
    """Biased batch covariance E[x x^T] - E[x] E[x]^T, [L, L] (dlib's DIP-VAE form)."""
    mu = x.mean(0)
    return (x[:, :, None] * x[:, None, :]).mean(0) - mu[:, None] * mu[None, :]


def dip_penalty(cov: torch.Tensor, lambda_od: float, lambda_d: float) -> torch.Tensor:
    """lambda_od * sum of squared off-diagonal + lambda_d * sum (diagonal - 1)^2."""
    diag = torch.diagonal(cov)
    off = cov - torch.diag(diag)
    return lambda_od * off.square().sum() + lambda_d * (diag - 1).square().sum()


def permute_dims(z: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Shuffle each latent independently across the batch (samples of prod_l q(z_l))."""
    order = torch.argsort(torch.rand(z.shape, generator=generator, device=z.device), dim=0)
    return torch.gather(z, 0, order)


def discriminator_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """log of the softmax probabilities clipped to [1e-6, 1 - 1e-6], as dlib clips them."""
    return torch.log(torch.softmax(logits, dim=1).clamp(1e-6, 1 - 1e-6))


def discriminator_loss(logits_real: torch.Tensor, logits_permuted: torch.Tensor) -> torch.Tensor:
    """FactorVAE discriminator loss: class 0 = codes of the batch, class 1 = permuted codes."""
    real = discriminator_log_probs(logits_real)[:, 0].mean()
    permuted = discriminator_log_probs(logits_permuted)[:, 1].mean()
    return -(0.5 * real + 0.5 * permuted)


def density_ratio_tc(logits_real: torch.Tensor) -> torch.Tensor:
    """FactorVAE's TC estimate: mean over the batch of logit(real) - logit(permuted)."""
    return (logits_real[:, 0] - logits_real[:, 1]).mean()
