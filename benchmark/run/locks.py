"""Run locks: two runners on one results directory never train the same run at once.

Before a runner trains a run it creates ``<out>/locks/<id>.json`` atomically (``O_EXCL``)
with its host, pid and start time, and touches it every ``HEARTBEAT_S`` while it holds it.
A lock is stale, and is taken over, when its owner is a dead process on this host or its
heartbeat is older than ``STALE_S`` (an owner on another host that died). Taking over
renames the stale file first, so of two runners only one wins. Locks are released when
the runner ends.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path
from types import TracebackType

HEARTBEAT_S = 10.0
STALE_S = 60.0


class RunLocks:
    """The run locks this runner holds, kept alive by a heartbeat thread while in a ``with``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.held: set[str] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def path(self, run_id: str) -> Path:
        return self.folder / f"{run_id}.json"

    def acquire_all(self, run_ids: list[str]) -> bool:
        """Claim every id, or none (releasing what this call took) when one is held."""
        taken = []
        for run_id in run_ids:
            if not self.acquire(run_id):
                for other in taken:
                    self.release(other)
                return False
            taken.append(run_id)
        return True

    def acquire(self, run_id: str) -> bool:
        path = self.path(run_id)
        self.folder.mkdir(parents=True, exist_ok=True)
        if self._create(path):
            return True
        if not self.stale(path):
            return False
        grave = path.with_name(f".{path.name}.{self.host}.{self.pid}.stale")
        try:
            os.rename(path, grave)  # only one of several runners taking over succeeds
        except FileNotFoundError:
            return False
        grave.unlink(missing_ok=True)
        return self._create(path)

    def _create(self, path: Path) -> bool:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as fh:
            json.dump({"host": self.host, "pid": self.pid, "since": time.time()}, fh)
        with self._lock:
            self.held.add(path.stem)
        return True

    def held_by_other(self, run_id: str) -> bool:
        path = self.path(run_id)
        return run_id not in self.held and path.exists() and not self.stale(path)

    def stale(self, path: Path) -> bool:
        """Its owner is a dead process on this host, or its heartbeat stopped."""
        try:
            age = time.time() - path.stat().st_mtime
            owner = json.loads(path.read_text())
        except FileNotFoundError:
            return False
        except (OSError, ValueError):  # being written this instant, or its owner died doing so
            return age > STALE_S
        if owner.get("host") == self.host and not _alive(int(owner.get("pid", -1))):
            return True
        return age > STALE_S

    def release(self, run_id: str) -> None:
        with self._lock:
            if run_id in self.held:
                self.held.discard(run_id)
                self.path(run_id).unlink(missing_ok=True)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with self._lock:
                for run_id in self.held:
                    try:
                        os.utime(self.path(run_id))
                    except FileNotFoundError:
                        pass

    def __enter__(self) -> RunLocks:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        for run_id in list(self.held):
            self.release(run_id)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
