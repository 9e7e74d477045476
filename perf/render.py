"""Rendering speed of the procedural datasets next to the reference beta-VAE's training rate.

A procedural dataset must never make training wait: rendering should be at least 10x faster
than a training loop consumes images. In one run, on each device (the CPU, and CUDA when
available), this script times

- ``render_torch`` of each procedural dataset, factors sampled on the host and images made
  on the device, at batch 64 (what one training step takes) and batch 1024;
- the one-time set-up where there is one (proc_shapes3d traces its 480 geometries);
- Adam steps of the reference beta-VAE (``methods/nn/architectures.py``: conv encoder and
  deconv decoder, 10 latents, Bernoulli loss + KL, lr 1e-4) at batch 64, on one resident batch;

and prints images/s and the ratio render rate / training consumption (64 x steps/s).

Usage: ``python perf/render.py [--seconds S]``; the recorded output is ``perf/render.txt``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from disbench.datasets.proc_shapes3d import trace
from disbench.methods.nn.architectures import ConvEncoder, DeconvDecoder
from disbench.registry import DATASETS
from disbench.run.environment import device_name

DATASET_NAMES = ("proc_dsprites", "proc_shapes3d", "isometric_manifold", "blobs")


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def rate(step: Callable[[], None], device: str, seconds: float, min_calls: int = 3) -> float:
    """Calls per second of ``step``, after one warm-up call, over at least ``seconds``."""
    step()
    sync(device)
    calls, start = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < seconds:
        step()
        calls += 1
    sync(device)
    return calls / (time.perf_counter() - start)


def vae_steps_per_second(channels: int, device: str, seconds: float) -> float:
    """Adam steps/s of the reference beta-VAE (beta 1) at batch 64."""
    gen = torch.Generator().manual_seed(0)
    enc = ConvEncoder(channels).to(device)
    dec = DeconvDecoder(channels).to(device)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-4)
    x = (torch.rand(64, channels, 64, 64, generator=gen) < 0.2).float().to(device)
    eps = torch.randn(64, 10, generator=gen).to(device)

    def step() -> None:
        mean, logvar = enc(x)
        z = mean + torch.exp(0.5 * logvar) * eps
        rec = F.binary_cross_entropy_with_logits(dec(z), x, reduction="sum") / len(x)
        kl = 0.5 * (mean**2 + logvar.exp() - logvar - 1).sum() / len(x)
        opt.zero_grad()
        (rec + kl).backward()
        opt.step()

    return rate(step, device, seconds)


def geometries(n: int, device: str) -> list[torch.Tensor]:
    """Random (scale, shape, orientation) indices of proc_shapes3d."""
    g = torch.Generator().manual_seed(0)
    return [torch.randint(s, (n,), generator=g).to(device) for s in (8, 4, 15)]


def render_rate(name: str, device: str, batch: int, seconds: float) -> float:
    """Images/s of ``render_torch`` on ``device``, including sampling the factors."""
    ds = DATASETS.get(name)()
    rng = np.random.default_rng(0)
    return batch * rate(
        lambda: ds.render_torch(torch.from_numpy(ds.sample_factors(batch, rng)), device),
        device,
        seconds,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    for device in devices:
        print(f"\n== {device}: {device_name(device)}")
        ds = DATASETS.get("proc_shapes3d")()
        start = time.perf_counter()
        ds.geometry_weights(device)
        sync(device)
        print(
            f"proc_shapes3d one-time trace of 480 geometries: {time.perf_counter() - start:.2f} s"
        )
        direct = 64 * rate(lambda d=device: trace(*geometries(64, d)), device, args.seconds)
        print(f"proc_shapes3d direct trace (no cache), batch 64: {direct:,.0f} images/s")

        vae = {c: vae_steps_per_second(c, device, args.seconds) for c in (1, 3)}
        for c, steps in vae.items():
            print(
                f"beta-VAE training, {c} channel(s), batch 64: {steps:.1f} steps/s "
                f"= {64 * steps:,.0f} images/s consumed"
            )
        print(f"{'dataset':20s} {'batch':>6s} {'images/s':>12s} {'x training':>11s}")
        for name in DATASET_NAMES:
            channels = DATASETS.get(name)().observation_shape[0]
            for batch in (64, 1024):
                images = render_rate(name, device, batch, args.seconds)
                ratio = images / (64 * vae[channels])
                print(f"{name:20s} {batch:6d} {images:12,.0f} {ratio:10.1f}x")


if __name__ == "__main__":
    main()
