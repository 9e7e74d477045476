"""Model-steps per second: the naive one-model loop against batched (packed) training.

Every configuration trains the reference beta-VAE at batch 64 per model with the code a
real run uses: ``methods.nn.vae.train_step`` for the naive loop, ``methods.nn.batched.
packed_step`` for a packed group of N models, each model's batch drawn from its own
stream and rendered on the device every step. ``--func`` adds the ``torch.func``
formulation (stacked state + functional_call + vmap) for comparison. Configurations run
interleaved in rounds, so a busy machine slows them alike; the median is reported, with
the process CPU time per step beside the wall time (on a shared CPU the CPU time is what
the step costs on an idle core).

    python perf/train_throughput.py                                  # CPU, small groups
    python perf/train_throughput.py --device cuda --groups 1 4 16 64 128 256 --extras
    python perf/train_throughput.py --device cuda --profile 128      # kernel table

``--extras`` (CUDA) also times, at the two largest groups, strict fp32 (no TF32), TF32,
bf16 autocast, with and without channels-last and fused Adam, and torch.compile of the
packed networks. Output is markdown; recorded runs are in ``perf/train_throughput.txt``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch.func import functional_call, stack_module_state, vmap

from disbench.methods.beta_vae import BetaVAE
from disbench.methods.nn import losses
from disbench.methods.nn.batched import (
    PackedOptions,
    auto_group_size,
    build_packed,
    bytes_per_model,
    next_batches,
    packed_step,
    split_hparams,
)
from disbench.methods.nn.loop import Streams, factor_batches, memory_format, to_device
from disbench.methods.nn.vae import AutoEncoder, build, train_step
from disbench.registry import DATASETS
from disbench.run.environment import device_name

BATCH = 64


def machine(device: torch.device) -> str:
    return f"{device_name(device.type)}, torch {torch.__version__}"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Config:
    """One measured configuration: a formulation, a group size and its speed options."""

    kind: str  # "naive", "packed" or "func"
    n: int
    precision: str = "fp32"
    tf32: bool | None = None  # None: leave torch's defaults
    options: PackedOptions = PackedOptions()
    compile: bool = False

    def label(self) -> str:
        parts = [self.kind, f"N={self.n}", self.precision]
        if self.tf32 is not None:
            parts.append("tf32" if self.tf32 else "no-tf32")
        if self.kind != "func":
            parts.append("channels-last" if self.options.channels_last else "NCHW")
        if self.kind == "packed":
            parts.append("fused-adam" if self.options.fused_adam else "adam")
        if self.compile:
            parts.append("compile")
        return " ".join(parts)


def naive_stepper(dataset, device: torch.device, cfg: Config) -> Callable[[int], None]:
    method = BetaVAE()
    hp = method.resolve_hparams({"precision": cfg.precision})
    streams = Streams(0, device)
    nets = build(method, dataset.observation_shape[0], hp, streams.init, device)
    bf16, cl = cfg.precision == "bf16", cfg.options.channels_last
    if cl:
        nets.model.to(memory_format=torch.channels_last)
    batches = factor_batches(dataset, streams.data, BATCH)

    def step(i: int) -> None:
        x = dataset.render_torch(to_device(next(batches), device), device)
        if cl:
            x = x.contiguous(memory_format=torch.channels_last)
        train_step(method, nets, x, hp, i, streams.noise, bf16)

    return step


def packed_stepper(dataset, device: torch.device, cfg: Config) -> Callable[[int], None]:
    method = BetaVAE()
    betas = [1.0, 2.0, 4.0, 6.0, 8.0, 16.0]  # the published grid, so hyperparameters differ
    hps = [
        method.resolve_hparams({"precision": cfg.precision, "beta": betas[i % 6]})
        for i in range(cfg.n)
    ]
    streams = [Streams(seed, device) for seed in range(cfg.n)]
    channels = dataset.observation_shape[0]
    nets = build_packed(method, channels, hps[0], [s.init for s in streams], device, cfg.options)
    if cfg.compile:
        nets.model.encoder = torch.compile(nets.model.encoder)
        nets.model.decoder = torch.compile(nets.model.decoder)
    shared, per_model = split_hparams(method, hps, device)
    noises = [s.noise for s in streams]
    batches = [factor_batches(dataset, s.data, BATCH) for s in streams]
    bf16, cl = cfg.precision == "bf16", cfg.options.channels_last

    def step(i: int) -> None:
        x = next_batches(dataset, batches, device)
        packed_step(method, nets, x, shared, per_model, i, noises, bf16, cl)

    return step


def func_stepper(dataset, device: torch.device, cfg: Config) -> Callable[[int], None]:
    """The torch.func formulation: N models' states stacked, one model's loss vmapped."""
    method = BetaVAE()
    hp = method.resolve_hparams({})
    channels = dataset.observation_shape[0]
    streams = [Streams(seed, device) for seed in range(cfg.n)]
    models = [build(method, channels, hp, s.init, device).model for s in streams]
    params, _ = stack_module_state(models)
    base = AutoEncoder(channels, 10).to("meta")
    beta = torch.full((cfg.n,), 4.0, device=device)
    opt = torch.optim.Adam(params.values(), lr=1e-4, fused=True if device.type == "cuda" else None)

    def one_model(p, x, eps, b):
        mean, logvar = functional_call(base.encoder, _prefixed(p, "encoder."), (x,))
        z = mean + torch.exp(logvar / 2) * eps
        logits = functional_call(base.decoder, _prefixed(p, "decoder."), (z,))
        kl = losses.gaussian_kl(mean, logvar)
        return losses.bernoulli_reconstruction(x, logits) + b * kl

    batched_loss = vmap(one_model)
    batches = [factor_batches(dataset, s.data, BATCH) for s in streams]

    def step(i: int) -> None:
        x = next_batches(dataset, batches, device)
        x = x.reshape(cfg.n, BATCH, *x.shape[1:])
        eps = torch.stack(
            [torch.randn((BATCH, 10), generator=s.noise, device=device) for s in streams]
        )
        opt.zero_grad(set_to_none=True)
        batched_loss(params, x, eps, beta).sum().backward()
        opt.step()

    return step


def _prefixed(params: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}


STEPPERS = {"naive": naive_stepper, "packed": packed_stepper, "func": func_stepper}


def set_tf32(value: bool | None, defaults: tuple[bool, bool]) -> None:
    matmul, cudnn = defaults if value is None else (value, value)
    torch.backends.cuda.matmul.allow_tf32 = matmul
    torch.backends.cudnn.allow_tf32 = cudnn


def measure(stepper, device: torch.device, steps: int, warmup: int) -> tuple[float, float]:
    """(wall, process CPU) seconds per step over ``steps`` steps after ``warmup``."""
    for i in range(warmup):
        stepper(i)
    sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(warmup, warmup + steps):
        stepper(i)
    sync(device)
    return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def configs(args: argparse.Namespace, device: torch.device) -> list[Config]:
    default = PackedOptions.for_device(device)
    # First row: the loop ``train`` runs on this device; second: the other conv layout.
    cl = memory_format(device) == torch.channels_last
    out = [Config("naive", 1, options=PackedOptions(channels_last=c)) for c in (cl, not cl)]
    out += [Config("packed", n, options=default) for n in args.groups]
    if args.func:
        out += [Config("func", n) for n in args.groups if n > 1]
    if args.extras:
        for n in sorted(args.groups)[-2:]:
            base = Config("packed", n, options=default)
            out += [
                replace(base, tf32=False),
                replace(base, tf32=True),
                replace(base, precision="bf16"),
                replace(base, precision="bf16", options=replace(default, channels_last=False)),
                replace(base, options=replace(default, channels_last=not default.channels_last)),
                replace(base, options=replace(default, fused_adam=None)),
                replace(base, compile=True),
                replace(base, precision="bf16", compile=True),
            ]
    return list(dict.fromkeys(out))


def kernel_profile(dataset, device: torch.device, n: int, steps: int) -> None:
    """The top operators of ``steps`` packed steps at group size ``n`` (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    stepper = packed_stepper(
        dataset, device, Config("packed", n, options=PackedOptions.for_device(device))
    )
    measure(stepper, device, 2, 2)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for i in range(steps):
            stepper(i)
        sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(f"\n### profile: packed N={n}, {steps} steps, sorted by {key}\n")
    print("```")
    print(prof.key_averages().table(sort_by=key, row_limit=25))
    print("```")


def print_table(
    todo: list[Config],
    times: dict[Config, list[tuple[float, float]]],
    errors: dict[Config, str],
    peak: dict[Config, float],
    cpu_columns: bool,
) -> None:
    """Medians per configuration; speed-ups against the first (naive) row. On the CPU also
    per process CPU-second: on a shared machine that is what the work costs."""
    header = ["configuration", "ms/step", "model-steps/s", "vs naive"]
    header += ["CPU ms/step", "model-steps/CPU-s", "vs naive (CPU)"] if cpu_columns else []
    header += ["peak GiB"] if peak else []
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    base_wall = statistics.median(w for w, _ in times[todo[0]])
    base_cpu = statistics.median(c for _, c in times[todo[0]])
    for cfg in todo:
        if cfg in errors:
            print(f"| {cfg.label()} | failed: {errors[cfg]} |" + " |" * (len(header) - 2))
            continue
        wall = statistics.median(w for w, _ in times[cfg])
        cpu = statistics.median(c for _, c in times[cfg])
        row = [cfg.label(), f"{1000 * wall:.0f}", f"{cfg.n / wall:,.1f}"]
        row.append(f"{cfg.n * base_wall / wall:.2f}x")
        if cpu_columns:
            row += [f"{1000 * cpu:.0f}", f"{cfg.n / cpu:,.2f}", f"{cfg.n * base_cpu / cpu:.2f}x"]
        if peak:
            row.append(f"{peak.get(cfg, float('nan')):.2f}")
        print("| " + " | ".join(row) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dataset", default="blobs")
    ap.add_argument("--groups", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--steps", type=int, default=5, help="timed steps per round")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (torch)")
    ap.add_argument("--func", action="store_true", help="also time the torch.func form")
    ap.add_argument("--extras", action="store_true", help="precision/layout/compile variants")
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="profile group N")
    args = ap.parse_args()

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = DATASETS.get(args.dataset)()
    print(f"## {time.strftime('%Y-%m-%d %H:%M')}: {machine(device)}\n")
    print(f"command: `python {' '.join(sys.argv)}`\n")
    print(
        f"beta-VAE, dataset {args.dataset}, batch {BATCH} per model, {args.steps} timed steps "
        f"x {args.rounds} rounds (median), torch threads {torch.get_num_threads()}, "
        f"load average before: {' '.join(f'{v:.1f}' for v in os.getloadavg())}\n"
    )
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        mib = bytes_per_model(BetaVAE) / 2**20
        print(
            f"free memory {free / 2**30:.1f} of {total / 2**30:.1f} GiB; planned "
            f"{mib:.0f} MiB per model; auto group size {auto_group_size(BetaVAE, device)}\n"
        )
    tf32_defaults = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    todo = configs(args, device)
    times: dict[Config, list[tuple[float, float]]] = {c: [] for c in todo}
    errors: dict[Config, str] = {}
    peak: dict[Config, float] = {}
    for _ in range(args.rounds):
        for cfg in todo:
            if cfg in errors:
                continue
            stepper = None
            set_tf32(cfg.tf32, tf32_defaults)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            try:
                stepper = STEPPERS[cfg.kind](dataset, device, cfg)
                times[cfg].append(measure(stepper, device, args.steps, args.warmup))
            except Exception as exc:  # noqa: BLE001 - report the variant that fails, go on
                errors[cfg] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
            if device.type == "cuda":
                peak[cfg] = torch.cuda.max_memory_allocated(device) / 2**30
            del stepper
    set_tf32(None, tf32_defaults)

    print_table(todo, times, errors, peak, cpu_columns=device.type == "cpu")
    if args.profile:
        kernel_profile(dataset, device, args.profile, args.steps)
    print(f"\nload average after: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
