"""The report: rebuild ``scores.csv``, plots and ``leaderboard.md`` from the run records alone."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from disbench.registry import METHODS, METRICS, RegistryError
from disbench.store import ResultsStore, atomic_write_text

# Leaderboard column order: the Locatello et al. metrics first, then the rest alphabetically.
_ORDER = [
    "mig",
    "dci",
    "factor_vae",
    "beta_vae",
    "sap",
    "modularity_explicitness",
    "irs",
    "mcc",
    "unsupervised",
]


def tidy_scores(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per run x score (failed runs appear once, with no metric)."""
    records = list(records)
    settings = _setting_labels(records)
    rows = []
    for rec in records:
        spec = rec["spec"]
        base = {
            "run_id": rec["id"],
            "profile": rec.get("profile", ""),
            "dataset": rec.get("dataset_label", spec["dataset"]["name"]),
            "dataset_kind": rec.get("dataset", {}).get("kind", ""),
            "method": spec["method"],
            "setting": settings[rec["id"]],
            "hparams": json.dumps(spec["hparams"], sort_keys=True),
            "seed": spec["seed"],
            "status": rec["status"],
        }
        if rec["status"] != "ok":
            rows.append(
                {
                    **base,
                    "metric": None,
                    "key": None,
                    "value": np.nan,
                    "primary": False,
                    "higher_is_better": True,
                }
            )
            continue
        for metric, values in sorted(rec["scores"].items()):
            for key, value in sorted(values.items()):
                rows.append(
                    {
                        **base,
                        "metric": metric,
                        "key": key,
                        "value": value,
                        "primary": rec["primary"].get(metric) == key,
                        "higher_is_better": _higher_is_better(rec, metric),
                    }
                )
    columns = [
        "run_id",
        "profile",
        "dataset",
        "dataset_kind",
        "method",
        "setting",
        "hparams",
        "seed",
        "status",
        "metric",
        "key",
        "value",
        "primary",
        "higher_is_better",
    ]
    return pd.DataFrame(rows, columns=columns)


def _higher_is_better(rec: dict[str, Any], metric: str) -> bool:
    """The direction stored in the record; for records written before it was stored, the
    registered metric's, else higher."""
    stored = rec.get("higher_is_better", {}).get(metric)
    if stored is not None:
        return bool(stored)
    return METRICS.get(metric).higher_is_better if metric in METRICS else True


def _setting_labels(records: list[dict[str, Any]]) -> dict[str, str]:
    """``method`` or ``method (beta=4)``: name the hyperparameters that vary in the study."""
    by_method: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        by_method.setdefault(rec["spec"]["method"], []).append(rec)
    labels = {}
    for method, recs in by_method.items():
        keys = sorted({k for r in recs for k in r["spec"]["hparams"]})
        varying = [
            k for k in keys if len({json.dumps(r["spec"]["hparams"].get(k)) for r in recs}) > 1
        ]
        for r in recs:
            hp = r["spec"]["hparams"]
            inner = ", ".join(f"{k}={hp.get(k)}" for k in varying)
            labels[r["id"]] = f"{method} ({inner})" if inner else method
    return labels


def _metric_order(metrics: Iterable[str]) -> list[str]:
    metrics = set(metrics)
    return [m for m in _ORDER if m in metrics] + sorted(metrics - set(_ORDER))


