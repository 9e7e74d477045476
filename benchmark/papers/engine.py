"""The verdict engine: run selections, the one rule that turns seeds into a verdict, and the
generic checks a paper's data file names.

The rule, the same for every claim: a comparison "A above B" holds when A's median over
seeds is above B's and their interquartile ranges do not overlap (A's lower quartile above
B's upper quartile); a level ("near 1") holds when the lower quartile reaches it. A claim is
reproduced when every one of its checks holds, not reproduced when one fails, and not
testable here when its runs are missing.
"""

from __future__ import annotations

import importlib
import importlib.util
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np

from disbench.run.schema import Record


@dataclass(frozen=True)
class Select:
    """Runs of one method (with the given hyperparameters) on one dataset, one per seed."""

    method: str
    dataset: str = ""
    hparams: tuple[tuple[str, Any], ...] = ()
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or self.method

    def on(self, dataset: str) -> Select:
        return Select(self.method, dataset, self.hparams, self.label)


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

    def __init__(self, records: list[Record]) -> None:
        self.records = [r for r in records if r["status"] == "ok"]

    def pick(self, sel: Select) -> list[Record]:
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

    def scores(self, sel: Select, metric: str, key: str | None = None) -> list[float]:
        """``metric``'s ``key`` (default: the primary key each record names) per seed."""
        return [
            r["scores"][metric][key or r["primary"][metric]]
            for r in self.pick(sel)
            if metric in r["scores"]
        ]

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


# ----- a paper's data file -------------------------------------------------------------------


class PaperError(ValueError):
    """A paper's data file that the engine cannot use; the message names the file."""


Rule = Callable[["Paper", Runs, dict[str, Any]], Finding]


@dataclass(frozen=True)
class Paper:
    """One paper's data file (``disbench/papers/<name>.toml``) and its rules."""

    name: str
    data: dict[str, Any]
    rules: dict[str, Rule]

    @property
    def where(self) -> str:
        return f"disbench/papers/{self.name}.toml"

    @property
    def title(self) -> str:
        return self.data["title"]

    def selection(self, name: str) -> Select:
        """The data file's ``[selections.<name>]``."""
        table = self.data.get("selections", {}).get(name)
        if table is None:
            raise PaperError(f"{self.where}: no [selections.{name}]")
        hparams = tuple(sorted(table.get("hparams", {}).items()))
        return Select(table["method"], "", hparams, table.get("label", ""))

    def judge(self, claim: dict[str, Any], runs: Runs) -> Finding:
        rule = self.rules.get(claim["rule"])
        if rule is None:
            raise PaperError(
                f"{self.where}: claim {claim['statement'][:40]!r}: unknown rule "
                f"{claim['rule']!r}; known: {', '.join(sorted(self.rules))}"
            )
        return rule(self, runs, claim)


def load_paper(name: str) -> Paper:
    """The data file ``<name>.toml`` beside this module, with the generic rules and those of
    the paper's own module ``disbench.papers.<name>`` where its logic is not data."""
    path = resources.files("disbench.papers") / f"{name}.toml"
    try:
        data = tomllib.loads(path.read_text())
    except (FileNotFoundError, tomllib.TOMLDecodeError) as exc:
        raise PaperError(f"disbench/papers/{name}.toml: {exc}") from exc
    rules: dict[str, Rule] = {"checks": checks}
    if importlib.util.find_spec(f"disbench.papers.{name}") is not None:
        rules.update(importlib.import_module(f"disbench.papers.{name}").RULES)
    return Paper(name, data, rules)


def checks(paper: Paper, runs: Runs, claim: dict[str, Any]) -> Finding:
    """The generic rule: each ``[[claims.checks]]`` is ``above`` (A above B, B one selection
    or a list) or ``at_least`` (A's lower quartile reaches ``level``) on ``claim.metric``,
    repeated for each of its ``datasets``; its ``text`` names the numbers ({a}, {b}, {level},
    {dataset}, {b_dataset}, {a_name}, {b_name})."""
    found = Finding()
    metric, key = claim["metric"], claim.get("key")
    for check in claim["checks"]:
        a_sel = paper.selection(check["a"])
        bs = check.get("b", [])
        for dataset in check["datasets"]:
            a = runs.scores(a_sel.on(dataset), metric, key)
            fields = {"dataset": dataset, "a": spread(a), "a_name": a_sel.name}
            if check["test"] == "at_least":
                level = check["level"]
                text = check["text"].format(**fields, level=level)
                found.checks.append((text, at_least(a, level)))
                continue
            if check["test"] != "above":
                raise PaperError(f"{paper.where}: unknown check test {check['test']!r}")
            for b_name in [bs] if isinstance(bs, str) else bs:
                b_sel = paper.selection(b_name).on(check.get("b_dataset", dataset))
                b = runs.scores(b_sel, metric, key)
                text = check["text"].format(
                    **fields, b=spread(b), b_name=b_sel.name, b_dataset=b_sel.dataset
                )
                found.checks.append((text, above(a, b)))
    return found


def measurements(paper: Paper, runs: Runs) -> list[str]:
    """The data file's ``[measurements]`` table: every selection on every dataset that has
    runs, one column per score (median [IQR] over seeds)."""
    table = paper.data["measurements"]
    columns = table["columns"]
    lines = [
        "| dataset | method | " + " | ".join(c["name"] for c in columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for dataset in table["datasets"]:
        for name in table["selections"]:
            sel = paper.selection(name).on(dataset)
            if not runs.pick(sel):
                continue
            cells = [spread(runs.scores(sel, c["metric"], c.get("key"))) for c in columns]
            lines.append(f"| {dataset} | {sel.name} | " + " | ".join(cells) + " |")
    return lines
