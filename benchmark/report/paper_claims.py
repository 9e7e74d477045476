"""``docs/claims.md``: what each paper claims, what disbench measured, and a verdict.

Written from the run records of the ``claims`` profile alone (and of the ``published``
profile, when someone has run it): the same records give the same bytes. Nothing on the page
is typed by hand except each claim's wording, the paper's number with its source, and the
rule that turns measurements into a verdict; every measurement is computed here.

The verdict rule, the same for every claim: a comparison "A above B" holds when A's median
over seeds is above B's and their interquartile ranges do not overlap (A's lower quartile
above B's upper quartile); a level ("near 1") holds when the lower quartile reaches it. A
claim is reproduced when every one of its checks holds, not reproduced when one fails, and
not testable here when its runs are missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from disbench.registry import METHODS, METRICS
from disbench.report.sections import Section, sections, study_header
from disbench.run.study import load_profile

CLAIMS_PROFILE = "claims"
PUBLISHED_PROFILE = "published"
NEAR_ONE = 0.9  # "MCC near 1": the lower quartile over seeds reaches this
ISO = "isometric_manifold(distribution={})"
ISO3 = "isometric_manifold(distribution={},num_factors=3)"
# Locatello et al.'s six scores, by metric and primary key.
SIX = {
    "beta_vae": "eval_accuracy",
    "factor_vae": "eval_accuracy",
    "mig": "discrete_mig",
    "dci": "disentanglement",
    "modularity_explicitness": "modularity_score",
    "sap_score": "SAP_score",
}
PRIMARY_FOUR = ("mig", "dci", "factor_vae", "sap_score")


@dataclass(frozen=True)
class Select:
    """Runs of one method (with the given hyperparameters) on one dataset, one per seed."""

    method: str
    dataset: str
    hparams: tuple[tuple[str, Any], ...] = ()
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or self.method


@dataclass
class Finding:
    """A claim's checks (each with whether it holds) and the tables that show its numbers."""

    checks: list[tuple[str, bool | None]] = field(default_factory=list)  # None: runs missing
    tables: list[list[str]] = field(default_factory=list)  # markdown lines

    @property
    def verdict(self) -> str:
        if not self.checks or any(ok is None for _, ok in self.checks):
            return "not testable here: runs missing (see the checks)"
        if all(ok for _, ok in self.checks):
            return "reproduced"
        return "not reproduced"


