"""The runner: plan a study and hand it to an executor.

It skips the ids whose records exist, picks the device, groups batchable runs that can
train as one model, and runs the groups on an executor (:mod:`disbench.run.executors`: this
process, a local pool, or Ray), counting the statuses. The work of one group, records
included, is :mod:`disbench.run.worker`; the record format is :mod:`disbench.run.records`.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from disbench.methods import frameworks
from disbench.registry import METHODS
from disbench.run import numerics, ray_executor
from disbench.run.executors import Executor, InProcess, LocalPool
from disbench.run.progress import ProgressDisplay
from disbench.run.records import Job
from disbench.run.store import ResultsStore
from disbench.run.study import RunSpec, Study

WAIT_S = 2.0  # between looks at runs another runner holds


def resolve_device(device: str | None, cluster_gpus: int | None = None) -> str:
    """``auto``/None -> ``cuda`` when a GPU is visible, else ``cpu``. A GPU is visible to
    the harness framework (torch) here, or, for a Ray driver, somewhere in the cluster
    (``cluster_gpus``)."""
    local = cluster_gpus is None
    has_gpu = frameworks.get(frameworks.HARNESS).has_gpu() if local else cluster_gpus > 0
    nowhere = (
        "no CUDA device is available (torch sees none)" if local else "the Ray cluster has no GPU"
    )
    if device in (None, "auto"):
        return "cuda" if has_gpu else "cpu"
    if device not in ("cpu", "cuda"):
        raise ValueError(f"--device {device!r}: expected cpu, cuda or auto")
    if device == "cuda" and not has_gpu:
        raise ValueError(f"--device cuda: {nowhere}")
    return device


def group_runs(
    runs: list[RunSpec], device: str, method_group: dict[str, int | str]
) -> list[list[RunSpec]]:
    """Batchable runs that share dataset, method, budget and evaluation train together;
    ``method_group``: each method's group size (its entries' ``group_size``)."""
    groups: dict[tuple[Any, ...], list[RunSpec]] = defaultdict(list)
    singles: list[list[RunSpec]] = []
    for run in runs:
        cls = METHODS.get(run.method)
        size = _group_size(method_group[run.method], cls, device)
        if not cls.batchable or size <= 1:
            singles.append([run])
            continue
        key = (run.dataset.label, run.method, run.budget, run.eval_seed, repr(run.metrics), size)
        groups[key].append(run)
    out = singles
    for key, members in groups.items():
        size = key[-1]
        out += [members[i : i + size] for i in range(0, len(members), size)]
    return out


def _group_size(value: Any, cls: Any, device: str) -> int:
    if isinstance(value, int):
        return value
    if value != "auto":
        raise ValueError(f'group_size must be an integer or "auto", got {value!r}')
    if device == "cuda" and hasattr(cls, "auto_group_size"):
        if not frameworks.get(frameworks.HARNESS).has_gpu():  # a Ray driver without a GPU
            raise ValueError(
                'group_size = "auto" measures this node\'s GPU and it has none; '
                "set [execution] group_size to an integer"
            )
        return int(cls.auto_group_size(device))
    return 1


def run_study(
    study: Study,
    out: Path,
    device: str | None = None,
    workers: int | None = None,
    plugins: tuple[str, ...] = (),
    show_progress: bool = True,
    ray_address: str | None = None,
    retry_failed: bool = False,
) -> dict[str, int]:
    """Execute every unfinished run of ``study``; returns counts of ok/failed/skipped.

    Groups run in this process, in a local process pool (``workers``), or as Ray tasks
    (``executor = "ray"`` in the profile, or a ``ray_address``). A failed run counts as
    finished unless ``retry_failed``; then it runs again and its new record replaces the
    old one.
    """
    device = device or study.execution.device
    workers = int(workers or study.execution.workers)
    mode = study.execution.numerics
    numerics.check_supported(mode)
    if ray_address is None and study.execution.executor != "ray":
        # Portable numerics need fresh processes started with their variables.
        executor = InProcess() if workers <= 1 and mode == "native" else LocalPool(workers)
        return _run(
            study,
            out,
            resolve_device(device),
            workers,
            plugins,
            executor,
            show_progress,
            retry_failed,
        )
    started = ray_executor.connect(ray_address or study.execution.ray_address)
    try:
        device = resolve_device(device, ray_executor.gpus())
        executor = ray_executor.RayExecutor()
        return _run(study, out, device, workers, plugins, executor, show_progress, retry_failed)
    finally:
        if started:
            ray_executor.disconnect()


def _run(
    study: Study,
    out: Path,
    device: str,
    workers: int,
    plugins: tuple[str, ...],
    executor: Executor,
    show_progress: bool,
    retry_failed: bool,
) -> dict[str, int]:
    threads = study.execution.threads(workers)
    store = ResultsStore(out)
    store.check_writable()
    store.remove_stale_temporaries()
    _, bad = store.scan()
    newer = [f"{path}: {why}" for path, why in bad if "newer disbench" in why]
    if newer:
        raise ValueError(f"{newer[0]}; upgrade disbench or choose another --out")
    for path, why in bad:
        print(f"disbench run: {path}: {why}; its run will run again", file=sys.stderr)
    done = store.finished_ids(failed=not retry_failed)
    # Seed-major order: a study stopped early still has every method on every dataset.
    pending = sorted((r for r in study.runs if r.id not in done), key=lambda r: r.seed)
    if retry_failed:
        _drop_failed_models(store, pending, {r.train_id for r in study.runs if r.id in done})
    groups = group_runs(pending, device, {e.method: e.group_size for e in study.entries})
    display = ProgressDisplay(
        total=len(study.runs),
        already=len(study.runs) - len(pending),
        workers=workers,
        enabled=show_progress,
    )
    counts = {"ok": 0, "failed": 0, "skipped": len(study.runs) - len(pending)}
    job = Job(
        str(out),
        device,
        study.name,
        threads,
        plugins,
        tuple(study.rank),
        60.0 * study.execution.checkpoint_minutes,
        study.execution.numerics,
        study.note,
    )
    # A group another runner holds comes back as "claimed": it is looked at again once its
    # claims are gone (its records then exist) or stale (taken over).
    try:
        while groups:
            claimed = []
            for group, statuses in executor.run(groups, job, display):
                if "claimed" in statuses:
                    claimed.append(group)
                    continue
                for run, status in zip(group, statuses, strict=True):
                    if status == "skipped":  # finished by another runner meanwhile
                        counts["skipped"] += 1
                        display.skip(1)
                    else:
                        counts[status] += 1
                        display.finish(status, run)
            groups = claimed
            if groups:
                time.sleep(WAIT_S)
    finally:  # a terminal's display gives the cursor back even when the study stops early
        display.close()
    return counts


def failed_runs(study: Study, out: Path) -> list[dict[str, Any]]:
    """The records of ``study`` whose status is failed (after a run: the exit status)."""
    ids = {r.id for r in study.runs}
    return [r for r in ResultsStore(out).records() if r["id"] in ids and r["status"] != "ok"]


def _drop_failed_models(store: ResultsStore, retried: list[RunSpec], kept: set[str]) -> None:
    """A retried run trains afresh (its method may have been fixed since): the model its
    failed run saved goes, unless a run that succeeded was trained by it (``kept``)."""
    for spec in retried:
        if spec.train_id not in kept and store.record_path(spec.id).exists():
            shutil.rmtree(store.model_dir(spec.train_id), ignore_errors=True)
