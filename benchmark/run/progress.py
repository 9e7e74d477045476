"""A live progress line: runs done / total, failures, ETA, and the current run's step."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class ProgressDisplay:
    """Redraws one status line on a terminal; prints a line per finished run otherwise."""

    def __init__(
        self,
        total: int,
        already: int,
        workers: int = 1,
        enabled: bool = True,
        stream: TextIO | None = None,
    ) -> None:
        self.total = total
        self.done = already
        self.already = already
        self.failed = 0
        self.workers = max(1, workers)
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self.current = ""

    def eta(self) -> str:
        finished = self.done - self.already
        remaining = self.total - self.done
        if finished == 0 or remaining == 0:
            return "--" if remaining else "0s"
        seconds = (time.monotonic() - self.started) / finished * remaining
        minutes, secs = divmod(int(seconds), 60)
        return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"

    def line(self) -> str:
        fail = f", {self.failed} failed" if self.failed else ""
        return f"[{self.done}/{self.total} runs{fail}, ETA {self.eta()}] {self.current}"

    def _show(self, force_newline: bool = False) -> None:
        if not self.enabled:
            return
        if self.tty and not force_newline:
            self.stream.write("\r\033[K" + self.line()[:150])
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def start(self, group: list[Any]) -> None:
        run = group[0]
        extra = f" (+{len(group) - 1} batched)" if len(group) > 1 else ""
        self.current = f"{run.method} on {run.dataset.label} seed={run.seed}{extra}"
        if self.tty:
            self._show()

    def step(self, label: str, step: int, total: int) -> None:
        self.current = f"{label}: step {step}/{total}"
        if self.tty:
            self._show()

    def finish(self, status: str) -> None:
        self.done += 1
        self.failed += status == "failed"
        self._show(force_newline=not self.tty)

    def skip(self, runs: int) -> None:
        """Runs another runner finished meanwhile: done, and out of the ETA."""
        self.done += runs
        self.already += runs

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
