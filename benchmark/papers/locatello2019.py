"""Locatello et al. 2019's rules, whose logic is more than comparing two selections: a
trend over the beta sweep, the share of score variance the method explains, and the rank
agreement of the metrics. Their numbers (betas, thresholds, scores) are in
``locatello2019.toml``."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import spearmanr

from disbench.papers.engine import Finding, Paper, Rule, Runs, Select, above, quartiles, spread
from disbench.run.schema import Record


def beta_trend(paper: Paper, runs: Runs, claim: dict[str, Any]) -> Finding:
    """Each loss term moves the stated way at every step of the beta sweep, and its first
    and last betas are apart."""
    found = Finding()
    betas = claim["betas"]

    def sel(beta: float) -> Select:
        return Select(claim["method"], paper.data["dataset"], (("beta", beta),))

    terms = claim["terms"]
    table = ["| beta | " + " | ".join(t["column"] for t in terms) + " |"]
    table.append("|---|" + "---|" * len(terms))
    for beta in betas:
        cells = [spread(runs.losses(sel(beta), t["term"])) for t in terms]
        table.append(f"| {beta:g} | " + " | ".join(cells) + " |")
    found.tables.append(table)
    for t in terms:
        word, falls = t["word"], t["falls"]
        series = [runs.losses(sel(b), t["term"]) for b in betas]
        if any(len(s) < 2 for s in series):
            found.checks.append((f"{word} against beta", None))
            continue
        medians = [quartiles(s)[1] for s in series]
        steps = zip(medians, medians[1:], strict=False)
        monotone = all((a > b) if falls else (a < b) for a, b in steps)
        found.checks.append(
            (
                f"{word} medians {'fall' if falls else 'rise'} at every step of beta "
                f"{', '.join(f'{b:g}' for b in betas)}",
                monotone,
            )
        )
        first, last = series[0], series[-1]
        apart = above(first, last) if falls else above(last, first)
        found.checks.append(
            (
                f"{word} at beta {betas[0]:g} and beta {betas[-1]:g}: interquartile ranges apart",
                apart,
            )
        )
    return found


def models(paper: Paper, runs: Runs) -> list[Record]:
    """Every model of this part: runs on the paper's dataset scored by all six scores."""
    return [
        r
        for r in runs.records
        if r.get("dataset_label") == paper.data["dataset"]
        and all(m in r["scores"] for m in paper.data["scores"])
    ]


def eta_squared(values: np.ndarray, groups: list[str]) -> float:
    """Share of the variance explained by the group (between-group sum of squares / total)."""
    total = float(((values - values.mean()) ** 2).sum())
    between = sum(
        len(v) * (v.mean() - values.mean()) ** 2
        for v in (values[[g == name for g in groups]] for name in sorted(set(groups)))
    )
    return float(between / total) if total > 0 else 0.0


def method_share(paper: Paper, runs: Runs, claim: dict[str, Any]) -> Finding:
    """The method explains under ``share_below`` of the variance for ``at_least`` of the
    primary scores, over every model (seeds x settings)."""
    found = Finding()
    scored = models(paper, runs)
    methods = [r["spec"]["method"] for r in scored]
    if len(set(methods)) < 2:
        found.checks.append((f"models of at least two methods on {paper.data['dataset']}", None))
        return found
    keys = paper.data["scores"]
    table = ["| metric | share of variance explained by the method (eta^2) |", "|---|---|"]
    shares = []
    for metric in claim["metrics"]:
        values = np.array([r["scores"][metric][keys[metric]] for r in scored])
        share = eta_squared(values, methods)
        shares.append(share)
        table.append(f"| {metric} | {share:.3f} |")
    found.tables.append(table)
    below = sum(s < claim["share_below"] for s in shares)
    found.checks.append(
        (
            f"over {len(scored)} models of {len(set(methods))} methods (seeds x settings), "
            f"the method explains under half the variance for at least {claim['at_least']} of "
            f"the {len(shares)} primary scores: {below} of {len(shares)}",
            below >= claim["at_least"],
        )
    )
    return found


def metric_agreement(paper: Paper, runs: Runs, claim: dict[str, Any]) -> Finding:
    """The median Spearman correlation among the scores other than ``odd_one`` reaches
    ``agree_at_least``, and ``odd_one``'s median correlation with them is lower."""
    found = Finding()
    scored = models(paper, runs)
    if len(scored) < claim["min_models"]:
        needed = f"at least {claim['min_models']} models scored by all six metrics"
        found.checks.append((needed, None))
        return found
    keys = paper.data["scores"]
    names = list(keys)
    data = np.array([[r["scores"][m][keys[m]] for m in names] for r in scored])
    rho = spearmanr(data).statistic
    table = ["| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for i, name in enumerate(names):
        table.append(
            f"| {name} | " + " | ".join(f"{rho[i, j]:.2f}" for j in range(len(names))) + " |"
        )
    found.tables.append(table)
    others = [i for i, n in enumerate(names) if n != claim["odd_one"]]
    odd = names.index(claim["odd_one"])
    pairs = [rho[i, j] for i in others for j in others if i < j]
    agree = float(np.median(pairs))
    with_odd = float(np.median([rho[odd, i] for i in others]))
    level = claim["agree_at_least"]
    found.checks.append(
        (
            f"over {len(scored)} models: median Spearman correlation among the five metrics other "
            f"than Modularity {agree:.2f} >= {level}",
            agree >= level,
        )
    )
    found.checks.append(
        (f"Modularity's median correlation with them {with_odd:.2f} is lower", with_odd < agree)
    )
    return found


RULES: dict[str, Rule] = {
    "beta_trend": beta_trend,
    "method_share": method_share,
    "metric_agreement": metric_agreement,
}
