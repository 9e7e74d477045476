"""Run a study's groups as Ray tasks: one machine's cores, or a whole cluster.

``[execution] executor = "ray"`` (or ``disbench run --ray ADDRESS``) sends every group
(one run, or a batched group) to Ray as one task with ``torch_threads`` CPUs and, on CUDA,
one GPU. The task is the same ``execute_group`` the local pool runs, so records, resume
and failure handling are the local ones; the workers write the records themselves, which
is why every node must see the results directory at the same path (a shared filesystem)
and have disbench, and any ``--plugin`` module, installed. A task that dies with its
worker (killed, out of memory, node lost) is recorded as failed by the driver.

Ray is the optional ``ray`` extra: ``pip install 'disbench[ray]'``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from typing import Any

from disbench.run import numerics
from disbench.run.executors import Finished, Groups
from disbench.run.progress import ProgressDisplay
from disbench.run.records import Job
from disbench.run.worker import execute_in_worker, record_lost


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ValueError(
            'executor "ray": Ray is not installed; pip install "disbench[ray]"'
        ) from exc
    return ray


def connect(address: str | None) -> bool:
    """Join the Ray cluster at ``address`` ("auto": the one this node belongs to; None:
    $RAY_ADDRESS, else a new single-machine Ray). Returns whether this call started Ray
    (and so must shut it down)."""
    ray = _ray()
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    except ConnectionError as exc:
        raise ValueError(f"--ray {address or ''}: cannot join a Ray cluster: {exc}") from exc
    return True


def disconnect() -> None:
    _ray().shutdown()


def gpus() -> int:
    """GPUs in the whole cluster (the driver itself may have none)."""
    return int(_ray().cluster_resources().get("GPU", 0))


class RayExecutor:
    """Every group as one Ray task (``torch_threads`` CPUs, one GPU on CUDA); a task whose
    worker died is recorded as failed by the driver."""

    def run(self, groups: Groups, job: Job, display: ProgressDisplay) -> Iterator[Finished]:
        from ray.util.queue import Queue

        ray = _ray()
        progress = Queue()
        sink = functools.partial(_put, progress)
        env = {k: v for k, v in numerics.PORTABLE_ENV.items() if job.numerics == "portable"}
        task = ray.remote(execute_in_worker).options(
            num_cpus=job.threads,
            num_gpus=1 if job.device == "cuda" else 0,
            max_retries=0,
            runtime_env={"env_vars": env} if env else None,
        )
        running = {task.remote([r.to_dict() for r in g], job, sink): g for g in groups}
        try:
            while running:
                ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
                while not progress.empty():
                    display.step(*progress.get_nowait())
                for ref in ready:
                    group = running.pop(ref)
                    try:
                        statuses = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # its worker died mid-group
                        statuses = record_lost(list(group), job, exc)
                    yield group, statuses
        finally:
            progress.shutdown()


def _put(queue: Any, label: str, step: int, total: int) -> None:
    queue.put_nowait((label, step, total))
