"""A training run killed halfway (SIGKILL of the real process) resumes from its last
checkpoint and ends with the weights and scores of an uninterrupted run: one VAE, a batched
group of VAEs, and (crashed in-process) li_ae, both stages of cs_dismo, DisDiff's phase 3
and IRMAE."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from test_disdiff import FAST, TINY

from disbench.api import Checkpoint, FitContext, TrainBudget
from disbench.datasets.blobs import Blobs
from disbench.methods.nn.vae import VAERepresentation
from disbench.registry import METHODS
from disbench.run.store import ResultsStore

ROOT = Path(__file__).parent.parent
STEPS = 256

PROFILE = f"""
seeds = SEEDS
datasets = [{{name = "blobs", positions = 8, sizes = 2}}]
[execution]
checkpoint_minutes = 0
[metrics]
names = ["mig", "sap_score"]
common = {{num_train = 400, num_test = 200}}
[methods.beta_vae]
steps = {STEPS}
batch_size = 16
group_size = GROUP
grid = {{lr = 1e-3}}
"""


def _cmd(profile: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "disbench",
        "run",
        "--profile",
        str(profile),
        "--out",
        str(out),
        "--quiet",
        "--workers",
        "1",
    ]


def _weights(out: Path) -> list[dict[str, torch.Tensor]]:
    return [
        VAERepresentation.load(out / record["artifacts"]["model"]).model.state_dict()
        for record in ResultsStore(out).records()
    ]


@pytest.mark.parametrize(("seeds", "group"), [([0], 1), ([0, 1], 2)], ids=["single", "batched"])
def test_a_killed_run_resumes_from_its_checkpoint_bit_identically(tmp_path, seeds, group) -> None:
    """One model, or a batched group of two (its state in its first run's checkpoint)."""
    profile = tmp_path / "study.toml"
    profile.write_text(PROFILE.replace("SEEDS", str(seeds)).replace("GROUP", str(group)))
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(_cmd(profile, whole), check=True, capture_output=True, timeout=300)

    proc = subprocess.Popen(
        _cmd(profile, killed), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    checkpoints = killed / "checkpoints"
    step, deadline = 0, time.monotonic() + 240
    while step < STEPS // 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        for path in checkpoints.glob("*.pkl") if checkpoints.is_dir() else []:
            try:
                step = pickle.loads(path.read_bytes())["step"]
            except (EOFError, pickle.UnpicklingError, FileNotFoundError):
                pass  # being replaced at this instant
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert STEPS // 2 <= step < STEPS, f"the kill should land halfway, at step {step}"
    assert not list((killed / "runs").glob("*.json")) if (killed / "runs").is_dir() else True

    subprocess.run(_cmd(profile, killed), check=True, capture_output=True, timeout=300)
    resumed, uninterrupted = ResultsStore(killed).records(), ResultsStore(whole).records()
    assert len(resumed) == len(seeds)
    for r, u in zip(resumed, uninterrupted, strict=True):
        assert r["scores"] == u["scores"]
        assert r["info"]["loss_curve"] == u["info"]["loss_curve"]
        assert r["execution"]["group_size"] == group
    for a, b in zip(_weights(killed), _weights(whole), strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert not list(checkpoints.glob("*.pkl"))  # removed once the record is written


class Crash(Exception):
    """Stands in for a killed process, raised from the progress callback."""


def _crash_at(limit: int):  # noqa: ANN202
    def progress(step: int, total: int) -> None:
        if step >= limit:
            raise Crash

    return progress


@pytest.mark.parametrize(
    ("name", "hparams", "crash", "steps"),
    [
        ("li_ae", {"pool_size": 300, "neighbours": 4}, 36, 60),
        ("cs_dismo", {"num_images": 100, "encoder_share": 0.5}, 24, 60),  # in stage 1 of 2
        ("cs_dismo", {"num_images": 100, "encoder_share": 0.5}, 54, 60),  # in stage 2
        ("disdiff", {**TINY, **FAST}, 30, 60),  # phase 3 (the pretrained stages are cached)
        ("irmae", {"num_linear": 4}, 70, 130),  # saves where a 64-step draw of factors starts
    ],
)
def test_other_trained_methods_resume_bit_identically(
    tmp_path, name, hparams, crash, steps
) -> None:
    torch.use_deterministic_algorithms(True, warn_only=True)  # as the harness does
    cls, dataset, budget = METHODS.get(name), Blobs(positions=8, sizes=2), TrainBudget(steps, 16)
    assert cls.checkpoints
    hp = cls.resolve_hparams(hparams)
    cache = tmp_path / "cache"
    whole = cls().fit(dataset, hp, 0, budget, FitContext(cache_dir=cache))
    path = tmp_path / "state.pkl"
    with pytest.raises(Crash):
        ctx = FitContext(
            cache_dir=cache, checkpoint=Checkpoint(path, 0.0), progress=_crash_at(crash)
        )
        cls().fit(dataset, hp, 0, budget, ctx)
    assert 0 < pickle.loads(path.read_bytes())["step"] < budget.steps
    ctx = FitContext(cache_dir=cache, checkpoint=Checkpoint(path, 0.0))
    resumed = cls().fit(dataset, hp, 0, budget, ctx)
    x = dataset.render(dataset.factors_of(np.arange(dataset.num_observations)))
    assert np.array_equal(whole.encode(x), resumed.encode(x))
