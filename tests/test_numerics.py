"""The numerics fingerprint and the portable mode: what a record says about its
floating-point path, when two records promise the same bits, and a portable study whose
workers start pinned, record it, and reproduce bit for bit under `disbench verify`."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from disbench.run import numerics
from disbench.run.runner import run_study
from disbench.run.store import ResultsStore
from disbench.run.study import ProfileError, load_profile
from disbench.run.verify import verify


def test_the_fingerprint_names_the_path_and_same_numerics_compares_it() -> None:
    fp = numerics.fingerprint("cpu")
    for key in ("cpu_vendor", "cpu_model", "aten_capability", "mkldnn", "blas", "torch_threads"):
        assert key in fp, key
    assert fp["numerics"] == "native" and numerics.same_numerics(fp, copy.deepcopy(fp))
    other = {**fp, "cpu_model": "Another CPU"}
    assert not numerics.same_numerics(fp, other)  # native: another CPU is another path
    assert not numerics.same_numerics(fp, {**fp, "aten_capability": "DEFAULT"})
    assert not numerics.same_numerics(fp, None) and not numerics.same_numerics(None, None)
    # The OpenMP runtime shows up once scikit-learn has loaded: not a difference of path.
    openmp = {"internal_api": "openmp", "version": None, "architecture": None}
    assert numerics.same_numerics(fp, {**fp, "blas": [*fp["blas"], {**openmp, "num_threads": 1}]})
    kernel = {**fp, "blas": [{**d, "architecture": "Zen"} for d in fp["blas"]]}
    assert not numerics.same_numerics(fp, kernel) or not fp["blas"]
    pinned = {**fp, "numerics": "portable", "env": dict(numerics.PORTABLE_ENV)}
    elsewhere = {**pinned, "cpu_vendor": "GenuineIntel", "cpu_model": "Another CPU"}
    assert numerics.same_numerics(pinned, elsewhere)  # portable: the pinned path decides
    assert not numerics.same_numerics(pinned, {**elsewhere, "torch_threads": 7})


def test_portable_numerics_refuse_a_process_started_without_them(monkeypatch) -> None:
    monkeypatch.delenv("MKL_CBWR", raising=False)
    with pytest.raises(numerics.NumericsError, match="needs a process started with"):
        numerics.apply("portable")
    with pytest.raises(ValueError, match=r"numerics must be one of \['native', 'portable'\]"):
        numerics.apply("fast")
    env = numerics.worker_env("portable", {"PATH": "/bin"})
    assert env == {"PATH": "/bin", **numerics.PORTABLE_ENV}
    assert numerics.worker_env("native", {"PATH": "/bin"}) == {"PATH": "/bin"}


def test_a_machine_without_avx2_is_told_before_any_training(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(numerics.platform, "machine", lambda: "arm64")
    study = load_profile("smoke", ['execution.numerics="portable"'])
    with pytest.raises(numerics.NumericsError, match=r"needs an x86-64 CPU with AVX2 .*native"):
        run_study(study, tmp_path / "results", show_progress=False)
    assert not (tmp_path / "results" / "runs").exists()
    numerics.check_supported("native")  # the native path runs anywhere


def test_a_bad_numerics_setting_is_a_one_line_profile_error() -> None:
    with pytest.raises(ProfileError, match=r"numerics must be one of .*got 'fast'"):
        load_profile("smoke", ["execution.numerics=fast"])


def test_a_portable_study_records_its_pinned_path_and_verifies_bit_identically(
    tmp_path: Path,
) -> None:
    study = load_profile("smoke", ['execution.numerics="portable"', "seeds=[0]"])
    out = tmp_path / "results"
    assert run_study(study, out, workers=1, show_progress=False)["ok"] == 2
    for record in ResultsStore(out).records():
        fp = record["numerics"]
        assert record["execution"]["numerics"] == fp["numerics"] == "portable"
        assert fp["aten_capability"] == "AVX2" and fp["mkldnn"] is False
        assert fp["env"].items() >= numerics.PORTABLE_ENV.items()
    report = verify(out, sample=2)
    assert report.problems == [] and len(report.passed) == 2, report
    assert all("same numerics, every score bit-identical" in line for line in report.passed)
