"""The example plugins under examples/ (installed by the nox tests session) run through the
harness like built-ins: the Flax beta-VAE learns and repeats itself exactly, the PyTorch
method, the dataset and the metric join a study, MIG-sup gives known answers, and a plugin
whose framework is not installed is listed as unavailable instead of breaking the list."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from disbench_example_metric import mig_sup

from disbench.registry import DATASETS, METHODS, METRICS
from disbench.run.runner import run_study
from disbench.run.store import ResultsStore
from disbench.run.study import load_profile


def _study(tmp_path: Path, text: str, out: str = "results") -> list[dict]:
    profile = tmp_path / "study.toml"
    profile.write_text(text)
    counts = run_study(load_profile(str(profile)), tmp_path / out, show_progress=False)
    records = ResultsStore(tmp_path / out).records()
    assert counts["failed"] == 0, [r["error"] for r in records if r["error"]]
    return records


def test_the_examples_are_registered() -> None:
    assert {"flax_beta_vae", "torch_ae", "random_projection"} <= set(METHODS.names())
    assert "two_bars" in DATASETS.names() and "mig_sup" in METRICS.names()
    assert METHODS.get("flax_beta_vae").framework == "jax"


def test_the_flax_beta_vae_learns_and_the_same_seed_gives_the_same_scores(tmp_path) -> None:
    text = (
        'seeds = [0]\ndatasets = [{name = "blobs", positions = 8, sizes = 2}]\n'
        '[metrics]\nnames = ["mig", "dci"]\ncommon = {num_train = 500, num_test = 250}\n'
        '[metrics.dci]\nmode = "fast"\n'
        "[methods.flax_beta_vae]\nsteps = 60\nbatch_size = 16\ngrid = {lr = 1e-3}\n"
    )
    (first,) = _study(tmp_path, text, "first")
    (second,) = _study(tmp_path, text, "second")
    assert first["scores"] == second["scores"]
    curve = [p["loss"] for p in first["info"]["loss_curve"]]
    assert curve[-1] < 0.3 * curve[0]  # the Bernoulli loss of blobs falls fast
    assert first["method"]["framework"] == "jax"


def test_the_torch_method_dataset_and_metric_examples_join_a_study(tmp_path) -> None:
    text = (
        'seeds = [0]\ndatasets = [{name = "two_bars", positions = 6, thicknesses = 2}]\n'
        '[metrics]\nnames = ["mig", "mig_sup"]\ncommon = {num_train = 600}\n'
        "[methods.torch_ae]\nsteps = 100\nbatch_size = 32\n"
        "[methods.pca.grid]\nnum_points = 300\n"
    )
    records = {r["spec"]["method"]: r for r in _study(tmp_path, text)}
    assert set(records) == {"torch_ae", "pca"}
    for rec in records.values():
        assert 0 <= rec["scores"]["mig_sup"]["mig_sup"] <= 1
        assert rec["dataset"]["factor_names"] == ["row", "column", "thickness"]
    curve = [p["loss"] for p in records["torch_ae"]["info"]["loss_curve"]]
    assert curve[-1] < 0.5 * curve[0]


def test_mig_sup_known_answers() -> None:
    rng = np.random.default_rng(0)
    factors = rng.integers(0, 8, size=(4000, 3))
    # each code one factor: 1 up to the small positive bias of estimated MI
    assert abs(mig_sup(factors.astype(float), factors)["mig_sup"] - 1) < 0.01
    # the first code is the sum of two factors, as informative of one as of the other
    # (gap 0); the second carries one factor (gap 1)
    mixed = np.c_[factors[:, 0] + factors[:, 1], factors[:, 2]].astype(float)
    got = mig_sup(mixed, factors)["mig_sup"]
    assert abs(got - 0.5) < 0.02, got


def test_a_plugin_whose_framework_is_missing_is_listed_as_unavailable(tmp_path) -> None:
    """An installed distribution (a dist-info folder on the path) whose module imports a
    package that is not installed."""
    dist = tmp_path / "needs_missing-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: needs-missing\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[disbench.methods]\nneeds_missing = needs_missing\n")
    (tmp_path / "needs_missing.py").write_text("import no_such_framework_xyz\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "disbench", "list"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if "needs_missing" in x)
    assert "unavailable: needs the package 'no_such_framework_xyz', which is not installed" in line
    assert "  pca " in done.stdout
