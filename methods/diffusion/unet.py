"""The DDPM UNet (ADM/LDM layout) and DisDiff's sub-gradient decoder G.

The UNet is the usual encoder half (``input_blocks``), middle block and decoder half
(``output_blocks``) with skip connections, residual blocks that take the timestep
embedding as a scale/shift after GroupNorm (``use_scale_shift_norm``), residual
up/down-sampling blocks (``resblock_updown``) and multi-head self-attention at the
chosen downsampling rates. It predicts epsilon.

``SubGradientDecoder`` is DisDiff's G: it reads the *frozen* UNet's encoder-half
features and runs its own trainable middle block and decoder half whose residual
blocks take a second scale/shift from a latent unit z_c, with the unit's identity c
added to the timestep embedding through a learnt orthogonal matrix. Its output conv is
zero-initialised, so G is exactly zero before training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of the UNet; the official DisDiff LDM is ``UNetConfig(3, 64, (1, 2, 4, 4),
    2, (1, 2, 4), 8)`` on 16x16x3 latents."""

    channels: int  # latent channels in and out
    model_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (1, 2, 4)  # downsampling rates with attention
    num_heads: int = 8

    @property
    def emb_channels(self) -> int:
        return 4 * self.model_channels


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding [n, dim] of integer timesteps (cosines first, then sines)."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return F.pad(emb, (0, dim % 2))


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with 32 groups (fewer when the channel count is not a multiple of 32)."""
    return nn.GroupNorm(math.gcd(32, channels), channels)


def zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """Residual block with timestep scale/shift; with ``cond_channels`` a second scale/shift
    from a condition embedding follows (DisDiff's ``ResBlockShift``)."""

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        out_channels: int | None = None,
        cond_channels: int = 0,
        resample: str | None = None,  # None, "up" or "down"
    ) -> None:
        super().__init__()
        out_channels = out_channels or channels
        self.resample = resample
        self.in_norm = group_norm(channels)
        self.in_conv = nn.Conv2d(channels, out_channels, 3, padding=1)
        self.emb = nn.Linear(emb_channels, 2 * out_channels)
        self.cond = nn.Linear(cond_channels, 2 * out_channels) if cond_channels else None
        self.out_norm = group_norm(out_channels)
        self.out_conv = zero(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip = (
            nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)
        )

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        if self.resample == "up":
            return F.interpolate(x, scale_factor=2, mode="nearest")
        if self.resample == "down":
            return F.avg_pool2d(x, 2)
        return x

    def forward(
        self, x: torch.Tensor, emb: torch.Tensor, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        h = self.in_conv(self._resample(F.silu(self.in_norm(x))))
        x = self._resample(x)
        scale, shift = self.emb(F.silu(emb))[..., None, None].chunk(2, dim=1)
        h = self.out_norm(h) * (1 + scale) + shift
        if self.cond is not None:
            assert cond is not None, "a conditioned ResBlock needs its condition embedding"
            c_scale, c_shift = self.cond(F.silu(cond))[..., None, None].chunk(2, dim=1)
            h = h * (1 + c_scale) + c_shift
        return self.skip(x) + self.out_conv(F.silu(h))


class Attention(nn.Module):
    """Multi-head self-attention over spatial positions, residual, zero-initialised output."""

    def __init__(self, channels: int, num_heads: int) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"attention: {channels} channels do not split into {num_heads} heads")
        self.num_heads = num_heads
        self.norm = group_norm(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj = zero(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x.reshape(b, c, h * w)))
        q, k, v = qkv.reshape(b, 3, self.num_heads, c // self.num_heads, h * w).unbind(1)
        out = F.scaled_dot_product_attention(
            q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2)
        )  # [b, heads, hw, head_dim]
        out = out.transpose(-1, -2).reshape(b, c, h * w)
        return x + self.proj(out).reshape(b, c, h, w)


