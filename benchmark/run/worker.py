"""Execute one group of runs and write their records: one model, or several trained as one
batched model. Every executor (in-process, local process pool, Ray) runs this same code.

A run that raises is recorded as ``failed`` with its message; nothing here raises for a
failing run. Records are written atomically by the process that trained them, so killing
a study loses at most the runs in flight; :func:`record_lost` writes those of a worker
that died.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

from disbench.api import Checkpoint, ContentStyle, FitContext, Representation
from disbench.methods import frameworks
from disbench.registry import METHODS, load_plugin
from disbench.run import numerics
from disbench.run.contracts import (
    ContractError,
    check_dataset,
    check_representation,
    checked_encoder,
)
from disbench.run.evaluate import evaluate
from disbench.run.locks import RunLocks
from disbench.run.records import Job, fail, new_record, set_scores
from disbench.run.store import ResultsStore, atomic_write_text
from disbench.run.study import RunSpec
from disbench.run.traversal import write_transfer_png, write_traversal_png

ProgressFn = Callable[[str, int, int], None]


_PROGRESS: ProgressFn | None = None


def init_worker(
    plugins: tuple[str, ...], threads: int, sink: Any, numerics_mode: str = "native"
) -> None:
    """Per-process set-up: plugins, thread counts, the numerics mode (checked: a portable
    worker must have been started with its variables), where progress messages go (a
    callable in-process, a queue from a worker process).

    ``threads`` bounds the harness framework's pool and the BLAS pools of numpy and scipy
    alike: BLAS left at its default takes one thread per core in every worker, so parallel
    workers of scikit-learn fits would ask for more busy threads than the machine has."""
    global _PROGRESS
    # Loaded first, as it always was, so that the limits below reach its libraries too.
    harness = frameworks.get(frameworks.HARNESS)
    if not callable(sink):
        _die_with_parent()
    for plugin in plugins:
        load_plugin(plugin)
    import scipy.linalg  # noqa: F401 - load scipy's own BLAS so that the limit reaches it

    threadpool_limits(threads)
    harness.set_threads(threads)
    numerics.apply(numerics_mode)
    send = sink if callable(sink) else (lambda label, step, total: sink.put((label, step, total)))
    _PROGRESS = _throttled(send)


def execute_in_worker(spec_dicts: list[dict[str, Any]], job: Job, sink: ProgressFn) -> list[str]:
    """:func:`execute_group` in a worker set up by this call (a Ray task has no initializer)."""
    init_worker(job.plugins, job.threads, sink, job.numerics)
    return execute_group(spec_dicts, job)


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


def execute_group(spec_dicts: list[dict[str, Any]], job: Job) -> list[str]:
    """Claim the group's runs, then train it (one model, or several as one batched model),
    score and record each; returns the statuses.

    ``claimed`` for every run when another runner holds one of them; ``skipped`` for a run
    another runner finished meanwhile. Never raises for a failing run: the failure is the
    record.
    """
    store = ResultsStore(Path(job.out))
    specs = [RunSpec.from_dict(d) for d in spec_dicts]
    with RunLocks(store.root / "locks") as locks:
        if not locks.acquire_all([s.id for s in specs]):
            return ["claimed"] * len(specs)
        todo = [s for s in specs if (store.sound(s.id) or {}).get("status") != "ok"]
        statuses = dict.fromkeys((s.id for s in specs), "skipped")
        if todo:
            statuses.update(zip([s.id for s in todo], _execute(store, todo, job), strict=True))
    return [statuses[s.id] for s in specs]


def _execute(store: ResultsStore, specs: list[RunSpec], job: Job) -> list[str]:
    """Train, score and record claimed runs."""
    started = time.perf_counter()
    helpers = frameworks.for_method(METHODS.get(specs[0].method))
    # Deterministic kernels on the CPU, set before the records take their fingerprints.
    for helper in helpers:
        helper.deterministic(job.device == "cpu")
    records = [new_record(s, job) for s in specs]
    contexts = [
        FitContext(
            device=job.device,
            workdir=store.model_dir(s.train_id),
            cache_dir=store.root / "cache",
            progress=_progress_for(s),
            threads=job.threads,
            checkpoint=Checkpoint(store.checkpoint_path(s.train_id), job.checkpoint_s)
            if METHODS.get(s.method).checkpoints
            else None,
        )
        for s in specs
    ]
    for rec, ctx in zip(records, contexts, strict=True):
        rec["info"] = ctx.info
    reps: list[Representation | None] = [None] * len(specs)
    dataset = None
    try:
        dataset = check_dataset(specs[0].dataset.name, specs[0].dataset.create())
        for rec in records:
            rec["dataset"] = dataset.describe()
        method = METHODS.get(specs[0].method)()
        todo = []
        for i, (spec, ctx) in enumerate(zip(specs, contexts, strict=True)):
            reps[i] = _load_model(store, spec, ctx, records[i])
            if reps[i] is None:
                todo.append(i)
            else:
                records[i]["artifacts"]["model"] = str(
                    (store.model_dir(spec.train_id) / "model.bin").relative_to(store.root)
                )
        if todo:
            for helper in helpers:
                helper.seed(specs[todo[0]].seed)
            fit_start = time.perf_counter()
            fitted = _fit_many_splitting(method, dataset, specs, contexts, todo, helpers)
            fit_s = time.perf_counter() - fit_start
            for i, (outcome, group_size) in zip(todo, fitted, strict=True):
                records[i]["execution"]["group_size"] = group_size
                records[i]["timings"]["fit_s"] = fit_s / len(todo)
                if isinstance(outcome, Exception):  # this run alone failed
                    fail(records[i], outcome)
                    continue
                try:
                    reps[i] = check_representation(specs[i].method, outcome)
                except ContractError as exc:
                    fail(records[i], exc)
                    continue
                _save_model(store, specs[i], reps[i], contexts[i], records[i])
    except Exception as exc:  # noqa: BLE001 - a failing method must not stop the study
        for i, rec in enumerate(records):
            if reps[i] is None and rec["error"] is None:
                fail(rec, exc)
    for spec, rec, rep in zip(specs, records, reps, strict=True):
        if rep is not None:
            _score(store, spec, rec, rep, dataset)
        rec["timings"]["total_s"] = time.perf_counter() - started
        store.write(rec)
        store.checkpoint_path(spec.train_id).unlink(missing_ok=True)
    return [rec["status"] for rec in records]


def _fit_many_splitting(
    method: Any,
    dataset: Any,
    specs: list[RunSpec],
    contexts: list[FitContext],
    todo: list[int],
    helpers: tuple[frameworks.Framework, ...],
) -> list[tuple[Representation | Exception, int]]:
    """(outcome, size of the group that trained it) per job of ``todo`` by ``fit_many``; a
    group that runs out of GPU memory is split in two and each half retried, down to one
    model at a time (``fit``), before a run fails."""
    try:
        if len(todo) == 1:
            i = todo[0]
            outcome: list[Representation | Exception] = [
                method.fit(dataset, specs[i].hparams, specs[i].seed, specs[i].budget, contexts[i])
            ]
        else:
            jobs = [(specs[i].hparams, specs[i].seed, contexts[i]) for i in todo]
            outcome = list(method.fit_many(dataset, jobs, specs[0].budget))
    except Exception as exc:
        if not any(helper.is_out_of_memory(exc) for helper in helpers):
            raise
        if len(todo) == 1:
            return [(exc, 1)]
        for helper in helpers:
            helper.free_memory()
        half = len(todo) // 2
        for i in todo:
            contexts[i].info["out_of_memory_splits"] = (
                contexts[i].info.get("out_of_memory_splits", 0) + 1
            )
        return _fit_many_splitting(method, dataset, specs, contexts, todo[:half], helpers) + (
            _fit_many_splitting(method, dataset, specs, contexts, todo[half:], helpers)
        )
    return [(o, len(todo)) for o in outcome]


def record_lost(specs: list[RunSpec], job: Job, cause: BaseException) -> list[str]:
    """Statuses of a group whose worker died: the records it wrote stand, the others are
    written as failed with ``cause``."""
    store = ResultsStore(Path(job.out))
    statuses = []
    for spec in specs:
        written = store.sound(spec.id)
        if written is not None:
            statuses.append(written["status"])
            continue
        record = new_record(spec, job)
        fail(record, cause)
        store.write(record)
        statuses.append("failed")
    return statuses


def _progress_for(spec: RunSpec) -> Callable[[int, int], None]:
    label = f"{spec.method} on {spec.dataset.label} seed={spec.seed}"

    def progress(step: int, total: int) -> None:
        if _PROGRESS is not None:
            _PROGRESS(label, step, total)

    return progress


def _score(
    store: ResultsStore, spec: RunSpec, record: dict[str, Any], rep: Representation, dataset: Any
) -> None:
    try:
        if hasattr(rep, "decode"):
            path = write_traversal_png(rep, dataset, store.traversal_path(spec.id), spec.eval_seed)
            record["artifacts"]["traversal"] = str(path.relative_to(store.root))
        encode = checked_encoder(spec.method, rep.encode)
        if isinstance(rep, ContentStyle):
            path = write_transfer_png(rep, dataset, store.transfer_path(spec.id), spec.eval_seed)
            record["artifacts"]["transfer_grid"] = str(path.relative_to(store.root))
        scores, errors, timings = evaluate(dataset, encode, spec.metrics, spec.eval_seed, rep)
    except Exception as exc:  # noqa: BLE001
        fail(record, exc)
        return
    set_scores(record, scores, errors, timings)


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
        "execution": record["execution"],
    }
    atomic_write_text(model_dir / "meta.json", json.dumps(meta, default=str))
    record["artifacts"]["model"] = str((model_dir / "model.bin").relative_to(store.root))


def _load_model(
    store: ResultsStore, spec: RunSpec, ctx: FitContext, record: dict[str, Any]
) -> Representation | None:
    """A model trained earlier for the same training spec (meta.json is written last); the
    record takes over how it was trained."""
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
    record["execution"].update(meta.get("execution", {}))
    return rep
