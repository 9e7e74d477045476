"""What the leaderboard may pool and what it must say: studies, rows, ranks and caveats.

A **section** holds the runs of one study: one profile under one evaluation (evaluation
seed and metric settings). Within it a **row** pools runs that differ in their seed alone
(same dataset, method, hyperparameters, budget and code versions), so ``n`` is always a
seed count. Everything a reader needs to trust a number is computed here from the
records: the rank over the declared metrics, the significance of the best row, the
resolution each score supports, and every caveat (failed runs, fits that did not
converge, approximate metric settings, codes a metric dropped, privileged information,
methods rebuilt from a paper, losses still falling).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from disbench.registry import METHODS, METRICS
from disbench.run.study import DEFAULT_RANK

# Leaderboard column order: the ranked metrics first, then these, then the rest.
ORDER = ("beta_vae", "modularity_explicitness", "irs", "mcc", "unsupervised")
PUBLISHED_STEPS, PUBLISHED_BATCH = 300_000, 64  # Locatello et al. 2019's training budget
FALLING = 0.02  # a loss that fell by more than 2% over the last fifth of training
BOOTSTRAP_RESAMPLES = 9999
SIGNIFICANCE_LEVEL = 0.95

# Row marks and their legend (cell marks: Z, *; column marks: ~).
LEGEND = {
    "F": "runs of this row that failed (count; see Failed runs)",
    "NC": "fits that did not converge (count of seeds), e.g. FastICA at its iteration cap",
    "PI": "given privileged information the other methods are not (the true number of factors)",
    "PR": "rebuilt without reference code, from the paper's text or only its abstract (the "
    "study says which)",
    "LF": "training loss still falling at the end: more than 2% lower over the last fifth "
    "of training (count of seeds); the budget, not the method, may limit this row",
    "Z": "seeds where the metric kept no active code and scored 0 by disentanglement_lib's "
    "convention (count)",
    "~": "approximate metric setting (see the section header)",
    "*": "the best row beats the runner-up beyond seed noise: the 95% bootstrap interval of "
    f"the difference of their medians ({BOOTSTRAP_RESAMPLES:,} resamples of the seeds) "
    "excludes 0",
}


@dataclass
class Row:
    """The runs of one setting on one dataset that differ in their seed alone."""

    dataset: str
    kind: str
    method: str
    label: str
    records: list[dict[str, Any]]
    values: dict[str, list[float]] = field(default_factory=dict)  # metric -> primary values
    marks: dict[str, int] = field(default_factory=dict)  # mark -> count (1 for PI, PR)
    no_active: dict[str, int] = field(default_factory=dict)  # metric -> seeds
    curve: list[tuple[int, float]] = field(default_factory=list)  # (step, median loss)
    traversal: str | None = None  # the median-scoring seed's traversal image
    transfer_grid: str | None = None  # its content/style transfer grid, for C-S methods

    @property
    def ok(self) -> list[dict[str, Any]]:
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
class Significance:
    best: str
    runner_up: str
    low: float
    high: float

    @property
    def significant(self) -> bool:
        return self.low > 0


@dataclass
class Section:
    """One study: its header facts and its rows, per dataset."""

    slug: str
    title: str
    profile: str
    records: list[dict[str, Any]]
    settings: dict[str, dict[str, Any]]
    metrics: list[str]
    keys: dict[str, str]
    ranked: list[str]
    unranked_requested: list[str]
    rows: dict[str, list[Row]]  # dataset -> rows, best mean rank first
    ranks: dict[tuple[str, str], float]  # (dataset, label) -> mean rank
    significance: dict[tuple[str, str], Significance]
    approximate: dict[str, list[str]]
    decimals: dict[str, int]
    header: list[str]

    @property
    def newest(self) -> str:
        return max(r.get("created", "") for r in self.records)


def sections(records: list[dict[str, Any]], profile: str | None = None) -> list[Section]:
    """Every study in ``records`` (or only ``profile``'s), newest first."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        if profile is None or rec.get("profile") == profile:
            groups[_study_key(rec)].append(rec)
    titles = _titles(groups)
    out = [_section(key, recs, titles[key]) for key, recs in sorted(groups.items())]
    return sorted(out, key=lambda s: (s.newest, s.slug), reverse=True)


def _study_key(rec: dict[str, Any]) -> str:
    """The study's evaluation: profile, evaluation seed and the metrics every method gets
    (a metric a profile adds for one method, such as ``cs_transfer``, is left out)."""
    spec = rec["spec"]
    shared = [m for m in spec.get("metrics", {}) if _in_all(m)]
    versions = spec.get("versions", {}).get("metrics", {})
    evaluation = {
        "profile": rec.get("profile", ""),
        "eval_seed": spec.get("eval_seed"),
        "metrics": {m: spec["metrics"][m] for m in shared},
        "metric_versions": {m: versions[m] for m in shared if m in versions},
    }
    return json.dumps(evaluation, sort_keys=True)


def _in_all(metric: str) -> bool:
    return METRICS.get(metric).in_all if metric in METRICS else True


def _titles(groups: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
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


def _row_key(rec: dict[str, Any]) -> str:
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


def _labels(records: list[dict[str, Any]]) -> dict[str, str]:
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


def _section(key: str, records: list[dict[str, Any]], title: str) -> Section:
    first = records[0]
    settings = {m: s for r in records for m, s in r["spec"].get("metrics", {}).items()}
    keys = _primary_keys(records)
    requested = _rank_request(records)
    direction = {m: _higher_is_better(records, m) for m in keys}
    ranked = [m for m in requested if m in keys and direction[m]]
    unranked = [m for m in requested if m in keys and not direction[m]]
    metrics = ranked + [m for m in ORDER if m in keys and m not in ranked]
    metrics += sorted(m for m in keys if m not in metrics)
    labels = _labels(records)
    by_row: dict[str, list[dict[str, Any]]] = defaultdict(list)
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
    significance: dict[tuple[str, str], Significance] = {}
    for dataset, rows in rows_by_dataset.items():
        ranks.update(_mean_ranks(dataset, rows, ranked))
        for metric in ranked:
            sig = _significance(rows, metric)
            if sig is not None:
                significance[(dataset, metric)] = sig
        rows.sort(key=lambda r: (ranks.get((dataset, r.label), math.inf), r.label))
    approximate = {m: _metric_caveats(m, settings.get(m, {})) for m in metrics}
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    section = Section(
        slug=f"{_slug(first.get('profile', 'study'))}-{digest}",
        title=title,
        profile=first.get("profile", ""),
        records=records,
        settings=settings,
        metrics=metrics,
        keys=keys,
        ranked=ranked,
        unranked_requested=unranked,
        rows=dict(sorted(rows_by_dataset.items())),
        ranks=ranks,
        significance=significance,
        approximate={m: c for m, c in approximate.items() if c},
        decimals={m: _decimals(m, settings.get(m, {})) for m in metrics},
        header=[],
    )
    section.header = study_header(section)
    return section


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text) or "study"


def _primary_keys(records: list[dict[str, Any]]) -> dict[str, str]:
    keys: dict[str, str] = {}
    for rec in records:
        for metric, key in rec.get("primary", {}).items():
            if metric in rec.get("scores", {}):
                keys.setdefault(metric, key)
    return keys


def _rank_request(records: list[dict[str, Any]]) -> list[str]:
    for rec in records:
        rank = rec.get("study", {}).get("rank")
        if rank:
            return list(rank)
    return list(DEFAULT_RANK)


def _higher_is_better(records: list[dict[str, Any]], metric: str) -> bool:
    for rec in records:
        stored = rec.get("higher_is_better", {}).get(metric)
        if stored is not None:
            return bool(stored)
    return METRICS.get(metric).higher_is_better if metric in METRICS else True


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
    if any(r.get("method", {}).get("reference_code") is False for r in row.records):
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


def still_falling(curve: list[dict[str, float]] | None) -> bool:
    """Whether the loss fell by more than ``FALLING`` (relative) over the last fifth of the
    recorded curve: training stopped while the model was still improving fast."""
    if not curve or len(curve) < 5 or "loss" not in curve[0]:
        return False
    losses = [float(p["loss"]) for p in curve]
    start = losses[int(0.8 * (len(losses) - 1))]
    return start > 0 and (start - losses[-1]) / start > FALLING


def _median_curve(records: list[dict[str, Any]]) -> list[tuple[int, float]]:
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


def _mean_ranks(dataset: str, rows: list[Row], ranked: list[str]) -> dict[tuple[str, str], float]:
    """Mean over the ranked metrics of each row's rank by median (1 best, ties averaged)."""
    per_row: dict[str, list[float]] = defaultdict(list)
    for metric in ranked:
        scored = [(r.label, r.median(metric)) for r in rows if r.median(metric) is not None]
        if not scored:
            continue
        order = stats.rankdata([-m for _, m in scored], method="average")
        for (label, _), rank in zip(scored, order, strict=True):
            per_row[label].append(float(rank))
    return {(dataset, label): float(np.mean(r)) for label, r in per_row.items()}


def _significance(rows: list[Row], metric: str) -> Significance | None:
    """Best row against the runner-up (by median) on ``metric``: a percentile bootstrap
    interval of the difference of medians, resampling each row's seeds."""
    scored = [r for r in rows if len(r.values.get(metric, [])) >= 2]
    if len(scored) < 2:
        return None
    scored.sort(key=lambda r: (-(r.median(metric) or 0.0), r.label))
    best, second = scored[0], scored[1]
    a, b = np.asarray(best.values[metric]), np.asarray(second.values[metric])
    if np.ptp(np.r_[a, b]) == 0:
        return Significance(best.label, second.label, 0.0, 0.0)
    res = stats.bootstrap(
        (a, b),
        lambda x, y, axis=-1: np.median(x, axis=axis) - np.median(y, axis=axis),
        n_resamples=BOOTSTRAP_RESAMPLES,
        confidence_level=SIGNIFICANCE_LEVEL,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(0),
    )
    low, high = res.confidence_interval
    return Significance(best.label, second.label, float(low), float(high))


def _metric_caveats(metric: str, settings: dict[str, Any]) -> list[str]:
    if metric not in METRICS:
        return []
    cls = METRICS.get(metric)
    return list(cls.caveats({**cls.defaults, **settings}))


def _decimals(metric: str, settings: dict[str, Any]) -> int:
    """Digits the score supports: 3, or fewer when it is a fraction of a few votes."""
    cls = METRICS.get(metric) if metric in METRICS else None
    resolution = cls.resolution({**cls.defaults, **settings}) if cls else None
    if not resolution:
        return 3
    return int(min(3, max(1, math.ceil(-math.log10(resolution)))))


def budget_lines(records: list[dict[str, Any]]) -> list[str]:
    """Each training budget of the study, with the methods that got it."""
    by_budget: dict[tuple[int, int], set[str]] = defaultdict(set)
    untrained: set[str] = set()
    for rec in records:
        method = rec["spec"]["method"]
        if rec.get("method", {}).get("framework") == "numpy":
            untrained.add(method)
            continue
        budget = rec["spec"]["budget"]
        by_budget[(int(budget["steps"]), int(budget["batch_size"]))].add(method)
    lines = []
    for (steps, batch), methods in sorted(by_budget.items()):
        share = steps * batch / (PUBLISHED_STEPS * PUBLISHED_BATCH)
        lines.append(
            f"{steps:,} steps x batch {batch} = {share:.3%} of the published "
            f"{PUBLISHED_STEPS:,} x {PUBLISHED_BATCH}: {', '.join(sorted(methods))}"
        )
    if untrained:
        lines.append(
            f"no gradient training (the step budget does not apply): {', '.join(sorted(untrained))}"
        )
    return lines


def study_header(section: Section) -> list[str]:
    records = section.records
    ok = sum(r["status"] == "ok" for r in records)
    dates = sorted(r.get("created", "") for r in records)
    env = [r.get("environment", {}) for r in records]
    devices = sorted({e.get("device_name", "?") for e in env})
    packages = defaultdict(set)
    for e in env:
        for name in ("torch", "numpy", "scikit-learn", "scipy"):
            if e.get("packages", {}).get(name):
                packages[name].add(e["packages"][name])
    lines = [
        f"Profile `{section.profile}`; {len(records)} runs ({ok} ok, {len(records) - ok} failed), "
        f"{dates[0] if dates else '-'} to {dates[-1] if dates else '-'}.",
        "Training budget: " + "; ".join(budget_lines(records)) + ".",
    ]
    changed = []
    for metric in section.metrics:
        given = section.settings.get(metric, {})
        defaults = METRICS.get(metric).defaults if metric in METRICS else {}
        diff = [
            f"{k}={v} (default {defaults[k]})"
            for k, v in sorted(given.items())
            if k in defaults and defaults[k] != v and k != "n_jobs"
        ]
        if diff:
            changed.append(f"{metric}: {', '.join(diff)}")
    lines.append(
        "Metric settings that differ from disentanglement_lib's: "
        + ("; ".join(changed) if changed else "none")
        + "."
    )
    for metric, notes in section.approximate.items():
        lines.append(f"Approximate (~) {metric}: {'; '.join(notes)}.")
    notes = sorted({r.get("study", {}).get("note") or "" for r in records} - {""})
    lines += [f"Note: {note}" for note in notes]
    lines.append(f"Hardware: {'; '.join(devices)}.")
    modes = sorted({r.get("execution", {}).get("numerics", "native") for r in records})
    lines.append(
        f"Numerics: {', '.join(modes)} (docs/design.md, 'Determinism, stated exactly'): "
        "`disbench verify` expects the same bits only where a run's numerics fingerprint "
        "matches, and tests each cell's seeds as a distribution elsewhere."
    )
    lines.append(
        "Packages: "
        + ", ".join(f"{name} {'/'.join(sorted(v))}" for name, v in sorted(packages.items()))
        + "."
    )
    lines.append(f"Code: {', '.join(sorted({_code(e) for e in env}))}.")
    return lines


def _code(env: dict[str, Any]) -> str:
    """disbench's full commit (with "+ local changes" when its code had any), else its
    installed version."""
    source = env.get("source", {})
    if source.get("commit"):
        return f"`{source['commit']}`" + (" + local changes" if source.get("dirty") else "")
    return f"disbench {source.get('version') or 'unknown version'}"


def rebuilt_methods(section: Section) -> list[str]:
    """``method: description`` of each method of the study rebuilt without reference code."""
    out = {
        r["spec"]["method"]: r.get("method", {}).get("description", "")
        for r in section.records
        if r.get("method", {}).get("reference_code") is False
    }
    return [f"{m}: {d}" for m, d in sorted(out.items())]


def rank_definition(section: Section) -> str:
    names = ", ".join(section.ranked) or "none"
    text = (
        f"Rank: the mean over {names} of each row's rank by its median score on this dataset "
        "(1 is best, ties share the mean rank); the other metrics are shown, not ranked."
    )
    if section.unranked_requested:
        text += (
            f" Not ranked although the profile asked: {', '.join(section.unranked_requested)} "
            "(lower is better: a whitened linear code scores well by construction)."
        )
    return text


def method_paper_results() -> list[tuple[str, Any]]:
    """(method, PaperResult) of every registered method, for the paper-numbers table."""
    return [(name, res) for name in METHODS.names() for res in METHODS.get(name).paper_results]
