"""Profiles: parsing, errors naming the file and key, overrides, expansion, id stability."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from disbench.api import TrainBudget
from disbench.registry import METHODS
from disbench.run.overrides import parse_override
from disbench.run.study import (
    PROFILE_DIR,
    DatasetSpec,
    Execution,
    ProfileError,
    RunSpec,
    load_profile,
    only_methods,
)

MINIMAL = """
seeds = [0, 1, 2]
datasets = ["blobs"]
[metrics]
names = ["mig"]
common = {num_train = 500}
[methods.pca.grid]
num_points = [200, 300]
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "p.toml"
    path.write_text(text)
    return str(path)


def test_builtin_profiles_parse() -> None:
    names = {p.stem for p in PROFILE_DIR.glob("*.toml")}
    assert {"smoke", "cpu", "gpu", "paper"} <= names
    for name in names:
        study = load_profile(name)
        assert study.runs, name


def test_expansion_is_datasets_x_grid_x_seeds(tmp_path) -> None:
    study = load_profile(write(tmp_path, MINIMAL))
    assert len(study.runs) == 1 * 2 * 3
    assert {r.hparams["num_points"] for r in study.runs} == {200, 300}
    assert {r.seed for r in study.runs} == {0, 1, 2}
    # defaults are resolved into the spec, metric settings merged with the metric defaults
    assert all(r.hparams["n_components"] is None for r in study.runs)
    assert study.runs[0].metrics == {"mig": {"num_train": 500, "num_bins": 20}}


def test_overrides_replace_single_keys(tmp_path) -> None:
    study = load_profile(write(tmp_path, MINIMAL), ["seeds=[7]", "methods.pca.grid.num_points=50"])
    assert [(r.seed, r.hparams["num_points"]) for r in study.runs] == [(7, 50)]
    assert parse_override("train.steps=100") == (["train", "steps"], 100)
    assert parse_override("x=abc") == (["x"], "abc")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bogus = 1\n" + MINIMAL, r"unknown key\(s\) \['bogus'\]"),
        (MINIMAL.replace("[0, 1, 2]", "[]"), "seeds must be a non-empty list"),
        (MINIMAL.replace('"blobs"', '"blobz"'), "unknown dataset 'blobz' \\(did you mean 'blobs'"),
        (MINIMAL.replace("methods.pca", "methods.pcx"), "unknown method 'pcx'"),
        (MINIMAL.replace("num_points", "num_pointz"), "unknown hyperparameter"),
        (MINIMAL.replace('names = ["mig"]', 'names = ["migg"]'), "unknown metric 'migg'"),
        (MINIMAL + "\n[metrics.mig]\nbins=3\n", "unknown setting"),
        (
            'seeds = [0]\ndatasets = ["blobs"\n[methods.pca]\n',
            r"invalid TOML: .*\(at line 3, column",
        ),
        (
            MINIMAL + '[execution]\nexecutor = "slurm"\n',
            r"execution.executor must be one of \['local', 'ray'\], got 'slurm'",
        ),
        (MINIMAL + "[execution]\nworkers = 0\n", "execution.workers must be a positive integer"),
        (MINIMAL + '[execution]\ndevice = "tpu"\n', r"execution.device must be one of \['auto'"),
        (
            MINIMAL + "[execution]\ngroup_size = 0\n",
            'group_size must be a positive integer or "auto"',
        ),
        (MINIMAL + "[execution]\ncheckpoint_minutes = -1\n", "checkpoint_minutes must be a number"),
        (MINIMAL + "[execution]\nthreads = 2\n", r"\[execution\] unknown key 'threads'; known"),
        (MINIMAL + "[train]\nsteps = 2.5\n", r"train.steps must be a positive integer, got 2.5"),
        (
            MINIMAL.replace("[methods.pca.grid]", "[methods.pca]\nsweep = 1\n[methods.pca.grid]"),
            "methods.pca.sweep must be true or false, got 1",
        ),
    ],
)
def test_profile_errors_name_file_and_key(tmp_path, text, message) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ProfileError, match=message) as err:
        load_profile(path)
    assert path in str(err.value)


def test_unknown_builtin_profile_lists_known() -> None:
    with pytest.raises(ProfileError, match="built-in profiles: .*smoke"):
        load_profile("smok")


def test_wildcard_takes_every_registered_method(tmp_path) -> None:
    text = MINIMAL.replace("[methods.pca.grid]\nnum_points = [200, 300]", '[methods."*"]')
    study = load_profile(write(tmp_path, text), ["seeds=[0]"])
    methods = {r.method for r in study.runs}
    assert {"pca", "fastica", "random_projection"} <= methods


