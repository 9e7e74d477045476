"""DisDiff speed and a learning check, recorded in ``perf/disdiff.md``.

``speed`` (the default) times one training step of each phase, interleaved in rounds so a
busy machine slows them alike (median over rounds, wall and process CPU seconds):

- the small CPU configuration (``preset = "cpu"``) at batch 128 and at its recommended
  batch 16, phase 2 (a DDPM step, the baseline) and phase 3 (a DisDiff step);
- the official configuration (KL-f4 first stage, 64-channel latent UNet, 6 x 32 units,
  encoder width 128), 64x64x3 images. Its batch-128 step does not fit this machine's
  memory on the CPU, so the CPU time is measured at batch 8 and scaled x16 (marked);
  FLOPs per step are counted (torch FlopCounterMode) at batches 4 and 8 and extrapolated
  linearly to the official batches (exact: every op is per-sample). On a CUDA device
  every official step is timed at its real batch.

It then estimates the GPU-hours of the official configuration per dataset (phases 1-2,
shared by all seeds) and per seed (phase 3): measured GPU seconds per step where a GPU
ran, otherwise FLOPs per step / an assumed sustained GPU throughput; the step counts are
assumptions too (the official configs set none). Every estimated number says so.

``learning`` fits DisDiff's CPU configuration on procedural datasets for 0 (untrained
encoder + PCA) and a few hundred phase-3 steps and scores the codes (MIG, DCI fast,
FactorVAE on reduced sizes), to show that the short CPU run learns.

    python perf/disdiff.py speed [--device cuda] [--threads 1]
    python perf/disdiff.py learning [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# perf/metrics.py would shadow the ``metrics`` package: drop this script's folder from the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from disbench.api import FitContext, TrainBudget  # noqa: E402
from disbench.datasets.blobs import Blobs  # noqa: E402
from disbench.methods.diffusion.first_stage import build_first_stage  # noqa: E402
from disbench.methods.diffusion.pretrain import PretrainedDPM, unet_config  # noqa: E402
from disbench.methods.diffusion.schedule import Schedule  # noqa: E402
from disbench.methods.diffusion.unet import SubGradientDecoder, UNet  # noqa: E402
from disbench.methods.disdiff import PRESETS, DisDiff, ImageEncoder, disdiff_losses, resolve_config  # noqa: E402
from disbench.run.environment import device_name  # noqa: E402

# Assumptions of the GPU-hour estimate (not measured; the official configs set no lengths).
ASSUMED_STEPS = {
    "phase 1 (KL-f4 AE)": 50_000,
    "phase 2 (LDM)": 100_000,
    "phase 3 (DisDiff)": 100_000,
}
ASSUMED_TFLOPS = (15.0, 40.0)  # sustained fp32/TF32 throughput of one H100-class GPU, range


def machine(device: torch.device) -> str:
    return f"{device_name(device.type)}, torch {torch.__version__}"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Steps:
    """Training steps of the three phases for one configuration, on random batches."""

    def __init__(self, cfg: dict, channels: int, device: torch.device) -> None:
        torch.manual_seed(0)
        self.device, self.cfg = device, cfg
        self.first = build_first_stage(cfg, channels).to(device)
        latent_ch = cfg["ae_embed_dim"] if cfg["first_stage"] == "kl" else channels
        self.unet = UNet(unet_config(cfg, latent_ch)).to(device)
        frozen_unet = UNet(unet_config(cfg, latent_ch)).to(device).eval().requires_grad_(False)
        self.dpm = PretrainedDPM(
            build_first_stage(cfg, channels).to(device).eval().requires_grad_(False),
            frozen_unet,
            Schedule(device=device),
            1.0,
            {},
        )
        units, dim, width = cfg["latent_unit"], cfg["unit_dim"], cfg["encoder_channels"]
        self.encoder = ImageEncoder(channels, (64, 64), width, units * dim).to(device)
        self.frozen = ImageEncoder(channels, (64, 64), width, units * dim).to(device)
        self.frozen.eval().requires_grad_(False)
        self.decoder = SubGradientDecoder(frozen_unet.cfg, frozen_unet.skip_channels, units, dim)
        self.decoder.to(device)
        self.channels = channels
        self.opt3 = torch.optim.AdamW([*self.encoder.parameters(), *self.decoder.parameters()])
        self.opt2 = torch.optim.AdamW(self.unet.parameters())
        self.opt1 = torch.optim.Adam(self.first.parameters()) if self.first.trainable else None
        self.gen = torch.Generator(device=device).manual_seed(0)

    def batch_of(self, n: int) -> tuple[torch.Tensor, ...]:
        g, d = self.gen, self.device
        x = torch.rand(n, self.channels, 64, 64, generator=g, device=d) * 2 - 1
        with torch.no_grad():
            y0 = self.dpm.to_latent(x, None)
        t = torch.randint(0, 1000, (n,), generator=g, device=d)
        noise = torch.randn(y0.shape, generator=g, device=d)
        unit = torch.randint(0, self.cfg["latent_unit"], (n,), generator=g, device=d)
        return x, y0, t, noise, unit

    def phase1(self, n: int) -> Callable[[], None]:
        x = self.batch_of(n)[0]

        def step() -> None:
            loss = self.first.loss(x, self.gen, 1e-6)
            self.opt1.zero_grad()
            loss.backward()
            self.opt1.step()

        return step

    def phase2(self, n: int) -> Callable[[], None]:
        _, y0, t, noise, _ = self.batch_of(n)
        sched = self.dpm.schedule

        def step() -> None:
            loss = (self.unet(sched.q_sample(y0, t, noise), t) - noise).abs().mean()
            self.opt2.zero_grad()
            loss.backward()
            self.opt2.step()

        return step

    def phase3(self, n: int) -> Callable[[], None]:
        x, y0, t, noise, unit = self.batch_of(n)

        def step() -> None:
            self.frozen.load_state_dict(self.encoder.state_dict())
            rec, dis = disdiff_losses(
                self.encoder, self.frozen, self.decoder, self.dpm, x, y0, t, noise, unit, 0.05
            )
            loss = rec.mean() + dis.mean()
            self.opt3.zero_grad()
            loss.backward()
            self.opt3.step()

        return step


def flops(step: Callable[[], None]) -> float:
    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def timed(steps: dict[str, Callable[[], None]], device: torch.device, rounds: int) -> dict:
    """Median (wall, CPU) seconds per step, rounds interleaved across the steps."""
    for step in steps.values():  # warm-up
        step()
    sync(device)
    wall: dict[str, list[float]] = {k: [] for k in steps}
    cpu: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            step()
            sync(device)
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in steps}


def linear_flops(make: Callable[[int], Callable[[], None]], batch: int) -> float:
    """FLOPs at ``batch`` from counts at batches 4 and 8 (FLOPs are affine in the batch)."""
    f4, f8 = flops(make(4)), flops(make(8))
    return f4 + (f8 - f4) / 4 * (batch - 4)


def speed(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    cpu_cfg, off = dict(PRESETS["cpu"]), dict(PRESETS["official"])
    cpu_cfg["dis_weight"] = off["dis_weight"] = 0.05
    print(f"## DisDiff step times on {machine(device)}\n")
    if device.type == "cpu":
        print(f"torch threads: {torch.get_num_threads()}; load average at start: "
              f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}\n")  # fmt: skip

    print('### Small CPU configuration (`preset = "cpu"`), 64x64 images\n')
    print("| channels | step | batch | wall s/step | CPU s/step | GFLOP/step |")
    print("|---|---|---:|---:|---:|---:|")
    for channels in (1, 3):
        s = Steps(cpu_cfg, channels, device)
        todo = {
            ("phase 2 (DDPM, baseline)", 32): s.phase2(32),
            ("phase 2 (DDPM, baseline)", 128): s.phase2(128),
            ("phase 3 (DisDiff)", 16): s.phase3(16),
            ("phase 3 (DisDiff)", 128): s.phase3(128),
        }
        gflop = {k: flops(f) / 1e9 for k, f in todo.items()}
        res = timed({str(k): f for k, f in todo.items()}, device, args.rounds)
        for (name, batch), g in gflop.items():
            w, c = res[str((name, batch))]
            print(f"| {channels} | {name} | {batch} | {w:.3f} | {c:.3f} | {g:.1f} |")
    print()

    print('### Official configuration (`preset = "official"`), 64x64x3 images\n')
    big = device.type == "cuda"
    s = Steps(off, 3, device)
    counted = {
        "phase 1 (KL-f4 AE)": (off["ae_batch_size"], linear_flops(s.phase1, off["ae_batch_size"])),
        "phase 2 (LDM)": (off["dpm_batch_size"], linear_flops(s.phase2, off["dpm_batch_size"])),
        "phase 3 (DisDiff)": (128, linear_flops(s.phase3, 128)),
    }
    run_batch = {k: (b if big else 8) for k, (b, _) in counted.items()}
    makers = {
        "phase 1 (KL-f4 AE)": s.phase1,
        "phase 2 (LDM)": s.phase2,
        "phase 3 (DisDiff)": s.phase3,
    }
    res = timed({k: makers[k](run_batch[k]) for k in counted}, device, max(2, args.rounds // 3))
    print("| step | official batch | GFLOP/step (counted) | timed at batch | wall s/step at "
          "official batch | how |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---|")
    per_step = {}
    for name, (batch, fl) in counted.items():
        w = res[name][0] * batch / run_batch[name]
        per_step[name] = (w, fl)
        how = (
            "measured"
            if run_batch[name] == batch
            else f"measured at {run_batch[name]}, x{batch // run_batch[name]} (estimate)"
        )
        print(f"| {name} | {batch} | {fl / 1e9:.0f} | {run_batch[name]} | {w:.2f} | {how} |")
    print()

    print("### Estimated GPU-hours of the official configuration\n")
    print(f"Assumed step counts (the official configs set none): "
          f"{', '.join(f'{k}: {v:,}' for k, v in ASSUMED_STEPS.items())}.")  # fmt: skip
    if big:
        print(f"GPU seconds per step: measured above on {machine(device)}.\n")
        print("| part | GPU-hours (estimate) |")
        print("|---|---:|")
        for name, steps in ASSUMED_STEPS.items():
            print(f"| {name} | {per_step[name][0] * steps / 3600:.1f} |")
    else:
        lo, hi = ASSUMED_TFLOPS
        print(f"No GPU in this run: GPU seconds per step = counted FLOPs / an assumed sustained "
              f"{lo:.0f}-{hi:.0f} TFLOP/s (assumption, not measured).\n")  # fmt: skip
        print("| part | GPU s/step (estimate) | GPU-hours (estimate) |")
        print("|---|---:|---:|")
        for name, steps in ASSUMED_STEPS.items():
            fast, slow = per_step[name][1] / hi / 1e12, per_step[name][1] / lo / 1e12
            hours = f"{fast * steps / 3600:.1f}-{slow * steps / 3600:.1f}"
            print(f"| {name} | {fast:.3f}-{slow:.3f} | {hours} |")
    print("\nPhases 1-2 are paid once per dataset and shared by its seeds; phase 3 is per seed. "
          "Shapes3D, MPI3D-toy and Cars3D are all 64x64x3 with the same architecture and "
          "batch, so one estimate covers each of them.")  # fmt: skip
    if device.type == "cpu":
        print(f"\nLoad average at end: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")


def learning(args: argparse.Namespace) -> None:
    from disbench.metrics.dci import dci
    from disbench.metrics.factor_vae import factor_vae_score
    from disbench.metrics.mig import mig
    from disbench.registry import DATASETS

    where = machine(torch.device("cpu"))
    print(f"## DisDiff CPU configuration: does the short run learn? ({where})\n")
    print(f"torch threads: {torch.get_num_threads()}; load average at start: "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}\n")  # fmt: skip
    print("Codes: per-unit PCA-1 (6 dims). Steps 0 = the untrained encoder with the same PCA. "
          "MIG on 2000 points, DCI (fast) on 2000/1000, FactorVAE on 500/250 votes of batch 64 "
          "with 2000 points for the variances.\n")  # fmt: skip
    print("| dataset | phase-3 steps x batch | seconds (phase 3) | MIG | DCI disentanglement | "
          "DCI informativeness (test) | FactorVAE eval accuracy |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|")
    cache = Path(tempfile.mkdtemp(prefix="disdiff-learning-"))
    for name in args.datasets:
        dataset = Blobs() if name == "blobs" else DATASETS.get(name)()
        for steps in args.steps:
            ctx = FitContext(cache_dir=cache)
            hp = DisDiff.resolve_hparams({})
            rep = DisDiff().fit(dataset, hp, 0, TrainBudget(steps, args.batch), ctx)
            rng = np.random.default_rng(123)
            f_tr = dataset.sample_factors(2000, rng)
            f_te = dataset.sample_factors(1000, rng)
            c_tr, c_te = rep.encode(dataset.render(f_tr)), rep.encode(dataset.render(f_te))
            m = mig(c_tr, f_tr)["discrete_mig"]
            d = dci(c_tr, f_tr, c_te, f_te, mode="fast")
            fv = factor_vae_score(dataset, rep.encode, np.random.default_rng(5), 64, 500, 250, 2000)
            secs = ctx.info["train_seconds"]
            print(f"| {name} | {steps} x {args.batch} | {secs:.1f} | {m:.3f} | "
                  f"{d['disentanglement']:.3f} | {d['informativeness_test']:.3f} | "
                  f"{fv['eval_accuracy']:.3f} |", flush=True)  # fmt: skip
        art = ctx.info["artifacts"]["dpm"]
        dpm_steps = resolve_config(DisDiff.typed(hp), dataset)["dpm_steps"]
        loss = f"L1 {art['first_loss']:.3f} -> {art['final_loss']:.3f}"
        note = f"phase 2: {dpm_steps} DDPM steps x 32, {art['train_seconds']:.1f} s, {loss}"
        print(f"| {name} | ({note}) | | | | | |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", nargs="?", choices=("speed", "learning"), default="speed")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--datasets", nargs="+", default=["blobs", "proc_dsprites", "proc_shapes3d"]
    )
    parser.add_argument("--steps", nargs="+", type=int, default=[0, 100, 300])
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    speed(args) if args.what == "speed" else learning(args)


if __name__ == "__main__":
    main()
