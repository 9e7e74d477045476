"""Seconds and MCC of ``li_ae`` against the plain autoencoder + ICA (``li_weight=0``).

The paper's claim for autoencoders: making the encoder locally isometric lets linear ICA
recover the factors. On ``isometric_manifold`` (uniform, 2 factors), for each number of
steps (default 300 and 1000; the ``cpu`` profile trains it for 200) and seeds 0..2, this
trains ``li_ae`` with its default ``li_weight`` and with 0 at batch 64, one torch/BLAS
thread, and prints the fit seconds, the MCC on 2,000 fresh observations and the final
isometry distortion. Both settings run in the same invocation, one after the other, so
their seconds compare.

Usage: ``python perf/li_ae_mcc.py [--steps 300 1000] [--seeds 0 1 2]``; the recorded
output is ``perf/li_ae_mcc.txt``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

# Running this file puts perf/ first on sys.path, where perf/metrics.py would shadow the
# ``metrics`` package.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

from disbench.api import FitContext, TrainBudget  # noqa: E402
from disbench.datasets.isometric_manifold import IsometricManifold  # noqa: E402
from disbench.methods.li_ae import LocalIsometryAE  # noqa: E402
from disbench.metrics.mcc import mcc  # noqa: E402
from disbench.run.environment import device_name  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[300, 1000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)
    default_weight = LocalIsometryAE.defaults["li_weight"]
    ds = IsometricManifold(distribution="uniform")
    factors, obs = ds.sample(2000, np.random.default_rng(7))
    values = ds.factor_values(factors)

    print(f"machine: {device_name('cpu')}, 1 torch/BLAS thread, batch 64")
    print(f"load before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{'li_weight':>9} {'steps':>6} {'seed':>4} {'fit s':>7} {'MCC':>6} {'isometry':>9}")
    with threadpool_limits(1):
        for steps in args.steps:
            for weight in (default_weight, 0.0):
                scores = []
                for seed in args.seeds:
                    ctx = FitContext()
                    hp = LocalIsometryAE.resolve_hparams({"li_weight": weight})
                    start = time.perf_counter()
                    rep = LocalIsometryAE().fit(ds, hp, seed, TrainBudget(steps, 64), ctx)
                    seconds = time.perf_counter() - start
                    scores.append(mcc(rep.encode(obs), values)["MCC"])
                    iso = ctx.info["final_losses"]["isometry"]
                    print(
                        f"{weight:>9g} {steps:>6} {seed:>4} {seconds:>7.1f} "
                        f"{scores[-1]:>6.3f} {iso:>9.3f}",
                        flush=True,
                    )
                print(f"{weight:>9g} {steps:>6} mean MCC {np.mean(scores):.3f}", flush=True)
    print(f"load after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
