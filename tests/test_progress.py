"""The progress display: a plain line per finished run off a terminal, a rich bar on one,
plain lines again on a terminal without rich; the ETA at the pace of the finished runs."""

from __future__ import annotations

import io
import sys
from types import SimpleNamespace

import pytest

from disbench.run import progress
from disbench.run.progress import ProgressDisplay


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(method: str, seed: int) -> SimpleNamespace:
    return SimpleNamespace(method=method, dataset=SimpleNamespace(label="blobs"), seed=seed)


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    """The display's clock, set by the test: [now]."""
    now = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    return now


def test_off_a_terminal_each_finished_run_is_one_plain_line(clock) -> None:
    out = io.StringIO()
    display = ProgressDisplay(total=5, already=1, stream=out)
    display.start([_run("pca", 0), _run("pca", 1)])
    display.step("pca on blobs seed=0", 10, 50)
    assert out.getvalue() == ""  # no redrawn line in a log
    clock[0] = 160.0  # one run in 60 s, three left: 3 min
    display.finish("ok", _run("pca", 0))
    display.skip(1)  # another runner's run: done, and not part of this pace
    clock[0] = 190.0  # two runs in 90 s, one left: 45 s
    display.finish("failed", _run("fastica", 2))
    display.close()
    assert out.getvalue().splitlines() == [
        "[2/5 runs, ETA 3m00s] ok: pca on blobs seed=0",
        "[4/5 runs, 1 failed, ETA 45s] failed: fastica on blobs seed=2",
    ]


def test_a_disabled_display_writes_nothing(clock) -> None:
    out = Terminal()
    display = ProgressDisplay(total=2, already=0, enabled=False, stream=out)
    display.start([_run("pca", 0)])
    display.finish("ok", _run("pca", 0))
    display.close()
    assert out.getvalue() == ""


def test_on_a_terminal_a_rich_bar_shows_counts_eta_and_the_current_step(clock, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    out = Terminal()
    display = ProgressDisplay(total=4, already=0, workers=2, stream=out)
    display.start([_run("beta_vae", 0), _run("beta_vae", 1)])
    assert "beta_vae on blobs seed=0 (+1 batched)" in out.getvalue()
    clock[0] = 130.0
    display.finish("failed", _run("pca", 3))
    display.step("beta_vae on blobs seed=0", 40, 200)
    display.close()
    text = out.getvalue()
    last = text.rsplit("\r", 1)[-1]  # the bar as the terminal shows it at the end
    assert "1/4 runs on 2 workers, 1 failed" in last
    assert "ETA 1m30s" in last  # 30 s for one run, three left
    assert "beta_vae on blobs seed=0: step 40/200" in last
    assert "━" in last and "\x1b[2K" in text  # rich drew a bar, redrawn in place
    assert "failed: pca" not in text  # no plain lines on a terminal


def test_a_terminal_without_rich_gets_the_plain_lines(clock, monkeypatch) -> None:
    for name in ("rich", "rich.console", "rich.progress", "rich.table"):
        monkeypatch.setitem(sys.modules, name, None)  # importing it raises ImportError
    out = Terminal()
    display = ProgressDisplay(total=2, already=0, stream=out)
    display.start([_run("pca", 0)])
    clock[0] = 110.0
    display.finish("ok", _run("pca", 0))
    display.close()
    assert out.getvalue() == "[1/2 runs, ETA 10s] ok: pca on blobs seed=0\n"
