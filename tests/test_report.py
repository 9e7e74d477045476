"""The report, built from hand-made records: studies apart, cells pool seeds only, the rank
runs over the declared metrics, every caveat is marked, significance as computed by hand,
byte-identical regeneration; and the real smoke profile run twice under two evaluations."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pandas as pd

from disbench.report import build_report
from disbench.report.pooling import sections
from disbench.run.records import metric_facts
from disbench.run.runner import run_study
from disbench.run.store import ResultsStore
from disbench.run.study import load_profile


def with_facts(rec: dict) -> dict:
    """The metric facts a worker records for the record's metric settings."""
    rec["metrics"] = {m: metric_facts(m, s) for m, s in rec["spec"]["metrics"].items()}
    return rec


def record(
    run_id: str,
    method: str,
    seed: int,
    mig: float,
    sap: float,
    beta: int = 1,
    status: str = "ok",
    profile: str = "handmade",
    num_train: int = 1000,
) -> dict:
    return with_facts(
        {
            "id": run_id,
            "train_id": run_id,
            "profile": profile,
            "spec": {
                "dataset": {"name": "blobs", "params": {}},
                "method": method,
                "hparams": {"beta": beta},
                "seed": seed,
                "budget": {"steps": 300, "batch_size": 16},
                "eval_seed": 0,
                "metrics": {
                    "mig": {"num_train": num_train, "num_bins": 20},
                    "sap_score": {"num_train": num_train, "num_test": 500},
                },
                "versions": {"dataset": 1, "method": 1, "metrics": {"mig": 1, "sap_score": 1}},
            },
            "method": {"name": method, "framework": "torch", "reference_code": True},
            "dataset_label": "blobs",
            "dataset": {"kind": "procedural"},
            "status": status,
            "error": None if status == "ok" else "ValueError: broken",
            "scores": {"mig": {"discrete_mig": mig}, "sap_score": {"SAP_score": sap}}
            if status == "ok"
            else {},
            "primary": {"mig": "discrete_mig", "sap_score": "SAP_score"},
            "higher_is_better": {"mig": True, "sap_score": True},
            "metric_errors": {},
            "artifacts": {},
            "info": {},
            "environment": {
                "device_name": "test cpu",
                "packages": {"torch": "2.13.0"},
                "source": {"commit": "abc123", "dirty": True, "version": "0.1.0"},
            },
            "study": {"rank": ["mig", "sap_score"], "note": "3 seeds: coarse" if seed == 1 else ""},
            "created": f"2026-11-26T00:00:{seed:02d}+00:00",
        }
    )


def table_rows(text: str) -> list[str]:
    """The rows of every leaderboard table (those under a ``| rank | setting | n`` header)."""
    out, inside = [], False
    for line in text.splitlines():
        if line.startswith("| rank | setting | n |"):
            inside = True
        elif inside and line.startswith("| "):
            out.append(line)
        elif not line.startswith("|"):
            inside = False
    return out


def rows_of(text: str) -> dict[str, str]:
    """Table rows by their setting cell (marks stripped)."""
    return {re.sub(r" \[.*\]$", "", line.split(" | ")[1]): line for line in table_rows(text)}


def test_report_from_handmade_records(tmp_path) -> None:
    store = ResultsStore(tmp_path / "results")
    # method a: MIG 0.1, 0.2, 0.3, 0.4 (median 0.25, IQR 0.175..0.325); SAP 0.5 each.
    for seed, mig in enumerate([0.1, 0.2, 0.3, 0.4]):
        store.write(record(f"a{seed}", "a", seed, mig, 0.5))
    # method b: better MIG (0.9), worse SAP (0.1); one failed run.
    for seed in range(3):
        store.write(record(f"b{seed}", "b", seed, 0.9, 0.1))
    store.write(record("b9", "b", 9, 0, 0, status="failed"))
    # method c is swept over beta: two settings, each best at nothing.
    for beta in (1, 4):
        store.write(record(f"c{beta}", "c", 0, 0.05, 0.05, beta=beta))

    board = tmp_path / "leaderboard.md"
    paths = build_report(store.root, board)

    df = pd.read_csv(paths["scores"])
    assert len(df) == 4 * 2 + 3 * 2 + 1 + 2 * 2  # run x score, a failed run once
    assert set(df[df.method == "c"].setting) == {"c (beta=1)", "c (beta=4)"}

    text = board.read_text()
    rows = rows_of(text)
    # a: MIG rank 2 of 4, SAP rank 1 -> mean 1.5; b: 1 and 2 -> 1.5; c settings tie: 3.5 each
    # SAP: every seed of a (0.5) above every seed of b (0.1): beyond seed noise (*)
    assert rows["a"] == "| 1.50 | a | 4 | 0.250 [0.175, 0.325] | 0.500 [0.500, 0.500] * |  |"
    assert rows["b"].startswith("| 1.50 | b [F1] | 3 | 0.900 [0.900, 0.900] * | 0.100")
    assert rows["c (beta=4)"].startswith("| 3.50 | c (beta=4) | 1 |")
    assert "### blobs (procedural)" in text
    assert "| b9 | handmade | b | blobs | 9 | ValueError: broken |" in text
    assert "Hardware: test cpu" in text
    assert "- Note: 3 seeds: coarse" in text  # the study's note, from whichever records hold it
    assert "- Numerics: native (docs/design.md" in text  # records without a mode are native
    assert "Code: `abc123` + local changes" in text
    assert "300 steps x batch 16 = 0.025% of the published 300,000 x 64: a, b, c" in text
    assert "mig: num_train=1000 (default 10000)" in text
    assert paths["html"].read_text().count("<table") == 2  # the study's table, failed runs


