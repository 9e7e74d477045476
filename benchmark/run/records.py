"""The run record: one JSON file per run. Every field is defined here and nowhere else.

``status`` is ``ok`` or ``failed`` (with ``error`` and a short ``traceback``); ``spec`` is
the run spec (what the id hashes); ``execution`` holds the settings that can change a
result without changing the spec (device, threads, batched group size, precision);
``environment`` the machine, package versions and disbench's own commit; ``numerics`` the
fingerprint of the floating-point path (:func:`disbench.run.numerics.fingerprint`): two records
promise bit-identical scores only when theirs match.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from disbench.registry import METHODS, METRICS
from disbench.run.environment import environment
from disbench.run.numerics import fingerprint
from disbench.run.store import RECORD_FORMAT
from disbench.run.study import RunSpec


@dataclass(frozen=True)
class Job:
    """What every group of one study shares; sent to each worker with its groups."""

    out: str
    device: str
    profile: str
    threads: int
    plugins: tuple[str, ...] = ()
    rank: tuple[str, ...] = ()  # the study's ranked metrics, kept in each record
    checkpoint_s: float = 600.0  # how often a training run saves its state
    numerics: str = "native"  # or "portable" (disbench.run.numerics)
    note: str = ""  # the study's [report] note, kept in each record


class WorkerLost(RuntimeError):
    """The process training a run died before writing its record (killed, out of memory)."""


def new_record(spec: RunSpec, job: Job) -> dict[str, Any]:
    """A record for ``spec`` that says ``failed`` until the run succeeds."""
    cls = METHODS.get(spec.method)
    return {
        "format": RECORD_FORMAT,
        "id": spec.id,
        "train_id": spec.train_id,
        "profile": job.profile,
        "study": {"rank": list(job.rank), "note": job.note},
        "spec": spec.to_dict(),
        "method": {
            "name": spec.method,
            "description": cls.description,
            "framework": cls.framework,
            "reference_code": cls.reference_code,
        },
        "dataset_label": spec.dataset.label,
        "status": "failed",
        "error": None,
        "scores": {},
        "primary": {},
        "higher_is_better": {},
        "metric_errors": {},
        "timings": {},
        "artifacts": {},
        "execution": {
            "device": job.device,
            "threads": job.threads,
            "group_size": 1,
            "precision": spec.hparams.get("precision", "fp32"),
            "numerics": job.numerics,
        },
        "environment": environment(job.device),
        "numerics": fingerprint(job.device, job.numerics),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def fail(record: dict[str, Any], exc: BaseException) -> None:
    """Mark the record failed with the exception's type, message and a short traceback."""
    record["status"] = "failed"
    record["error"] = f"{type(exc).__name__}: {exc}"
    record["traceback"] = "".join(traceback.format_exception(exc, limit=8))


def set_scores(
    record: dict[str, Any],
    scores: dict[str, dict[str, float]],
    errors: dict[str, str],
    timings: dict[str, float],
) -> None:
    """Store an evaluation's results and mark the run ok."""
    names = list(record["spec"]["metrics"])
    record["scores"] = scores
    record["metric_errors"] = errors
    record["primary"] = {name: METRICS.get(name).primary for name in names}
    record["higher_is_better"] = {name: METRICS.get(name).higher_is_better for name in names}
    record["timings"]["eval_s"] = timings
    record["status"] = "ok"