class Runs:
    """The ok records of one profile, looked up by method, dataset and hyperparameters."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = [r for r in records if r["status"] == "ok"]

    def pick(self, sel: Select) -> list[dict[str, Any]]:
        return sorted(
            (
                r
                for r in self.records
                if r["spec"]["method"] == sel.method
                and r.get("dataset_label", r["spec"]["dataset"]["name"]) == sel.dataset
                and all(r["spec"]["hparams"].get(k) == v for k, v in sel.hparams)
            ),
            key=lambda r: r["spec"]["seed"],
        )

    def scores(self, sel: Select, metric: str, key: str) -> list[float]:
        return [r["scores"][metric][key] for r in self.pick(sel) if metric in r["scores"]]

    def losses(self, sel: Select, term: str) -> list[float]:
        return [r["info"]["final_losses"][term] for r in self.pick(sel)]


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q25, med, q75 = np.percentile(values, [25, 50, 75])
    return float(q25), float(med), float(q75)


def spread(values: list[float]) -> str:
    """``median [q25, q75] (n)``, or ``no runs``."""
    if not values:
        return "no runs"
    q25, med, q75 = quartiles(values)
    return f"{med:.3f} [{q25:.3f}, {q75:.3f}] (n={len(values)})"


def above(a: list[float], b: list[float]) -> bool | None:
    """A above B: medians ordered and interquartile ranges apart (None: runs missing)."""
    if len(a) < 2 or len(b) < 2:
        return None
    (a25, a50, _), (_, b50, b75) = quartiles(a), quartiles(b)
    return a50 > b50 and a25 > b75


def at_least(a: list[float], level: float) -> bool | None:
    return None if len(a) < 2 else quartiles(a)[0] >= level


def yes(ok: bool | None) -> str:
    return {True: "holds", False: "fails", None: "runs missing"}[ok]


# ----- Horan, Richardson & Weiss 2021 ------------------------------------------------------

HLLE = "hlle_ica"
LI_AE = Select("li_ae", "", (("li_weight", 1000.0),), "li_ae")
LI_OFF = Select("li_ae", "", (("li_weight", 0.0),), "li_ae, li_weight = 0")
BASELINES = (
    Select("ae", "", (), "ae"),
    Select("irmae", "", (("ica", True),), "irmae + ICA"),
    Select("beta_vae", "", (("beta", 0.1),), "beta_vae, beta = 0.1"),
)
HORAN_DATASETS = [ISO.format(d) for d in ("uniform", "nonuniform", "gaussian", "correlated")]
HORAN_DATASETS.append("blobs")


def on(sel: Select | str, dataset: str) -> Select:
    if isinstance(sel, str):
        return Select(sel, dataset)
    return Select(sel.method, dataset, sel.hparams, sel.label)


def mcc(runs: Runs, sel: Select) -> list[float]:
    return runs.scores(sel, "mcc", "MCC")


def horan_recovery(runs: Runs) -> Finding:
    found = Finding()
    for dataset in (ISO.format("uniform"), ISO.format("nonuniform"), ISO3.format("uniform")):
        values = mcc(runs, on(HLLE, dataset))
        ok = at_least(values, NEAR_ONE)
        found.checks.append(
            (f"hlle_ica on {dataset}: MCC {spread(values)}; lower quartile >= {NEAR_ONE}", ok)
        )
    return found


def horan_gaussian(runs: Runs) -> Finding:
    found = Finding()
    for template in (ISO, ISO3):
        uniform = mcc(runs, on(HLLE, template.format("uniform")))
        gaussian = mcc(runs, on(HLLE, template.format("gaussian")))
        found.checks.append(
            (
                f"hlle_ica: {template.format('uniform')} MCC {spread(uniform)} above "
                f"{template.format('gaussian')} MCC {spread(gaussian)}",
                above(uniform, gaussian),
            )
        )
    return found


def horan_baselines(runs: Runs) -> Finding:
    found = Finding()
    for dataset in (ISO.format("uniform"), ISO.format("nonuniform")):
        hlle = mcc(runs, on(HLLE, dataset))
        for base in BASELINES:
            values = mcc(runs, on(base, dataset))
            found.checks.append(
                (
                    f"{dataset}: hlle_ica MCC {spread(hlle)} above {base.name} {spread(values)}",
                    above(hlle, values),
                )
            )
    return found


def horan_isometry_helps(runs: Runs) -> Finding:
    found = Finding()
    for dataset in (ISO.format("uniform"), ISO.format("nonuniform")):
        li, off = mcc(runs, on(LI_AE, dataset)), mcc(runs, on(LI_OFF, dataset))
        found.checks.append(
            (
                f"{dataset}: li_ae MCC {spread(li)} above its control (li_weight = 0, the same "
                f"budget) {spread(off)}",
                above(li, off),
            )
        )
    return found


def horan_table(runs: Runs) -> list[str]:
    """MCC and LI of every Horan-part method on every dataset (median [IQR] over seeds)."""
    methods: list[Select | str] = [HLLE, LI_AE, LI_OFF, *BASELINES]
    datasets = [*HORAN_DATASETS, ISO3.format("uniform"), ISO3.format("gaussian")]
    lines = [
        "| dataset | method | MCC | LI |",
        "|---|---|---|---|",
    ]
    for dataset in datasets:
        for method in methods:
            sel = on(method, dataset)
            if not runs.pick(sel):
                continue
            li = runs.scores(sel, "local_isometry", "LI")
            lines.append(f"| {dataset} | {sel.name} | {spread(mcc(runs, sel))} | {spread(li)} |")
    return lines


# ----- Locatello et al. 2019 ---------------------------------------------------------------

DSPRITES = "proc_dsprites"
BETAS = (1.0, 2.0, 4.0, 8.0, 16.0)


def beta_sel(beta: float) -> Select:
    return Select("beta_vae", DSPRITES, (("beta", beta),))


def locatello_beta(runs: Runs) -> Finding:
    found = Finding()
    table = ["| beta | KL | reconstruction |", "|---|---|---|"]
    for beta in BETAS:
        sel = beta_sel(beta)
        kl, rec = runs.losses(sel, "kl"), runs.losses(sel, "reconstruction")
        table.append(f"| {beta:g} | {spread(kl)} | {spread(rec)} |")
    found.tables.append(table)
    for term, word, larger_first in (("kl", "KL", True), ("reconstruction", "error", False)):
        series = [runs.losses(beta_sel(b), term) for b in BETAS]
        if any(len(s) < 2 for s in series):
            found.checks.append((f"{word} against beta", None))
            continue
        medians = [quartiles(s)[1] for s in series]
        steps = zip(medians, medians[1:], strict=False)
        monotone = all((a > b) if larger_first else (a < b) for a, b in steps)
        found.checks.append(
            (
                f"{word} medians {'fall' if larger_first else 'rise'} at every step of beta "
                f"{', '.join(f'{b:g}' for b in BETAS)}",
                monotone,
            )
        )
        first, last = series[0], series[-1]
        apart = above(first, last) if larger_first else above(last, first)
        found.checks.append(
            (
                f"{word} at beta {BETAS[0]:g} and beta {BETAS[-1]:g}: interquartile ranges apart",
                apart,
            )
        )
    return found


def dsprites_models(runs: Runs) -> list[dict[str, Any]]:
    """Every model of the Locatello part: VAE-family runs on proc_dsprites scored by the six."""
    return [
        r
        for r in runs.records
        if r.get("dataset_label") == DSPRITES and all(m in r["scores"] for m in SIX)
    ]


def eta_squared(values: np.ndarray, groups: list[str]) -> float:
    """Share of the variance explained by the group (between-group sum of squares / total)."""
    total = float(((values - values.mean()) ** 2).sum())
    between = sum(
        len(v) * (v.mean() - values.mean()) ** 2
        for v in (values[[g == name for g in groups]] for name in sorted(set(groups)))
    )
    return float(between / total) if total > 0 else 0.0


def locatello_seeds(runs: Runs) -> Finding:
    found = Finding()
    models = dsprites_models(runs)
    methods = [r["spec"]["method"] for r in models]
    if len(set(methods)) < 2:
        found.checks.append(("models of at least two methods on proc_dsprites", None))
        return found
    table = ["| metric | share of variance explained by the method (eta^2) |", "|---|---|"]
    shares = []
    for metric in PRIMARY_FOUR:
        values = np.array([r["scores"][metric][SIX[metric]] for r in models])
        share = eta_squared(values, methods)
        shares.append(share)
        table.append(f"| {metric} | {share:.3f} |")
    found.tables.append(table)
    below = sum(s < 0.5 for s in shares)
    found.checks.append(
        (
            f"over {len(models)} models of {len(set(methods))} methods (seeds x settings), "
            f"the method explains under half the variance for at least 3 of the 4 primary "
            f"scores: {below} of 4",
            below >= 3,
        )
    )
    return found


def locatello_agreement(runs: Runs) -> Finding:
    found = Finding()
    models = dsprites_models(runs)
    if len(models) < 5:
        found.checks.append(("at least 5 models scored by all six metrics", None))
        return found
    names = list(SIX)
    data = np.array([[r["scores"][m][SIX[m]] for m in names] for r in models])
    rho = spearmanr(data).statistic
    table = ["| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for i, name in enumerate(names):
        table.append(
            f"| {name} | " + " | ".join(f"{rho[i, j]:.2f}" for j in range(len(names))) + " |"
        )
    found.tables.append(table)
    others = [i for i, n in enumerate(names) if n != "modularity_explicitness"]
    mod = names.index("modularity_explicitness")
    pairs = [rho[i, j] for i in others for j in others if i < j]
    agree = float(np.median(pairs))
    with_mod = float(np.median([rho[mod, i] for i in others]))
    found.checks.append(
        (
            f"over {len(models)} models: median Spearman correlation among the five metrics other "
            f"than Modularity {agree:.2f} >= 0.5",
            agree >= 0.5,
        )
    )
    found.checks.append(
        (f"Modularity's median correlation with them {with_mod:.2f} is lower", with_mod < agree)
    )
    return found


# ----- the claims ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    paper: str
    statement: str
    paper_number: str
    test: Callable[[Runs], Finding]


HORAN = 'Horan, Richardson & Weiss 2021 (NeurIPS), "When Is Unsupervised Disentanglement Possible?"'
LOCATELLO = (
    'Locatello et al. 2019 (ICML), "Challenging Common Assumptions in the Unsupervised '
    'Learning of Disentangled Representations"'
)
CLAIMS = (
    Claim(
        HORAN,
        "(a) Local isometry plus independent non-Gaussian factors make the factors "
        "recoverable, and HLLE + ICA recovers them (MCC near 1).",
        'Figure 1, manifold "cat1" (a GAN image manifold, 2 factors): HLLE+ICA MCC 0.96952, '
        "LI 0.68321.",
        horan_recovery,
    ),
    Claim(
        HORAN,
        "(b) With Gaussian factors ICA cannot undo the rotation, so recovery fails.",
        "none in the reachable text (the abstract and Figure 1).",
        horan_gaussian,
    ),
    Claim(
        HORAN,
        "(c) Baseline deep autoencoders (a plain AE, IRMAE, a VAE) do not recover them.",
        'Figure 1, "cat1": IRMAE MCC 0.39009, LI 0.12313 (against HLLE+ICA 0.96952, 0.68321).',
        horan_baselines,
    ),
    Claim(
        HORAN,
        "(d) Encouraging local isometry in an autoencoder helps it recover them.",
        "none in the reachable text; the loss disbench uses is its own reading "
        "(docs/methods-spectral.md).",
        horan_isometry_helps,
    ),
    Claim(
        LOCATELLO,
        "(a) Increasing beta lowers the KL and raises the reconstruction error.",
        "no table (box plots); the claim is qualitative.",
        locatello_beta,
    ),
    Claim(
        LOCATELLO,
        "(b) The random seed and the hyperparameters matter more than the method for the "
        "disentanglement scores.",
        "no table; the claim is qualitative.",
        locatello_seeds,
    ),
    Claim(
        LOCATELLO,
        "(c) Most disentanglement metrics agree with each other (rank correlation), "
        "Modularity less so.",
        "rank-correlation figures; no number reachable here.",
        locatello_agreement,
    ),
)
# The published-data claims: (method, its paper and table, the datasets of that table).
PUBLISHED = (
    (
        "disdiff",
        "Yang et al. 2023 (NeurIPS), DisDiff, Table 1",
        ("shapes3d", "mpi3d_toy", "cars3d"),
    ),
    ("dot_vae", "Patil, Evanusa & JaJa, DOT-VAE (OAT text), Table 1", ("dsprites",)),
)
PUBLISHED_TOLERANCE = 0.05


def published_lines(records: list[dict[str, Any]]) -> list[str]:
    runs = Runs(current(records, PUBLISHED_PROFILE))
    lines = []
    for method, source, datasets in PUBLISHED:
        if method not in METHODS:
            continue
        results = [p for p in METHODS.get(method).paper_results if p.dataset in datasets]
        lines += [f"### {method}: {source}", ""]
        lines += ["| dataset | metric | paper | disbench | verdict |", "|---|---|---|---|---|"]
        for res in results:
            key = METRICS.get(res.metric).primary
            ours = runs.scores(Select(method, res.dataset), res.metric, key)
            if len(ours) < 2:
                verdict = "not testable here: needs the published files and a GPU"
            else:
                holds = quartiles(ours)[1] >= res.value - PUBLISHED_TOLERANCE
                verdict = "reproduced" if holds else "not reproduced"
            lines.append(
                f"| {res.dataset} | {res.metric} | {res.value:g} ({res.source}) | "
                f"{spread(ours)} | {verdict} |"
            )
        lines.append("")
    return lines


def current(records: list[dict[str, Any]], profile: str) -> list[dict[str, Any]]:
    """The records of the built-in ``profile`` as it stands: a run of an older version of it,
    or of a ``--set`` variant, is not pooled with the runs the claims are about."""
    ids = {run.id for run in load_profile(profile).runs}
    return [r for r in records if r.get("profile") == profile and r["id"] in ids]


def study_duration(records: list[dict[str, Any]]) -> str:
    """Wall time from the first run's start to the last run's end, and the summed run times."""
    ends = [datetime.fromisoformat(r["created"]) for r in records]
    starts = [e.timestamp() - r["timings"]["total_s"] for e, r in zip(ends, records, strict=True)]
    wall = max(e.timestamp() for e in ends) - min(starts)
    busy = sum(r["timings"]["total_s"] for r in records)
    return (
        f"{wall / 60:.0f} min from the first run's start to the last run's end "
        f"({busy / 60:.0f} min of run time over {len(records)} runs, summed over the workers)"
    )


def merged_section(records: list[dict[str, Any]]) -> Section:
    """The whole profile as one section: its per-method metrics split it into several
    studies on the leaderboard, but the claims page states one header for all its runs."""
    parts = sections(records)
    merged = replace(parts[0], records=records, metrics=[], settings={}, approximate={})
    for part in parts:
        merged.metrics += [m for m in part.metrics if m not in merged.metrics]
        merged.settings.update(part.settings)
        merged.approximate.update(part.approximate)
    return merged


def write_claims(records: list[dict[str, Any]]) -> str | None:
    """The page's markdown, or None when there are no ``claims`` records."""
    mine = current(records, CLAIMS_PROFILE)
    if not mine:
        return None
    runs = Runs(mine)
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
    for claim in CLAIMS:
        found = claim.test(runs)
        lines += [
            f"## {claim.paper}: {claim.statement}",
            "",
            f"- Paper's number: {claim.paper_number}",
            f"- Verdict: **{found.verdict}**",
            "",
        ]
        lines += [f"- {yes(ok)}: {text}" for text, ok in found.checks] + [""]
        for table in found.tables:
            lines += [*table, ""]
    lines += [
        "## Horan et al.: every measurement",
        "",
        "MCC (mean absolute correlation of matched codes and factors) and LI (local isometry, "
        "disbench's definition: docs/metrics.md; 1 = neighbour distances kept up to one scale). "
        "The paper's LI formula is not reachable, so its 0.683 / 0.123 are not on this scale.",
        "",
        *horan_table(runs),
        "",
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
