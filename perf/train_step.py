"""Steps per second of the reference beta-VAE at batch 64: the naive one-model loop.

The baseline for the batched-training issue. Every variant runs the same code as a real
run (``methods.nn.vae.train_step``, a batch rendered on the device each step from
``--dataset``), interleaved in rounds so that a busy machine slows them alike; the
median over rounds is reported. Also times encoding 3,000 observations (what the
evaluator does after training) and the learning over a short run in each precision.

    python perf/train_step.py                      # CPU: fp32 and bf16 autocast
    python perf/train_step.py --device cuda        # GPU
    python perf/train_step.py --threads 1 2        # CPU thread counts to compare

Output is markdown; recorded runs live in ``perf/train_step.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from disbench.methods.beta_vae import BetaVAE
from disbench.methods.nn.loop import Streams
from disbench.methods.nn.vae import VAERepresentation, build, train_step
from disbench.registry import DATASETS
from disbench.run.environment import device_name


def machine(device: torch.device) -> str:
    return f"{device_name(device.type)}, torch {torch.__version__}"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(
    dataset, device, precision: str, steps: int, warmup: int, seed: int = 0
) -> tuple[float, float]:
    """(wall, process CPU) seconds per step of ``steps`` beta-VAE steps after ``warmup``.

    On a shared machine the CPU time of a one-thread run is close to what the step costs
    on an idle core; the wall time is what this run actually got.
    """
    method = BetaVAE()
    hp = method.resolve_hparams({"precision": precision})
    streams = Streams(seed, device)
    nets = build(method, dataset.observation_shape[0], hp, streams.init, device)
    start = cpu_start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            sync(device)
            start, cpu_start = time.perf_counter(), time.process_time()
        factors = torch.from_numpy(dataset.sample_factors(64, streams.data))
        x = dataset.render_torch(factors, device)
        train_step(method, nets, x, hp, step, streams.noise, precision == "bf16")
    sync(device)
    return (time.perf_counter() - start) / steps, (time.process_time() - cpu_start) / steps


def encode_seconds(dataset, device: torch.device, n: int = 3000) -> float:
    method = BetaVAE()
    hp = method.resolve_hparams({})
    streams = Streams(0, device)
    nets = build(method, dataset.observation_shape[0], hp, streams.init, device)
    rep = VAERepresentation(
        nets.model,
        {
            "method": "beta_vae",
            "num_latents": 10,
            "observation_shape": list(dataset.observation_shape),
        },
    )
    _, x = dataset.sample(n, np.random.default_rng(0))
    start = time.perf_counter()
    rep.encode(x)
    return time.perf_counter() - start


def learning(dataset, device, precision: str, steps: int) -> tuple[float, float]:
    """Mean loss over the first and the last 10% of ``steps`` steps (does it learn?)."""
    method = BetaVAE()
    hp = method.resolve_hparams({"precision": precision, "beta": 1.0})
    streams = Streams(1, device)
    nets = build(method, dataset.observation_shape[0], hp, streams.init, device)
    loss = []
    for step in range(steps):
        x = dataset.render_torch(torch.from_numpy(dataset.sample_factors(64, streams.data)), device)
        loss.append(
            train_step(method, nets, x, hp, step, streams.noise, precision == "bf16")["loss"].item()
        )
    k = max(1, steps // 10)
    return float(np.mean(loss[:k])), float(np.mean(loss[-k:]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dataset", default="blobs")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per round")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="*", default=None, help="CPU thread counts")
    ap.add_argument("--precisions", nargs="*", default=["fp32", "bf16"])
    ap.add_argument("--learn-steps", type=int, default=0, help="also run a short learning check")
    args = ap.parse_args()

    device = torch.device(args.device)
    dataset = DATASETS.get(args.dataset)()
    threads = args.threads or [torch.get_num_threads()]
    print(f"## {time.strftime('%Y-%m-%d')}: {machine(device)}\n")
    print(
        f"dataset {args.dataset}, batch 64, {args.steps} timed steps x {args.rounds} rounds "
        f"(median), load average before: {os.getloadavg()[0]:.1f}\n"
    )
    variants = [(p, n) for p in args.precisions for n in (threads if device.type == "cpu" else [0])]
    results: dict[tuple[str, int], list[tuple[float, float]]] = {v: [] for v in variants}
    for _ in range(args.rounds):
        for precision, n in variants:
            if n:
                torch.set_num_threads(n)
            results[(precision, n)].append(
                time_steps(dataset, device, precision, args.steps, args.warmup)
            )
    base = statistics.median(wall for wall, _ in results[variants[0]])
    print("| precision | threads | wall ms/step | steps/s | vs first row | CPU ms/step |")
    print("|---|---|---|---|---|---|")
    for (precision, n), times in results.items():
        wall = statistics.median(w for w, _ in times)
        cpu = statistics.median(c for _, c in times)
        label = n if n else "-"
        print(
            f"| {precision} | {label} | {1000 * wall:.1f} | {1 / wall:.1f} | {base / wall:.2f}x "
            f"| {1000 * cpu:.1f} |"
        )
    if device.type == "cpu":
        torch.set_num_threads(threads[0])
    print(
        f"\nencode 3,000 observations: {encode_seconds(dataset, device):.2f} s "
        f"(threads {torch.get_num_threads()})"
    )
    if args.learn_steps:
        for precision in args.precisions:
            first, last = learning(dataset, device, precision, args.learn_steps)
            print(
                f"learning, {precision}, {args.learn_steps} steps: loss {first:.0f} -> {last:.0f}"
            )
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
