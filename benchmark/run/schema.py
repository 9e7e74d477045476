"""The run record's shape: one JSON file per run, every field documented here.

:mod:`disbench.run.records` builds a record, :mod:`disbench.run.worker` fills it while the run
trains and scores, :mod:`disbench.run.store` writes and checks it, :mod:`disbench.run.verify`
and :mod:`disbench.report` read it. The report reads nothing else: whatever it shows (metric
caveats, digits, defaults, the paper numbers, which runs a profile had) is written here when
the run is recorded, so a report rebuilt after a code change still agrees with its records.
Records stay plain JSON; these types only name and document their fields (this module imports
nothing of the harness, so the report can use it without the registry).
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class StudyFacts(TypedDict):
    """What the record's study (one profile as run) said about itself."""

    rank: list[str]  # the metrics the leaderboard ranks by, in order
    note: NotRequired[str]  # the profile's ``[report] note``
    # The run ids the built-in profile of this name held when the run was recorded (absent
    # for a profile given as a file): the claims page pools only those of the newest.
    profile_runs: NotRequired[list[str]]


class PaperResultFacts(TypedDict):
    """One number from the method's paper (``disbench.api.PaperResult``)."""

    dataset: str
    metric: str
    value: float
    source: str


class MethodFacts(TypedDict):
    """The method as registered when the run was recorded."""

    name: str
    description: str
    framework: str  # "torch", "numpy", "jax", ...: numpy methods have no step budget
    reference_code: bool  # False: rebuilt from the paper's text (the PR mark)
    defaults: NotRequired[dict[str, Any]]  # its hyperparameters' defaults
    paper_results: NotRequired[list[PaperResultFacts]]


class MetricFacts(TypedDict):
    """One metric of the run as registered when the run was recorded, at the run's settings."""

    primary: str  # the key the leaderboard shows
    higher_is_better: bool
    in_all: bool  # False: run only where a profile names it (not part of the study's key)
    defaults: dict[str, Any]  # disentanglement_lib's settings, for "settings that differ"
    caveats: list[str]  # how the run's settings depart from the published protocol
    resolution: float | None  # smallest step of the primary score (None: continuous)


class Execution(TypedDict):
    """Settings that can change a result without changing the spec."""

    device: str
    threads: int
    group_size: int  # models trained together in one batched group (the worker sets it)
    precision: str
    numerics: NotRequired[str]  # "native" or "portable"; absent in the oldest records


class Timings(TypedDict, total=False):
    """Seconds: the fit's share of its group, each metric's evaluation, the whole run."""

    fit_s: float
    eval_s: dict[str, float]
    total_s: float


class Artifacts(TypedDict, total=False):
    """Files beside the records, relative to the results directory."""

    model: str
    traversal: str
    transfer_grid: str


class DatasetFacts(TypedDict, total=False):
    """``Dataset.describe()`` of the dataset the run trained on (set once it loaded)."""

    name: str
    kind: str  # "procedural" or "published"
    factor_names: list[str]
    factor_sizes: list[int]
    observation_shape: list[int]


class Record(TypedDict):
    """One run. ``status`` is ``ok`` or ``failed`` (then ``error`` and ``traceback``)."""

    format: int  # disbench.run.store.RECORD_FORMAT when written
    id: str  # hash of ``spec``
    train_id: str  # hash of what training depends on (runs sharing it share one model)
    profile: str
    study: StudyFacts
    spec: dict[str, Any]  # RunSpec.to_dict(): dataset, method, hparams, seed, budget, ...
    method: MethodFacts
    metrics: dict[str, MetricFacts]  # every metric of ``spec["metrics"]``
    dataset_label: str
    dataset: NotRequired[DatasetFacts]
    status: str
    error: str | None
    traceback: NotRequired[str]
    scores: dict[str, dict[str, float]]  # metric -> key -> value
    primary: dict[str, str]  # metric -> primary key, for the metrics that scored
    higher_is_better: dict[str, bool]  # likewise
    metric_errors: dict[str, str]  # metric -> why it could not score this code
    # Set by the method during the fit: final_losses, loss_curve, caveats (not_converged,
    # privileged), train_seconds, ...
    info: NotRequired[dict[str, Any]]
    timings: Timings
    artifacts: Artifacts
    execution: Execution
    environment: dict[str, Any]  # disbench.run.environment.environment()
    numerics: NotRequired[dict[str, Any]]  # disbench.run.numerics.fingerprint()
    created: str  # ISO time the record was made
    checksum: NotRequired[str]  # set by the store on write
