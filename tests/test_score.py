"""``disbench score FILE.npz``: real files, real subprocess, one-line errors."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from disbench.cli import score as score_cmd
from disbench.metrics._synthetic import synthetic_codes
from disbench.metrics.mig import mig
from disbench.registry import METRICS

FAST = ["--set", "dci.mode=fast"]


def write(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.fixture
def arrays() -> dict[str, np.ndarray]:
    codes, factors = synthetic_codes(450, sizes=(5, 4, 3), kind="perfect", noise=0.05, seed=0)
    return {
        "codes_train": codes[:300],
        "factors_train": factors[:300],
        "codes_test": codes[300:],
        "factors_test": factors[300:],
    }


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    score_cmd.add_arguments(parser)
    return score_cmd.run(parser.parse_args(argv))


def test_scores_a_file_in_a_real_subprocess(tmp_path, arrays):
    path = write(tmp_path / "codes.npz", **arrays)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "disbench.cli.score",
            str(path),
            *FAST,
            "--output",
            str(tmp_path / "out.json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    builtin = {"dci", "irs", "mcc", "mig", "modularity_explicitness", "sap_score", "unsupervised"}
    assert builtin <= set(result) <= set(METRICS.names())  # and any installed metric plugin
    assert set(result["dci"]) == {
        "disentanglement",
        "completeness",
        "informativeness_train",
        "informativeness_test",
    }
    assert set(result["sap_score"]) == {"SAP_score"}
    # The printed value is the array core's value on the same points.
    expected = mig(arrays["codes_train"], arrays["factors_train"])["discrete_mig"]
    assert result["mig"]["discrete_mig"] == pytest.approx(expected, abs=1e-12)
    assert result["dci"]["disentanglement"] > 0.9
    assert json.loads((tmp_path / "out.json").read_text()) == result
    assert "discrete_mig" in proc.stderr  # the table for people


def test_without_test_arrays_uses_a_stated_deterministic_split(tmp_path, arrays, capsys):
    path = write(
        tmp_path / "train_only.npz",
        codes_train=arrays["codes_train"],
        factors_train=arrays["factors_train"],
    )
    assert run([str(path), "--metrics", "mig,sap_score"]) == 0
    out = capsys.readouterr()
    result = json.loads(out.out)
    assert "split the 300 train points into the first 200 (train) and the last 100" in out.err
    expected = mig(arrays["codes_train"][:200], arrays["factors_train"][:200])["discrete_mig"]
    assert result["mig"]["discrete_mig"] == pytest.approx(expected, abs=1e-12)
    assert run([str(path), "--metrics", "mig,sap_score"]) == 0
    assert json.loads(capsys.readouterr().out) == result


def test_settings_change_the_result(tmp_path, arrays, capsys):
    path = write(tmp_path / "codes.npz", **arrays)
    assert run([str(path), "--metrics", "sap_score"]) == 0
    discrete = json.loads(capsys.readouterr().out)["sap_score"]["SAP_score"]
    assert (
        run([str(path), "--metrics", "sap_score", "--set", "sap_score.continuous_factors=true"])
        == 0
    )
    continuous = json.loads(capsys.readouterr().out)["sap_score"]["SAP_score"]
    assert continuous > 0.9 > discrete


@pytest.mark.parametrize(
    ("arrays_written", "message"),
    [
        ({"codes_train": np.zeros((5, 2))}, "missing array 'factors_train'"),
        (
            {"codes_train": np.zeros(5), "factors_train": np.zeros((5, 1), int)},
            "codes_train must be [N, D], got shape (5,)",
        ),
        (
            {"codes_train": np.zeros((5, 2)), "factors_train": np.zeros((4, 1), int)},
            "codes_train has 5 rows but factors_train has 4",
        ),
        (
            {"codes_train": np.zeros((5, 2)), "factors_train": np.full((5, 1), 0.5)},
            "factors_train must hold integer factor values",
        ),
        (
            {"codes_train": np.full((5, 2), np.nan), "factors_train": np.zeros((5, 1), int)},
            "codes_train contains NaN",
        ),
        (
            {
                "codes_train": np.zeros((5, 2)),
                "factors_train": np.zeros((5, 1), int),
                "codes_test": np.zeros((3, 2)),
            },
            "codes_test and factors_test must be given together",
        ),
        (
            {
                "codes_train": np.zeros((5, 2)),
                "factors_train": np.zeros((5, 1), int),
                "codes_test": np.zeros((3, 3)),
                "factors_test": np.zeros((3, 1), int),
            },
            "codes_train has D=2 but codes_test has D=3",
        ),
    ],
)
def test_malformed_files_are_one_line_errors(tmp_path, capsys, arrays_written, message):
    path = write(tmp_path / "bad.npz", **arrays_written)
    assert run([str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("disbench score: error: ") and "\n" not in err
    assert str(path) in err and message in err


def test_bad_files_and_options_are_one_line_errors(tmp_path, arrays, capsys):
    path = write(tmp_path / "codes.npz", **arrays)
    cases = [
        ([str(tmp_path / "absent.npz")], "no such file"),
        ([str(tmp_path / "codes.npz"), "--metrics", "migg"], "did you mean 'mig'"),
        ([str(path), "--metrics", "factor_vae"], "needs the dataset (to sample interventions"),
        ([str(path), "--metrics", "local_isometry"], "or render observations)"),
        ([str(path), "--set", "dci.speed=3", "--metrics", "dci"], "unknown setting(s) ['speed']"),
        ([str(path), "--set", "nonsense"], "expected KEY=VALUE, e.g. dci.mode=fast"),
        ([str(path), "--set", "wobble=1", "--metrics", "mig"], "no chosen metric has"),
    ]
    (tmp_path / "text.npz").write_text("not a zip")
    cases.append(([str(tmp_path / "text.npz")], "not a readable .npz file"))
    for argv, message in cases:
        assert run(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("disbench score: error: ") and "\n" not in err, err
        assert message in err, err


def test_a_degenerate_metric_is_reported_and_the_others_still_score(tmp_path, capsys):
    codes = np.random.default_rng(0).standard_normal((300, 3))
    codes = np.hstack([codes, codes[:, :1]])  # duplicated code: singular covariance
    factors = np.random.default_rng(1).integers(0, 3, size=(300, 2))
    path = write(tmp_path / "dup.npz", codes_train=codes, factors_train=factors)
    assert run([str(path), "--metrics", "mig,unsupervised"]) == 1
    out = capsys.readouterr()
    assert set(json.loads(out.out)) == {"mig"}
    assert "unsupervised" in out.err and "singular" in out.err
