"""The results store: one JSON record per run under ``<out>/runs/``, written atomically.

A record appears complete or not at all (temporary file, fsync, rename), so a run
killed at any moment leaves either its finished record or nothing, and a rerun
resumes by skipping the ids whose records exist.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class ResultsStore:
    """``<root>/runs/<id>.json`` records; models and images live beside them."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.runs_dir = self.root / "runs"

    def record_path(self, run_id: str) -> Path:
        return self.runs_dir / f"{run_id}.json"

    def model_dir(self, train_id: str) -> Path:
        return self.root / "models" / train_id

    def traversal_path(self, run_id: str) -> Path:
        return self.root / "plots" / "traversals" / f"{run_id}.png"

    def transfer_path(self, run_id: str) -> Path:
        return self.root / "plots" / "transfers" / f"{run_id}.png"

    def finished_ids(self, failed: bool = True) -> set[str]:
        """Ids with a record; with ``failed=False`` only those whose run succeeded."""
        if not failed:
            return {r["id"] for r in self.records() if r["status"] == "ok"}
        if not self.runs_dir.is_dir():
            return set()
        return {p.stem for p in self.runs_dir.glob("*.json")}

    def remove_stale_temporaries(self) -> None:
        """Drop half-written temporary files left by a run that was killed mid-write."""
        if self.runs_dir.is_dir():
            for tmp in self.runs_dir.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)

    def write(self, record: dict[str, Any]) -> Path:
        path = self.record_path(record["id"])
        atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True, default=_jsonable))
        return path

    def records(self) -> list[dict[str, Any]]:
        """Every record, in id order; an unreadable file is an error naming it."""
        out = []
        for path in sorted(self.runs_dir.glob("*.json")) if self.runs_dir.is_dir() else []:
            try:
                out.append(json.loads(path.read_text()))
            except json.JSONDecodeError as exc:
                raise ValueError(f"run record {path} is not valid JSON: {exc}") from exc
        return out


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in a run record")
