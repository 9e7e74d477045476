"""The results store: one JSON record per run under ``<out>/runs/``, written atomically
(its fields: :class:`disbench.run.schema.Record`).

A record appears complete or not at all (temporary file, fsync, rename), so a run
killed at any moment leaves either its finished record or nothing, and a rerun
resumes by skipping the ids whose records exist. Each record carries a checksum of its
content: a truncated, unparsable or edited record is named by :meth:`ResultsStore.scan`,
never trusted; the runner runs its id again and the report leaves it out.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from disbench.run.schema import Record


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


RECORD_FORMAT = 2  # the newest record format this disbench reads and writes
MIN_FREE_MB = 50  # below this, a study refuses to start rather than fail mid-write


def checksum(record: Record | dict[str, Any]) -> str:
    """SHA-256 of the record's canonical JSON, without its own ``checksum`` field."""
    body = {k: v for k, v in record.items() if k != "checksum"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=_jsonable)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


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

    def checkpoint_path(self, train_id: str) -> Path:
        return self.root / "checkpoints" / f"{train_id}.pkl"

    def transfer_path(self, run_id: str) -> Path:
        return self.root / "plots" / "transfers" / f"{run_id}.png"

    def finished_ids(self, failed: bool = True) -> set[str]:
        """Ids with a sound record; with ``failed=False`` only those whose run succeeded."""
        return {r["id"] for r in self.records() if failed or r["status"] == "ok"}

    def check_writable(self) -> None:
        """A one-line error, before any training, when records could not be written: a
        read-only filesystem, a path that is not a folder, or a nearly full disk."""
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=self.runs_dir, prefix=".probe.", suffix=".tmp")
            os.close(fd)
            Path(probe).unlink()
        except OSError as exc:
            raise ValueError(f"results directory {self.root}: cannot write there ({exc})") from exc
        free_mb = shutil.disk_usage(self.runs_dir).free / 2**20
        if free_mb < MIN_FREE_MB:
            raise ValueError(
                f"results directory {self.root}: only {free_mb:.0f} MB free on its disk "
                f"(a study needs at least {MIN_FREE_MB} MB)"
            )

    def remove_stale_temporaries(self) -> None:
        """Drop half-written temporary files left by a run that was killed mid-write."""
        if self.runs_dir.is_dir():
            for tmp in self.runs_dir.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)

    def write(self, record: Record) -> Path:
        record = {**record, "checksum": checksum(record)}
        path = self.record_path(record["id"])
        atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True, default=_jsonable))
        return path

    def scan(self) -> tuple[list[Record], list[tuple[Path, str]]]:
        """(the sound records in id order, (path, what is wrong) for every other file)."""
        good, bad = [], []
        for path in sorted(self.runs_dir.glob("*.json")) if self.runs_dir.is_dir() else []:
            record, problem = _read(path)
            if problem is None:
                good.append(record)
            else:
                bad.append((path, problem))
        return good, bad

    def sound(self, run_id: str) -> Record | None:
        """The record of ``run_id`` if it exists and checks out, else None."""
        path = self.record_path(run_id)
        if not path.is_file():
            return None
        record, problem = _read(path)
        return record if problem is None else None

    def records(self) -> list[Record]:
        """The sound records, in id order (see :meth:`scan` for the others)."""
        return self.scan()[0]


def _read(path: Path) -> tuple[Record, str | None]:
    """A record file and what is wrong with it (None: it is sound)."""
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return {}, f"not valid JSON, truncated or corrupt ({exc})"
    if not isinstance(record, dict) or record.get("id") != path.stem:
        return {}, "not a run record of this id"
    if record.get("format", 1) > RECORD_FORMAT:
        return record, (
            f"written by a newer disbench (record format {record['format']}; this one reads "
            f"up to {RECORD_FORMAT})"
        )
    if record.get("checksum") != checksum(record):
        return record, "its checksum does not match its content (edited?)"
    return record, None


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in a run record")
