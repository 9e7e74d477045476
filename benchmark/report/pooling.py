"""What the leaderboard may pool: studies, rows and the facts each needs, from records alone.

A **section** holds the runs of one study: one profile under one evaluation (evaluation
seed and metric settings). Within it a **row** pools runs that differ in their seed alone
(same dataset, method, hyperparameters, budget and code versions), so ``n`` is always a
seed count. A row carries its scores and marks (failed runs, fits that did not converge,
privileged information, methods rebuilt from a paper, losses still falling, codes a metric
dropped); the section its metrics' facts as the records state them (:mod:`disbench.run.schema`),
never as the registry states them today.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from disbench.report.stats import Significance, mean_ranks, significance, still_falling
from disbench.run.schema import MetricFacts, Record

# Leaderboard column order: the ranked metrics first, then these, then the rest.
ORDER = ("beta_vae", "modularity_explicitness", "irs", "mcc", "unsupervised")


class MissingFacts(ValueError):
    """A record written before records carried what the report shows."""


@dataclass
class Row:
    """The runs of one setting on one dataset that differ in their seed alone."""

    dataset: str
    kind: str
    method: str
    label: str
    records: list[Record]
    values: dict[str, list[float]] = field(default_factory=dict)  # metric -> primary values
    marks: dict[str, int] = field(default_factory=dict)  # mark -> count (1 for PI, PR)
    no_active: dict[str, int] = field(default_factory=dict)  # metric -> seeds
    curve: list[tuple[int, float]] = field(default_factory=list)  # (step, median loss)
    traversal: str | None = None  # the median-scoring seed's traversal image
    transfer_grid: str | None = None  # its content/style transfer grid, for C-S methods

    @property
    def ok(self) -> list[Record]:
        return [r for r in self.records if r["status"] == "ok"]

    @property
    def n(self) -> int:
        return len(self.ok)

    def median(self, metric: str) -> float | None:
        vals = self.values.get(metric)
        return float(np.median(vals)) if vals else None

    def mark_text(self) -> str:
        return ", ".join(f"{k}{v}" if k in ("F", "NC", "LF") else k for k, v in self.marks.items())


@dataclass
class Section:
    """One study: its facts and its rows, per dataset."""

    slug: str
    title: str
    profile: str
    records: list[Record]
    settings: dict[str, dict[str, Any]]
    facts: dict[str, MetricFacts]  # per metric, from the record its settings came from
    metrics: list[str]
    keys: dict[str, str]
    ranked: list[str]
    unranked_requested: list[str]
    rows: dict[str, list[Row]]  # dataset -> rows, best mean rank first
    ranks: dict[tuple[str, str], float]  # (dataset, label) -> mean rank
    significance: dict[tuple[str, str], Significance]
    approximate: dict[str, list[str]]
    decimals: dict[str, int]

    @property
    def newest(self) -> str:
        return max(r.get("created", "") for r in self.records)


def missing(rec: Record, what: str, results: Path | str = "RESULTS") -> MissingFacts:
    """The one-line error for a record that predates the facts the report reads."""
    return MissingFacts(
        f"run record {Path(results) / 'runs' / rec['id']}.json: no {what} (written before "
        f"records carried it); run `python -m disbench.run.migrate {results}` once"
    )


def metric_facts(rec: Record, metric: str) -> MetricFacts:
    """The facts ``rec`` holds for one of its metrics (a one-line error when it has none)."""
    try:
        return rec["metrics"][metric]
    except KeyError:
        raise missing(rec, f"facts of metric {metric!r}") from None


def check_facts(records: list[Record], results: Path) -> None:
    """Every record under ``results`` holds its metrics' facts and its study's rank."""
    for rec in records:
        if any(m not in rec.get("metrics", {}) for m in rec["spec"].get("metrics", {})):
            raise missing(rec, "metric facts", results)
        if "rank" not in rec.get("study", {}):
            raise missing(rec, "study rank", results)


def sections(records: list[Record], profile: str | None = None) -> list[Section]:
    """Every study in ``records`` (or only ``profile``'s), newest first."""
    groups: dict[str, list[Record]] = defaultdict(list)
    for rec in records:
        if profile is None or rec.get("profile") == profile:
            groups[_study_key(rec)].append(rec)
    titles = _titles(groups)
    out = [_section(key, recs, titles[key]) for key, recs in sorted(groups.items())]
    return sorted(out, key=lambda s: (s.newest, s.slug), reverse=True)


def _study_key(rec: Record) -> str:
    """The study's evaluation: profile, evaluation seed and the metrics every method gets
    (a metric a profile adds for one method, such as ``cs_transfer``, is left out)."""
    spec = rec["spec"]
    shared = [m for m in spec.get("metrics", {}) if metric_facts(rec, m)["in_all"]]
    versions = spec.get("versions", {}).get("metrics", {})
    evaluation = {
        "profile": rec.get("profile", ""),
        "eval_seed": spec.get("eval_seed"),
        "metrics": {m: spec["metrics"][m] for m in shared},
        "metric_versions": {m: versions[m] for m in shared if m in versions},
    }
    return json.dumps(evaluation, sort_keys=True)


def _titles(groups: dict[str, list[Record]]) -> dict[str, str]:
    """The profile's name, plus what tells apart two studies of it: the metrics they compute
    when those differ, else the metric settings."""
    by_profile: dict[str, list[str]] = defaultdict(list)
    for key in groups:
        by_profile[json.loads(key)["profile"]].append(key)
    titles = {}
    for prof, keys in by_profile.items():
        if len(keys) == 1:
            titles[keys[0]] = prof
            continue
        evals = {k: json.loads(k) for k in keys}
        metric_sets = {k: set(e["metrics"]) for k, e in evals.items()}
        if len({frozenset(m) for m in metric_sets.values()}) == len(keys):
            # Told apart by which metrics they compute (a profile that adds metrics for
            # some methods): name those, not every setting of the metrics the others lack.
            common = set.intersection(*metric_sets.values())
            for k, names in metric_sets.items():
                extra = sorted(names - common)
                what = f"with {', '.join(extra)}" if extra else "the common metrics only"
                titles[k] = f"{prof} ({what})"
            continue
        flat = {k: _flatten(e) for k, e in evals.items()}
        varying = sorted(
            {p for f in flat.values() for p in f if len({str(g.get(p)) for g in flat.values()}) > 1}
        )
        for k in keys:
            diff = [f"{p}={flat[k].get(p)}" for p in varying]
            shown = ", ".join(diff[:4]) + (f", ... ({len(diff) - 4} more)" if len(diff) > 4 else "")
            titles[k] = f"{prof} ({shown})"
    return titles


def _flatten(evaluation: dict[str, Any]) -> dict[str, Any]:
    out = {"eval_seed": evaluation["eval_seed"]}
    for metric, settings in evaluation["metrics"].items():
        for key, value in settings.items():
            out[f"{metric}.{key}"] = value
    for metric, version in evaluation["metric_versions"].items():
        out[f"{metric}.version"] = version
    return out


def _row_key(rec: Record) -> str:
    spec = rec["spec"]
    versions = spec.get("versions", {})
    return json.dumps(
        {
            "dataset": rec.get("dataset_label", spec["dataset"]["name"]),
            "method": spec["method"],
            "hparams": spec["hparams"],
            "budget": spec["budget"],
            "versions": {k: versions.get(k) for k in ("dataset", "method")},
        },
        sort_keys=True,
    )


def _labels(records: list[Record]) -> dict[str, str]:
    """Row label per row key: the method, plus the hyperparameters, budget or version that
    vary between its rows in the study."""
    by_method: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for rec in records:
        by_method[rec["spec"]["method"]][_row_key(rec)] = json.loads(_row_key(rec))
    labels = {}
    for method, rows in by_method.items():
        parts = [("hparams", k) for k in sorted({k for r in rows.values() for k in r["hparams"]})]
        parts += [("budget", "steps"), ("budget", "batch_size"), ("versions", "method")]
        varying = [
            p for p in parts if len({json.dumps(r[p[0]].get(p[1])) for r in rows.values()}) > 1
        ]
        for key, row in rows.items():
            inner = []
            for group, name in varying:
                value = row[group].get(name)
                inner.append(f"v{value}" if group == "versions" else f"{name}={value}")
            labels[key] = f"{method} ({', '.join(inner)})" if inner else method
    return labels


def _section(key: str, records: list[Record], title: str) -> Section:
    first = records[0]
    settings: dict[str, dict[str, Any]] = {}
    facts: dict[str, MetricFacts] = {}
    for rec in records:  # the last record naming a metric gives its settings and facts
        for metric, given in rec["spec"].get("metrics", {}).items():
            settings[metric], facts[metric] = given, metric_facts(rec, metric)
    keys = _primary_keys(records)
    requested = _rank_request(records)
    direction = {m: _higher_is_better(records, m) for m in keys}
    ranked = [m for m in requested if m in keys and direction[m]]
    unranked = [m for m in requested if m in keys and not direction[m]]
    metrics = ranked + [m for m in ORDER if m in keys and m not in ranked]
    metrics += sorted(m for m in keys if m not in metrics)
    labels = _labels(records)
    by_row: dict[str, list[Record]] = defaultdict(list)
    for rec in records:
        by_row[_row_key(rec)].append(rec)
    rows_by_dataset: dict[str, list[Row]] = defaultdict(list)
    for row_key, recs in sorted(by_row.items()):
        spec = recs[0]["spec"]
        row = Row(
            dataset=recs[0].get("dataset_label", spec["dataset"]["name"]),
            kind=next((r["dataset"].get("kind", "") for r in recs if r.get("dataset")), ""),
            method=spec["method"],
            label=labels[row_key],
            records=sorted(recs, key=lambda r: r["spec"]["seed"]),
        )
        _fill(row, keys, ranked)
        rows_by_dataset[row.dataset].append(row)
    ranks: dict[tuple[str, str], float] = {}
    sig: dict[tuple[str, str], Significance] = {}
    for dataset, rows in rows_by_dataset.items():
        ranks.update(mean_ranks(dataset, rows, ranked))
        for metric in ranked:
            found = significance(rows, metric)
            if found is not None:
                sig[(dataset, metric)] = found
        rows.sort(key=lambda r: (ranks.get((dataset, r.label), math.inf), r.label))
    approximate = {m: list(facts[m]["caveats"]) for m in metrics if m in facts}
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return Section(
        slug=f"{_slug(first.get('profile', 'study'))}-{digest}",
        title=title,
        profile=first.get("profile", ""),
        records=records,
        settings=settings,
        facts=facts,
        metrics=metrics,
        keys=keys,
        ranked=ranked,
        unranked_requested=unranked,
        rows=dict(sorted(rows_by_dataset.items())),
        ranks=ranks,
        significance=sig,
        approximate={m: c for m, c in approximate.items() if c},
        decimals={m: _decimals(facts.get(m)) for m in metrics},
    )


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text) or "study"


