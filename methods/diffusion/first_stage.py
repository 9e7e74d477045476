"""First stages: the map between images in [-1, 1] and the space the DDPM models.

- ``identity``: a pixel-space identity first stage (a pixel-space DDPM, as the DisDiff paper
  allows: "given a pre-trained DPM"). Nothing to train.
- ``avgpool``: a fixed, untrained pixel-space first stage for small CPU configurations:
  f x f average pooling down, bilinear upsampling back. It gives the 16x16 latent grid of
  the official f4 configs at a fraction of the cost, and is named as what it is.
- ``kl``: the official KL-regularised f4 autoencoder of DisDiff's ``*_kl_4_16.yaml``
  (LDM's ``AutoencoderKL``: ch 32, ch_mult (1, 2, 4), 2 res blocks per level, no attention
  but in the middle, latent 16x16x4 for 64x64 images). It is trained with the L1
  reconstruction and KL (weight 1e-6) terms of the official loss; the official LPIPS term
  needs pre-trained VGG weights that disbench cannot download, and the official patch
  discriminator only starts at step 50,001, after our phase-1 budget.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

FIRST_STAGES = ("identity", "avgpool", "kl")


class FirstStage(nn.Module):
    """Images [n, C, H, W] in [-1, 1] <-> latents [n, c, h, w]; ``decode`` is differentiable."""

    trainable = False

    def encode(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class IdentityFirstStage(FirstStage):
    """Pixel space: the DDPM models the image itself."""

    def encode(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return x

    def decode(self, y: torch.Tensor) -> torch.Tensor:
        return y


class AvgPoolFirstStage(FirstStage):
    """Fixed pixel-space downsampling by ``factor`` (average pool) and bilinear upsampling."""

    def __init__(self, factor: int) -> None:
        super().__init__()
        self.factor = factor

    def encode(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return F.avg_pool2d(x, self.factor)

    def decode(self, y: torch.Tensor) -> torch.Tensor:
        return F.interpolate(y, scale_factor=self.factor, mode="bilinear", align_corners=False)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(32, channels), channels, eps=1e-6)


class _Res(nn.Module):
    """Autoencoder residual block (no timestep)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _norm(cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1),
            _norm(cout), nn.SiLU(), nn.Conv2d(cout, cout, 3, padding=1),
        )  # fmt: skip
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class _Attn(nn.Module):
    """Single-head spatial self-attention of the autoencoder's middle block."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.norm = _norm(ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class _Down(nn.Module):
    """Stride-2 3x3 conv after padding right/bottom by one (LDM's Downsample)."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class _Up(nn.Module):
    """Nearest-neighbour x2 then a 3x3 conv (LDM's Upsample)."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class KLAutoencoder(FirstStage):
    """LDM's AutoencoderKL: encoder -> Gaussian posterior over latents -> decoder."""

    trainable = True

    def __init__(
        self,
        in_channels: int,
        ch: int = 32,
        ch_mult: tuple[int, ...] = (1, 2, 4),
        num_res_blocks: int = 2,
        embed_dim: int = 4,
    ) -> None:
        super().__init__()
        widths = [ch * m for m in ch_mult]
        enc: list[nn.Module] = [nn.Conv2d(in_channels, ch, 3, padding=1)]
        cin = ch
        for level, width in enumerate(widths):
            for _ in range(num_res_blocks):
                enc.append(_Res(cin, width))
                cin = width
            if level != len(widths) - 1:
                enc.append(_Down(cin))
        enc += [_Res(cin, cin), _Attn(cin), _Res(cin, cin), _norm(cin), nn.SiLU()]
        enc += [
            nn.Conv2d(cin, 2 * embed_dim, 3, padding=1),
            nn.Conv2d(2 * embed_dim, 2 * embed_dim, 1),
        ]
        self.encoder = nn.Sequential(*enc)

        dec: list[nn.Module] = [nn.Conv2d(embed_dim, embed_dim, 1)]  # post_quant_conv
        dec += [nn.Conv2d(embed_dim, cin, 3, padding=1), _Res(cin, cin), _Attn(cin), _Res(cin, cin)]
        for level, width in reversed(list(enumerate(widths))):
            for _ in range(num_res_blocks + 1):
                dec.append(_Res(cin, width))
                cin = width
            if level != 0:
                dec.append(_Up(cin))
        dec += [_norm(cin), nn.SiLU(), nn.Conv2d(cin, in_channels, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log-variance clamped to [-30, 20]) of the latent posterior."""
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def encode(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A posterior sample (as LDM feeds its DDPM), or the mean without a generator."""
        mean, logvar = self.posterior(x)
        if generator is None:
            return mean
        noise = torch.randn(mean.shape, generator=generator, device=mean.device)
        return mean + torch.exp(0.5 * logvar) * noise

    def decode(self, y: torch.Tensor) -> torch.Tensor:
        return self.decoder(y)

    def loss(self, x: torch.Tensor, generator: torch.Generator, kl_weight: float) -> torch.Tensor:
        """Official loss without LPIPS/discriminator: summed L1 per image + kl_weight x KL."""
        mean, logvar = self.posterior(x)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device)
        rec = self.decode(mean + torch.exp(0.5 * logvar) * noise)
        l1 = (x - rec).abs().flatten(1).sum(1).mean()
        kl = 0.5 * (mean**2 + logvar.exp() - 1.0 - logvar).flatten(1).sum(1).mean()
        return l1 + kl_weight * kl


def build_first_stage(cfg: dict[str, Any], in_channels: int) -> FirstStage:
    """The first stage named by ``cfg['first_stage']`` (untrained weights for ``kl``)."""
    kind = cfg["first_stage"]
    if kind == "identity":
        return IdentityFirstStage()
    if kind == "avgpool":
        return AvgPoolFirstStage(int(cfg["pool_factor"]))
    if kind == "kl":
        return KLAutoencoder(
            in_channels,
            ch=int(cfg["ae_channels"]),
            ch_mult=tuple(cfg["ae_channel_mult"]),
            num_res_blocks=int(cfg["ae_res_blocks"]),
            embed_dim=int(cfg["ae_embed_dim"]),
        )
    raise ValueError(f"DisDiff: unknown first_stage {kind!r}; choose one of {FIRST_STAGES}")


def downsampling(cfg: dict[str, Any]) -> int:
    """How many times smaller the latent grid is than the image."""
    kind = cfg["first_stage"]
    if kind == "avgpool":
        return int(cfg["pool_factor"])
    if kind == "kl":
        return 2 ** (len(cfg["ae_channel_mult"]) - 1)
    return 1
