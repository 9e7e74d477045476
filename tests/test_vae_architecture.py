"""The reference networks layer by layer against disentanglement_lib's definitions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from disbench.methods.nn.architectures import (
    ConvEncoder,
    DeconvDecoder,
    FCDiscriminator,
    SamePadConv,
    init_like_tf,
)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_equal_dlibs_layers_by_hand() -> None:
    # conv 4x4x1x32, 4x4x32x32, 2x2x32x64, 2x2x64x64 (+ biases), FC 1024->256, 2 x FC 256->10.
    encoder = 16 * 32 + 32 + 16 * 32 * 32 + 32 + 4 * 32 * 64 + 64 + 4 * 64 * 64 + 64
    encoder += 1024 * 256 + 256 + 2 * (256 * 10 + 10)
    # FC 10->256, 256->1024, convT 64->64, 64->32, 32->32, 32->1, all 4x4.
    decoder = 10 * 256 + 256 + 256 * 1024 + 1024
    decoder += 16 * 64 * 64 + 64 + 16 * 64 * 32 + 32 + 16 * 32 * 32 + 32 + 16 * 32 + 1
    # 6 x FC 1000 then FC 2.
    disc = 10 * 1000 + 1000 + 5 * (1000 * 1000 + 1000) + 1000 * 2 + 2
    assert n_params(ConvEncoder(1, 10)) == encoder == 309_204
    assert n_params(DeconvDecoder(1, 10)) == decoder == 381_313
    assert n_params(FCDiscriminator(10)) == disc == 5_018_002


def test_feature_map_sizes_and_output_shapes() -> None:
    enc, dec = ConvEncoder(3, 10), DeconvDecoder(3, 10)
    x = torch.rand(2, 3, 64, 64)
    sizes = []
    h = x
    for layer in enc.convs:
        h = layer(h)
        if isinstance(layer, SamePadConv):
            sizes.append(tuple(h.shape[1:]))
    assert sizes == [(32, 32, 32), (32, 16, 16), (64, 8, 8), (64, 4, 4)]
    mean, logvar = enc(x)
    assert mean.shape == logvar.shape == (2, 10)
    assert dec(mean).shape == (2, 3, 64, 64)
    assert FCDiscriminator(10)(mean).shape == (2, 2)


def test_same_padding_is_tensorflows() -> None:
    # TF "same": out = ceil(in / s), total pad max((out - 1) s + k - in, 0), extra pad at the end.
    conv = SamePadConv(1, 1, 4, 2, bias=False)
    for size in (64, 5):
        x = torch.rand(1, 1, size, size)
        out = math.ceil(size / 2)
        total = max((out - 1) * 2 + 4 - size, 0)
        manual = F.conv2d(F.pad(x, (total // 2, total - total // 2) * 2), conv.weight, stride=2)
        assert torch.equal(conv(x), manual) and manual.shape[-1] == out


def test_init_like_tf_is_glorot_uniform_with_zero_bias() -> None:
    net = init_like_tf(ConvEncoder(1, 10), torch.Generator().manual_seed(0))
    fc = net.fc  # fan_in 1024, fan_out 256
    bound = math.sqrt(6 / (1024 + 256))
    assert fc.weight.abs().max() <= bound and fc.weight.abs().max() > 0.95 * bound
    assert fc.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    assert all(m.bias.abs().sum() == 0 for m in net.modules() if isinstance(m, nn.Conv2d))
    again = init_like_tf(ConvEncoder(1, 10), torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), again.parameters(), strict=True))
