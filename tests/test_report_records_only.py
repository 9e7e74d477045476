"""The report reads its records alone: built where ``disbench.registry`` (and with it every
method and torch) cannot be imported, it gives the same bytes as in this process, and the
committed records rebuild the committed leaderboard, claims page, CSV and HTML byte for byte.
The migration that gave older records their facts keeps every other field and is idempotent."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_report import record, rows_of

from disbench.report import build_report
from disbench.report.pooling import MissingFacts
from disbench.run.migrate import main as migrate_main
from disbench.run.store import ResultsStore

REPO = Path(__file__).resolve().parent.parent
COMMITTED = REPO / "results" / "runs"
# A few committed records: two cpu-profile rows of one dataset (with a PR method), and a
# claims-profile row, so the claims page is built too.
FIXTURE_METHODS = {("cpu", "proc_dsprites"): {"dot_vae", "pca"}, ("claims", "blobs"): {"ae"}}

BLOCKED_BUILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    class Unimportable:
        def find_spec(self, name, path=None, target=None):
            if name in ("disbench.registry", "torch") or name.startswith("disbench.methods"):
                raise ImportError(f"{name} is unimportable in this test")

    sys.meta_path.insert(0, Unimportable())
    from disbench.report import build_report

    root = Path(sys.argv[1])
    build_report(
        root / "results", root / "leaderboard.md", None, root / "docs" / "claims.md",
        figures=sys.argv[2] == "figures",
    )
    leaked = [m for m in ("disbench.registry", "torch") if m in sys.modules]
    assert not leaked, leaked
    """
)


BLOCKED_COMMAND = BLOCKED_BUILD.split("from disbench.report import build_report")[0] + (
    "from disbench.cli import main\n"
    "assert main(['report']) == 0\n"
    "leaked = [m for m in ('disbench.registry', 'torch') if m in sys.modules]\n"
    "assert not leaked, leaked\n"
)


def blocked_build(root: Path, figures: bool) -> None:
    """``build_report`` in a fresh interpreter that cannot import the registry or torch."""
    subprocess.run(
        [sys.executable, "-c", BLOCKED_BUILD, str(root), "figures" if figures else "texts"],
        check=True,
        timeout=300,
    )


def outputs(root: Path) -> dict[str, bytes]:
    paths = ["leaderboard.md", "docs/claims.md", "results/scores.csv", "results/leaderboard.html"]
    return {p: (root / p).read_bytes() for p in paths}


def copy_records(root: Path, keep) -> int:
    runs = root / "results" / "runs"
    runs.mkdir(parents=True)
    n = 0
    for path in sorted(COMMITTED.glob("*.json")):
        rec = json.loads(path.read_text())
        if keep(rec):
            shutil.copy(path, runs / path.name)
            n += 1
    return n


def test_a_fixture_set_builds_the_same_bytes_without_the_registry(tmp_path) -> None:
    def keep(rec: dict) -> bool:
        methods = FIXTURE_METHODS.get((rec["profile"], rec["dataset_label"]), set())
        return rec["spec"]["method"] in methods

    here, there = tmp_path / "here", tmp_path / "there"
    assert copy_records(here, keep) == copy_records(there, keep) == 9  # three seeds each
    build_report(here / "results", here / "leaderboard.md", None, here / "docs" / "claims.md")
    blocked_build(there, figures=True)
    built = outputs(here)
    assert outputs(there) == built
    text = built["leaderboard.md"].decode()
    assert "| dot_vae [PR] |" in text  # the method's facts, as its records state them
    assert "Approximate (~) factor_vae: 25 evaluation votes (published 5,000)" in text
    assert "| dot_vae | dsprites | factor_vae | 0.72 |" in text  # its paper's number
    figures = sorted(p.relative_to(here) for p in (here / "results" / "plots").rglob("*.png"))
    assert figures and all((there / p).read_bytes() == (here / p).read_bytes() for p in figures)


def test_disbench_report_rebuilds_the_committed_report_without_the_registry(tmp_path) -> None:
    """The command itself, as `nox -s benchmark` runs it, in the results' parent folder."""
    copy_records(tmp_path, lambda rec: True)
    (tmp_path / "docs").mkdir()
    subprocess.run([sys.executable, "-c", BLOCKED_COMMAND], check=True, timeout=300, cwd=tmp_path)
    assert outputs(tmp_path) == outputs(REPO)


def test_the_report_shows_what_the_record_says_not_what_the_registry_says(tmp_path) -> None:
    store = ResultsStore(tmp_path / "results")
    for seed in range(2):
        rec = record(f"a{seed}", "a", seed, 0.3, 0.3)
        rec["metrics"]["mig"]["caveats"] = ["an approximation stated when the run was scored"]
        rec["metrics"]["mig"]["defaults"] = {"num_train": 2000, "num_bins": 20}
        rec["metrics"]["sap_score"]["resolution"] = 0.05
        store.write(rec)
    build_report(store.root, tmp_path / "leaderboard.md")
    text = (tmp_path / "leaderboard.md").read_text()
    assert "Approximate (~) mig: an approximation stated when the run was scored." in text
    assert "mig: num_train=1000 (default 2000)" in text
    assert rows_of(text)["a"].split(" | ")[4] == "0.30 [0.30, 0.30]"  # two digits


def test_a_record_without_facts_is_a_one_line_error_naming_it(tmp_path) -> None:
    store = ResultsStore(tmp_path / "results")
    rec = record("old", "a", 0, 0.3, 0.3)
    del rec["metrics"]
    store.write(rec)
    with pytest.raises(MissingFacts, match=r"runs/old\.json: no metric facts .*migrate"):
        build_report(store.root, tmp_path / "leaderboard.md")


def test_the_migration_fills_the_facts_keeps_the_rest_and_refuses_other_versions(
    tmp_path, capsys
) -> None:
    store = ResultsStore(tmp_path / "results")
    # Records of the claims profile: its expansion names every method and metric, so the
    # run ids it gives do not depend on the plugins installed (cpu's `[methods."*"]` does).
    claims = [p for p in sorted(COMMITTED.glob("*.json")) if '"profile": "claims"' in p.read_text()]
    committed = claims[:2]
    for path in committed:  # as written before records carried the facts
        rec = json.loads(path.read_text())
        del rec["metrics"], rec["method"]["defaults"], rec["method"]["paper_results"]
        del rec["study"]["profile_runs"]
        store.write(rec)
    stale = json.loads(committed[0].read_text())
    stale["id"], stale["spec"]["versions"]["method"] = "0" * 16, 99
    del stale["metrics"]
    store.write(stale)
    stale_bytes = store.record_path(stale["id"]).read_bytes()

    assert migrate_main([str(store.root)]) == 1
    for path in committed:
        assert store.record_path(path.stem).read_bytes() == path.read_bytes()
    assert store.record_path(stale["id"]).read_bytes() == stale_bytes
    err = capsys.readouterr().err
    assert f"{stale['id']}.json: recorded with method {stale['spec']['method']} v99" in err
    store.record_path(stale["id"]).unlink()
    assert migrate_main([str(store.root)]) == 0  # again: nothing left to add
    assert "0 record(s) given the report's facts, 0 left" in capsys.readouterr().out
    for path in committed:
        assert store.record_path(path.stem).read_bytes() == path.read_bytes()
