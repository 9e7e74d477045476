"""The DDPM noise schedule with the coefficients DisDiff needs.

LDM's "linear" schedule is linear in sqrt(beta): betas = linspace(sqrt(b0), sqrt(b1), T)^2,
with b0 = 0.0015, b1 = 0.0155, T = 1000 in every DisDiff config. Besides the usual
forward process and x0 prediction it provides DisDiff's two sub-gradient coefficients:

- ``shift_coef_t = -sqrt(alpha_t) (1 - abar_{t-1}) / sqrt(1 - abar_t)`` scales the sum of
  sub-gradients inside the reconstruction loss (PDAE's posterior-mean shift written as an
  epsilon correction);
- ``ddim_coef_t = -sqrt(1 - abar_t)`` scales one unit's sub-gradient when predicting x0
  inside the disentangling loss.
"""

from __future__ import annotations

import torch


class Schedule:
    """Per-timestep coefficients (float32 tensors of length T) on one device."""

    def __init__(
        self,
        timesteps: int = 1000,
        linear_start: float = 0.0015,
        linear_end: float = 0.0155,
        device: torch.device | str = "cpu",
    ) -> None:
        if timesteps < 2 or not 0 < linear_start < linear_end < 1:
            raise ValueError(
                "diffusion schedule: need timesteps >= 2 and 0 < linear_start < linear_end < 1, "
                f"got {timesteps}, {linear_start}, {linear_end}"
            )
        self.timesteps = timesteps
        # Computed in float64 as LDM does, then stored as float32.
        betas = (
            torch.linspace(linear_start**0.5, linear_end**0.5, timesteps, dtype=torch.float64) ** 2
        )
        alphas = 1.0 - betas
        abar = torch.cumprod(alphas, dim=0)
        abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
        coefs = {
            "betas": betas,
            "alphas_cumprod": abar,
            "sqrt_alphas_cumprod": abar.sqrt(),
            "sqrt_one_minus_alphas_cumprod": (1.0 - abar).sqrt(),
            "sqrt_recip_alphas_cumprod": (1.0 / abar).sqrt(),
            "sqrt_recipm1_alphas_cumprod": (1.0 / abar - 1.0).sqrt(),
            "shift_coef": -alphas.sqrt() * (1.0 - abar_prev) / (1.0 - abar).sqrt(),
            "ddim_coef": -(1.0 - abar).sqrt(),
        }
        for name, value in coefs.items():
            setattr(self, name, value.to(device=device, dtype=torch.float32))

    @staticmethod
    def at(coef: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``coef[t]`` shaped [n, 1, 1, ...] to broadcast against ``like``."""
        return coef[t].reshape(-1, *([1] * (like.dim() - 1)))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise."""
        return (
            self.at(self.sqrt_alphas_cumprod, t, x0) * x0
            + self.at(self.sqrt_one_minus_alphas_cumprod, t, x0) * noise
        )

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x0 = sqrt(1/abar_t) x_t - sqrt(1/abar_t - 1) eps (inverse of :meth:`q_sample`)."""
        return (
            self.at(self.sqrt_recip_alphas_cumprod, t, x_t) * x_t
            - self.at(self.sqrt_recipm1_alphas_cumprod, t, x_t) * eps
        )
