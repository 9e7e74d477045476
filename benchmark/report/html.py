"""``results/leaderboard.html``: the same sections as one self-contained page (inline CSS
and JS, no network), with sortable tables, the plots and the traversals linked relatively."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from disbench.report.markdown import cell, column, rel, significance_lines
from disbench.report.pooling import Section
from disbench.report.wording import LEGEND, rank_definition, rebuilt_methods, study_header
from disbench.run.schema import Record

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("disbench.report", "."),
    autoescape=True,
    keep_trailing_newline=True,
)


def write_html(
    sections: list[Section],
    records: list[Record],
    plots: dict[str, dict[str, Path]],
    root: Path,
    path: Path,
) -> str:
    base = path.parent
    context = {
        "legend": LEGEND,
        "sections": [_section(s, plots.get(s.slug, {}), root, base) for s in sections],
        "failed": [
            {
                "id": r["id"],
                "profile": r.get("profile", ""),
                "method": r["spec"]["method"],
                "dataset": r.get("dataset_label", ""),
                "seed": r["spec"]["seed"],
                "error": (r.get("error") or "")[:300],
            }
            for r in records
            if r["status"] != "ok"
        ],
    }
    return _ENV.get_template("leaderboard.html.j2").render(**context)


def _section(section: Section, plots: dict[str, Path], root: Path, base: Path) -> dict[str, Any]:
    datasets = []
    for dataset, rows in section.rows.items():
        table_rows = []
        for row in rows:
            rank = section.ranks.get((dataset, row.label))
            cells = []
            for metric in section.metrics:
                median = row.median(metric)
                sort = "" if median is None else repr(float(np.round(median, 12)))
                cells.append({"text": cell(row, metric, section, dataset), "sort": sort})
            table_rows.append(
                {
                    "rank": f"{rank:.2f}" if rank is not None else "-",
                    "rank_sort": "" if rank is None else repr(rank),
                    "label": row.label,
                    "marks": row.mark_text(),
                    "n": row.n,
                    "cells": cells,
                    "traversal": rel(root / row.traversal, base) if row.traversal else None,
                    "transfer": rel(root / row.transfer_grid, base) if row.transfer_grid else None,
                }
            )
        datasets.append(
            {
                "name": dataset,
                "anchor": "".join(c if c.isalnum() else "-" for c in dataset),
                "kind": rows[0].kind or "unknown kind",
                "columns": [column(section, m) for m in section.metrics],
                "rows": table_rows,
                "rank_definition": rank_definition(section),
                "rebuilt": "; ".join(rebuilt_methods(section)),
                "significance": "; ".join(significance_lines(section, dataset)),
            }
        )
    return {
        "slug": section.slug,
        "title": section.title,
        "header": study_header(section),
        "datasets": datasets,
        "plots": [(name, rel(p, base)) for name, p in plots.items()],
    }
