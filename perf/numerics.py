"""Does a numerics setting make CPU results independent of the instruction set, and what
does it cost? Runs of the `cpu` profile trained and scored in fresh processes under
several environments, compared bit for bit, and timed.

Each setting is a mode (native or portable, :mod:`disbench.run.numerics`) plus "machine" caps
that make this CPU act as a smaller one: the capped ISA of the reproducibility issue
(ATen and oneDNN at AVX2) and, for the portable mode, caps on the libraries it does not pin
(oneDNN, MKL's instruction limit). A mode is portable on this machine when its runs are
bit-identical under every cap; native runs are expected to differ between caps. Every run
executes ``disbench.run.worker.execute_group`` exactly as a study does (one thread).

    python perf/numerics.py                       # the default runs, every setting
    python perf/numerics.py --runs beta_vae:proc_dsprites:0 --rounds 2

Output is markdown; recorded runs live in ``perf/numerics.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS: dict[str, tuple[str, dict[str, str]]] = {
    "native": ("native", {}),
    "native, ISA capped": ("native", {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}),
    "portable": ("portable", {}),
    "portable, libraries capped": (
        "portable",
        {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    ),
}
DEFAULT_RUNS = ["beta_vae:proc_dsprites:0", "dip_vae_ii:proc_dsprites:0", "factor_vae:blobs:1"]


def digest(obj: object) -> str:
    """The first 12 hex digits of the SHA-256 of ``obj`` as sorted JSON (floats in full)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


def child(runs: list[str], mode: str) -> None:
    """Train and score each run as a study's worker does; print one JSON line per run."""
    from disbench.run import numerics
    from disbench.run.records import Job
    from disbench.run.store import ResultsStore
    from disbench.run.study import load_profile
    from disbench.run.worker import execute_group, init_worker

    init_worker((), 1, lambda label, step, total: None)
    numerics.apply(mode)
    study = load_profile("cpu")
    for run in runs:
        method, dataset, seed = run.split(":")
        (spec,) = [
            s
            for s in study.runs
            if (s.method, s.dataset.label, s.seed) == (method, dataset, int(seed))
        ][:1]
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            execute_group([spec.to_dict()], Job(tmp, "cpu", "cpu", 1, numerics=mode))
            seconds = time.perf_counter() - start
            (record,) = ResultsStore(Path(tmp)).records()
        print(
            json.dumps(
                {
                    "run": run,
                    "status": record["status"],
                    "seconds": seconds,
                    "train_s": record["timings"].get("train_s"),
                    "scores": digest(record["scores"]),
                    "curve": digest(record["info"].get("loss_curve")),
                    "mig": record["scores"].get("mig", {}).get("discrete_mig"),
                    "loss": record["info"].get("final_losses", {}).get("loss"),
                    "capability": record["numerics"]["aten_capability"],
                }
            ),
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", nargs="+", default=DEFAULT_RUNS, help="method:dataset:seed")
    parser.add_argument("--rounds", type=int, default=2, help="repeats (timings: the fastest)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.runs, args.child)
        return
    from disbench.run import numerics
    from disbench.run.environment import device_name

    print(f"# perf/numerics.py on {device_name('cpu')}, torch thread 1\n")
    results: dict[str, list[dict]] = {}
    for _ in range(args.rounds):
        for name, (mode, caps) in SETTINGS.items():
            env = {**numerics.worker_env(mode), **caps}
            cmd = [sys.executable, __file__, "--child", mode, "--runs", *args.runs]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            if out.returncode:
                sys.exit(f"setting {name!r} failed:\n{out.stderr[-3000:]}")
            rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
            results.setdefault(name, [])
            if not results[name]:
                results[name] = rows
            else:
                for kept, row in zip(results[name], rows, strict=True):
                    kept["seconds"] = min(kept["seconds"], row["seconds"])
                    same = (kept["curve"], kept["scores"]) == (row["curve"], row["scores"])
                    kept["repeats"] = kept.get("repeats", True) and same
    print("| setting | run | ATen | loss curve | scores | final loss | MIG | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for name, rows in results.items():
        for r in rows:
            print(
                f"| {name} | {r['run']} | {r['capability']} | {r['curve']} | {r['scores']} "
                f"| {r['loss']!r} | {r['mig']!r} | {r['seconds']:.1f} |"
            )
    print()
    for a, b in [("native", "native, ISA capped"), ("portable", "portable, libraries capped")]:
        same = [
            x["curve"] == y["curve"] and x["scores"] == y["scores"]
            for x, y in zip(results[a], results[b], strict=True)
        ]
        print(
            f"- {a} vs {b}: {sum(same)} of {len(same)} runs bit-identical (loss curve and scores)"
        )
    if args.rounds > 1:
        repeats = all(r.get("repeats") for rows in results.values() for r in rows)
        print(f"- every setting gave the same bits in each of its {args.rounds} rounds: {repeats}")
    cost = sum(r["seconds"] for r in results["portable"]) / sum(
        r["seconds"] for r in results["native"]
    )
    print(f"- portable / native wall time over these runs: {cost:.2f}x")


if __name__ == "__main__":
    main()
