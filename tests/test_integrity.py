"""Nothing already written is trusted blindly or lost: records carry a checksum, a truncated
or edited record is named and run again (the report leaves it out), a directory that cannot
take records is a one-line error before training, `disbench verify` reruns a sample from
scratch, and a batched group that runs out of GPU memory is split before anything fails."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from disbench.cli import main
from disbench.registry import load_plugin
from disbench.report import build_report
from disbench.run.runner import run_study
from disbench.run.store import ResultsStore
from disbench.run.study import load_profile
from disbench.run.verify import verify

PROFILE = """
seeds = [0, 1, 2]
datasets = [{name = "blobs", positions = 8, sizes = 2}]
[metrics]
names = ["mig"]
common = {num_train = 300}
[methods.pca.grid]
num_points = 200
"""


@pytest.fixture
def finished(tmp_path: Path) -> tuple[Path, object]:
    profile = tmp_path / "study.toml"
    profile.write_text(PROFILE)
    study = load_profile(str(profile))
    out = tmp_path / "results"
    assert run_study(study, out, show_progress=False)["ok"] == 3
    return out, study


def test_a_truncated_and_an_edited_record_are_named_left_out_and_run_again(
    finished, tmp_path, capsys
) -> None:
    out, study = finished
    first, second, _ = sorted((out / "runs").glob("*.json"))
    first.write_text(first.read_text()[:200])  # truncated
    edited = json.loads(second.read_text())
    edited["scores"]["mig"]["discrete_mig"] = 0.99
    second.write_text(json.dumps(edited))
    good, bad = ResultsStore(out).scan()
    assert len(good) == 1 and [p for p, _ in bad] == [first, second]
    assert "not valid JSON" in bad[0][1] and "checksum does not match" in bad[1][1]

    build_report(out, tmp_path / "leaderboard.md")
    err = capsys.readouterr().err
    assert f"disbench report: {first}: not valid JSON" in err
    assert f"disbench report: {second}: its checksum does not match its content" in err
    assert "0.99" not in (tmp_path / "leaderboard.md").read_text()

    assert run_study(study, out, show_progress=False) == {"ok": 2, "failed": 0, "skipped": 1}
    assert f"disbench run: {first}: not valid JSON" in capsys.readouterr().err
    good, bad = ResultsStore(out).scan()
    assert len(good) == 3 and bad == []


def test_records_of_a_newer_format_stop_the_run_before_training(finished) -> None:
    out, study = finished
    path = sorted((out / "runs").glob("*.json"))[0]
    record = json.loads(path.read_text())
    record["format"] = 99
    ResultsStore(out).write(record)
    with pytest.raises(ValueError, match=r"written by a newer disbench \(record format 99; "):
        run_study(study, out, show_progress=False)


def test_a_directory_that_cannot_take_records_is_a_one_line_error(tmp_path, monkeypatch) -> None:
    study = load_profile("smoke")
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    with pytest.raises(ValueError, match=r"results directory .*file: cannot write there"):
        run_study(study, not_a_folder, show_progress=False)
    full = shutil.disk_usage(tmp_path)._replace(free=10 * 2**20)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: full)
    with pytest.raises(ValueError, match=r"only 10 MB free on its disk \(a study needs at least"):
        run_study(study, tmp_path / "results", show_progress=False)
    assert not list((tmp_path / "results" / "runs").glob("*.json"))


def test_verify_reproduces_fresh_records_and_catches_an_edited_score(finished, capsys) -> None:
    out, _ = finished
    assert main(["verify", "--sample", "2", "--out", str(out)]) == 0
    assert "verified 2 run(s): 0 problem(s)" in capsys.readouterr().out
    report = verify(out, sample=3)
    passed, problems = report.passed, report.problems
    assert problems == [] and len(passed) == 3 and report.tested == 0
    assert all(line.endswith("same numerics, every score bit-identical") for line in passed)

    # a forged record: the score changed and its checksum recomputed to match
    path = sorted((out / "runs").glob("*.json"))[0]
    record = json.loads(path.read_text())
    record["scores"]["mig"]["discrete_mig"] += 0.1
    ResultsStore(out).write(record)
    report = verify(out, sample=3)
    passed, problems = report.passed, report.problems
    assert len(passed) == 2 and len(problems) == 1
    assert f"run {record['id']} (pca on blobs(positions=8,sizes=2), seed " in problems[0]
    assert "mig.discrete_mig: recorded" in problems[0]
    # an edit that leaves the checksum stale is caught without rerunning anything
    edited = json.loads(path.read_text())
    edited["scores"]["mig"]["discrete_mig"] = 0.5
    path.write_text(json.dumps(edited))
    assert main(["verify", "--sample", "2", "--out", str(out)]) == 1
    assert f"{path}: its checksum does not match its content" in capsys.readouterr().err


def _forge(out: Path, **changes: object) -> None:
    """Rewrite every record as if made elsewhere: the fingerprint's CPU model replaced, and
    ``changes`` (metric.key -> offset) added to its scores; checksums recomputed."""
    store = ResultsStore(out)
    for record in store.records():
        record["numerics"]["cpu_model"] = "Another CPU"
        for name, offset in changes.items():
            metric, key = name.split(".")
            record["scores"][metric][key] += offset
        store.write(record)


def test_verify_on_other_numerics_checks_the_cell(finished, capsys) -> None:
    """A record of another CPU is not expected to reproduce its bits: verify says so, reruns
    the cell's three seeds and tests them against the recorded ones."""
    out, _ = finished
    _forge(out)
    assert main(["verify", "--sample", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "different numerics: recorded on Another CPU" in text
    assert "ok: cell pca on blobs(positions=8,sizes=2), 3 seeds rerun: no score flagged" in text
    assert "cell check: 0 of 1 score(s) flagged at p <= 0.1, 0.1 expected by chance" in text


def test_verify_flags_a_cell_whose_seeds_all_moved(finished, capsys) -> None:
    """Every recorded seed 0.5 above its rerun: a complete separation, p = 2/20 = 0.1, is
    flagged; one flagged score of one is what chance gives one time in ten, so the cells
    still agree (one 3-seed cell cannot show more)."""
    out, _ = finished
    _forge(out, **{"mig.discrete_mig": 0.5})
    report = verify(out, sample=1)
    assert (report.tested, report.flagged) == (1, 1) and report.cells_agree
    assert any("mig.discrete_mig (p = 0.10: recorded" in line for line in report.notes)
    assert report.count_p == pytest.approx(0.1)


def test_a_group_out_of_gpu_memory_is_split_down_to_single_models(tmp_path) -> None:
    load_plugin("testing_methods")
    profile = tmp_path / "study.toml"
    profile.write_text(
        PROFILE.replace("seeds = [0, 1, 2]", "seeds = [0, 1, 2, 3]").replace(
            "[methods.pca.grid]",
            "[methods.oom_when_grouped]\ngroup_size = 4\n[methods.oom_when_grouped.grid]",
        )
    )
    out = tmp_path / "results"
    assert run_study(load_profile(str(profile)), out, show_progress=False)["ok"] == 4
    for record in ResultsStore(out).records():
        assert record["execution"]["group_size"] == 1
        assert record["info"]["out_of_memory_splits"] == 2  # 4 -> 2 + 2 -> 1 + 1