def _primary_keys(records: list[Record]) -> dict[str, str]:
    keys: dict[str, str] = {}
    for rec in records:
        for metric, key in rec.get("primary", {}).items():
            if metric in rec.get("scores", {}):
                keys.setdefault(metric, key)
    return keys


def _rank_request(records: list[Record]) -> list[str]:
    for rec in records:
        rank = rec.get("study", {}).get("rank")
        if rank:
            return list(rank)
    return []


def _higher_is_better(records: list[Record], metric: str) -> bool:
    """As the records' scores say, else as their metric facts say."""
    for rec in records:
        stored = rec.get("higher_is_better", {}).get(metric)
        if stored is not None:
            return bool(stored)
    return all(r["metrics"][metric]["higher_is_better"] for r in records if metric in r["metrics"])


def _fill(row: Row, keys: dict[str, str], ranked: list[str]) -> None:
    """Scores, marks and curve of a row from its records."""
    failed = len(row.records) - row.n
    if failed:
        row.marks["F"] = failed
    caveats = [r.get("info", {}).get("caveats", {}) for r in row.ok]
    if sum("not_converged" in c for c in caveats):
        row.marks["NC"] = sum("not_converged" in c for c in caveats)
    if any("privileged" in c for c in caveats):
        row.marks["PI"] = 1
    if any(r["method"].get("reference_code") is False for r in row.records):
        row.marks["PR"] = 1
    falling = sum(still_falling(r.get("info", {}).get("loss_curve")) for r in row.ok)
    if falling:
        row.marks["LF"] = falling
    for metric, key in keys.items():
        vals = [r["scores"][metric][key] for r in row.ok if key in r["scores"].get(metric, {})]
        if vals:
            row.values[metric] = [float(v) for v in vals]
        zero = sum(r["scores"].get(metric, {}).get("num_active_dims") == 0 for r in row.ok)
        if zero:
            row.no_active[metric] = zero
    row.curve = _median_curve(row.ok)
    row.traversal, row.transfer_grid = _median_images(row, keys, ranked)


