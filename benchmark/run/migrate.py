"""``python -m disbench.run.migrate RESULTS``: give records written before the report read
records alone the facts it now reads from them.

The facts (``metrics``, the method's ``defaults`` and ``paper_results``, the study's ``rank``
and ``profile_runs``; :mod:`disbench.run.schema`) are taken from the registry as it stands,
so a record is migrated only when its method and metric versions are the registry's
current ones: then the registry says what it said when the run was recorded (a version
bump is required for any change of value or default). Any other record is named and left
as it is. Every field already there keeps its value; running it again changes nothing.
``profile_runs`` is the built-in profile's expansion in this environment: run the migration
where no plugin is installed, since a profile that takes every registered method
(``[methods."*"]``, ``names = "all"``) would list the plugins' runs too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from disbench.registry import METHODS, METRICS
from disbench.run.records import method_facts, metric_facts, profile_runs
from disbench.run.schema import Record
from disbench.run.store import ResultsStore
from disbench.run.study import DEFAULT_RANK


def stale_versions(record: Record) -> list[str]:
    """The components whose recorded version is not the registry's current one."""
    spec = record["spec"]
    versions = spec.get("versions", {})
    method = spec["method"]
    out = []
    if method not in METHODS or versions.get("method") != METHODS.get(method).version:
        out.append(f"method {method} v{versions.get('method')}")
    for metric in spec.get("metrics", {}):
        recorded = versions.get("metrics", {}).get(metric)
        if metric not in METRICS or recorded != METRICS.get(metric).version:
            out.append(f"metric {metric} v{recorded}")
    return out


def backfill(record: Record) -> bool:
    """Add the missing facts to ``record`` in place; whether anything was added."""
    before = repr(record)
    spec = record["spec"]
    record.setdefault("metrics", {})
    for metric, settings in spec.get("metrics", {}).items():
        record["metrics"].setdefault(metric, metric_facts(metric, settings))
    facts = method_facts(spec["method"])
    for key in ("defaults", "paper_results"):
        record["method"].setdefault(key, facts[key])  # type: ignore[misc]
    # Records written before the study's rank was recorded were ranked by the default.
    study = record.setdefault("study", {"rank": list(DEFAULT_RANK)})
    runs = profile_runs(record.get("profile", ""))
    if runs is not None:
        study.setdefault("profile_runs", list(runs))
    return repr(record) != before


def migrate(out: Path) -> tuple[int, list[str]]:
    """(records changed, one line per record left as it is) under ``<out>/runs``."""
    store = ResultsStore(out)
    records, bad = store.scan()
    refused = [f"{path}: {why}; left as it is" for path, why in bad]
    changed = 0
    for record in records:
        stale = stale_versions(record)
        if stale:
            where = store.record_path(record["id"])
            refused.append(
                f"{where}: recorded with {', '.join(stale)}, not the registry's current "
                "version(s); left as it is (run it again to get the facts)"
            )
            continue
        if backfill(record):
            store.write(record)
            changed += 1
    return changed, refused


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m disbench.run.migrate", description=__doc__)
    parser.add_argument("out", type=Path, help="results directory (holding runs/)")
    args = parser.parse_args(argv)
    changed, refused = migrate(args.out)
    for line in refused:
        print(f"disbench migrate: {line}", file=sys.stderr)
    print(f"{changed} record(s) given the report's facts, {len(refused)} left as they are")
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
