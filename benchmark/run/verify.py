"""``disbench verify``: run a seeded random sample of finished runs again from scratch and
say, per run, what could be reproduced here.

Each rerun happens in a fresh worker process of this machine's CPU, with the record's own
numerics mode and thread count, in a temporary folder; nothing under ``--out`` changes.
What is promised depends on the numerics fingerprints (:mod:`disbench.run.numerics`):

- **Same numerics** (the rerun's fingerprint matches the record's): every score must be
  bit-identical for a run recorded as one model, within ``TOLERANCE`` for one recorded in
  a batched group (packing changes the order of summation).
- **Different numerics** (another CPU or instruction set, CUDA, a record without a
  fingerprint): bits are not expected. Every seed of the run's cell (the runs of its
  profile that differ in their seed alone) is rerun, and for each metric's primary score
  the recorded seeds and the rerun seeds are compared by an exact two-sided permutation
  test of the difference of their means. A score is flagged at p <= ``LEVEL``: with 3
  seeds against 3 only a complete separation (all 20 splits, the observed one most
  extreme) reaches it, so a rerun that acts as three fresh seeds is flagged with
  probability exactly 0.1 per score. The flags are then counted over every tested score:
  the cells disagree when that count is improbable under chance alone (one-sided binomial
  p < ``COUNT_LEVEL`` with flag probability ``LEVEL``; scores of one cell are correlated,
  so this errs towards passing). Per-run differences are printed for information.

Records that fail their integrity check are reported too. The exit status is 1 when a
record is unsound, a rerun fails, a same-numerics run differs, or the cells disagree.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

from disbench.run.numerics import same_numerics
from disbench.run.progress import ProgressDisplay
from disbench.run.schema import Record
from disbench.run.store import ResultsStore

TOLERANCE = 0.02  # absolute, per score, for same-numerics records made in a batched group
LEVEL = 0.1  # a score's permutation p-value at or below which it is flagged
COUNT_LEVEL = 0.01  # binomial tail of the number flagged below which the cells disagree


@dataclass
class Report:
    """What a verification found, as lines to print, and its verdict."""

    passed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sampled: int = 0  # runs of the sample
    tested: int = 0  # scores given the permutation test
    flagged: int = 0  # of those, at p <= LEVEL

    @property
    def count_p(self) -> float:
        """P(at least ``flagged`` of ``tested`` scores flagged by chance)."""
        if not self.tested:
            return 1.0
        return float(stats.binomtest(self.flagged, self.tested, LEVEL, "greater").pvalue)

    @property
    def cells_agree(self) -> bool:
        return self.count_p >= COUNT_LEVEL


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=Path("results"), type=Path, help="results directory")
    parser.add_argument("--sample", type=int, default=3, help="runs to rerun (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")


def differences(recorded: Record, rerun: Record, tolerance: float) -> list[str]:
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


def permutation_p(recorded: Sequence[float], rerun: Sequence[float]) -> float:
    """Exact two-sided permutation p-value of the difference of means (every split of the
    pooled values); 1.0 when the two sets are equal."""
    a, b = np.asarray(recorded, dtype=float), np.asarray(rerun, dtype=float)
    if np.array_equal(np.sort(a), np.sort(b)):
        return 1.0
    result = stats.permutation_test(
        (a, b),
        lambda x, y: np.mean(x) - np.mean(y),
        permutation_type="independent",
        alternative="two-sided",
        n_resamples=np.inf,
    )
    return float(result.pvalue)


def cell_key(record: Record) -> str:
    """Records with the same key differ in their seed alone (same profile and spec)."""
    spec = {k: v for k, v in record["spec"].items() if k != "seed"}
    return json.dumps([record.get("profile"), spec], sort_keys=True)


def where(record: Record) -> str:
    """The numerics a record was made with, in words."""
    fp = record.get("numerics")
    if not fp:
        env = record.get("environment", {})
        return f"{env.get('device_name', '?')} (no numerics fingerprint)"
    isa = fp.get("aten_capability")
    gpu = f", {fp['gpu']}" if fp.get("gpu") else ""
    return f"{fp.get('cpu_model')}, ATen {isa}, {fp.get('numerics')} numerics{gpu}"


def _rerun(records: list[Record], plugins: tuple[str, ...]) -> list[Record]:
    """Rerun ``records`` (one numerics mode and thread count) in a fresh worker process."""
    from disbench.run.executors import LocalPool  # the worker machinery loads only to rerun
    from disbench.run.records import Job
    from disbench.run.study import RunSpec

    first = records[0]
    threads = int(first.get("execution", {}).get("threads", 1))
    mode = first.get("execution", {}).get("numerics", "native")
    with tempfile.TemporaryDirectory() as tmp:
        job = Job(tmp, "cpu", first.get("profile", ""), threads, plugins, numerics=mode)
        groups = [[RunSpec.from_dict(r["spec"])] for r in records]
        display = ProgressDisplay(total=len(groups), already=0, workers=1, enabled=False)
        list(LocalPool(1).run(groups, job, display))
        by_id = {r["id"]: r for r in ResultsStore(Path(tmp)).records()}
    return [by_id[r["id"]] for r in records]


def _label(record: Record) -> str:
    spec = record["spec"]
    return (
        f"run {record['id']} ({spec['method']} on {record.get('dataset_label')}, "
        f"seed {spec['seed']})"
    )


def score_tests(
    cell: list[Record], reruns: list[Record]
) -> list[tuple[str, float, list[float], list[float]]]:
    """(``metric.key``, permutation p, recorded values, rerun values) for every metric's
    primary score that each record of the cell and of its rerun holds."""
    out = []
    for metric, key in sorted(cell[0].get("primary", {}).items()):
        before = [r["scores"].get(metric, {}).get(key) for r in cell]
        after = [r["scores"].get(metric, {}).get(key) for r in reruns]
        if all(v is not None for v in before + after):
            out.append((f"{metric}.{key}", permutation_p(before, after), before, after))
    return out


def _check_cell(cell: list[Record], reruns: list[Record], report: Report) -> None:
    """The permutation test of every primary score of one cell, into ``report``."""
    first = cell[0]
    name = f"{first['spec']['method']} on {first.get('dataset_label')}"
    for rec, new in zip(cell, reruns, strict=True):
        diff = differences(rec["scores"], new["scores"], 0.0)
        report.notes.append(
            f"{_label(rec)}: {len(diff)} score(s) differ"
            + (f" ({'; '.join(diff[:4])}{'; ...' if len(diff) > 4 else ''})" if diff else "")
        )
    if len(cell) < 2:
        report.notes.append(f"cell {name}: one seed, too few for a test")
        return
    flagged = []
    for score, p, before, after in score_tests(cell, reruns):
        report.tested += 1
        if p <= LEVEL:
            report.flagged += 1
            flagged.append(
                f"{score} (p = {p:.2f}: recorded {np.round(before, 3).tolist()}, "
                f"rerun {np.round(after, 3).tolist()})"
            )
    seeds = len(cell)
    line = f"cell {name}, {seeds} seeds rerun: " + (
        f"{len(flagged)} score(s) flagged: {'; '.join(flagged)}" if flagged else "no score flagged"
    )
    (report.notes if flagged else report.passed).append(line)


def verify(out: Path, sample: int, seed: int = 0, plugins: tuple[str, ...] = ()) -> Report:
    """Rerun a seeded sample of ``out``'s ok runs; see the module docstring for the rule."""
    good, bad = ResultsStore(out).scan()
    report = Report(problems=[f"{path}: {why}" for path, why in bad])
    finished = [r for r in good if r["status"] == "ok"]
    cells: dict[str, list[Record]] = defaultdict(list)
    for rec in finished:
        cells[cell_key(rec)].append(rec)
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(finished), size=min(sample, len(finished)), replace=False))
    checked: set[str] = set()
    for record in (finished[i] for i in chosen):
        report.sampled += 1
        what = _label(record)
        (rerun,) = _rerun([record], plugins)
        if rerun["status"] != "ok":
            report.problems.append(f"{what}: the rerun failed: {rerun['error']}")
            continue
        if same_numerics(record.get("numerics"), rerun.get("numerics")):
            batched = record.get("execution", {}).get("group_size", 1) > 1
            tolerance = TOLERANCE if batched else 0.0
            diff = differences(record["scores"], rerun["scores"], tolerance)
            if diff:
                report.problems.append(f"{what}: same numerics, but " + "; ".join(diff))
            else:
                kind = f"within {TOLERANCE}" if batched else "bit-identical"
                report.passed.append(f"{what}: same numerics, every score {kind}")
            continue
        report.notes.append(
            f"{what}: different numerics: recorded on {where(record)}, rerun on {where(rerun)};"
            " bits are not expected, its cell is checked"
        )
        key = cell_key(record)
        if key in checked:
            continue
        checked.add(key)
        cell = sorted(cells[key], key=lambda r: r["spec"]["seed"])
        others = [r for r in cell if r["id"] != record["id"]]
        by_id = {record["id"]: rerun} | {
            r["id"]: new
            for r, new in zip(others, _rerun(others, plugins) if others else [], strict=True)
        }
        failed = [r for r in cell if by_id[r["id"]]["status"] != "ok"]
        for rec in failed:
            report.problems.append(f"{_label(rec)}: the rerun failed: {by_id[rec['id']]['error']}")
        if not failed:
            _check_cell(cell, [by_id[r["id"]] for r in cell], report)
    return report


def run(args: argparse.Namespace) -> int:
    """0 when the sample reproduced as its numerics promise and every record is sound."""
    report = verify(args.out, args.sample, args.seed, tuple(args.plugin))
    for line in report.notes:
        print(f"note: {line}")
    for line in report.passed:
        print(f"ok: {line}")
    for line in report.problems:
        print(f"differs: {line}", file=sys.stderr)
    if report.tested:
        verdict = "the cells agree" if report.cells_agree else "the cells DISAGREE"
        print(
            f"cell check: {report.flagged} of {report.tested} score(s) flagged at p <= {LEVEL}, "
            f"{LEVEL * report.tested:.1f} expected by chance (P = {report.count_p:.3f}): "
            f"{verdict}"
        )
    print(f"verified {report.sampled} run(s): {len(report.problems)} problem(s)")
    return 1 if report.problems or not report.cells_agree else 0
