"""``leaderboard.md``: a section per study, a table per dataset, every caveat marked."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from disbench.report.pooling import Row, Section
from disbench.report.wording import (
    LEGEND,
    paper_results,
    rank_definition,
    rebuilt_methods,
    study_header,
)
from disbench.run.schema import Record


def rel(path: Path, start: Path) -> str:
    return os.path.relpath(path, start).replace(os.sep, "/")


def cell(row: Row, metric: str, section: Section, dataset: str) -> str:
    """``median [q25, q75]`` at the digits the metric supports, with its cell marks."""
    vals = row.values.get(metric)
    if not vals:
        return "-"
    d = section.decimals.get(metric, 3)
    q25, med, q75 = np.percentile(vals, [25, 50, 75])
    text = f"{med:.{d}f} [{q25:.{d}f}, {q75:.{d}f}]"
    if metric in row.no_active:
        text += f" Z{row.no_active[metric]}"
    sig = section.significance.get((dataset, metric))
    if sig is not None and sig.significant and sig.best == row.label:
        text += " *"
    return text


def column(section: Section, metric: str) -> str:
    return f"{metric}.{section.keys[metric]}" + (" ~" if metric in section.approximate else "")


def significance_lines(section: Section, dataset: str) -> list[str]:
    out = []
    for metric in section.ranked:
        sig = section.significance.get((dataset, metric))
        if sig is None:
            continue
        verdict = "beyond seed noise (*)" if sig.significant else "within seed noise"
        out.append(
            f"{metric}: {sig.best} vs {sig.runner_up}, difference of medians 95% interval "
            f"[{sig.low:.3f}, {sig.high:.3f}]: {verdict}"
        )
    return out


def write_markdown(
    sections: list[Section],
    records: list[Record],
    plots: dict[str, dict[str, Path]],
    root: Path,
    path: Path,
    claims: Path | None = None,
) -> str:
    base = path.parent
    lines = [
        "# disbench leaderboard",
        "",
        f"Written by `disbench report` from the run records under `{rel(root / 'runs', base)}/`; "
        "do not edit by hand. A section per study (one profile under one evaluation); a row "
        "pools runs that differ in their seed alone, so n counts seeds. Cells: median over "
        "seeds [interquartile range] of the metric's primary score, to the digits it "
        "resolves. Procedural datasets are disbench's recreations, not the published files. "
        f"The same report as a page: [{rel(root / 'leaderboard.html', base)}]"
        f"({rel(root / 'leaderboard.html', base)}).",
        "",
        "Marks: " + "; ".join(f"**{k}** {v}" for k, v in LEGEND.items()) + ".",
        "",
    ]
    if claims is not None:
        link = rel(claims, base)
        lines += [f"Do the papers' claims hold? Tested, with verdicts: [{link}]({link}).", ""]
    for section in sections:
        lines += [f"## Study: {section.title}", ""]
        lines += [f"- {line}" for line in study_header(section)] + [""]
        links = plots.get(section.slug, {})
        if links:
            lines += ["Plots: " + ", ".join(f"[{n}]({rel(p, base)})" for n, p in links.items()), ""]
        for dataset, rows in section.rows.items():
            kind = rows[0].kind or "unknown kind"
            header = ["rank", "setting", "n"] + [column(section, m) for m in section.metrics]
            header.append("traversal")
            lines += [f"### {dataset} ({kind})", ""]
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            for row in rows:
                rank = section.ranks.get((dataset, row.label))
                marks = row.mark_text()
                cells = [
                    f"{rank:.2f}" if rank is not None else "-",
                    row.label + (f" [{marks}]" if marks else ""),
                    str(row.n),
                ]
                cells += [cell(row, m, section, dataset) for m in section.metrics]
                images = [
                    f"[{label}]({rel(root / path, base)})"
                    for label, path in (("png", row.traversal), ("transfer", row.transfer_grid))
                    if path
                ]
                cells.append(" ".join(images))
                lines.append("| " + " | ".join(cells) + " |")
            lines += ["", rank_definition(section)]
            rebuilt = rebuilt_methods(section)
            if rebuilt:
                lines += ["", "PR (no reference code): " + "; ".join(rebuilt) + "."]
            sig = significance_lines(section, dataset)
            if sig:
                lines += ["", "Best against runner-up: " + "; ".join(sig) + "."]
            lines.append("")
    lines += _failures(records)
    lines += _paper_section(records)
    return "\n".join(lines).rstrip() + "\n"


def _failures(records: list[Record]) -> list[str]:
    failed = [r for r in records if r["status"] != "ok"]
    degenerate = [(r, m, e) for r in records for m, e in sorted(r.get("metric_errors", {}).items())]
    lines = []
    if failed:
        lines += [
            "## Failed runs",
            "",
            "| run | profile | method | dataset | seed | error |",
            "|---|---|---|---|---|---|",
        ]
        for r in failed:
            err = (r.get("error") or "").replace("|", "/").replace("\n", " ")[:160]
            lines.append(
                f"| {r['id']} | {r.get('profile', '')} | {r['spec']['method']} | "
                f"{r.get('dataset_label')} | {r['spec']['seed']} | {err} |"
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


def _paper_section(records: list[Record]) -> list[str]:
    results = paper_results(records)
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
    for method, numbers in results.items():
        for res in numbers:
            lines.append(
                f"| {method} | {res['dataset']} | {res['metric']} | {res['value']} "
                f"| {res['source']} |"
            )
    return lines + [""]
