"""The runner: failures are recorded and the study goes on; same seed, same scores;
a study killed mid-run resumes with no run missing, duplicated or corrupt."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from disbench.registry import load_plugin
from disbench.report import build_report
from disbench.run.runner import resolve_device, run_study
from disbench.run.store import ResultsStore
from disbench.run.study import load_profile

ROOT = Path(__file__).parent.parent

PROFILE = """
seeds = [0, 1]
datasets = [{name = "blobs", positions = 8, sizes = 2}]
[metrics]
names = ["mig"]
common = {num_train = 400}
[methods.pca.grid]
num_points = 200
[methods.always_fails]
[methods.nan_codes]
"""


def _profile(tmp_path: Path, text: str = PROFILE) -> str:
    path = tmp_path / "study.toml"
    path.write_text(text)
    return str(path)


def test_failing_runs_are_recorded_and_the_others_ranked(tmp_path) -> None:
    load_plugin("testing_methods")
    out = tmp_path / "results"
    counts = run_study(load_profile(_profile(tmp_path)), out, show_progress=False)
    assert counts == {"ok": 2, "failed": 4, "skipped": 0}
    records = {(r["spec"]["method"], r["spec"]["seed"]): r for r in ResultsStore(out).records()}
    fail = records[("always_fails", 0)]
    assert fail["status"] == "failed"
    assert fail["error"] == "RuntimeError: deliberate failure for the test"
    assert records[("nan_codes", 1)]["status"] == "failed"
    assert "NaN" in records[("nan_codes", 1)]["error"]
    ok = records[("pca", 0)]
    assert ok["status"] == "ok" and 0 <= ok["scores"]["mig"]["discrete_mig"] <= 1
    assert ok["environment"]["packages"]["numpy"]
    assert ok["study"] == {"rank": ["mig"], "note": ""}  # what the leaderboard ranks it by
    threads = os.cpu_count() or 1  # one worker: every core
    assert ok["execution"] == {
        "device": "cpu",
        "threads": threads,
        "group_size": 1,
        "precision": "fp32",
        "numerics": "native",
    }
    assert ok["numerics"]["numerics"] == "native" and ok["numerics"]["torch_threads"] == threads
    assert ok["timings"]["fit_s"] > 0

    board = tmp_path / "leaderboard.md"
    build_report(out, board)
    text = board.read_text()
    assert "| 1.00 | pca [PI] | 2 |" in text
    assert "| always_fails [F2] | 0 |" in text
    assert "## Failed runs" in text and "deliberate failure for the test" in text


def test_same_profile_same_seed_gives_identical_scores(tmp_path) -> None:
    text = PROFILE.replace(
        "[methods.always_fails]\n[methods.nan_codes]\n",
        "[methods.fastica.grid]\nnum_points = 200\n",
    )
    scores = []
    for name in ("a", "b"):
        out = tmp_path / name
        run_study(load_profile(_profile(tmp_path, text)), out, show_progress=False)
        scores.append({r["id"]: r["scores"] for r in ResultsStore(out).records()})
    assert len(scores[0]) == 4
    assert scores[0] == scores[1]


def test_rerun_skips_finished_runs(tmp_path) -> None:
    out = tmp_path / "results"
    text = PROFILE.replace("[methods.always_fails]\n[methods.nan_codes]\n", "")
    study = load_profile(_profile(tmp_path, text))
    assert run_study(study, out, show_progress=False)["ok"] == 2
    assert run_study(study, out, show_progress=False) == {"ok": 0, "failed": 0, "skipped": 2}


def test_kill_and_resume_finishes_the_study_exactly_once(tmp_path) -> None:
    load_plugin("testing_methods")
    seeds = list(range(6))
    text = (
        f'seeds = {seeds}\ndatasets = [{{name = "blobs", positions = 8, sizes = 2}}]\n'
        '[metrics]\nnames = ["mig"]\ncommon = {num_train = 300}\n'
        "[methods.sleepy_pca.grid]\nnum_points = 100\nsleep_s = 1.5\n"
    )
    profile = _profile(tmp_path, text)
    out = tmp_path / "results"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "tests" / "plugins"), os.environ.get("PYTHONPATH", "")]
        ),
    }
    cmd = [
        sys.executable,
        "-m",
        "disbench",
        "run",
        "--profile",
        profile,
        "--out",
        str(out),
        "--plugin",
        "testing_methods",
        "--quiet",
        "--workers",
        "2",
    ]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list((out / "runs").glob("*.json"))) < 2:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = list((out / "runs").glob("*.json"))
    time.sleep(3)  # worker processes die with the study: nothing more appears
    assert len(list((out / "runs").glob("*.json"))) == len(written)
    assert 2 <= len(written) < len(seeds), "the kill should land in the middle of the study"
    for path in written:
        json.loads(path.read_text())  # every record on disk is complete

    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "already done" in done.stdout
    records = ResultsStore(out).records()
    expected = {r.id for r in load_profile(profile).runs}
    assert sorted(r["id"] for r in records) == sorted(expected)
    assert all(r["status"] == "ok" for r in records)
    assert sorted(r["spec"]["seed"] for r in records) == seeds
    assert not list((out / "runs").glob(".*.tmp"))


def _cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests" / "plugins")}
    cmd = [sys.executable, "-m", "disbench", *args, "--plugin", "testing_methods", "--quiet"]
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_a_killed_worker_fails_its_runs_alone_and_the_study_finishes(tmp_path) -> None:
    """SIGKILL of one worker of two (what the out-of-memory killer does): its run is recorded
    failed with the signal, the run in flight on the other worker and the rest finish ok,
    the exit status says so; once the cause is gone --retry-failed completes the study."""
    marker = tmp_path / "kill"
    marker.touch()
    text = (
        'seeds = [0, 1, 2]\ndatasets = [{name = "blobs", positions = 8, sizes = 2}]\n'
        '[metrics]\nnames = ["mig"]\ncommon = {num_train = 300}\n'
        "[methods.sleepy_pca.grid]\nnum_points = 100\nsleep_s = 1.0\n"
        "[methods.killed_while_marked]\nseeds = [0]\n"
        f'grid = {{num_points = 100, marker = "{marker}"}}\n'
    )
    out = tmp_path / "results"
    args = ["run", "--profile", _profile(tmp_path, text), "--out", str(out), "--workers", "2"]
    first = _cli(args)
    assert first.returncode == 1, first.stderr
    records = ResultsStore(out).records()
    assert len(records) == 4
    failed = [r for r in records if r["status"] == "failed"]
    assert [r["spec"]["method"] for r in failed] == ["killed_while_marked"]
    assert failed[0]["error"] == "WorkerLost: worker process killed by signal 9 (SIGKILL)"
    assert f"failed: {failed[0]['id']} killed_while_marked on blobs" in first.stderr
    assert sorted(r["spec"]["seed"] for r in records if r["status"] == "ok") == [0, 1, 2]

    marker.unlink()
    again = _cli([*args, "--retry-failed"])
    assert again.returncode == 0, again.stderr
    assert "1 ok, 0 failed, 3 already done" in again.stdout
    records = ResultsStore(out).records()
    assert len(records) == 4 and all(r["status"] == "ok" for r in records)


def test_retry_failed_reruns_only_the_failed_runs_and_retrains_them(tmp_path) -> None:
    """The failed run's model (NaN codes) was saved; after the cause is gone, a plain rerun
    skips the run, and --retry-failed trains it afresh and replaces its record."""
    load_plugin("testing_methods")
    marker = tmp_path / "broken"
    marker.touch()
    text = PROFILE.replace(
        "[methods.always_fails]\n[methods.nan_codes]\n",
        f'[methods.nan_while_marked.grid]\nnum_points = 200\nmarker = "{marker}"\n',
    )
    study = load_profile(_profile(tmp_path, text))
    out = tmp_path / "results"
    assert run_study(study, out, show_progress=False) == {"ok": 2, "failed": 2, "skipped": 0}
    store = ResultsStore(out)
    failed = [r for r in store.records() if r["status"] == "failed"]
    assert {r["spec"]["method"] for r in failed} == {"nan_while_marked"}
    assert all((out / r["artifacts"]["model"]).exists() for r in failed)

    marker.unlink()
    assert run_study(study, out, show_progress=False) == {"ok": 0, "failed": 0, "skipped": 4}
    counts = run_study(study, out, show_progress=False, retry_failed=True)
    assert counts == {"ok": 2, "failed": 0, "skipped": 2}
    records = store.records()
    assert len(records) == 4 and all(r["status"] == "ok" for r in records)
    retried = [r for r in records if r["spec"]["method"] == "nan_while_marked"]
    assert all(r["timings"]["fit_s"] > 0 and r["error"] is None for r in retried)


def test_a_ray_driver_resolves_the_device_from_the_cluster_gpus() -> None:
    assert resolve_device(None, cluster_gpus=2) == "cuda"
    assert resolve_device("auto", cluster_gpus=0) == "cpu"
    with pytest.raises(ValueError, match="^--device cuda: the Ray cluster has no GPU$"):
        resolve_device("cuda", cluster_gpus=0)
    with pytest.raises(ValueError, match="--device 'tpu': expected cpu, cuda or auto"):
        resolve_device("tpu", cluster_gpus=1)