class Block(nn.ModuleList):
    """A sequence of ResBlocks and Attention layers fed the same embeddings."""

    def forward(  # type: ignore[override]
        self, h: torch.Tensor, emb: torch.Tensor, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        for layer in self:
            h = layer(h, emb, cond) if isinstance(layer, ResBlock) else layer(h)
        return h


class DecoderHalf(nn.Module):
    """Middle block, decoder half and output conv; ``cond_channels > 0`` gives G's version."""

    def __init__(self, cfg: UNetConfig, skip_channels: list[int], cond_channels: int = 0) -> None:
        super().__init__()
        emb, mc = cfg.emb_channels, cfg.model_channels
        ch = mc * cfg.channel_mult[-1]
        ds = 2 ** (len(cfg.channel_mult) - 1)

        def res(cin: int, cout: int | None = None, resample: str | None = None) -> ResBlock:
            return ResBlock(cin, emb, cout, cond_channels, resample)

        self.middle = Block([res(ch), Attention(ch, cfg.num_heads), res(ch)])
        skips = list(skip_channels)
        self.blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                layers: list[nn.Module] = [res(ch + skips.pop(), mc * mult)]
                ch = mc * mult
                if ds in cfg.attention_resolutions:
                    layers.append(Attention(ch, cfg.num_heads))
                if level and i == cfg.num_res_blocks:
                    layers.append(res(ch, ch, "up"))
                    ds //= 2
                self.blocks.append(Block(layers))
        self.out = nn.Sequential(
            group_norm(ch), nn.SiLU(), zero(nn.Conv2d(ch, cfg.channels, 3, padding=1))
        )

    def forward(
        self,
        h: torch.Tensor,
        skips: list[torch.Tensor],
        emb: torch.Tensor,
        cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        h = self.middle(h, emb, cond)
        for block, skip in zip(self.blocks, reversed(skips), strict=True):
            h = block(torch.cat([h, skip], dim=1), emb, cond)
        return self.out(h)


class UNet(nn.Module):
    """Unconditional epsilon-prediction UNet; ``encode``/``decode`` expose its two halves."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        mc, emb = cfg.model_channels, cfg.emb_channels
        self.time_embed = nn.Sequential(nn.Linear(mc, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.input_blocks = nn.ModuleList([Block([nn.Conv2d(cfg.channels, mc, 3, padding=1)])])
        self.skip_channels = [mc]
        ch, ds = mc, 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers: list[nn.Module] = [ResBlock(ch, emb, mc * mult)]
                ch = mc * mult
                if ds in cfg.attention_resolutions:
                    layers.append(Attention(ch, cfg.num_heads))
                self.input_blocks.append(Block(layers))
                self.skip_channels.append(ch)
            if level != len(cfg.channel_mult) - 1:
                self.input_blocks.append(Block([ResBlock(ch, emb, ch, resample="down")]))
                self.skip_channels.append(ch)
                ds *= 2
        self.decoder = DecoderHalf(cfg, self.skip_channels)

    def encode(
        self, x: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """(deepest features, skip features, timestep embedding) of the encoder half."""
        emb = self.time_embed(timestep_embedding(t, self.cfg.model_channels))
        skips, h = [], x
        for block in self.input_blocks:
            h = block(h, emb)
            skips.append(h)
        return h, skips, emb

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h, skips, emb = self.encode(x, t)
        return self.decoder(h, skips, emb)


class SubGradientDecoder(nn.Module):
    """DisDiff's G: one sub-gradient per latent unit from the frozen UNet's encoder features.

    Unit c is conditioned by ``repre_embed(z_c)`` (the second scale/shift in every
    ResBlock) and by its identity: row c of Q = expm(A - A^T), an orthogonal matrix from a
    trainable A, mapped by ``part_emb`` and added to the timestep embedding.
    """

    def __init__(
        self,
        cfg: UNetConfig,
        skip_channels: list[int],
        latent_unit: int,
        unit_dim: int,
    ) -> None:
        super().__init__()
        emb = cfg.emb_channels
        if latent_unit > emb // 2:
            raise ValueError(f"DisDiff: latent_unit {latent_unit} > {emb // 2} orthogonal rows")
        self.latent_unit = latent_unit
        self.repre_embed = nn.Linear(unit_dim, emb)
        self.part_latents = nn.Parameter(torch.randn(emb // 2, emb // 2))
        self.part_emb = nn.Linear(emb // 2, emb)
        self.decoder = DecoderHalf(cfg, skip_channels, cond_channels=emb)

    def forward(
        self, h: torch.Tensor, skips: list[torch.Tensor], emb: torch.Tensor, z: torch.Tensor
    ) -> torch.Tensor:
        """Sub-gradients [N, n, C, H, W] for units z [n, N, d]; all units run as one batch."""
        n, units = z.shape[:2]
        a = self.part_latents
        q = torch.linalg.matrix_exp(a - a.T)[:units]  # orthonormal rows, one per unit
        unit_emb = (emb[None] + self.part_emb(q)[:, None]).reshape(units * n, -1)
        cond = self.repre_embed(z.transpose(0, 1).reshape(units * n, -1))

        def rep(x: torch.Tensor) -> torch.Tensor:
            return x.repeat(units, *([1] * (x.dim() - 1)))

        out = self.decoder(rep(h), [rep(s) for s in skips], unit_emb, cond)
        return out.reshape(units, n, *out.shape[1:])