def test_two_studies_in_one_directory_are_two_sections_counting_seeds(tmp_path) -> None:
    store = ResultsStore(tmp_path / "results")
    for num_train, seeds in ((1000, 3), (600, 2)):
        for seed in range(seeds):
            rec = record(f"a{num_train}-{seed}", "a", seed, 0.5, 0.5, num_train=num_train)
            store.write(rec)
    build_report(store.root, tmp_path / "leaderboard.md")
    text = (tmp_path / "leaderboard.md").read_text()
    titles = re.findall(r"^## Study: (.*)$", text, flags=re.M)
    assert len(titles) == 2
    assert all("mig.num_train=" in t for t in titles)
    assert sorted(int(line.split(" | ")[2]) for line in table_rows(text)) == [2, 3]


def test_the_rank_runs_over_the_declared_higher_is_better_metrics_only(tmp_path) -> None:
    """A whitened code scores 0 total correlation (lower is better): asked to rank it, the
    report refuses, says so, and ranks by MIG alone."""
    store = ResultsStore(tmp_path / "results")
    for name, mig, tc in (("whitened", 0.1, 0.0), ("vae", 0.6, 4.0)):
        for seed in range(2):
            rec = record(f"{name}{seed}", name, seed, mig, 0.5)
            rec["scores"] = {
                "mig": {"discrete_mig": mig},
                "unsupervised": {"gaussian_total_correlation": tc},
            }
            rec["primary"] = {"mig": "discrete_mig", "unsupervised": "gaussian_total_correlation"}
            rec["higher_is_better"] = {"mig": True, "unsupervised": False}
            rec["study"] = {"rank": ["mig", "unsupervised"]}
            store.write(rec)
    build_report(store.root, tmp_path / "leaderboard.md")
    text = (tmp_path / "leaderboard.md").read_text()
    rows = rows_of(text)
    assert rows["vae"].startswith("| 1.00 | vae |") and rows["whitened"].startswith("| 2.00 |")
    assert "Rank: the mean over mig of each row's rank" in text
    assert "Not ranked although the profile asked: unsupervised" in text


def test_caveats_are_marked(tmp_path) -> None:
    """Not converged, privileged, rebuilt from a paper, loss still falling, no active code,
    fast DCI and few FactorVAE votes: each shows its mark and the legend explains it."""
    store = ResultsStore(tmp_path / "results")
    falling = [{"step": 10 * (i + 1), "loss": 100.0 - 4 * i} for i in range(20)]
    flat = [{"step": 10 * (i + 1), "loss": 100.0 / (i + 1) ** 3 + 10} for i in range(20)]
    for seed in range(2):
        rec = record(f"ica{seed}", "ica", seed, 0.3, 0.3)
        rec["info"] = {"caveats": {"not_converged": "FastICA", "privileged": "true k"}}
        rec["method"]["framework"] = "numpy"
        store.write(rec)
        rec = record(f"new{seed}", "new", seed, 0.2, 0.2)
        rec["method"]["reference_code"] = False
        rec["info"] = {"loss_curve": falling}
        store.write(rec)
        rec = record(f"vae{seed}", "vae", seed, 0.1, 0.1)
        rec["info"] = {"loss_curve": flat}
        rec["spec"]["metrics"]["dci"] = {"num_train": 1000, "num_test": 500, "mode": "fast"}
        rec["spec"]["metrics"]["factor_vae"] = {"num_train": 50, "num_eval": 25, "batch_size": 64}
        rec["scores"]["dci"] = {"disentanglement": 0.4}
        rec["scores"]["factor_vae"] = {"eval_accuracy": 0.36 + 0.04 * seed, "num_active_dims": seed}
        rec["primary"].update({"dci": "disentanglement", "factor_vae": "eval_accuracy"})
        store.write(with_facts(rec))
    build_report(store.root, tmp_path / "leaderboard.md")
    text = (tmp_path / "leaderboard.md").read_text()
    assert "| ica [NC2, PI] |" in text
    assert "| new [PR, LF2] |" in text
    assert "| vae |" in text  # its loss had flattened: no LF
    assert "| dci.disentanglement ~ |" in text and "| factor_vae.eval_accuracy ~ |" in text
    assert "Approximate (~) dci: fast mode" in text
    assert "Approximate (~) factor_vae: 25 evaluation votes (published 5,000)" in text
    # 25 votes resolve 0.04: two digits, and the seed that kept no code is counted
    vae = rows_of(text)["vae"]
    assert "0.38 [0.37, 0.39] Z1" in vae
    for mark in ("**NC**", "**PI**", "**PR**", "**LF**", "**Z**", "**~**", "**\\***"):
        assert mark.replace("\\", "") in text


