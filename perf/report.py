"""How long ``disbench report`` takes on 1,000 run records (goal: under 10 seconds).

Generates 1,000 records in the format the runner writes (10 methods x 4 datasets x 25
seeds, the nine metrics, 20-point loss curves), then times ``build_report`` three times
(markdown, HTML, CSV and every plot). Prints the machine and the timings.

    python perf/report.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from disbench.registry import METRICS as REGISTERED
from disbench.report import build_report
from disbench.run.environment import device_name
from disbench.run.records import metric_facts
from disbench.run.store import ResultsStore

METRICS = {
    "mig": "discrete_mig",
    "dci": "disentanglement",
    "factor_vae": "eval_accuracy",
    "sap_score": "SAP_score",
    "beta_vae": "eval_accuracy",
    "modularity_explicitness": "modularity_score",
    "irs": "IRS",
    "mcc": "MCC",
    "unsupervised": "gaussian_total_correlation",
}


METRIC_SETTINGS = {name: REGISTERED.get(name).settings() for name in METRICS}


def records(n_methods: int = 10, n_datasets: int = 4, n_seeds: int = 25) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for m in range(n_methods):
        for d in range(n_datasets):
            for seed in range(n_seeds):
                rid = f"{m:02d}{d:02d}{seed:04d}"
                curve = [{"step": 15 * (i + 1), "loss": 1000.0 / (i + 1)} for i in range(20)]
                out.append(
                    {
                        "id": rid,
                        "train_id": rid,
                        "profile": "perf",
                        "study": {"rank": ["mig", "dci", "factor_vae", "sap_score"]},
                        "spec": {
                            "dataset": {"name": f"dataset{d}", "params": {}},
                            "method": f"method{m}",
                            "hparams": {"beta": 1},
                            "seed": seed,
                            "budget": {"steps": 300, "batch_size": 16},
                            "eval_seed": 0,
                            "metrics": {name: METRIC_SETTINGS[name] for name in METRICS},
                            "versions": {"dataset": 1, "method": 1, "metrics": {}},
                        },
                        "method": {"name": f"method{m}", "framework": "torch"},
                        "metrics": {
                            name: metric_facts(name, METRIC_SETTINGS[name]) for name in METRICS
                        },
                        "dataset_label": f"dataset{d}",
                        "dataset": {"kind": "procedural"},
                        "status": "ok",
                        "error": None,
                        "scores": {
                            name: {key: float(rng.random())} for name, key in METRICS.items()
                        },
                        "primary": METRICS,
                        "higher_is_better": {name: name != "unsupervised" for name in METRICS},
                        "metric_errors": {},
                        "artifacts": {},
                        "info": {"loss_curve": curve},
                        "environment": {"device_name": "perf", "packages": {}, "source": {}},
                        "created": "2026-12-03T00:00:00+00:00",
                    }
                )
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = ResultsStore(Path(tmp) / "results")
        for rec in records():
            store.write(rec)
        print(f"machine: {device_name('cpu')}")
        print(f"records: {len(store.records())}")
        for attempt in range(3):
            start = time.perf_counter()
            paths = build_report(store.root, Path(tmp) / "leaderboard.md")
            seconds = time.perf_counter() - start
            print(f"build_report #{attempt + 1}: {seconds:.2f} s, {len(paths)} files")


if __name__ == "__main__":
    main()
