"""What machine and software produced a record: package versions, device, git commit."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from disbench.run.numerics import cpu_info

_PACKAGES = ("disbench", "numpy", "scipy", "scikit-learn", "pandas", "matplotlib", "torch", "h5py")


def _version(pkg: str) -> str | None:
    try:
        return version(pkg)
    except PackageNotFoundError:
        return None


def _cpu_name() -> str:
    return cpu_info().get("model name") or platform.processor() or platform.machine()


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=5, check=True
    ).stdout.strip()


@functools.cache
def source() -> dict[str, Any]:
    """Which disbench code ran: the full commit and a dirty flag (local changes to the code:
    benchmark/, methods/, metrics/, pyproject.toml) when disbench runs from its own git
    checkout (an editable install), else the installed package version alone.

    The checkout is found from this file, never from the working directory, so a study run
    inside another repository records disbench's commit, not that repository's."""
    package = Path(__file__).resolve().parent.parent
    root = package.parent
    out: dict[str, Any] = {"version": _version("disbench"), "commit": None, "dirty": None}
    try:
        if Path(_git(root, "rev-parse", "--show-toplevel")).resolve() != root:
            return out  # an installed copy that happens to sit inside some git repository
        out["commit"] = _git(root, "rev-parse", "HEAD")
        # Only the code counts: a study's outputs and the docs are tracked too.
        code = ("benchmark", "methods", "metrics", "pyproject.toml")
        status = _git(root, "status", "--porcelain", "--untracked-files=no", "--", *code)
    except (OSError, subprocess.SubprocessError):
        return out
    out["dirty"] = bool(status)
    return out


def device_name(device: str) -> str:
    """A human-readable name of the training device ("NVIDIA H200", "<cpu model> (2 cores)")."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    return f"{_cpu_name()} ({os.cpu_count()} cores)"


@functools.cache
def environment(device: str) -> dict[str, Any]:
    """The environment block of a run record (cached: it does not change within a process)."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {p: _version(p) for p in _PACKAGES},
        "device": device,
        "device_name": device_name(device),
        "source": source(),
    }