def summarise(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per dataset: settings x primary metrics with median, IQR, seed count and mean rank."""
    ok = df[(df.status == "ok") & df.primary]
    out = {}
    for dataset, part in ok.groupby("dataset", sort=True):
        grouped = part.groupby(["setting", "metric"])["value"]
        stats = pd.DataFrame(
            {
                "median": grouped.median(),
                "q25": grouped.quantile(0.25),
                "q75": grouped.quantile(0.75),
                "n": grouped.count(),
            }
        ).reset_index()
        medians = stats.pivot(index="setting", columns="metric", values="median")
        # Rank 1 is the best: the highest median, or the lowest where lower is better
        # (the unsupervised total correlation).
        higher = part.groupby("metric")["higher_is_better"].first()
        ranks = pd.DataFrame(
            {m: medians[m].rank(ascending=not higher[m], method="average") for m in medians}
        )
        table = stats.set_index(["setting", "metric"])
        table.attrs["mean_rank"] = ranks.mean(axis=1)
        table.attrs["metrics"] = _metric_order(medians.columns)
        out[str(dataset)] = table
    return out


def _fmt(median: float, q25: float, q75: float) -> str:
    return f"{median:.3f} [{q25:.3f}, {q75:.3f}]"


def _rel(path: Path, start: Path) -> str:
    return os.path.relpath(path, start).replace(os.sep, "/")


def write_plots(df: pd.DataFrame, plot_dir: Path) -> dict[str, Path]:
    """One PNG per metric: score distribution per method setting, a panel per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = df[(df.status == "ok") & df.primary]
    paths = {}
    plot_dir.mkdir(parents=True, exist_ok=True)
    for metric in _metric_order(ok.metric.unique()):
        part = ok[ok.metric == metric]
        datasets = sorted(part.dataset.unique())
        fig, axes = plt.subplots(1, len(datasets), figsize=(4.5 * len(datasets), 4), squeeze=False)
        for ax, dataset in zip(axes[0], datasets, strict=True):
            sub = part[part.dataset == dataset]
            settings = sorted(sub.setting.unique())
            data = [sub[sub.setting == s].value.to_numpy() for s in settings]
            ax.boxplot(data, orientation="horizontal", tick_labels=settings)
            for i, values in enumerate(data, start=1):
                ax.scatter(values, np.full(len(values), i), s=10, alpha=0.6, color="tab:blue")
            ax.set_title(dataset, fontsize=9)
            ax.set_xlabel(f"{metric}.{sub.key.iloc[0]}")
            ax.tick_params(axis="y", labelsize=7)
        fig.tight_layout()
        path = plot_dir / f"{metric}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths[metric] = path
    return paths


def _paper_results() -> list[tuple[str, Any]]:
    out = []
    for name in METHODS.names():
        for res in getattr(METHODS.get(name), "paper_results", ()):
            out.append((name, res))
    return out


def _code(env: dict[str, Any]) -> str:
    """disbench's full commit (with "+ local changes" when the tree was dirty), else its
    installed version."""
    source = env.get("source", {})
    if source.get("commit"):
        return f"`{source['commit']}`" + (" + local changes" if source.get("dirty") else "")
    return f"disbench {source.get('version') or 'unknown version'}"


def write_leaderboard(
    records: list[dict[str, Any]], df: pd.DataFrame, plots: dict[str, Path], root: Path, path: Path
) -> None:
    """Markdown: per dataset a table of settings x metrics, failures, paper numbers."""
    base = path.parent
    lines = [
        "# disbench leaderboard",
        "",
        "Written by `disbench report` from the run records under "
        f"`{_rel(root / 'runs', base)}/`; do not edit by hand.",
        "",
    ]
    profiles = sorted({r.get("profile", "") for r in records})
    devices = sorted({r["environment"].get("device_name", "?") for r in records})
    commits = sorted({_code(r["environment"]) for r in records})
    dates = sorted(r.get("created", "") for r in records)
    lines += [
        f"- Profile(s): {', '.join(profiles) or '-'}",
        f"- Hardware: {'; '.join(devices) or '-'}",
        f"- Code: {', '.join(commits) or '-'}",
        f"- Runs: {len(records)} ({sum(r['status'] == 'ok' for r in records)} ok, "
        f"{sum(r['status'] != 'ok' for r in records)} failed), "
        f"{dates[0] if dates else '-'} to {dates[-1] if dates else '-'}",
        "",
        "Cells: median over seeds [interquartile range] of each metric's primary score; "
        "n = seeds scored; rank = mean rank over the metrics (1 is best). Procedural "
        "datasets are disbench's recreations, not the published files.",
        "",
    ]
    if plots:
        lines.append("Plots: " + ", ".join(f"[{m}]({_rel(p, base)})" for m, p in plots.items()))
        lines.append("")
    kinds = {r.get("dataset_label", ""): r.get("dataset", {}).get("kind", "") for r in records}
    traversals = _first_traversals(records, root, base)
    for dataset, table in summarise(df).items():
        metrics = table.attrs["metrics"]
        keys = df[(df.dataset == dataset) & df.primary].groupby("metric")["key"].first()
        kind = kinds.get(dataset) or "unknown kind"
        lines += [f"## {dataset} ({kind})", ""]
        header = ["setting", "rank", "n"] + [f"{m}.{keys[m]}" for m in metrics] + ["traversal"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        ranks = table.attrs["mean_rank"].sort_values()
        for setting, rank in ranks.items():
            cells = [str(setting), f"{rank:.2f}"]
            ns = [int(table.loc[(setting, m), "n"]) for m in metrics if (setting, m) in table.index]
            cells.append(str(max(ns) if ns else 0))
            for m in metrics:
                if (setting, m) in table.index:
                    row = table.loc[(setting, m)]
                    cells.append(_fmt(row["median"], row["q25"], row["q75"]))
                else:
                    cells.append("-")
            link = traversals.get((dataset, str(setting)))
            cells.append(f"[png]({link})" if link else "")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += _failures(records)
    lines += _no_active_code(records)
    lines += _paper_section()
    atomic_write_text(path, "\n".join(lines).rstrip() + "\n")


def _first_traversals(
    records: list[dict[str, Any]], root: Path, base: Path
) -> dict[tuple[str, str], str]:
    labels = _setting_labels(records)
    out: dict[tuple[str, str], str] = {}
    for rec in sorted(records, key=lambda r: r["spec"]["seed"]):
        art = rec.get("artifacts", {}).get("traversal")
        key = (rec.get("dataset_label", ""), labels[rec["id"]])
        if art and rec["status"] == "ok" and key not in out:
            out[key] = _rel(root / art, base)
    return out


def _failures(records: list[dict[str, Any]]) -> list[str]:
    failed = [r for r in records if r["status"] != "ok"]
    degenerate = [(r, m, e) for r in records for m, e in r.get("metric_errors", {}).items()]
    lines = []
    if failed:
        lines += [
            "## Failed runs",
            "",
            "| run | method | dataset | seed | error |",
            "|---|---|---|---|---|",
        ]
        for r in failed:
            err = (r.get("error") or "").replace("|", "/").replace("\n", " ")[:160]
            lines.append(
                f"| {r['id']} | {r['spec']['method']} | {r.get('dataset_label')} | "
                f"{r['spec']['seed']} | {err} |"
            )
        lines.append("")
    if degenerate:
        lines += [
            "## Metrics not computed (degenerate input)",
            "",
            "| run | method | dataset | metric | reason |",
            "|---|---|---|---|---|",
        ]
        for r, m, e in degenerate:
            lines.append(
                f"| {r['id']} | {r['spec']['method']} | {r.get('dataset_label')} | {m} "
                f"| {e.replace('|', '/')[:160]} |"
            )
        lines.append("")
    return lines


def _no_active_code(records: list[dict[str, Any]]) -> list[str]:
    """Where a metric kept no code (``num_active_dims`` = 0), its score is 0 by
    disentanglement_lib's convention: say so, so a 0.000 cell is not read as a bad fit."""
    seeds: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for r in records:
        for metric, scores in r.get("scores", {}).items():
            if scores.get("num_active_dims") == 0:
                key = (str(r["spec"]["method"]), str(r.get("dataset_label")), metric)
                seeds[key].append(int(r["spec"]["seed"]))
    if not seeds:
        return []
    lines = [
        "## Runs with no active code",
        "",
        "These metrics dropped every code as inactive (FactorVAE: standard deviation "
        "below its prune threshold, 0.05 in the published study; IRS: constant) and score "
        "0, disentanglement_lib's convention. Typically a VAE whose posterior collapsed "
        "towards the prior: its codes barely vary, though scale-free metrics (MIG, DCI, "
        "MCC) may still find the factors in what variation is left.",
        "",
        "| method | dataset | metric | seeds |",
        "|---|---|---|---|",
    ]
    for (method, dataset, metric), found in sorted(seeds.items()):
        lines.append(f"| {method} | {dataset} | {metric} | {', '.join(map(str, sorted(found)))} |")
    return lines + [""]


def _paper_section() -> list[str]:
    try:
        results = _paper_results()
    except RegistryError:
        return []
    if not results:
        return []
    lines = [
        "## Paper-reported numbers (not computed by disbench)",
        "",
        "Reported by each method's paper on the published dataset named; compare only "
        "with our runs on that same published dataset, never with a procedural recreation.",
        "",
        "| method | published dataset | metric | paper-reported | source |",
        "|---|---|---|---|---|",
    ]
    for method, res in results:
        lines.append(f"| {method} | {res.dataset} | {res.metric} | {res.value} | {res.source} |")
    return lines + [""]


def build_report(out: Path, leaderboard: Path) -> dict[str, Path]:
    """Everything from ``<out>/runs/*.json``: scores.csv, plots/*.png, the leaderboard."""
    store = ResultsStore(out)
    records = store.records()
    if not records:
        raise FileNotFoundError(f"no run records under {store.runs_dir}; run `disbench run` first")
    df = tidy_scores(records)
    csv_path = out / "scores.csv"
    atomic_write_text(csv_path, df.to_csv(index=False))
    plots = write_plots(df, out / "plots")
    write_leaderboard(records, df, plots, out, leaderboard)
    return {"scores": csv_path, "leaderboard": leaderboard, **plots}
