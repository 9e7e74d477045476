"""Making the run record (its fields: :class:`disbench.run.schema.Record`).

A record is made here before the run trains, says ``failed`` until it scores, and takes
from the registry, at that moment, every fact the report will show about the method, the
metrics and the profile: the report reads records alone, never the registry, so a report
rebuilt after a code change still says what held when the run was recorded.
"""

from __future__ import annotations

import functools
import traceback
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from disbench.registry import METHODS, METRICS
from disbench.run.environment import environment
from disbench.run.numerics import fingerprint
from disbench.run.schema import MethodFacts, MetricFacts, Record, StudyFacts
from disbench.run.store import RECORD_FORMAT
from disbench.run.study import PROFILE_DIR, RunSpec, load_profile


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


def method_facts(name: str) -> MethodFacts:
    """The registered method's facts the report shows (the PR mark, its budget line, the
    paper-numbers table)."""
    cls = METHODS.get(name)
    return {
        "name": name,
        "description": cls.description,
        "framework": cls.framework,
        "reference_code": cls.reference_code,
        "defaults": dict(cls.defaults),
        "paper_results": [asdict(p) for p in cls.paper_results],
    }


def metric_facts(name: str, settings: dict[str, Any]) -> MetricFacts:
    """The registered metric's facts at the run's ``settings``: its primary key and
    direction, whether every method gets it, its defaults, its caveats and resolution."""
    cls = METRICS.get(name)
    full = {**cls.defaults, **settings}
    return {
        "primary": cls.primary,
        "higher_is_better": bool(cls.higher_is_better),
        "in_all": bool(cls.in_all),
        "defaults": dict(cls.defaults),
        "caveats": list(cls.caveats(full)),
        "resolution": cls.resolution(full),
    }


@functools.cache
def profile_runs(profile: str) -> tuple[str, ...] | None:
    """The run ids of the built-in profile ``profile`` as it stands (None: no built-in
    profile has that name), so a page about that profile can tell its current runs from
    those of an older version of it or of a ``--set`` variant."""
    if not (PROFILE_DIR / f"{profile}.toml").is_file():
        return None
    return tuple(sorted(run.id for run in load_profile(profile).runs))


def new_record(spec: RunSpec, job: Job) -> Record:
    """A record for ``spec`` that says ``failed`` until the run succeeds."""
    study: StudyFacts = {"rank": list(job.rank), "note": job.note}
    runs = profile_runs(job.profile)
    if runs is not None:
        study["profile_runs"] = list(runs)
    return {
        "format": RECORD_FORMAT,
        "id": spec.id,
        "train_id": spec.train_id,
        "profile": job.profile,
        "study": study,
        "spec": spec.to_dict(),
        "method": method_facts(spec.method),
        "metrics": {name: metric_facts(name, dict(s)) for name, s in spec.metrics.items()},
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


def fail(record: Record, exc: BaseException) -> None:
    """Mark the record failed with the exception's type, message and a short traceback."""
    record["status"] = "failed"
    record["error"] = f"{type(exc).__name__}: {exc}"
    record["traceback"] = "".join(traceback.format_exception(exc, limit=8))


def set_scores(
    record: Record,
    scores: dict[str, dict[str, float]],
    errors: dict[str, str],
    timings: dict[str, float],
) -> None:
    """Store an evaluation's results and mark the run ok."""
    facts = record["metrics"]
    record["scores"] = scores
    record["metric_errors"] = errors
    record["primary"] = {name: f["primary"] for name, f in facts.items()}
    record["higher_is_better"] = {name: f["higher_is_better"] for name, f in facts.items()}
    record["timings"]["eval_s"] = timings
    record["status"] = "ok"
