"""The report, built from hand-made records: tidy CSV, medians, IQR, ranks, failures."""

from __future__ import annotations

import pandas as pd

from disbench.report import build_report
from disbench.store import ResultsStore


def record(
    run_id: str, method: str, seed: int, mig: float, sap: float, beta: int = 1, status: str = "ok"
) -> dict:
    return {
        "id": run_id,
        "train_id": run_id,
        "profile": "handmade",
        "spec": {
            "dataset": {"name": "blobs", "params": {}},
            "method": method,
            "hparams": {"beta": beta},
            "seed": seed,
            "budget": {"steps": 1, "batch_size": 1},
            "eval_seed": 0,
            "metrics": {},
        },
        "dataset_label": "blobs",
        "dataset": {"kind": "procedural"},
        "status": status,
        "error": None if status == "ok" else "ValueError: broken",
        "scores": {"mig": {"discrete_mig": mig}, "sap_score": {"SAP_score": sap}}
        if status == "ok"
        else {},
        "primary": {"mig": "discrete_mig", "sap_score": "SAP_score"},
        "metric_errors": {},
        "artifacts": {},
        "environment": {
            "device_name": "test cpu",
            "source": {"commit": "abc123", "dirty": True, "version": "0.1.0"},
        },
        "created": "2026-11-26T00:00:00+00:00",
    }


def test_report_from_handmade_records(tmp_path) -> None:
    store = ResultsStore(tmp_path / "results")
    # method a: MIG 0.1, 0.2, 0.3, 0.4 (median 0.25, IQR 0.175..0.325); SAP 0.5 each.
    for seed, mig in enumerate([0.1, 0.2, 0.3, 0.4]):
        store.write(record(f"a{seed}", "a", seed, mig, 0.5))
    # method b: better MIG (0.9), worse SAP (0.1); one failed run.
    for seed in range(3):
        store.write(record(f"b{seed}", "b", seed, 0.9, 0.1))
    store.write(record("b9", "b", 9, 0, 0, status="failed"))
    # method c is swept over beta: two settings, each best at nothing.
    for beta in (1, 4):
        store.write(record(f"c{beta}", "c", 0, 0.05, 0.05, beta=beta))

    board = tmp_path / "leaderboard.md"
    paths = build_report(store.root, board)

    df = pd.read_csv(paths["scores"])
    assert len(df) == 4 * 2 + 3 * 2 + 1 + 2 * 2  # run x score, a failed run once
    assert set(df[df.method == "c"].setting) == {"c (beta=1)", "c (beta=4)"}

    text = board.read_text()
    lines = {
        line.split(" | ")[0].strip("| "): line
        for line in text.splitlines()
        if line.startswith("| ")
    }
    # a: MIG rank 2 of 4, SAP rank 1 -> mean 1.5; b: 1 and 2 -> 1.5; c settings tie: 3.5 each
    assert lines["a"] == "| a | 1.50 | 4 | 0.250 [0.175, 0.325] | 0.500 [0.500, 0.500] |  |"
    assert lines["b"].startswith("| b | 1.50 | 3 | 0.900 [0.900, 0.900] | 0.100")
    assert lines["c (beta=4)"].startswith("| c (beta=4) | 3.50 | 1 |")
    assert "## blobs (procedural)" in text
    assert "| b9 | b | blobs | 9 | ValueError: broken |" in text
    assert "Hardware: test cpu" in text
    assert "- Code: `abc123` + local changes" in text
    assert (store.root / "plots" / "mig.png").stat().st_size > 1000


def test_lower_is_better_metrics_rank_the_lowest_first(tmp_path) -> None:
    store = ResultsStore(tmp_path / "results")
    for name, tc in (("low_tc", 0.1), ("high_tc", 5.0)):
        rec = record(name, name, 0, 0.5, 0.5)
        rec["scores"] = {"unsupervised": {"gaussian_total_correlation": tc}}
        rec["primary"] = {"unsupervised": "gaussian_total_correlation"}
        rec["higher_is_better"] = {"unsupervised": False}
        store.write(rec)
    board = tmp_path / "leaderboard.md"
    build_report(store.root, board)
    text = board.read_text()
    assert "| low_tc | 1.00 | 1 |" in text and "| high_tc | 2.00 | 1 |" in text


def test_runs_whose_metric_kept_no_code_are_listed(tmp_path) -> None:
    store = ResultsStore(tmp_path / "results")
    for seed, active in enumerate([0, 3, 0]):
        rec = record(f"v{seed}", "vae", seed, 0.1, 0.1)
        rec["scores"]["factor_vae"] = {
            "eval_accuracy": 0.0 if not active else 0.6,
            "num_active_dims": active,
        }
        rec["primary"]["factor_vae"] = "eval_accuracy"
        store.write(rec)
    store.write(record("p0", "pca", 0, 0.2, 0.2))
    board = tmp_path / "leaderboard.md"
    build_report(store.root, board)
    text = board.read_text()
    assert "## Runs with no active code" in text
    assert "| vae | blobs | factor_vae | 0, 2 |" in text
    assert "| pca | blobs |" not in text.split("## Runs with no active code")[1]
