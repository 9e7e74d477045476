"""What the leaderboard says in words: the legend, each study's header lines, the rank's
definition, the rebuilt methods and the papers' own numbers, all from the records."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from disbench.report.pooling import Section
from disbench.report.stats import BOOTSTRAP_RESAMPLES
from disbench.run.schema import PaperResultFacts, Record

PUBLISHED_STEPS, PUBLISHED_BATCH = 300_000, 64  # Locatello et al. 2019's training budget

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


def budget_lines(records: list[Record]) -> list[str]:
    """Each training budget of the study, with the methods that got it."""
    by_budget: dict[tuple[int, int], set[str]] = defaultdict(set)
    untrained: set[str] = set()
    for rec in records:
        method = rec["spec"]["method"]
        if rec["method"].get("framework") == "numpy":
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
    """The lines above a study's tables: runs, budget, settings, caveats, machine, code."""
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
        defaults = section.facts[metric]["defaults"] if metric in section.facts else {}
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
        r["spec"]["method"]: r["method"].get("description", "")
        for r in section.records
        if r["method"].get("reference_code") is False
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


def paper_results(records: list[Record]) -> dict[str, list[PaperResultFacts]]:
    """Per method (by name), the numbers its paper reports, as its newest record states them."""
    newest: dict[str, Record] = {}
    for rec in sorted(records, key=lambda r: (r.get("created", ""), r["id"])):
        newest[rec["spec"]["method"]] = rec
    return {
        name: list(rec["method"].get("paper_results", []))
        for name, rec in sorted(newest.items())
        if rec["method"].get("paper_results")
    }
