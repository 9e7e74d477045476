"""Two runs of one profile on two machines, compared as ``disbench verify`` compares them,
over every cell at once, and the seed count the board needs for a stable order.

    python perf/cross_machine.py RECORDED_RUNS_DIR RERUN_RUNS_DIR [--profile cpu]

1. **Cell check.** For every cell (the runs of the profile that differ in their seed alone)
   found in both folders, and every metric's primary score, the exact permutation test of
   ``disbench.run.verify``: the number flagged at p <= LEVEL against the number expected if the
   other machine only gave fresh seeds.
2. **Board stability.** Per dataset, each machine's board: every method row ranked per
   ranked metric by its median over seeds, ranks averaged over those metrics (as the
   leaderboard's mean rank). The Spearman correlation of the two boards is the agreement of
   two disjoint 3-seed boards. The Spearman-Brown formula (an approximation for rank
   correlations) projects the seeds per board for a correlation of 0.9 between two boards.

Recorded output lives in ``perf/cross_machine.md``.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from disbench.run.verify import LEVEL, Report, cell_key, score_tests

RANKED = ("mig", "dci", "factor_vae", "sap_score")  # the leaderboard's default rank metrics


def load(folder: Path, profile: str) -> dict[str, list[dict[str, Any]]]:
    cells: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text())
        if record.get("profile") == profile and record.get("status") == "ok":
            cells[cell_key(record)].append(record)
    return {k: sorted(v, key=lambda r: r["spec"]["seed"]) for k, v in cells.items()}


def score(record: dict[str, Any], metric: str) -> float | None:
    key = record.get("primary", {}).get(metric)
    return record["scores"].get(metric, {}).get(key) if key else None


def board(cells: dict[str, list[dict[str, Any]]], keys: list[str]) -> dict[str, np.ndarray]:
    """Per dataset, the mean rank (1 = best) of each cell in ``keys``' order."""
    by_dataset: dict[str, list[str]] = defaultdict(list)
    for key in keys:
        by_dataset[cells[key][0]["dataset_label"]].append(key)
    out = {}
    for dataset, rows in by_dataset.items():
        ranks = []
        for metric in RANKED:
            medians = [np.median([score(r, metric) for r in cells[k]]) for k in rows]
            ranks.append(stats.rankdata(-np.asarray(medians, dtype=float)))
        out[dataset] = np.mean(ranks, axis=0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("recorded", type=Path)
    parser.add_argument("rerun", type=Path)
    parser.add_argument("--profile", default="cpu")
    args = parser.parse_args()
    recorded, rerun = load(args.recorded, args.profile), load(args.rerun, args.profile)
    machine = lambda cells: next(iter(cells.values()))[0]["environment"]["device_name"]  # noqa: E731
    print(f"# recorded: {args.recorded} ({machine(recorded)})")
    print(f"# rerun: {args.rerun} ({machine(rerun)}), profile {args.profile}\n")

    report, identical, flagged_by_metric = Report(), 0, defaultdict(int)
    common = []
    for key in sorted(set(recorded) & set(rerun)):
        a, b = recorded[key], rerun[key]
        if [r["spec"]["seed"] for r in a] != [r["spec"]["seed"] for r in b]:
            continue  # the rerun lacks a seed of this cell
        common.append(key)
        identical += all(x["scores"] == y["scores"] for x, y in zip(a, b, strict=True))
        for name, p, _, _ in score_tests(a, b):
            report.tested += 1
            if p <= LEVEL:
                report.flagged += 1
                flagged_by_metric[name.split(".")[0]] += 1
    print("## Cell check (the rule of `disbench verify`)\n")
    print(f"- cells in both, every seed: {len(common)} ({identical} bit-identical in every score)")
    print(
        f"- scores tested: {report.tested}; flagged at p <= {LEVEL}: {report.flagged}; "
        f"expected by chance: {LEVEL * report.tested:.1f}; binomial P(>= flagged) = "
        f"{report.count_p:.3g}: {'agree' if report.cells_agree else 'DISAGREE'}"
    )
    print(f"- flagged per metric: {dict(sorted(flagged_by_metric.items()))}\n")

    print("## Board stability (two disjoint 3-seed boards)\n")
    print("| dataset | rows | Spearman of mean ranks | seeds per board for 0.9 (projected) |")
    print("|---|---|---|---|")
    one, two = board(recorded, common), board(rerun, common)
    seeds = len(recorded[common[0]])
    for dataset in sorted(one):
        rho = float(stats.spearmanr(one[dataset], two[dataset]).statistic)
        # Spearman-Brown: a board of k times the seeds has reliability k r / (1 + (k-1) r).
        need = math.ceil(seeds * 0.9 * (1 - rho) / (rho * (1 - 0.9))) if rho > 0 else None
        print(f"| {dataset} | {len(one[dataset])} | {rho:.2f} | {need} |")


if __name__ == "__main__":
    main()
