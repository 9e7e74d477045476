"""Packaging: the wheel installs exactly one top-level import package, ``disbench``, and the
installed commands work from a directory holding folders named like ours."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from disbench.registry import DATASETS, METHODS, METRICS

ROOT = Path(__file__).parent.parent


def _stray_folders(cwd: Path) -> None:
    """A user's own ``methods/``, ``metrics/`` and ``benchmark/`` packages, all empty."""
    for name in ("methods", "metrics", "benchmark"):
        (cwd / name).mkdir(parents=True)
        (cwd / name / "__init__.py").write_text("")


def _listed(stdout: str) -> set[str]:
    return {line.split()[0] for line in stdout.splitlines() if line.startswith("  ")}


def test_the_wheel_holds_one_namespace_and_works_beside_stray_folders(tmp_path) -> None:
    # Built from a copy: setuptools leaves a build/ folder beside the sources.
    src = tmp_path / "src"
    for item in ("benchmark", "methods", "metrics"):
        shutil.copytree(ROOT / item, src / item, ignore=shutil.ignore_patterns("__pycache__"))
    for item in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / item, src / item)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(src)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("disbench-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"disbench"}
    sources = {
        f"disbench/{p.relative_to(ROOT / 'benchmark')}" for p in (ROOT / "benchmark").rglob("*.py")
    }
    for folder in ("methods", "metrics"):
        sources |= {
            f"disbench/{folder}/{p.relative_to(ROOT / folder)}"
            for p in (ROOT / folder).rglob("*.py")
        }
    assert sources <= set(names), sorted(sources - set(names))
    assert "disbench/profiles/cpu.toml" in names

    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), wheel],
        check=True,
        capture_output=True,
    )
    work = tmp_path / "work"
    _stray_folders(work)
    code = (
        f"import sys; sys.path.insert(0, {str(site)!r})\n"
        "import disbench\n"
        f"assert disbench.__file__.startswith({str(site)!r}), disbench.__file__\n"
        "from disbench.cli import main\n"
        "sys.exit(main(['list']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    builtins = {
        name
        for registry in (METHODS, DATASETS, METRICS)
        for name in registry.names()
        if registry.origin(name).startswith("disbench.")
    }
    assert builtins <= _listed(done.stdout)


def test_python_m_disbench_lists_every_builtin_beside_stray_folders(tmp_path) -> None:
    _stray_folders(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "disbench", "list"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert {"pca", "beta_vae", "blobs", "mig", "dci"} <= _listed(done.stdout)
