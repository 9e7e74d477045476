"""The runner: skip finished ids, group batchable runs, train, score, write one record each.

Each run (or batched group) executes in-process or in a worker process; the worker
writes its own records atomically, so killing the study at any moment loses at most
the runs in flight, and the next ``disbench run`` resumes with exactly those. A run
that raises is recorded as ``failed`` with its message and the study goes on.
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import ctypes.util
import importlib
import json
import multiprocessing as mp
import os
import queue as queue_mod
import shutil
import signal
import sys
import time
import traceback
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from threadpoolctl import threadpool_limits

from benchmark.environment import environment
from benchmark.evaluate import evaluate
from benchmark.progress import ProgressDisplay
from benchmark.registry import METHODS, METRICS, load_plugin
from benchmark.store import ResultsStore, atomic_write_text
from benchmark.study import RunSpec, Study
from benchmark.traversal import write_traversal_png
from methods.base import FitContext, Representation

ProgressFn = Callable[[str, int, int], None]


def resolve_device(device: str | None, cluster_gpus: int | None = None) -> str:
    """``auto``/None -> ``cuda`` when a GPU is visible, else ``cpu``. A GPU is visible to
    torch here, or, for a Ray driver, somewhere in the cluster (``cluster_gpus``)."""
    local = cluster_gpus is None
    has_gpu = torch.cuda.is_available() if local else cluster_gpus > 0
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
    runs: list[RunSpec], execution: dict[str, Any], device: str, method_group: dict[str, Any]
) -> list[list[RunSpec]]:
    """Batchable runs that share dataset, method, budget and evaluation train together."""
    groups: dict[tuple[Any, ...], list[RunSpec]] = defaultdict(list)
    singles: list[list[RunSpec]] = []
    for run in runs:
        cls = METHODS.get(run.method)
        size = _group_size(
            method_group.get(run.method, execution.get("group_size", "auto")), cls, device
        )
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
        if not torch.cuda.is_available():  # a Ray driver on a node without a GPU
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
    use_ray = ray_address is not None or study.execution.get("executor") == "ray"
    if not use_ray:
        return _run(
            study,
            out,
            resolve_device(device or study.execution.get("device")),
            workers,
            plugins,
            show_progress,
            retry_failed,
            use_ray=False,
        )
    from benchmark import ray_executor

    started = ray_executor.connect(ray_address or study.execution.get("ray_address"))
    try:
        device = resolve_device(device or study.execution.get("device"), ray_executor.gpus())
        return _run(study, out, device, workers, plugins, show_progress, retry_failed, use_ray=True)
    finally:
        if started:
            ray_executor.disconnect()


def _run(
    study: Study,
    out: Path,
    device: str,
    workers: int | None,
    plugins: tuple[str, ...],
    show_progress: bool,
    retry_failed: bool,
    use_ray: bool,
) -> dict[str, int]:
    workers = int(workers or study.execution.get("workers", 1))
    threads = int(study.execution.get("torch_threads", max(1, (os.cpu_count() or 1) // workers)))
    store = ResultsStore(out)
    store.remove_stale_temporaries()
    done = store.finished_ids(failed=not retry_failed)
    # Seed-major order: a study stopped early still has every method on every dataset.
    pending = sorted((r for r in study.runs if r.id not in done), key=lambda r: r.seed)
    if retry_failed:
        _drop_failed_models(store, pending, {r.train_id for r in study.runs if r.id in done})
    method_group = {
        m: c["group_size"]
        for m, c in study.raw.get("methods", {}).items()
        if isinstance(c, dict) and "group_size" in c
    }
    groups = group_runs(pending, study.execution, device, method_group)
    display = ProgressDisplay(
        total=len(study.runs),
        already=len(study.runs) - len(pending),
        workers=workers,
        enabled=show_progress,
    )
    counts = {"ok": 0, "failed": 0, "skipped": len(study.runs) - len(pending)}
    args = (str(out), device, study.name)
    if use_ray:
        from benchmark import ray_executor

        ray_executor.run_groups(groups, args, plugins, threads, display, counts)
    elif workers <= 1:
        _init_worker(plugins, threads, display.step)
        for group in groups:
            display.start(group)
            for status in execute_group([r.to_dict() for r in group], *args):
                counts[status] += 1
                display.finish(status)
    else:
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        with cf.ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_init_worker, initargs=(plugins, threads, q)
        ) as pool:
            futures = [pool.submit(execute_group, [r.to_dict() for r in g], *args) for g in groups]
            pending_f = set(futures)
            while pending_f:
                finished, pending_f = cf.wait(
                    pending_f, timeout=0.5, return_when=cf.FIRST_COMPLETED
                )
                _drain(q, display)
                for fut in finished:
                    for status in fut.result():
                        counts[status] += 1
                        display.finish(status)
    display.close()
    return counts


def execute_in_worker(
    spec_dicts: list[dict[str, Any]],
    out: str,
    device: str,
    profile: str,
    plugins: tuple[str, ...],
    threads: int,
    sink: ProgressFn,
) -> list[str]:
    """``execute_group`` in a worker set up by this call (a Ray task: no pool initializer)."""
    _init_worker(plugins, threads, sink)
    return execute_group(spec_dicts, out, device, profile)


def record_lost_group(
    specs: list[RunSpec], out: str, device: str, profile: str, exc: BaseException
) -> list[str]:
    """Statuses of a group whose worker died: records it wrote stand, the rest are written
    as failed with ``exc``."""
    store = ResultsStore(Path(out))
    statuses = []
    for spec in specs:
        path = store.record_path(spec.id)
        if path.exists():
            statuses.append(json.loads(path.read_text())["status"])
            continue
        record = _new_record(spec, device, profile)
        _fail(record, exc)
        store.write(record)
        statuses.append("failed")
    return statuses


def _drain(q: Any, display: ProgressDisplay) -> None:
    while True:
        try:
            display.step(*q.get_nowait())
        except queue_mod.Empty:
            return


_PROGRESS: ProgressFn | None = None


def _init_worker(plugins: tuple[str, ...], threads: int, sink: Any) -> None:
    """Per-process set-up: plugins, thread counts, where progress messages go (a callable
    in-process, a queue from a worker process).

    ``threads`` bounds torch's pool and the BLAS pools of numpy and scipy alike: with
    BLAS at its default (one thread per core) two workers of scikit-learn fits ran four
    busy threads on two cores."""
    global _PROGRESS
    if not callable(sink):
        _die_with_parent()
    for plugin in plugins:
        load_plugin(plugin)
    import scipy.linalg  # noqa: F401 - load scipy's own BLAS so that the limit reaches it

    threadpool_limits(threads)
    torch.set_num_threads(threads)
    send = sink if callable(sink) else (lambda label, step, total: sink.put((label, step, total)))
    _PROGRESS = _throttled(send)


def _die_with_parent() -> None:
    """Linux: a worker process gets SIGTERM when the study process dies (even by SIGKILL),
    so a killed study leaves no orphan still training beside the rerun."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _throttled(fn: ProgressFn, every_s: float = 0.5) -> ProgressFn:
    last = [0.0]

    def call(label: str, step: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= every_s or step >= total:
            last[0] = now
            fn(label, step, total)

    return call


def execute_group(
    spec_dicts: list[dict[str, Any]], out: str, device: str, profile: str
) -> list[str]:
    """Train the group (one model, or several as one batched model), score and record each.

    Returns the statuses. Never raises for a failing run: the failure is the record.
    """
    store = ResultsStore(Path(out))
    specs = [RunSpec.from_dict(d) for d in spec_dicts]
    started = time.perf_counter()
    records = [_new_record(s, device, profile) for s in specs]
    contexts = [
        FitContext(
            device=device,
            workdir=store.model_dir(s.train_id),
            cache_dir=store.root / "cache",
            progress=_progress_for(s),
        )
        for s in specs
    ]
    for rec, ctx in zip(records, contexts, strict=True):
        rec["info"] = ctx.info
    reps: list[Representation | None] = [None] * len(specs)
    dataset = None
    try:
        dataset = specs[0].dataset.create()
        for rec in records:
            rec["dataset"] = dataset.describe()
        method = METHODS.get(specs[0].method)()
        todo = []
        for i, (spec, ctx) in enumerate(zip(specs, contexts, strict=True)):
            reps[i] = _load_model(store, spec, ctx)
            if reps[i] is None:
                todo.append(i)
            else:
                records[i]["artifacts"]["model"] = str(
                    (store.model_dir(spec.train_id) / "model.bin").relative_to(store.root)
                )
        if todo:
            torch.manual_seed(specs[todo[0]].seed)
            deterministic = device == "cpu"
            torch.use_deterministic_algorithms(deterministic, warn_only=True)
            fit_start = time.perf_counter()
            if len(todo) == 1:
                i = todo[0]
                fitted = [
                    method.fit(
                        dataset, specs[i].hparams, specs[i].seed, specs[i].budget, contexts[i]
                    )
                ]
            else:
                fitted = method.fit_many(
                    dataset,
                    [(specs[i].hparams, specs[i].seed, contexts[i]) for i in todo],
                    specs[0].budget,
                )
            fit_s = time.perf_counter() - fit_start
            for i, outcome in zip(todo, fitted, strict=True):
                contexts[i].info.setdefault("deterministic_algorithms", deterministic)
                records[i]["timings"]["fit_s"] = fit_s / len(todo)
                records[i]["timings"]["fit_group_size"] = len(todo)
                if isinstance(outcome, Exception):  # this run alone failed
                    _fail(records[i], outcome)
                    continue
                reps[i] = outcome
                _save_model(store, specs[i], outcome, contexts[i], records[i])
    except Exception as exc:  # noqa: BLE001 - a failing method must not stop the study
        for i, rec in enumerate(records):
            if reps[i] is None and rec["error"] is None:
                _fail(rec, exc)
    for spec, rec, rep in zip(specs, records, reps, strict=True):
        if rep is not None:
            _score(store, spec, rec, rep, dataset)
        rec["timings"]["total_s"] = time.perf_counter() - started
        store.write(rec)
    return [rec["status"] for rec in records]


def _progress_for(spec: RunSpec) -> Callable[[int, int], None]:
    label = f"{spec.method} on {spec.dataset.label} seed={spec.seed}"

    def progress(step: int, total: int) -> None:
        if _PROGRESS is not None:
            _PROGRESS(label, step, total)

    return progress


def _new_record(spec: RunSpec, device: str, profile: str) -> dict[str, Any]:
    cls = METHODS.get(spec.method)
    return {
        "id": spec.id,
        "train_id": spec.train_id,
        "profile": profile,
        "spec": spec.to_dict(),
        "method": {"name": spec.method, "description": cls.description, "framework": cls.framework},
        "dataset_label": spec.dataset.label,
        "status": "failed",
        "error": None,
        "scores": {},
        "primary": {},
        "metric_errors": {},
        "timings": {},
        "artifacts": {},
        "environment": environment(device),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _fail(record: dict[str, Any], exc: BaseException) -> None:
    record["status"] = "failed"
    record["error"] = f"{type(exc).__name__}: {exc}"
    record["traceback"] = "".join(traceback.format_exception(exc, limit=8))


def _score(
    store: ResultsStore, spec: RunSpec, record: dict[str, Any], rep: Representation, dataset: Any
) -> None:
    try:
        if hasattr(rep, "decode"):
            path = write_traversal_png(rep, dataset, store.traversal_path(spec.id), spec.eval_seed)
            record["artifacts"]["traversal"] = str(path.relative_to(store.root))
        scores, errors, timings = evaluate(dataset, rep.encode, spec.metrics, spec.eval_seed)
    except Exception as exc:  # noqa: BLE001
        _fail(record, exc)
        return
    record["scores"] = scores
    record["metric_errors"] = errors
    record["primary"] = {name: METRICS.get(name).primary for name in spec.metrics}
    record["higher_is_better"] = {name: METRICS.get(name).higher_is_better for name in spec.metrics}
    record["timings"]["eval_s"] = timings
    record["status"] = "ok"


def _save_model(
    store: ResultsStore, spec: RunSpec, rep: Representation, ctx: FitContext, record: dict[str, Any]
) -> None:
    """Keep the trained model so scores can be recomputed without retraining."""
    model_dir = store.model_dir(spec.train_id)
    model_dir.mkdir(parents=True, exist_ok=True)
    cls = type(rep)
    try:
        rep.save(model_dir / "model.bin")
    except Exception as exc:  # noqa: BLE001 - an unsaveable model still gets scored
        ctx.info["model_not_saved"] = f"{type(exc).__name__}: {exc}"
        return
    meta = {
        "class": f"{cls.__module__}:{cls.__qualname__}",
        "info": ctx.info,
        "fit_s": record["timings"].get("fit_s"),
    }
    atomic_write_text(model_dir / "meta.json", json.dumps(meta, default=str))
    record["artifacts"]["model"] = str((model_dir / "model.bin").relative_to(store.root))


def _drop_failed_models(store: ResultsStore, retried: list[RunSpec], kept: set[str]) -> None:
    """A retried run trains afresh (its method may have been fixed since): the model its
    failed run saved goes, unless a run that succeeded was trained by it (``kept``)."""
    for spec in retried:
        if spec.train_id not in kept and store.record_path(spec.id).exists():
            shutil.rmtree(store.model_dir(spec.train_id), ignore_errors=True)


def _load_model(store: ResultsStore, spec: RunSpec, ctx: FitContext) -> Representation | None:
    """A model trained earlier for the same training spec (meta.json is written last)."""
    model_dir = store.model_dir(spec.train_id)
    meta_path = model_dir / "meta.json"
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    module, _, qualname = meta["class"].partition(":")
    cls = importlib.import_module(module)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    rep = cls.load(model_dir / "model.bin")
    ctx.info.update(meta.get("info", {}))
    ctx.info["loaded_saved_model"] = True
    return rep
