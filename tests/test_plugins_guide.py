"""docs/plugins.md runs as written: its Python blocks are executed in order in one namespace,
its TOML blocks parsed, its shell blocks run, all in one empty folder. The shell blocks are
the five-minute path: `disbench new-method` writes a package, pip installs it into this
environment, the study trains it beside a baseline and the report ranks both."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent
GUIDE = ROOT / "docs" / "plugins.md"


def blocks() -> list[tuple[str, str]]:
    return re.findall(r"^```(\w+)\n(.*?)^```$", GUIDE.read_text(), flags=re.M | re.S)


def test_the_plugin_guide_runs_as_written(tmp_path, monkeypatch, capsys) -> None:
    found = blocks()
    assert {kind for kind, _ in found} == {"python", "toml", "bash"}
    monkeypatch.chdir(tmp_path)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    namespace: dict[str, object] = {"__name__": "plugins_guide"}
    try:
        for kind, code in found:
            if kind == "python":
                exec(compile(code, str(GUIDE), "exec"), namespace)  # noqa: S102
            elif kind == "toml":
                tomllib.loads(code)
            else:
                done = subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", code],
                    cwd=tmp_path,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=900,
                )
                assert done.returncode == 0, f"{code}\n{done.stdout}\n{done.stderr}"
                assert "method 'my_ae' keeps the contract" in done.stdout
    finally:
        subprocess.run(
            [sys.executable, "-m", "pip", "uninstall", "--quiet", "--yes", "disbench-my-ae"],
            capture_output=True,
        )
    printed = capsys.readouterr().out
    assert "ok: two fits with the same seed give identical codes" in printed
    assert "(6, 1, 64, 64) float32" in printed
    assert re.search(r"\{'best_correlation': 0\.\d+\}", printed)
    board = (tmp_path / "leaderboard.md").read_text()
    assert "| my_ae" in board and "| pca" in board
