"""The leaderboard's figures, per study: scores over seeds and hyperparameters per dataset
(Locatello et al.'s figure), training curves, scores against swept hyperparameters, and the
rank correlation between metrics. One colour per method in every figure."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from disbench.report.pooling import Row, Section  # noqa: E402

# PNG metadata without the matplotlib version: the same records give the same bytes.
_META = {"Software": None}


def method_colours(methods: list[str]) -> dict[str, tuple[float, ...]]:
    """A fixed colour per method name (sorted), shared by every figure of a report."""
    cmap = plt.get_cmap("tab20")
    return {m: cmap(i % 20) for i, m in enumerate(sorted(set(methods)))}


def write_section_plots(
    section: Section, plot_dir: Path, colours: dict[str, tuple[float, ...]], draw: bool = True
) -> dict[str, Path]:
    """Every figure of one study; name -> path. ``draw=False``: only the paths (the texts'
    links), drawing nothing, for a rebuild of the texts when the figures are current."""
    out_dir = plot_dir / section.slug
    figures: dict[str, tuple[Path, Callable[[Path], Path]]] = {}
    for dataset, rows in section.rows.items():
        name = _file_name(dataset)
        figures[f"scores: {dataset}"] = (
            out_dir / f"scores-{name}.png",
            functools.partial(_scores, section, rows, colours),
        )
        if any(r.curve for r in rows):
            figures[f"training curves: {dataset}"] = (
                out_dir / f"curves-{name}.png",
                functools.partial(_curves, dataset, rows, colours),
            )
        swept = _swept(rows)
        if swept:
            figures[f"score vs hyperparameter: {dataset}"] = (
                out_dir / f"hparams-{name}.png",
                functools.partial(_sweeps, section, dataset, rows, swept, colours),
            )
    scores = _score_table(section)
    if scores is not None:
        figures["metric rank correlation"] = (
            out_dir / "metric-correlation.png",
            functools.partial(_correlation, section, *scores),
        )
    if draw:
        out_dir.mkdir(parents=True, exist_ok=True)
        for path, drawer in figures.values():
            drawer(path)
    return {name: path for name, (path, _) in figures.items()}


def _file_name(dataset: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in dataset)


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.savefig(path, dpi=80, metadata=_META)
    plt.close(fig)
    return path


def _scores(
    section: Section, rows: list[Row], colours: dict[str, tuple[float, ...]], path: Path
) -> Path:
    metrics = [m for m in section.metrics if any(m in r.values for r in rows)]
    cols = min(3, len(metrics))
    nrows = -(-len(metrics) // cols)
    height = 0.35 * len(rows) + 1.2
    fig, axes = plt.subplots(nrows, cols, figsize=(4.6 * cols, height * nrows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        scored = [(i, row) for i, row in enumerate(rows) if row.values.get(metric)]
        ax.boxplot(
            [row.values[metric] for _, row in scored],
            positions=[i for i, _ in scored],
            orientation="horizontal",
            widths=0.6,
        )
        dots = [(v, i, colours[row.method]) for i, row in scored for v in row.values[metric]]
        x, y, c = zip(*dots, strict=True)
        ax.scatter(x, y, s=14, c=list(c), zorder=3)
        ax.set_yticks(range(len(rows)), [r.label for r in rows], fontsize=7)
        ax.invert_yaxis()
        ranked = " (ranked)" if metric in section.ranked else ""
        ax.set_title(f"{metric}.{section.keys[metric]}{ranked}", fontsize=9)
        ax.set_xlabel("score (one dot per seed)", fontsize=8)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    fig.suptitle(f"{section.title}: {rows[0].dataset}, scores per setting over seeds", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _curves(
    dataset: str, rows: list[Row], colours: dict[str, tuple[float, ...]], path: Path
) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for row in rows:
        if row.curve:
            steps, losses = zip(*row.curve, strict=True)
            ax.plot(steps, losses, label=row.label, color=colours[row.method], linewidth=1.3)
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("training loss (median over seeds, log scale)")
    ax.set_title(f"{dataset}: training curves", fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return _save(fig, path)


def _swept(rows: list[Row]) -> dict[str, list[Row]]:
    """method -> its rows, for methods whose rows differ in one numeric hyperparameter."""
    by_method: dict[str, list[Row]] = {}
    for row in rows:
        by_method.setdefault(row.method, []).append(row)
    return {m: rs for m, rs in by_method.items() if len(rs) > 1 and _varying_param(rs) is not None}


def _varying_param(rows: list[Row]) -> str | None:
    hps = [r.records[0]["spec"]["hparams"] for r in rows]
    varying = [k for k in sorted(hps[0]) if len({json.dumps(h.get(k)) for h in hps}) > 1]
    if len(varying) == 1 and all(isinstance(h.get(varying[0]), int | float) for h in hps):
        return varying[0]
    return None


def _sweeps(
    section: Section,
    dataset: str,
    rows: list[Row],
    swept: dict[str, list[Row]],
    colours: dict[str, tuple[float, ...]],
    path: Path,
) -> Path:
    metrics = section.ranked or section.metrics[:4]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for method, method_rows in swept.items():
            param = _varying_param(method_rows)
            points = sorted(
                (r.records[0]["spec"]["hparams"][param], r.median(metric))
                for r in method_rows
                if r.median(metric) is not None
            )
            if points:
                x, y = zip(*points, strict=True)
                ax.plot(x, y, "o-", color=colours[method], label=f"{method} ({param})")
        ax.set_xscale("log")
        ax.set_xlabel("hyperparameter value (log scale)")
        ax.set_ylabel(f"{metric}.{section.keys.get(metric, '')} (median)")
        ax.legend(fontsize=7)
    fig.suptitle(f"{dataset}: score against the swept hyperparameter", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _score_table(section: Section) -> tuple[pd.DataFrame, list[str]] | None:
    """Every model's primary scores and the metrics to correlate (None: too few of either)."""
    table = pd.DataFrame(
        [
            {m: r["scores"][m][k] for m, k in section.keys.items() if k in r["scores"].get(m, {})}
            for rows in section.rows.values()
            for row in rows
            for r in row.ok
        ]
    )
    metrics = [m for m in section.metrics if m in table]
    if len(metrics) < 2 or len(table) < 3:
        return None
    return table, metrics


def _correlation(section: Section, table: pd.DataFrame, metrics: list[str], path: Path) -> Path:
    """Spearman correlation between the metrics' primary scores over every model."""
    corr = table[metrics].corr(method="spearman").to_numpy()
    fig, ax = plt.subplots(figsize=(1.0 * len(metrics) + 2.5, 1.0 * len(metrics) + 1.5))
    image = ax.imshow(corr, cmap="RdBu", vmin=-1, vmax=1)
    ax.set_xticks(range(len(metrics)), metrics, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(metrics)), metrics, fontsize=8)
    for i in range(len(metrics)):
        for j in range(len(metrics)):
            if np.isfinite(corr[i, j]):
                ax.text(j, i, f"{corr[i, j]:.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(image, ax=ax, label="Spearman rank correlation")
    ax.set_title(f"{section.title}: metrics over {len(table)} models", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