def _exact_interval(a: list[float], b: list[float]) -> tuple[float, float]:
    """The 2.5% and 97.5% points of median(a*) - median(b*) over every resample."""
    diffs = [
        np.median(x) - np.median(y)
        for x in itertools.product(a, repeat=len(a))
        for y in itertools.product(b, repeat=len(b))
    ]
    return float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))


def test_significance_matches_a_hand_computation(tmp_path) -> None:
    cases = {
        "apart": ([0.90, 0.91, 0.92], [0.10, 0.20, 0.30]),  # every resample: best ahead
        "overlap": ([0.50, 0.90, 0.95], [0.60, 0.70, 0.80]),  # some resamples: behind
    }
    for name, (best, second) in cases.items():
        store = ResultsStore(tmp_path / name / "results")
        for method, values in (("best", best), ("second", second)):
            for seed, v in enumerate(values):
                store.write(record(f"{method}{seed}", method, seed, v, 0.5))
        (study,) = sections(store.records())
        sig = study.significance[("blobs", "mig")]
        low, high = _exact_interval(best, second)
        assert (sig.best, sig.runner_up) == ("best", "second")
        assert abs(sig.low - low) < 0.06 and abs(sig.high - high) < 0.06
        assert sig.significant == (low > 0), name
        board = tmp_path / name / "leaderboard.md"
        build_report(store.root, board)
        best_row = rows_of(board.read_text())["best"]
        assert best_row.split(" | ")[3].endswith(" *") == (name == "apart")


def test_regeneration_is_byte_identical(tmp_path) -> None:
    store = ResultsStore(tmp_path / "results")
    for seed in range(3):
        store.write(record(f"a{seed}", "a", seed, 0.2 + 0.1 * seed, 0.5))
        store.write(record(f"b{seed}", "b", seed, 0.3, 0.1 * seed))
    board = tmp_path / "leaderboard.md"
    paths = build_report(store.root, board)
    first = {k: p.read_bytes() for k, p in paths.items()}
    paths = build_report(store.root, board)
    assert {k: p.read_bytes() for k, p in paths.items()} == first


def test_smoke_twice_under_two_evaluations_never_pools_them(tmp_path) -> None:
    out = tmp_path / "results"
    run_study(load_profile("smoke"), out, show_progress=False)
    run_study(load_profile("smoke", ["metrics.common.num_train=600"]), out, show_progress=False)
    board = tmp_path / "leaderboard.md"
    build_report(out, board)
    text = board.read_text()
    assert len(re.findall(r"^## Study: smoke", text, flags=re.M)) == 2
    rows = table_rows(text)
    assert len(rows) == 4  # pca and fastica in each study
    assert all(int(line.split(" | ")[2]) == 2 for line in rows)  # smoke has 2 seeds


def test_report_profile_keeps_one_profile(tmp_path) -> None:
    store = ResultsStore(tmp_path / "results")
    for profile in ("first", "second"):
        for seed in range(2):
            store.write(record(f"{profile}{seed}", "a", seed, 0.5, 0.5, profile=profile))
    board = tmp_path / "leaderboard.md"
    build_report(store.root, board, profile="second")
    titles = re.findall(r"^## Study: (.*)$", board.read_text(), flags=re.M)
    assert titles == ["second"]


def test_studies_told_apart_by_their_metrics_are_titled_by_them() -> None:
    both = [record(f"a{s}", "a", s, 0.1, 0.2, profile="p") for s in range(3)]
    mig_only = [record(f"b{s}", "b", s, 0.1, 0.2, profile="p") for s in range(3)]
    for rec in mig_only:
        del rec["spec"]["metrics"]["sap_score"], rec["scores"]["sap_score"]
    titles = sorted(s.title for s in sections(both + mig_only))
    assert titles == ["p (the common metrics only)", "p (with sap_score)"]