VERSIONS = {"dataset": 1, "method": 1, "metrics": {"mig": 1}}
SPEC = RunSpec(
    DatasetSpec("blobs", {"positions": 8}),
    "pca",
    {"n_components": 3, "num_points": 10},
    seed=4,
    budget=TrainBudget(100, 64),
    eval_seed=0,
    metrics={"mig": {"num_bins": 20, "num_train": 1000}},
    versions=VERSIONS,
)


def test_run_id_is_stable_across_processes_and_key_order() -> None:
    reordered = RunSpec(
        SPEC.dataset,
        "pca",
        {"num_points": 10, "n_components": 3},
        4,
        TrainBudget(100, 64),
        0,
        {"mig": {"num_train": 1000, "num_bins": 20}},
        {"metrics": {"mig": 1}, "method": 1, "dataset": 1},
    )
    assert reordered.id == SPEC.id
    code = "from tests.test_study import SPEC; print(SPEC.id, SPEC.train_id)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent.parent,
    ).stdout.split()
    assert out == [SPEC.id, SPEC.train_id]
    # Anchors: an id must never change silently (that would orphan every stored result).
    assert SPEC.train_id == "971adb6d19b98f5d"
    assert SPEC.id == "633a1e8d62f078ef"


def test_run_id_changes_with_anything_that_changes_the_result() -> None:
    changed = [
        replace(SPEC, seed=5),
        replace(SPEC, dataset=DatasetSpec("blobs")),
        replace(SPEC, budget=TrainBudget(101, 64)),
        replace(SPEC, versions={**VERSIONS, "method": 2}),
        replace(SPEC, versions={**VERSIONS, "dataset": 2}),
        replace(SPEC, eval_seed=1),
        replace(SPEC, versions={**VERSIONS, "metrics": {"mig": 2}}),
    ]
    assert len({c.id for c in changed} | {SPEC.id}) == len(changed) + 1
    # evaluation settings and metric versions change the run id but not the training id
    # (the model is reused and rescored)
    assert changed[-2].train_id == SPEC.train_id
    assert changed[-1].train_id == SPEC.train_id
    assert len({c.train_id for c in changed[:-2]} | {SPEC.train_id}) == len(changed) - 1
    assert RunSpec.from_dict(SPEC.to_dict()) == SPEC


def test_bumping_a_method_version_gives_new_run_ids(tmp_path, monkeypatch) -> None:
    """The same profile, after a method declares a new version: every id of it changes."""
    path = write(tmp_path, MINIMAL)
    before = load_profile(path)
    monkeypatch.setattr(METHODS.get("pca"), "version", 2)
    after = load_profile(path)
    assert [r.versions["method"] for r in after.runs] == [2] * len(after.runs)
    assert not {r.id for r in before.runs} & {r.id for r in after.runs}
    assert not {r.train_id for r in before.runs} & {r.train_id for r in after.runs}


def test_report_rank_defaults_to_the_field_four_and_must_name_computed_metrics(tmp_path) -> None:
    assert load_profile("cpu").rank == ["mig", "dci", "factor_vae", "sap_score"]
    assert load_profile(write(tmp_path, MINIMAL)).rank == ["mig"]  # the only metric computed
    ranked = load_profile(write(tmp_path, MINIMAL + '[report]\nrank = ["mig"]\n'))
    assert ranked.rank == ["mig"]
    with pytest.raises(ProfileError, match=r"report.rank names \['dci'\], which the study"):
        load_profile(write(tmp_path, MINIMAL + '[report]\nrank = ["dci"]\n'))


def test_report_note_is_the_studys_header_text(tmp_path) -> None:
    assert load_profile(write(tmp_path, MINIMAL)).note == ""
    noted = load_profile(write(tmp_path, MINIMAL + '[report]\nnote = "3 seeds: coarse"\n'))
    assert noted.note == "3 seeds: coarse"
    with pytest.raises(ProfileError, match=r"report.note must be a string"):
        load_profile(write(tmp_path, MINIMAL + "[report]\nnote = 3\n"))


def test_an_array_of_tables_configures_one_method_several_ways(tmp_path) -> None:
    text = """
seeds = [0]
datasets = ["blobs"]
[metrics]
names = ["mig"]
[[methods.pca]]
grid = { num_points = 200 }
[[methods.pca]]
datasets = [{ name = "blobs", positions = 8 }]
seeds = [1, 2]
metrics = ["mcc"]
"""
    runs = load_profile(write(tmp_path, text)).runs
    got = sorted(
        (r.dataset.label, r.seed, r.hparams["num_points"], sorted(r.metrics)) for r in runs
    )
    default = METHODS.get("pca").defaults["num_points"]
    assert got == [
        ("blobs", 0, 200, ["mig"]),
        ("blobs(positions=8)", 1, default, ["mcc", "mig"]),
        ("blobs(positions=8)", 2, default, ["mcc", "mig"]),
    ]
    clash = text.replace("seeds = [1, 2]", "seeds = [1, 2]\ngroup_size = 2").replace(
        "grid = { num_points = 200 }", "grid = { num_points = 200 }\ngroup_size = 4"
    )
    with pytest.raises(ProfileError, match=r"\[methods.pca\] entries set different group_size"):
        load_profile(write(tmp_path, clash))


