"""``docs/claims.md``: what each paper claims, what disbench measured, and a verdict.

Written from the run records alone (the ``claims`` profile's, and the ``published``
profile's when someone has run it): the same records give the same bytes. Nothing on the
page is typed by hand except what the papers' data files hold (each claim's wording, the
paper's number with its source, which runs it compares and the rule by name); every
measurement is computed by :mod:`.engine` and the papers' own rule modules.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from disbench.papers.engine import Runs, Select, load_paper, measurements, quartiles, spread, yes
from disbench.report.pooling import Section, missing, sections
from disbench.report.wording import paper_results, study_header
from disbench.run.schema import Record

CLAIMS_PROFILE = "claims"
PUBLISHED_PROFILE = "published"
# The papers whose claims the `claims` profile tests, and those with published-data claims,
# in page order (their data files: disbench/papers/<name>.toml).
CLAIM_PAPERS = ("horan2021", "locatello2019")
PUBLISHED_PAPERS = ("disdiff_yang2023", "dot_vae_patil")
PUBLISHED_TOLERANCE = 0.05  # reproduced: our median at least the paper's mean minus this


def current(records: list[Record], profile: str) -> list[Record]:
    """The records of the built-in ``profile`` as its newest record says the profile stood:
    a run of an older version of it, or of a ``--set`` variant, is not pooled with the runs
    the claims are about."""
    mine = [r for r in records if r.get("profile") == profile]
    listed = [r for r in mine if "profile_runs" in r.get("study", {})]
    if mine and not listed:
        raise missing(mine[0], "study profile_runs")
    if not listed:
        return []
    newest = max(listed, key=lambda r: (r.get("created", ""), r["id"]))
    ids = set(newest["study"]["profile_runs"])
    return [r for r in mine if r["id"] in ids]


def study_duration(records: list[Record]) -> str:
    """Wall time from the first run's start to the last run's end, and the summed run times."""
    ends = [datetime.fromisoformat(r["created"]) for r in records]
    starts = [e.timestamp() - r["timings"]["total_s"] for e, r in zip(ends, records, strict=True)]
    wall = max(e.timestamp() for e in ends) - min(starts)
    busy = sum(r["timings"]["total_s"] for r in records)
    return (
        f"{wall / 60:.0f} min from the first run's start to the last run's end "
        f"({busy / 60:.0f} min of run time over {len(records)} runs, summed over the workers)"
    )


def merged_section(records: list[Record]) -> Section:
    """The whole profile as one section: its per-method metrics split it into several
    studies on the leaderboard, but the claims page states one header for all its runs."""
    parts = sections(records)
    merged = replace(parts[0], records=records, metrics=[], settings={}, facts={}, approximate={})
    for part in parts:
        merged.metrics += [m for m in part.metrics if m not in merged.metrics]
        merged.settings.update(part.settings)
        merged.facts.update(part.facts)
        merged.approximate.update(part.approximate)
    return merged


def published_lines(records: list[Record]) -> list[str]:
    """A table per published-data paper: the paper's numbers (as the method's records carry
    them) against the `published` profile's runs."""
    numbers = paper_results(records)
    lines = []
    for name in PUBLISHED_PAPERS:
        paper = load_paper(name)
        runs = Runs(current(records, paper.data["profile"]))
        method = paper.data["method"]
        if method not in numbers:
            continue
        results = [p for p in numbers[method] if p["dataset"] in paper.data["datasets"]]
        lines += [f"### {method}: {paper.title}", ""]
        lines += ["| dataset | metric | paper | disbench | verdict |", "|---|---|---|---|---|"]
        for res in results:
            ours = runs.scores(Select(method, res["dataset"]), res["metric"])
            if len(ours) < 2:
                verdict = "not testable here: needs the published files and a GPU"
            else:
                holds = quartiles(ours)[1] >= res["value"] - PUBLISHED_TOLERANCE
                verdict = "reproduced" if holds else "not reproduced"
            lines.append(
                f"| {res['dataset']} | {res['metric']} | {res['value']:g} ({res['source']}) | "
                f"{spread(ours)} | {verdict} |"
            )
        lines.append("")
    return lines


def write_claims(records: list[Record]) -> str | None:
    """The page's markdown, or None when there are no ``claims`` records."""
    mine = current(records, CLAIMS_PROFILE)
    if not mine:
        return None
    header = study_header(merged_section(mine))
    lines = [
        "# Do the papers' claims hold?",
        "",
        "Written by `disbench report` from the records of the `claims` profile "
        "(`disbench run --profile claims`); do not edit by hand. Each claim: the paper's "
        "wording, its number where the reachable text gives one, what disbench measured "
        "(median [interquartile range] over seeds), and a verdict by one rule: a comparison "
        "\"A above B\" holds when A's median over seeds is above B's and their interquartile "
        "ranges do not overlap; a level holds when the lower quartile reaches it; a claim is "
        "reproduced when all its checks hold, not reproduced when one fails, not testable here "
        "when runs are missing. The datasets are procedural stand-ins (a translated blob is an "
        "exact local isometry: a best case for the theory), never the papers' own data, and the "
        "budgets are CPU-sized: a verdict here is about this setting, not a verdict on the paper.",
        "",
        f"- Duration: {study_duration(mine)}.",
        *[f"- {line}" for line in header],
        "",
    ]
    papers = [load_paper(name) for name in CLAIM_PAPERS]
    runs = {p.name: Runs(current(records, p.data["profile"])) for p in papers}
    for paper in papers:
        for claim in paper.data["claims"]:
            found = paper.judge(claim, runs[paper.name])
            lines += [
                f"## {paper.title}: {claim['statement']}",
                "",
                f"- Paper's number: {claim['paper_number']}",
                f"- Verdict: **{found.verdict}**",
                "",
            ]
            lines += [f"- {yes(ok)}: {text}" for text, ok in found.checks] + [""]
            for table in found.tables:
                lines += [*table, ""]
    for paper in papers:
        if "measurements" in paper.data:
            table = paper.data["measurements"]
            lines += [f"## {table['title']}", "", table["intro"], ""]
            lines += measurements(paper, runs[paper.name])
            lines.append("")
    lines += [
        "## Published-data claims",
        "",
        f"Their runs are the `{PUBLISHED_PROFILE}` profile (`disbench run --profile "
        f"{PUBLISHED_PROFILE} --data-dir DIR`, after `disbench datasets fetch NAME`). Verdict "
        f"when run: reproduced when our median is at least the paper's mean minus "
        f"{PUBLISHED_TOLERANCE}.",
        "",
        *published_lines(records),
    ]
    return "\n".join(lines).rstrip() + "\n"
