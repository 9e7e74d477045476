"""Metric speed (disbench vs disentanglement_lib, same arrays, one run) and DCI fast-vs-exact
agreement. Writes a markdown report (default perf/metrics.md).

    python perf/metrics.py                       # both parts, default sizes (~10 min idle)
    python perf/metrics.py --part speed --repeats 3
    python perf/metrics.py --part agreement

Sizes are disentanglement_lib's defaults: 10,000 train / 5,000 test points, 10 codes
(5 factors mixed with alpha=0.3 plus 5 noise codes, noise 0.05), factors with 10/10/10/8/6
values. The sampling metrics (FactorVAE, BetaVAE) run on a dataset whose observation is
the factor vector and a numpy encoder, so they time the metrics' own work, not an encoder.
Wall time is what a user waits; CPU time (all threads) is reported too because this
machine is shared and its load (printed) inflates wall times.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

# Run as a script, this file's folder comes first on the import path and its own name
# (metrics.py) would hide the metrics package; drop the folder.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import numpy as np  # noqa: E402

from disbench.metrics._synthetic import FactorVectorDataset, synthetic_codes  # noqa: E402
from disbench.metrics.beta_vae import beta_vae_score  # noqa: E402
from disbench.metrics.dci import dci  # noqa: E402
from disbench.metrics.factor_vae import factor_vae_score  # noqa: E402
from disbench.metrics.irs import irs  # noqa: E402
from disbench.metrics.mcc import mcc  # noqa: E402
from disbench.metrics.mig import mig  # noqa: E402
from disbench.metrics.modularity_explicitness import modularity_explicitness  # noqa: E402
from disbench.metrics.sap_score import sap  # noqa: E402
from disbench.metrics.unsupervised import unsupervised  # noqa: E402

SIZES = (10, 10, 10, 8, 6)
N_TRAIN, N_TEST = 10000, 5000


def load_dlib() -> types.SimpleNamespace | None:
    """disentanglement_lib's metric modules (gin.tf stubbed), or None when not installed."""
    try:
        import gin
    except ImportError:
        return None
    sys.modules.setdefault("gin.tf", types.ModuleType("gin.tf"))
    logging.getLogger().setLevel(logging.ERROR)
    try:
        from disentanglement_lib.evaluation.metrics import (
            beta_vae,
            dci,
            factor_vae,
            irs,
            mig,
            modularity_explicitness,
            sap_score,
            unsupervised_metrics,
            utils,
        )
    except ImportError:
        return None
    gin.bind_parameter("discretizer.discretizer_fn", utils._histogram_discretize)
    gin.bind_parameter("discretizer.num_bins", 20)
    gin.bind_parameter("prune_dims.threshold", 0.05)
    return types.SimpleNamespace(
        mig=mig,
        dci=dci,
        sap=sap_score,
        irs=irs,
        modexp=modularity_explicitness,
        unsup=unsupervised_metrics,
        factor_vae=factor_vae,
        beta_vae=beta_vae,
    )


class Replay:
    """disentanglement_lib's dataset interface handing out fixed rows in order."""

    def __init__(self, codes: np.ndarray, factors: np.ndarray) -> None:
        self.codes, self.factors, self.pos = codes, factors, 0
        self.num_factors = factors.shape[1]

    def sample(self, num: int, random_state: object) -> tuple[np.ndarray, np.ndarray]:
        rows = np.arange(self.pos, self.pos + num)
        self.pos += num
        return self.factors[rows], rows

    def represent(self, rows: np.ndarray) -> np.ndarray:
        return self.codes[rows]


class DlibDataset:
    """A FactorVectorDataset behind disentanglement_lib's sampling interface."""

    def __init__(self, dataset: FactorVectorDataset) -> None:
        self.dataset = dataset
        self.num_factors = dataset.num_factors

    def sample_factors(self, num: int, random_state: np.random.RandomState) -> np.ndarray:
        return np.stack([random_state.randint(s, size=num) for s in self.dataset.factor_sizes], 1)

    def sample_observations_from_factors(self, factors, random_state):
        return self.dataset.render(factors)

    def sample_observations(self, num, random_state):
        return self.dataset.render(self.sample_factors(num, random_state))


MIX = np.eye(5) + 0.3 * np.random.default_rng(100).standard_normal((5, 5))


