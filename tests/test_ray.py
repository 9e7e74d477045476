"""The Ray executor: a study run as Ray tasks gives the records an in-process run gives,
and a task whose worker dies is recorded as failed while the study goes on.

One local Ray (2 CPUs) serves the module; its workers find the test plugin module
through PYTHONPATH, as a cluster's nodes would find an installed plugin.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from disbench.cli import main
from disbench.registry import load_plugin
from disbench.run.runner import run_study
from disbench.run.store import ResultsStore
from disbench.run.study import load_profile

PLUGIN_DIR = Path(__file__).parent / "plugins"

PROFILE = """
seeds = [0, 1]
datasets = [{name = "blobs", positions = 8, sizes = 2}]
[execution]
torch_threads = 1
[metrics]
names = ["mig", "mcc"]
common = {num_train = 400}
[methods.pca.grid]
num_points = 200
[methods.fastica.grid]
num_points = 200
"""


def _start_local_ray() -> None:
    path = os.pathsep.join([str(PLUGIN_DIR), os.environ.get("PYTHONPATH", "")])
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    _start_local_ray()
    yield
    ray.shutdown()


def _profile(tmp_path: Path, text: str) -> str:
    path = tmp_path / "study.toml"
    path.write_text(text)
    return str(path)


def test_ray_tasks_write_the_records_an_in_process_run_writes(tmp_path: Path) -> None:
    profile = _profile(tmp_path, PROFILE)
    run_study(load_profile(profile), tmp_path / "local", show_progress=False)
    argv = ["run", "--profile", profile, "--out", str(tmp_path / "ray"), "--ray", "--quiet"]
    assert main(argv) == 0
    local = {r["id"]: r for r in ResultsStore(tmp_path / "local").records()}
    on_ray = {r["id"]: r for r in ResultsStore(tmp_path / "ray").records()}
    assert len(local) == 4 and on_ray.keys() == local.keys()
    for run_id, rec in on_ray.items():
        assert rec["status"] == "ok"
        assert rec["scores"] == local[run_id]["scores"]
    assert main(argv) == 0  # a rerun on Ray resumes: nothing left to do
    assert len(ResultsStore(tmp_path / "ray").records()) == 4


def test_a_worker_that_dies_is_recorded_as_failed_and_the_study_goes_on(
    tmp_path: Path,
) -> None:
    load_plugin("testing_methods")
    text = PROFILE.replace("[execution]\n", '[execution]\nexecutor = "ray"\n').replace(
        "[methods.fastica.grid]\nnum_points = 200\n", "[methods.kills_its_worker]\n"
    )
    out = tmp_path / "results"
    counts = run_study(
        load_profile(_profile(tmp_path, text)),
        out,
        plugins=("testing_methods",),
        show_progress=False,
    )
    assert counts == {"ok": 2, "failed": 2, "skipped": 0}
    records = ResultsStore(out).records()
    failed = [r for r in records if r["status"] == "failed"]
    assert {r["spec"]["method"] for r in failed} == {"kills_its_worker"}
    assert all(r["error"].startswith("WorkerCrashedError: ") for r in failed), failed[0]["error"]
    assert all(r["scores"] == {} for r in failed)


def test_no_cluster_at_the_address_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ray.shutdown()  # this test needs Ray not started, as a fresh `disbench run` finds it
    try:
        argv = ["run", "--profile", _profile(tmp_path, PROFILE), "--out", str(tmp_path)]
        assert main([*argv, "--ray", "auto", "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("disbench: error: --ray auto: cannot join a Ray cluster: ")
        assert len(err.splitlines()) == 1
    finally:
        _start_local_ray()
