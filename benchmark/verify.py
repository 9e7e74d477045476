"""``disbench verify``: run a seeded random sample of finished runs again from scratch and
report every one whose scores differ from its record.

A run recorded on the CPU as one model (not in a batched group) must be reproduced
bit-identically: same spec, same seed, same thread count, deterministic algorithms. A run
recorded on CUDA or in a batched group is compared within ``TOLERANCE``, since kernel choice
and packing change the floating-point order. Records that fail their integrity check are
reported too. Reruns happen on this machine's CPU in a temporary folder; nothing under
``--out`` changes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from disbench.execute import execute_group, init_worker
from disbench.records import Job
from disbench.store import ResultsStore
from disbench.study import RunSpec

TOLERANCE = 0.02  # absolute, per score, for records made on CUDA or in a batched group


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=Path("results"), type=Path, help="results directory")
    parser.add_argument("--sample", type=int, default=3, help="runs to rerun (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")


def exact(record: dict[str, Any]) -> bool:
    execution = record.get("execution", {})
    return execution.get("device", "cpu") == "cpu" and execution.get("group_size", 1) == 1


def differences(recorded: dict[str, Any], rerun: dict[str, Any], tolerance: float) -> list[str]:
    """``metric.key: recorded X, rerun Y`` for every score that differs."""
    out = []
    for metric in sorted(set(recorded) | set(rerun)):
        a, b = recorded.get(metric, {}), rerun.get(metric, {})
        for key in sorted(set(a) | set(b)):
            x, y = a.get(key), b.get(key)
            same = x is not None and y is not None and abs(x - y) <= tolerance
            if not same:
                out.append(f"{metric}.{key}: recorded {x!r}, rerun {y!r}")
    return out


def verify(
    out: Path, sample: int, seed: int = 0, plugins: tuple[str, ...] = ()
) -> tuple[list[str], list[str]]:
    """(lines for the runs that reproduced, lines for every problem found)."""
    good, bad = ResultsStore(out).scan()
    problems = [f"{path}: {why}" for path, why in bad]
    finished = [r for r in good if r["status"] == "ok"]
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(finished), size=min(sample, len(finished)), replace=False))
    passed = []
    for record in (finished[i] for i in chosen):
        spec = RunSpec.from_dict(record["spec"])
        threads = int(record.get("execution", {}).get("threads", 1))
        init_worker(plugins, threads, lambda label, step, total: None)
        tolerance = 0.0 if exact(record) else TOLERANCE
        with tempfile.TemporaryDirectory() as tmp:
            job = Job(tmp, "cpu", record.get("profile", ""), threads, plugins)
            execute_group([spec.to_dict()], job)
            (rerun,) = ResultsStore(Path(tmp)).records()
        what = f"run {record['id']} ({spec.method} on {spec.dataset.label}, seed {spec.seed})"
        if rerun["status"] != "ok":
            problems.append(f"{what}: the rerun failed: {rerun['error']}")
            continue
        diff = differences(record["scores"], rerun["scores"], tolerance)
        if diff:
            problems.append(f"{what}: " + "; ".join(diff))
        else:
            kind = "bit-identical" if tolerance == 0 else f"within {TOLERANCE}"
            passed.append(f"{what}: every score {kind}")
    return passed, problems


def run(args: argparse.Namespace) -> int:
    """0 when every sampled run reproduced and every record is sound, else 1."""
    passed, problems = verify(args.out, args.sample, args.seed, tuple(args.plugin))
    for line in passed:
        print(f"ok: {line}")
    for line in problems:
        print(f"differs: {line}", file=sys.stderr)
    print(f"verified {len(passed) + len(problems)} item(s): {len(problems)} problem(s)")
    return 1 if problems else 0
