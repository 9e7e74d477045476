"""A study's progress: runs done / total, failures, ETA, and the current run's step.

On a terminal it is a rich progress bar redrawn in place; rich is imported only then, so a
study whose output goes to a file or a pipe (a batch job's log) needs nothing beyond the
standard library and gets a plain line per finished run instead, which a log keeps readable.
Without rich installed a terminal gets the plain lines too.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any, TextIO


class ProgressDisplay:
    """What the runner and the executors report to: ``start`` and ``step`` of a run in
    flight, ``finish`` of a run with its status, ``skip`` of runs another runner finished."""

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
        self.started = time.monotonic()
        self.current = ""
        self._bar: _RichBar | None = None
        if enabled and self.stream.isatty():
            with contextlib.suppress(ImportError):  # rich is optional: plain lines without it
                self._bar = _RichBar(self)

    def eta(self) -> str:
        """The time left at the pace of the runs finished so far (rich's own estimate looks
        at a 30 s window, and runs last minutes: it would show nothing most of the time)."""
        finished = self.done - self.already
        remaining = self.total - self.done
        if finished == 0 or remaining == 0:
            return "--" if remaining else "0s"
        seconds = (time.monotonic() - self.started) / finished * remaining
        minutes, secs = divmod(int(seconds), 60)
        return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"

    def counts(self) -> str:
        """``3/10 runs, 1 failed`` (``on 2 workers`` too when there are several)."""
        fail = f", {self.failed} failed" if self.failed else ""
        on = f" on {self.workers} workers" if self.workers > 1 else ""
        return f"{self.done}/{self.total} runs{on}{fail}"

    def line(self) -> str:
        return f"[{self.counts()}, ETA {self.eta()}] {self.current}"

    def start(self, group: list[Any]) -> None:
        self.current = _describe(group[0]) + (
            f" (+{len(group) - 1} batched)" if len(group) > 1 else ""
        )
        self._redraw()

    def step(self, label: str, step: int, total: int) -> None:
        self.current = f"{label}: step {step}/{total}"
        self._redraw()

    def finish(self, status: str, run: Any) -> None:
        """``run`` finished with ``status`` (ok or failed); off a terminal, a line says so."""
        self.done += 1
        self.failed += status == "failed"
        if self._bar is not None:
            self._redraw()
        elif self.enabled:
            self.stream.write(f"[{self.counts()}, ETA {self.eta()}] {status}: {_describe(run)}\n")
            self.stream.flush()

    def skip(self, runs: int) -> None:
        """Runs another runner finished meanwhile: done, and out of the ETA."""
        self.done += runs
        self.already += runs
        self._redraw()

    def close(self) -> None:
        """Leave the bar's last state on the terminal (a no-op off one)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _redraw(self) -> None:
        if self._bar is not None:
            self._bar.update()


def _describe(run: Any) -> str:
    return f"{run.method} on {run.dataset.label} seed={run.seed}"


class _RichBar:
    """The terminal view of a :class:`ProgressDisplay`: one rich task, redrawn on each event
    (the workers already throttle their step messages)."""

    def __init__(self, display: ProgressDisplay) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn
        from rich.table import Column

        self.display = display
        self.progress = Progress(
            BarColumn(),
            TextColumn("{task.fields[counts]}", markup=False),
            TextColumn("ETA {task.fields[eta]}", markup=False),
            TextColumn(
                "{task.fields[current]}",
                markup=False,
                table_column=Column(no_wrap=True, overflow="ellipsis"),
            ),
            console=Console(file=display.stream),
            auto_refresh=False,
        )
        self.task = self.progress.add_task("runs", total=display.total, **self._fields())
        self.progress.start()

    def _fields(self) -> dict[str, Any]:
        d = self.display
        return {"completed": d.done, "counts": d.counts(), "eta": d.eta(), "current": d.current}

    def update(self) -> None:
        self.progress.update(self.task, refresh=True, **self._fields())

    def stop(self) -> None:
        self.update()
        self.progress.stop()
