"""Where a study's groups run: this process, a local process pool, or Ray
(:mod:`disbench.run.ray_executor`). Each executor takes the groups and yields each group with
its runs' statuses as it finishes; all of them run :func:`disbench.run.worker.execute_group`,
and all of them record the runs of a worker that died as failed, with the cause, and go
on."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing as mp
import os
import queue as queue_mod
import signal
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from pebble import ProcessExpired, ProcessPool

from disbench.run import numerics
from disbench.run.progress import ProgressDisplay
from disbench.run.records import Job, WorkerLost
from disbench.run.study import RunSpec
from disbench.run.worker import execute_group, init_worker, record_lost

Groups = Sequence[Sequence[RunSpec]]


Finished = tuple[Sequence[RunSpec], list[str]]  # a group and its runs' statuses


class Executor(Protocol):
    def run(self, groups: Groups, job: Job, display: ProgressDisplay) -> Iterator[Finished]:
        """Execute every group; yield it with its runs' statuses as it finishes."""
        ...


class InProcess:
    """One group after the other in this process (``workers = 1``, native numerics)."""

    def run(self, groups: Groups, job: Job, display: ProgressDisplay) -> Iterator[Finished]:
        init_worker(job.plugins, job.threads, display.step, job.numerics)
        for group in groups:
            display.start(list(group))
            yield group, execute_group([r.to_dict() for r in group], job)


class LocalPool:
    """``workers`` processes on this machine (spawned: CUDA and threads start clean).

    Pebble's pool, not the standard library's: when a worker dies (SIGKILL, the
    out-of-memory killer, a crash in an extension) only the group it was running fails;
    the standard pool breaks and abandons every group in flight and queued.

    The workers start with the environment of ``job.numerics`` (:func:`numerics.worker_env`:
    its variables are read when the libraries load, so only a fresh process can take them).
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def run(self, groups: Groups, job: Job, display: ProgressDisplay) -> Iterator[Finished]:
        ctx = mp.get_context("spawn")
        progress = ctx.Queue()
        with (
            worker_environment(job.numerics),
            ProcessPool(
                self.workers,
                initializer=init_worker,
                initargs=(job.plugins, job.threads, progress, job.numerics),
                context=ctx,
            ) as pool,
        ):
            futures = {
                pool.schedule(execute_group, args=([r.to_dict() for r in g], job)): g
                for g in groups
            }
            pending = set(futures)
            while pending:
                done, pending = cf.wait(pending, timeout=0.5, return_when=cf.FIRST_COMPLETED)
                _drain(progress, display)
                for fut in done:
                    try:
                        statuses = fut.result()
                    except ProcessExpired as exc:
                        lost = WorkerLost(exit_cause(exc.exitcode))
                        statuses = record_lost(list(futures[fut]), job, lost)
                    except Exception as exc:  # noqa: BLE001 - e.g. a spec that cannot be sent
                        statuses = record_lost(list(futures[fut]), job, exc)
                    yield futures[fut], statuses


@contextlib.contextmanager
def worker_environment(mode: str) -> Iterator[None]:
    """This process's environment set for ``mode`` while its worker processes start and
    run (spawned children copy it), restored afterwards."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(numerics.worker_env(mode, saved))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def exit_cause(exitcode: int | None) -> str:
    """ "worker process killed by signal 9 (SIGKILL)" or "... exited with code 3"."""
    if exitcode is not None and exitcode < 0:
        try:
            name = f" ({signal.Signals(-exitcode).name})"
        except ValueError:
            name = ""
        return f"worker process killed by signal {-exitcode}{name}"
    return f"worker process exited with code {exitcode}"


def _drain(q: Any, display: ProgressDisplay) -> None:
    while True:
        try:
            display.step(*q.get_nowait())
        except queue_mod.Empty:
            return