def _median_curve(records: list[Record]) -> list[tuple[int, float]]:
    curves = [r.get("info", {}).get("loss_curve") for r in records]
    curves = [c for c in curves if c and "loss" in c[0]]
    if not curves:
        return []
    length = min(len(c) for c in curves)
    return [
        (int(curves[0][i]["step"]), float(np.median([c[i]["loss"] for c in curves])))
        for i in range(length)
    ]


def _median_images(
    row: Row, keys: dict[str, str], ranked: list[str]
) -> tuple[str | None, str | None]:
    """The traversal and transfer grid of the seed whose score is the median of the first
    ranked metric."""
    with_images = [r for r in row.ok if r.get("artifacts", {}).get("traversal")]
    if not with_images:
        return None, None
    metric = next((m for m in ranked if m in keys), None)
    if metric is not None:
        with_images.sort(
            key=lambda r: (r["scores"].get(metric, {}).get(keys[metric], -1.0), r["spec"]["seed"])
        )
    artifacts = with_images[(len(with_images) - 1) // 2]["artifacts"]
    return artifacts["traversal"], artifacts.get("transfer_grid")


def _decimals(facts: MetricFacts | None) -> int:
    """Digits the score supports: 3, or fewer when it is a fraction of a few votes."""
    resolution = facts["resolution"] if facts else None
    if not resolution:
        return 3
    return int(min(3, max(1, math.ceil(-math.log10(resolution)))))
