"""Fit time and peak memory of ``hlle_ica`` against N, next to scikit-learn's Hessian LLE.

For each N (default 1,000, 2,000, 5,000, 10,000) on ``isometric_manifold`` (uniform, 2
factors, 64x64 grey, ``values=1000`` so that nearly all N points are distinct), a fresh
Python process fits

- ``ours``: ``hlle_ica`` with ``eigen_solver="auto"`` (dense up to 1,000 points, ARPACK beyond);
- ``ours-dense``: the same with the dense solver (O(N^3), only up to ``--dense-max``);
- ``sklearn``: the baseline, ``LocallyLinearEmbedding(method="hessian")`` with the same
  k = 12 and its own ``eigen_solver="auto"``, on the same observations, then ``FastICA``;

and reports the fit seconds, the peak of Python/numpy allocations (``tracemalloc``), the
process's peak resident memory above its level before the fit (``ru_maxrss``: also counts
native allocations such as SuperLU's factors), and the MCC of the codes (ours: of 1,000
fresh observations through ``encode``, and its seconds; sklearn: its in-sample embedding,
which it cannot extend the same way). One process per measurement keeps peaks separate.

Usage: ``python perf/hlle.py [--sizes 1000 2000 5000 10000] [--threads 1]``; the recorded
output is ``perf/hlle.txt``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

# Running this file puts perf/ first on sys.path, where perf/metrics.py would shadow the
# ``metrics`` package.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

K = 12


def rss_kib() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))


def measure(variant: str, n: int) -> dict[str, float]:
    """One fit in this process: seconds, memory, MCC."""
    from sklearn.decomposition import FastICA
    from sklearn.manifold import LocallyLinearEmbedding

    from disbench.api import FitContext, TrainBudget
    from disbench.datasets.isometric_manifold import IsometricManifold
    from disbench.methods.hlle_ica import HLLEICA, sample_observations
    from disbench.metrics.mcc import mcc

    ds = IsometricManifold(distribution="uniform", values=1000)
    out: dict[str, float] = {}
    if variant == "sklearn":
        factors, x = sample_observations(ds, n, np.random.default_rng(0))
        before = rss_kib()
        tracemalloc.start()
        start = time.perf_counter()
        lle = LocallyLinearEmbedding(n_neighbors=K, n_components=2, method="hessian")
        codes = FastICA(2, whiten="unit-variance", random_state=0).fit_transform(
            lle.fit_transform(x.astype(np.float64))
        )
        out["fit_s"] = time.perf_counter() - start
        out["mcc"] = mcc(codes, ds.factor_values(factors))["MCC"]
    else:
        solver = "dense" if variant == "ours-dense" else "auto"
        hp = HLLEICA.resolve_hparams({"num_points": n, "k": K, "eigen_solver": solver})
        before = rss_kib()
        tracemalloc.start()
        start = time.perf_counter()
        ctx = FitContext()
        rep = HLLEICA().fit(ds, hp, 0, TrainBudget(1), ctx)
        out["fit_s"] = time.perf_counter() - start
        out["distinct"] = ctx.info["distinct_points"]
        factors, obs = ds.sample(1000, np.random.default_rng(1))
        start = time.perf_counter()
        codes = rep.encode(obs)
        out["encode_1000_s"] = time.perf_counter() - start
        out["mcc"] = mcc(codes, ds.factor_values(factors))["MCC"]
    out["tracemalloc_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
    out["rss_peak_above_start_mib"] = (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    ) / 1024
    return out


def run_child(variant: str, n: int, threads: int, timeout: float) -> dict[str, object]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, __file__, "--child", variant, str(n)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1][:90]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 5000, 10000])
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads per fit")
    parser.add_argument("--dense-max", type=int, default=2000)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per fit")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], int(args.child[1]))))
        return

    import platform

    from disbench.run.environment import device_name

    print(f"machine: {device_name('cpu')}, no GPU used (HLLE is numpy/scipy)")
    print(f"load before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"python {platform.python_version()}, {args.threads} BLAS thread(s), k = {K}, d = 2")
    header = (
        f"{'variant':<11} {'N':>6} {'distinct':>8} {'fit s':>8} {'trace MiB':>10} "
        f"{'RSS+ MiB':>9} {'enc1000 s':>9} {'MCC':>6}"
    )
    print(header)
    for n in args.sizes:
        variants = ["ours", "ours-dense", "sklearn"] if n <= args.dense_max else ["ours", "sklearn"]
        for variant in variants:
            r = run_child(variant, n, args.threads, args.timeout)
            if "error" in r:
                print(f"{variant:<11} {n:>6}  failed: {r['error']}")
                continue
            distinct = f"{r['distinct']:>8.0f}" if "distinct" in r else f"{'-':>8}"
            enc = f"{r['encode_1000_s']:>9.2f}" if "encode_1000_s" in r else f"{'-':>9}"
            print(
                f"{variant:<11} {n:>6} {distinct} {r['fit_s']:>8.2f} "
                f"{r['tracemalloc_peak_mib']:>10.0f} {r['rss_peak_above_start_mib']:>9.0f} "
                f"{enc} {r['mcc']:>6.3f}",
                flush=True,
            )
    print(f"load after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
