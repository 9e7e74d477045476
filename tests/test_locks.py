"""Two runners on one results directory: every run is trained exactly once; a stale claim
(its owner died) is taken over; a live one is left alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from disbench.run.locks import RunLocks
from disbench.run.store import ResultsStore

ROOT = Path(__file__).parent.parent


def test_two_runners_at_once_train_every_run_exactly_once(tmp_path) -> None:
    log = tmp_path / "trained.log"
    profile = tmp_path / "study.toml"
    profile.write_text(
        "seeds = [0, 1, 2, 3, 4, 5]\n"
        'datasets = [{name = "blobs", positions = 8, sizes = 2}]\n'
        '[metrics]\nnames = ["mig"]\ncommon = {num_train = 300}\n'
        f'[methods.logged_pca.grid]\nnum_points = 100\nsleep_s = 1.0\nlog = "{log}"\n'
    )
    out = tmp_path / "results"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests" / "plugins")}
    cmd = [
        sys.executable,
        "-m",
        "disbench",
        "run",
        "--profile",
        str(profile),
        "--out",
        str(out),
        "--plugin",
        "testing_methods",
        "--quiet",
        "--workers",
        "1",
    ]
    runners = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [r.communicate(timeout=300)[0] for r in runners]
    assert [r.returncode for r in runners] == [0, 0], outputs
    trained = sorted(int(line) for line in log.read_text().split())
    assert trained == [0, 1, 2, 3, 4, 5]  # each seed once, by one runner or the other
    assert len(ResultsStore(out).records()) == 6
    assert not list((out / "locks").glob("*.json"))  # released at the end
    # both worked: each trained some runs and found the others' done
    assert all(" 0 ok" not in o for o in outputs), outputs


def test_a_dead_owners_claim_is_taken_over_and_a_live_one_is_not(tmp_path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    folder = tmp_path / "locks"
    folder.mkdir()
    with RunLocks(folder) as mine:
        (folder / "a.json").write_text(
            json.dumps({"host": mine.host, "pid": int(dead.stdout), "since": 0})
        )
        (folder / "b.json").write_text(
            json.dumps({"host": mine.host, "pid": os.getppid(), "since": 0})
        )
        assert mine.acquire("a")  # its owner is gone
        assert not mine.acquire("b") and mine.held_by_other("b")  # its owner lives
        assert json.loads((folder / "a.json").read_text())["pid"] == os.getpid()
    assert not (folder / "a.json").exists() and (folder / "b.json").exists()
