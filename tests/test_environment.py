"""Records name the code that ran: disbench's own full commit and whether its code had local
changes, read from disbench's checkout, never from the working directory's repository."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def _git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True).stdout.strip()


def test_source_is_disbench_commit_even_inside_another_repository(tmp_path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    code = "import json; from disbench.run.environment import source; print(json.dumps(source()))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    source = json.loads(out.stdout)
    assert source["commit"] == _git("rev-parse", "HEAD")
    assert len(source["commit"]) == 40
    code_changed = _git(
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        "benchmark",
        "methods",
        "metrics",
        "pyproject.toml",
    )
    assert source["dirty"] is bool(code_changed)
