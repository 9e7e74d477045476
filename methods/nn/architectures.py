"""disentanglement_lib's reference networks (Locatello et al. 2019), in PyTorch.

``conv_encoder``: conv 32 4x4 s2, conv 32 4x4 s2, conv 64 2x2 s2, conv 64 2x2 s2,
FC 256, then FC 2 x latents (means, log-variances); ReLU, TF "same" padding.
``deconv_decoder``: FC 256, FC 1024 -> 4x4x64, convT 64, 32, 32, C (4x4, s2), logits.
``fc_discriminator``: 6 x FC 1000 with leaky ReLU (slope 0.2), then FC 2 (FactorVAE).
Weights start as TensorFlow's ``tf.layers`` start them (:func:`init_like_tf`), not with
torch's defaults, so training dynamics match dlib's from step 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from disbench.api import GroundTruthDataset


def check_reference_shape(method: str, dataset: GroundTruthDataset) -> None:
    """The reference networks read 64x64 images (any channel count); anything else is a
    one-line error naming the method and the dataset."""
    if tuple(dataset.observation_shape[1:]) != (64, 64):
        raise ValueError(
            f"method {method!r}: the reference networks need 64x64 observations, dataset "
            f"{dataset.name!r} has {dataset.observation_shape}"
        )


class SamePadConv(nn.Conv2d):
    """Conv2d with TensorFlow's "same" padding for stride 2 (pads right/bottom when odd)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kh, kw = self.kernel_size
        sh, sw = self.stride
        ph = max(kh - sh, 0) if x.shape[-2] % sh == 0 else max(kh - x.shape[-2] % sh, 0)
        pw = max(kw - sw, 0) if x.shape[-1] % sw == 0 else max(kw - x.shape[-1] % sw, 0)
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        return super().forward(x)


class ConvEncoder(nn.Module):
    """Image [n, C, 64, 64] -> (mean [n, L], logvar [n, L])."""

    def __init__(self, in_channels: int, num_latents: int = 10) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            SamePadConv(in_channels, 32, 4, 2), nn.ReLU(),
            SamePadConv(32, 32, 4, 2), nn.ReLU(),
            SamePadConv(32, 64, 2, 2), nn.ReLU(),
            SamePadConv(64, 64, 2, 2), nn.ReLU(),
        )  # fmt: skip
        self.fc = nn.Linear(64 * 4 * 4, 256)
        self.means = nn.Linear(256, num_latents)
        self.logvars = nn.Linear(256, num_latents)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.convs(x)
        # Flatten in TF's channels-last order so the FC weights mean the same as dlib's.
        h = F.relu(self.fc(h.permute(0, 2, 3, 1).reshape(len(x), -1)))
        return self.means(h), self.logvars(h)


class DeconvDecoder(nn.Module):
    """Codes [n, L] -> Bernoulli logits [n, C, 64, 64]."""

    def __init__(self, out_channels: int, num_latents: int = 10) -> None:
        super().__init__()
        self.fc1 = nn.Linear(num_latents, 256)
        self.fc2 = nn.Linear(256, 1024)
        # kernel 4, stride 2, padding 1 doubles the size exactly, as TF's "same" does.
        self.deconvs = nn.Sequential(
            nn.ConvTranspose2d(64, 64, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(32, 32, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(32, out_channels, 4, 2, 1),
        )  # fmt: skip

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.fc2(F.relu(self.fc1(z))))
        h = h.reshape(len(z), 4, 4, 64).permute(0, 3, 1, 2)
        return self.deconvs(h)


class FCDiscriminator(nn.Module):
    """FactorVAE's discriminator: codes [n, L] -> logits [n, 2] (true vs permuted)."""

    def __init__(self, num_latents: int = 10, width: int = 1000, depth: int = 6) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        size = num_latents
        for _ in range(depth):
            layers += [nn.Linear(size, width), nn.LeakyReLU(0.2)]
            size = width
        layers.append(nn.Linear(size, 2))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def init_like_tf(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Glorot-uniform weights and zero biases (``tf.layers`` defaults), drawn from ``generator``.

    Glorot depends only on fan_in + fan_out, so torch's (in, out) kernel layout for
    transposed convolutions gives TF's distribution too.
    """
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.Linear | nn.Conv2d | nn.ConvTranspose2d):
                nn.init.xavier_uniform_(layer.weight, generator=generator)
                if layer.bias is not None:
                    layer.bias.zero_()
    return module