def test_a_set_value_at_fault_is_named_with_its_option_and_key(tmp_path) -> None:
    smoke = PROFILE_DIR / "smoke.toml"
    with pytest.raises(ProfileError) as err:
        load_profile("smoke", ["train.steps=abc"])
    assert str(err.value) == (
        f"profile {smoke}: --set train.steps=abc: train.steps must be a positive integer, got 'abc'"
    )
    # A method hyperparameter (checked by the method's Params) names the --set that gave it.
    path = write(tmp_path, MINIMAL + "[methods.beta_vae]\n")
    with pytest.raises(ProfileError) as err:
        load_profile(path, ["seeds=[0]", "methods.beta_vae.grid.beta=-1"])
    assert str(err.value) == (
        f"profile {path}: --set methods.beta_vae.grid.beta=-1: methods.beta_vae.grid: "
        "method 'beta_vae': hyperparameter beta must be >= 0, got -1"
    )
    # Only the --set that holds the bad value is named; one a later --set replaced is not.
    with pytest.raises(ProfileError) as err:
        load_profile(path, ["train.batch_size=0", "train.steps=x", "train={batch_size=0}"])
    assert f"profile {path}: --set train={{batch_size=0}}: train.batch_size must be" in str(
        err.value
    )
    assert "train.steps" not in str(err.value)
    # A bad value of the file itself names no --set, whatever else the command line sets.
    bad_file = write(tmp_path, MINIMAL + "[train]\nsteps = 0\n")
    with pytest.raises(ProfileError) as err:
        load_profile(bad_file, ["seeds=[4]", "methods.pca.grid.num_points=7"])
    assert str(err.value) == f"profile {bad_file}: train.steps must be a positive integer, got 0"
    with pytest.raises(ProfileError, match=r"--set seeds.x=1: seeds is not a table$"):
        load_profile(path, ["seeds.x=1"])
    with pytest.raises(ProfileError, match=r"--set 'steps': expected KEY=VALUE"):
        load_profile(path, ["steps"])


def test_the_profile_is_parsed_once_into_typed_objects(tmp_path) -> None:
    study = load_profile(write(tmp_path, MINIMAL))
    assert study.execution == Execution()  # every default in one place
    assert (Execution().workers, Execution().group_size, Execution().device) == (1, "auto", "auto")
    assert (Execution().checkpoint_minutes, Execution().numerics) == (10, "native")
    cores = os.cpu_count() or 1
    assert Execution().threads(2) == max(1, cores // 2)
    assert Execution(torch_threads=3).threads(2) == 3
    (entry,) = study.entries
    assert (entry.method, entry.key, entry.steps, entry.batch_size) == (
        "pca",
        "methods.pca",
        1000,
        64,
    )
    assert entry.seeds == (0, 1, 2) and entry.datasets == (DatasetSpec("blobs"),)
    assert entry.grid == {"num_points": [200, 300]} and entry.group_size == "auto"
    assert [hp["num_points"] for hp in entry.hparams] == [200, 300]
    cpu = load_profile("cpu")
    assert (cpu.execution.workers, cpu.execution.torch_threads) == (2, 1)
    assert cpu.execution.numerics == "portable" and cpu.note.startswith("3 seeds per row")


def test_a_methods_group_size_holds_for_all_its_entries(tmp_path) -> None:
    text = """
seeds = [0]
datasets = ["blobs"]
[execution]
group_size = 2
[metrics]
names = ["mig"]
[[methods.pca]]
steps = 10
[[methods.pca]]
steps = 20
group_size = 4
[methods.fastica]
"""
    study = load_profile(write(tmp_path, text))
    sizes = [(e.key, e.steps, e.group_size) for e in study.entries]
    assert sizes == [
        ("methods.pca[0]", 10, 4),
        ("methods.pca[1]", 20, 4),
        ("methods.fastica", 1000, 2),
    ]
    only = only_methods(study, ["fastica"])
    assert [e.method for e in only.entries] == ["fastica"]
    assert {r.method for r in only.runs} == {"fastica"} and only.execution == study.execution
