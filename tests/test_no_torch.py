"""`disbench list` and `disbench report` load neither torch nor jax: the list reads the
registry's table and the plugins' source, the report the records alone."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
FRAMEWORKS = ("torch", "jax", "flax")


def _frameworks_loaded(argv: list[str], cwd: Path) -> tuple[list[str], str]:
    """The frameworks in sys.modules once ``disbench ARGV`` has run, and what it printed."""
    code = (
        "import sys\n"
        "from disbench.cli import main\n"
        f"rc = main({argv!r})\n"
        f"loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({FRAMEWORKS!r}))\n"
        "print('loaded:', ','.join(loaded))\n"
        "sys.exit(rc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("loaded:"), done.stdout
    return [m for m in last.removeprefix("loaded:").strip().split(",") if m], done.stdout


def test_disbench_list_imports_no_framework(tmp_path) -> None:
    """With the torch and Flax example plugins installed, every name is still listed."""
    loaded, out = _frameworks_loaded(["list"], tmp_path)
    assert loaded == []
    for name in ("pca", "beta_vae", "mpi3d_toy", "dci", "torch_ae", "flax_beta_vae"):
        assert f"\n  {name} " in out, name
    assert "beta-VAE (Higgins et al. 2017): KL weighted by beta" in out


def test_disbench_report_imports_no_framework(tmp_path) -> None:
    runs = tmp_path / "results" / "runs"
    runs.mkdir(parents=True)
    for record in sorted((ROOT / "results" / "runs").glob("*.json"))[:8]:
        shutil.copy(record, runs)
    argv = ["report", "--out", "results", "--leaderboard", "board.md", "--claims", "claims.md"]
    loaded, out = _frameworks_loaded(argv, tmp_path)
    assert loaded == []
    assert (tmp_path / "board.md").read_text().startswith("#"), out
