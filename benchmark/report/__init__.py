"""The report: ``scores.csv``, plots, ``leaderboard.md`` and ``leaderboard.html``, rebuilt
from the run records alone. The same records give byte-identical markdown and HTML.

:mod:`.pooling` decides what a cell may pool and carries each metric's facts as the
records state them, :mod:`.stats` ranks and tests, :mod:`.wording` says it; :mod:`.plots`,
:mod:`.markdown` and :mod:`.html` only present it. Nothing here imports the registry: a
report rebuilt after a code change still says what its records say (the papers' claims
page, :mod:`disbench.papers`, likewise).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from disbench.report.html import write_html
from disbench.report.markdown import write_markdown
from disbench.report.plots import method_colours, write_section_plots
from disbench.report.pooling import Section, check_facts, sections
from disbench.run.schema import Record
from disbench.run.store import ResultsStore, atomic_write_text

__all__ = ["build_report", "tidy_scores"]


def tidy_scores(records: Iterable[Record], studies: list[Section]) -> pd.DataFrame:
    """One row per run x score (failed runs appear once, with no metric), with the study
    and the row label the leaderboard pools it under."""
    where = {
        r["id"]: (s.title, row.label)
        for s in studies
        for rows in s.rows.values()
        for row in rows
        for r in row.records
    }
    rows = []
    for rec in records:
        if rec["id"] not in where:
            continue
        spec = rec["spec"]
        study, label = where[rec["id"]]
        base = {
            "run_id": rec["id"],
            "study": study,
            "profile": rec.get("profile", ""),
            "dataset": rec.get("dataset_label", spec["dataset"]["name"]),
            "dataset_kind": rec.get("dataset", {}).get("kind", ""),
            "method": spec["method"],
            "setting": label,
            "hparams": json.dumps(spec["hparams"], sort_keys=True),
            "seed": spec["seed"],
            "status": rec["status"],
        }
        scores = rec.get("scores", {}) if rec["status"] == "ok" else {}
        if not scores:
            rows.append({**base, "metric": None, "key": None, "value": np.nan, "primary": False})
        for metric, values in sorted(scores.items()):
            for key, value in sorted(values.items()):
                primary = rec.get("primary", {}).get(metric) == key
                rows.append(
                    {**base, "metric": metric, "key": key, "value": value, "primary": primary}
                )
    return pd.DataFrame(rows, columns=[*base_columns(), "metric", "key", "value", "primary"])


def base_columns() -> list[str]:
    return [
        "run_id",
        "study",
        "profile",
        "dataset",
        "dataset_kind",
        "method",
        "setting",
        "hparams",
        "seed",
        "status",
    ]


def build_report(
    out: Path,
    leaderboard: Path,
    profile: str | None = None,
    claims: Path | None = None,
    figures: bool = True,
) -> dict[str, Path]:
    """Everything from ``<out>/runs/*.json`` (or one profile's runs); with ``claims``, also
    that page when the records hold runs of the ``claims`` profile. ``figures=False``
    rewrites the texts only (linking the figures where a full build writes them)."""
    # The claims page builds on this package's sections and header: imported here, not at
    # the top, so that either package can be imported first.
    from disbench.papers.page import write_claims

    store = ResultsStore(out)
    records, bad = store.scan()
    for path, why in bad:
        print(f"disbench report: {path}: {why}; left out", file=sys.stderr)
    if profile is not None:
        records = [r for r in records if r.get("profile") == profile]
    if not records:
        what = f"of profile {profile!r} " if profile else ""
        raise FileNotFoundError(
            f"no run records {what}under {store.runs_dir}; run `disbench run` first"
        )
    check_facts(records, out)
    studies = sections(records)
    csv_path = out / "scores.csv"
    atomic_write_text(csv_path, tidy_scores(records, studies).to_csv(index=False))
    colours = method_colours([r["spec"]["method"] for r in records])
    plots = {s.slug: write_section_plots(s, out / "plots", colours, figures) for s in studies}
    html_path = out / "leaderboard.html"
    claims_text = write_claims(records) if claims is not None else None
    written: dict[str, Path] = {}
    if claims is not None and claims_text is not None:
        claims.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(claims, claims_text)
        written["claims"] = claims
    board = write_markdown(studies, records, plots, out, leaderboard, written.get("claims"))
    atomic_write_text(leaderboard, board)
    atomic_write_text(html_path, write_html(studies, records, plots, out, html_path))
    figures = {f"{s}: {name}": p for s, named in plots.items() for name, p in named.items()}
    return {"scores": csv_path, "leaderboard": leaderboard, "html": html_path, **written, **figures}