def encoder(obs: np.ndarray) -> np.ndarray:
    """Cheap deterministic encoder: mixed factor values plus 5 codes of fixed pseudo-noise."""
    x = obs.reshape(len(obs), -1).astype(np.float64)
    noise = np.sin(x @ np.arange(1, 26).reshape(5, 5) * 12.9898) * 0.5
    return np.concatenate([x @ MIX, noise], axis=1)


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(median wall seconds, median CPU seconds over all threads)."""
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def speed(repeats: int, dlib: types.SimpleNamespace | None, with_dci: bool = True) -> list[str]:
    codes, factors = synthetic_codes(
        N_TRAIN + N_TEST, SIZES, "mixed", alpha=0.3, extra=5, noise=0.05, seed=0
    )
    ztr, ftr, zte, fte = codes[:N_TRAIN], factors[:N_TRAIN], codes[N_TRAIN:], factors[N_TRAIN:]
    both = (ztr, ftr, zte, fte)
    rs = np.random.RandomState(0)

    def replay(with_test: bool) -> Replay:
        return Replay(codes, factors) if with_test else Replay(ztr, ftr)

    def ref(call: Callable[[Replay], object], with_test: bool) -> Callable[[], object]:
        def run() -> object:
            r = replay(with_test)
            return call(r)

        return run

    grid = FactorVectorDataset(SIZES)
    rows: list[tuple[str, Callable[[], object], Callable[[], object] | None, int]] = [
        (
            "mig",
            lambda: mig(ztr, ftr),
            ref(lambda r: dlib.mig.compute_mig(r, r.represent, rs, num_train=N_TRAIN), False),
            0,
        ),
        (
            "sap_score (discrete)",
            lambda: sap(*both),
            ref(
                lambda r: dlib.sap.compute_sap(
                    r, r.represent, rs, num_train=N_TRAIN, num_test=N_TEST, continuous_factors=False
                ),
                True,
            ),
            0,
        ),
        (
            "sap_score (continuous)",
            lambda: sap(*both, continuous_factors=True),
            ref(
                lambda r: dlib.sap.compute_sap(
                    r, r.represent, rs, num_train=N_TRAIN, num_test=N_TEST, continuous_factors=True
                ),
                True,
            ),
            0,
        ),
        (
            "modularity_explicitness",
            lambda: modularity_explicitness(*both),
            ref(
                lambda r: dlib.modexp.compute_modularity_explicitness(
                    r, r.represent, rs, num_train=N_TRAIN, num_test=N_TEST
                ),
                True,
            ),
            0,
        ),
        (
            "irs",
            lambda: irs(ztr, ftr),
            ref(
                lambda r: dlib.irs.compute_irs(
                    r, r.represent, rs, num_train=N_TRAIN, batch_size=16
                ),
                False,
            ),
            0,
        ),
        (
            "unsupervised",
            lambda: unsupervised(ztr),
            ref(
                lambda r: dlib.unsup.unsupervised_metrics(r, r.represent, rs, num_train=N_TRAIN),
                False,
            ),
            0,
        ),
        ("mcc", lambda: mcc(ztr, ftr), None, 0),
        (
            "factor_vae (sampled)",
            lambda: factor_vae_score(grid, encoder, np.random.default_rng(0)),
            lambda: dlib.factor_vae.compute_factor_vae(
                DlibDataset(grid),
                encoder,
                np.random.RandomState(0),
                batch_size=64,
                num_train=10000,
                num_eval=5000,
                num_variance_estimate=10000,
            ),
            0,
        ),
        (
            "beta_vae (sampled)",
            lambda: beta_vae_score(grid, encoder, np.random.default_rng(0)),
            lambda: dlib.beta_vae.compute_beta_vae_sklearn(
                DlibDataset(grid),
                encoder,
                np.random.RandomState(0),
                batch_size=64,
                num_train=10000,
                num_eval=5000,
            ),
            0,
        ),
        ("dci fast", lambda: dci(*both, mode="fast"), None, 1),
        (
            "dci exact",
            lambda: dci(*both, mode="exact"),
            ref(
                lambda r: dlib.dci.compute_dci(
                    r, r.represent, rs, num_train=N_TRAIN, num_test=N_TEST
                ),
                True,
            ),
            1,
        ),
    ]
    lines = [
        "| metric | disbench wall s | disbench CPU s | dlib wall s | dlib CPU s | wall speed-up |",
        "|---|---|---|---|---|---|",
    ]
    totals = [0.0, 0.0, 0.0, 0.0]  # ours wall, dlib wall, ours CPU, dlib CPU
    for name, ours, theirs, single in rows:
        if name.startswith("dci") and not with_dci:
            continue
        reps = 1 if single else repeats
        w, c = timed(ours, reps)
        if dlib is not None and theirs is not None:
            rw, rc = timed(theirs, reps)
            cells = f"{rw:.3f} | {rc:.3f} | {rw / w:.1f}x"
            if not name.startswith("dci"):
                totals[1] += rw
                totals[3] += rc
        else:
            cells = "- | - | -"
        if not name.startswith("dci"):
            totals[0] += w
            totals[2] += c
        lines.append(f"| {name} | {w:.3f} | {c:.3f} | {cells} |")
        print(lines[-1], flush=True)
    ref_total = f"{totals[1]:.2f} s" if dlib is not None else "-"
    cpu_total = f"{totals[3]:.2f} s" if dlib is not None else "-"
    lines.append("")
    lines.append(
        f"All but DCI together: disbench {totals[0]:.2f} s wall / {totals[2]:.2f} s CPU, "
        f"disentanglement_lib {ref_total} wall / {cpu_total} CPU (mcc has no dlib counterpart)."
    )
    return lines


def dci_schedule() -> list[str]:
    """Per-factor CPU seconds of each DCI mode (one thread each) and the wall time that
    the longest-first thread schedule gives on an idle 2-core machine."""
    codes, factors = synthetic_codes(
        N_TRAIN + N_TEST, SIZES, "mixed", alpha=0.3, extra=5, noise=0.05, seed=0
    )
    ztr, ftr, zte, fte = codes[:N_TRAIN], factors[:N_TRAIN], codes[N_TRAIN:], factors[N_TRAIN:]
    lines = []
    for mode in ("fast", "exact"):
        per_factor = []
        for k in range(ftr.shape[1]):
            cols = [k]
            _, cpu = timed(
                lambda cols=cols, mode=mode: dci(
                    ztr, ftr[:, cols], zte, fte[:, cols], mode=mode, n_jobs=1
                ),
                1,
            )
            per_factor.append(cpu)
        lines.append(
            f"- {mode}: per factor ({'/'.join(map(str, SIZES))} values) "
            f"{', '.join(f'{c:.2f}' for c in per_factor)} s CPU; sum {sum(per_factor):.2f} s; "
            f"2-core schedule {makespan(per_factor, 2):.2f} s"
        )
        print(lines[-1], flush=True)
    return lines


def makespan(costs: list[float], workers: int) -> float:
    """Finish time of the longest-first schedule (what the DCI thread pool does)."""
    load = [0.0] * workers
    for c in sorted(costs, reverse=True):
        load[load.index(min(load))] += c
    return max(load)


AGREEMENT_CASES = {
    "perfect": dict(kind="perfect", noise=0.0),
    "permuted + noise 0.05": dict(kind="permuted", noise=0.05),
    "noisy (0.2) + 2 noise codes": dict(kind="perfect", noise=0.2, extra=2),
    "mixed 0.3 + 5 noise codes": dict(kind="mixed", alpha=0.3, extra=5, noise=0.05),
    "mixed 1.0": dict(kind="mixed", alpha=1.0, noise=0.05),
    "rotated": dict(kind="rotated", noise=0.05),
    "D < K (3 codes)": dict(kind="mixed", alpha=0.3, drop=2, noise=0.05),
}
KEYS = ("disentanglement", "completeness", "informativeness_train", "informativeness_test")


def agreement(bins: list[int], n_train: int, n_test: int) -> list[str]:
    lines = [
        "| input | exact D / C / I_train / I_test | bins | fast - exact: D | C | I_train | I_test "
        "| exact wall s | fast wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    worst = {b: dict.fromkeys(KEYS, 0.0) for b in bins}
    for seed, (name, spec) in enumerate(AGREEMENT_CASES.items()):
        codes, factors = synthetic_codes(n_train + n_test, SIZES, seed=seed, **spec)
        both = (codes[:n_train], factors[:n_train], codes[n_train:], factors[n_train:])
        w = time.perf_counter()
        exact = dci(*both, mode="exact")
        exact_wall = time.perf_counter() - w
        for b in bins:
            w = time.perf_counter()
            fast = dci(*both, mode="fast", num_bins=b)
            fast_wall = time.perf_counter() - w
            diff = {k: fast[k] - exact[k] for k in KEYS}
            for k in KEYS:
                worst[b][k] = max(worst[b][k], abs(diff[k]))
            ex = " / ".join(f"{exact[k]:.3f}" for k in KEYS)
            lines.append(
                f"| {name} | {ex} | {b} | "
                + " | ".join(f"{diff[k]:+.4f}" for k in KEYS)
                + f" | {exact_wall:.1f} | {fast_wall:.1f} |"
            )
            print(lines[-1], flush=True)
    lines.append("")
    for b in bins:
        lines.append(
            f"Largest |fast - exact| with {b} bins: "
            + ", ".join(f"{k} {v:.4f}" for k, v in worst[b].items())
            + "."
        )
    return lines


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average at start {load[0]:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["speed", "schedule", "agreement", "all"], default="all")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-dci", action="store_true", help="speed part without DCI")
    parser.add_argument("--bins", default="64", help="comma-separated fast-mode bin counts")
    parser.add_argument(
        "--agreement-sizes",
        default=f"{N_TRAIN}:{N_TEST}",
        help="train:test sizes for the agreement part, comma-separated",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".md"))
    args = parser.parse_args()
    dlib = load_dlib()
    out = [
        "# Metric speed and DCI agreement (`python perf/metrics.py`)",
        "",
        f"Machine: {machine()}.",
        "",
    ]
    if args.part in ("speed", "all"):
        out += (
            [f"## Speed at default sizes (median of {args.repeats}; DCI once)", ""]
            + speed(args.repeats, dlib, not args.no_dci)
            + [""]
        )
    if args.part in ("schedule", "all"):
        out += ["## DCI per factor: CPU seconds and the idle 2-core wall time", ""]
        out += dci_schedule() + [""]
    if args.part in ("agreement", "all"):
        for sizes in args.agreement_sizes.split(","):
            n_train, n_test = (int(v) for v in sizes.split(":"))
            out += [f"## DCI fast vs exact, {n_train:,} train / {n_test:,} test points", ""]
            out += agreement([int(b) for b in args.bins.split(",")], n_train, n_test) + [""]
    out.append(f"Load average at end: {os.getloadavg()[0]:.1f}.")
    args.out.write_text("\n".join(out) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
