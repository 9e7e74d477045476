"""Profiles (TOML study descriptions) and their expansion into run specs with stable ids.

A profile names datasets, methods with hyperparameter grids, seeds, the training budget,
metric settings and the evaluation seed; see ``benchmark/profiles/*.toml`` and the README.
``[methods."*"]`` applies to every registered method the profile does not name, so a
plugin method joins a study without editing the profile.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from disbench.api import TrainBudget
from disbench.registry import DATASETS, METHODS, METRICS, RegistryError
from disbench.run.numerics import MODES
from disbench.run.overrides import parse_override

PROFILE_DIR = Path(__file__).parent.parent / "profiles"
# The four scores the field reports: the leaderboard's default mean rank.
DEFAULT_RANK = ("mig", "dci", "factor_vae", "sap_score")
SPEC_VERSION = 2  # bump when the meaning of a spec changes, so old ids are not reused

_TOP_KEYS = {
    "description",
    "seeds",
    "eval_seed",
    "datasets",
    "train",
    "metrics",
    "methods",
    "execution",
    "report",
}
_METHOD_KEYS = {
    "grid",
    "sweep",
    "steps",
    "batch_size",
    "seeds",
    "datasets",
    "group_size",
    "metrics",
}
_EXEC_KEYS = {
    "workers",
    "group_size",
    "device",
    "torch_threads",
    "executor",
    "ray_address",
    "checkpoint_minutes",
    "numerics",
}


class ProfileError(ValueError):
    """A profile that cannot be used; the message names the file and the key at fault."""


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """What tables call the dataset: the name, plus its parameters when any are set."""
        if not self.params:
            return self.name
        args = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.name}({args})"

    def create(self) -> Any:
        return DATASETS.get(self.name)(**self.params)


@dataclass(frozen=True)
class RunSpec:
    """One model to train and score. ``train_id`` covers training; ``id`` adds evaluation.

    ``versions`` holds the declared version of the dataset, the method and each metric
    (``{"dataset": 1, "method": 1, "metrics": {"mig": 1}}``): a component whose behaviour
    changed bumps its version, and so gets new ids instead of stale records and models.
    """

    dataset: DatasetSpec
    method: str
    hparams: dict[str, Any]
    seed: int
    budget: TrainBudget
    eval_seed: int
    metrics: dict[str, dict[str, Any]]
    versions: dict[str, Any]

    def train_part(self) -> dict[str, Any]:
        return {
            "version": SPEC_VERSION,
            "dataset": asdict(self.dataset),
            "method": self.method,
            "hparams": self.hparams,
            "seed": self.seed,
            "budget": asdict(self.budget),
            "code_versions": {k: self.versions[k] for k in ("dataset", "method")},
        }

    def eval_part(self) -> dict[str, Any]:
        return {
            "eval_seed": self.eval_seed,
            "metrics": self.metrics,
            "metric_versions": self.versions["metrics"],
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": asdict(self.dataset),
            "method": self.method,
            "hparams": self.hparams,
            "seed": self.seed,
            "budget": asdict(self.budget),
            "eval_seed": self.eval_seed,
            "metrics": self.metrics,
            "versions": self.versions,
        }

    @property
    def train_id(self) -> str:
        return _digest(self.train_part())

    @property
    def id(self) -> str:
        return _digest({"train_id": self.train_id, **self.eval_part()})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        return cls(
            dataset=DatasetSpec(**d["dataset"]),
            method=d["method"],
            hparams=d["hparams"],
            seed=d["seed"],
            budget=TrainBudget(**d["budget"]),
            eval_seed=d["eval_seed"],
            metrics=d["metrics"],
            versions=d["versions"],
        )


@dataclass
class Study:
    name: str
    description: str
    runs: list[RunSpec]
    execution: dict[str, Any]
    raw: dict[str, Any]
    rank: list[str] = field(default_factory=lambda: list(DEFAULT_RANK))
    note: str = ""  # ``[report] note``: what the leaderboard header says of the study


def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def profile_path(profile: str) -> Path:
    """A built-in profile name (``cpu``) or a path to a user's TOML file."""
    path = Path(profile)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ProfileError(f"profile file {profile!r} does not exist")
        return path
    builtin = PROFILE_DIR / f"{profile}.toml"
    if not builtin.is_file():
        known = sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))
        raise ProfileError(
            f"unknown profile {profile!r}; built-in profiles: {', '.join(known)} "
            "(or give a path to a .toml file)"
        )
    return builtin


def load_profile(profile: str, overrides: list[str] | None = None) -> Study:
    path = profile_path(profile)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"profile {path}: invalid TOML: {exc}") from exc
    for text in overrides or []:
        try:
            keys, value = parse_override(text)
        except ValueError as exc:
            raise ProfileError(str(exc)) from exc
        node = raw
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ProfileError(f"--set {text!r}: {k!r} is not a table in profile {path}")
        node[keys[-1]] = value
    return expand(raw, name=path.stem, where=str(path))


def _require(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise ProfileError(f"profile {where}: {msg}")


def _seeds(value: Any, where: str, key: str) -> list[int]:
    _require(
        isinstance(value, list) and value and all(isinstance(s, int) for s in value),
        where,
        f"{key} must be a non-empty list of integers, got {value!r}",
    )
    return list(value)


def _datasets(value: Any, where: str, key: str) -> list[DatasetSpec]:
    _require(isinstance(value, list) and value, where, f"{key} must be a non-empty list")
    out = []
    for entry in value:
        if isinstance(entry, str):
            spec = DatasetSpec(entry)
        elif isinstance(entry, dict) and isinstance(entry.get("name"), str):
            params = {k: v for k, v in entry.items() if k != "name"}
            spec = DatasetSpec(entry["name"], params)
        else:
            raise ProfileError(
                f"profile {where}: {key} entries are names or tables with a 'name', got {entry!r}"
            )
        try:
            DATASETS.get(spec.name)
        except RegistryError as exc:
            raise ProfileError(f"profile {where}: {key}: {exc}") from exc
        out.append(spec)
    return out


def _grid(method_cls: Any, conf: dict[str, Any], where: str, key: str) -> list[dict[str, Any]]:
    grid: dict[str, Any] = dict(method_cls.sweep) if conf.get("sweep") else {}
    given = conf.get("grid", {})
    _require(isinstance(given, dict), where, f"{key}.grid must be a table")
    grid.update(given)
    try:
        method_cls.check_names(list(grid))
    except ValueError as exc:
        raise ProfileError(f"profile {where}: {key}.grid: {exc}") from exc
    names = sorted(grid)
    values = [v if isinstance(v, list) else [v] for v in (grid[n] for n in names)]
    for n, v in zip(names, values, strict=True):
        _require(len(v) > 0, where, f"{key}.grid.{n} is an empty list")
    combos = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]
    try:
        return [method_cls.resolve_hparams(c) for c in combos]
    except ValueError as exc:
        raise ProfileError(f"profile {where}: {key}.grid: {exc}") from exc


def _metrics(
    conf: Any, where: str, per_method: list[str]
) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """(the study's metric names, settings of those and of the ``per_method`` extras)."""
    conf = copy.deepcopy(conf or {})
    _require(isinstance(conf, dict), where, "[metrics] must be a table")
    names = conf.pop("names", "all")
    common = conf.pop("common", {})
    if names == "all":
        names = [n for n in METRICS.names() if METRICS.get(n).in_all]
    _require(
        isinstance(names, list) and all(isinstance(n, str) for n in names),
        where,
        f'metrics.names must be "all" or a list of metric names, got {names!r}',
    )
    for extra in conf:
        _require(
            extra in names or extra in per_method,
            where,
            f"[metrics.{extra}] configures a metric that is not in metrics.names "
            "nor in any method's metrics",
        )
    out = {}
    for name in [*names, *(n for n in per_method if n not in names)]:
        try:
            metric = METRICS.get(name)
            shared = {k: v for k, v in common.items() if k in metric.defaults}
            out[name] = metric.settings({**shared, **conf.get(name, {})})
        except (RegistryError, ValueError) as exc:
            raise ProfileError(f"profile {where}: metrics: {exc}") from exc
    return names, out


def expand(raw: dict[str, Any], name: str, where: str) -> Study:
    """Check a parsed profile and expand it into run specs (datasets x methods x grid x seeds)."""
    unknown = sorted(set(raw) - _TOP_KEYS)
    _require(not unknown, where, f"unknown key(s) {unknown}; known: {sorted(_TOP_KEYS)}")
    seeds = _seeds(raw.get("seeds"), where, "seeds")
    eval_seed = raw.get("eval_seed", 0)
    _require(isinstance(eval_seed, int), where, "eval_seed must be an integer")
    datasets = _datasets(raw.get("datasets"), where, "datasets")
    train = raw.get("train", {})
    _require(
        isinstance(train, dict) and set(train) <= {"steps", "batch_size"},
        where,
        "[train] takes steps and batch_size",
    )
    execution = raw.get("execution", {})
    _require(
        set(execution) <= _EXEC_KEYS,
        where,
        f"[execution] takes {sorted(_EXEC_KEYS)}, got {sorted(execution)}",
    )
    _require(
        execution.get("executor", "local") in ("local", "ray"),
        where,
        f'[execution] executor must be "local" or "ray", got {execution.get("executor")!r}',
    )
    _require(
        execution.get("numerics", "native") in MODES,
        where,
        f"[execution] numerics must be one of {list(MODES)}, got {execution.get('numerics')!r}",
    )
    entries = method_entries(raw, where)
    per_method = sorted(
        {
            name
            for _, _, conf in entries
            for name in conf.get("metrics", [])
            if isinstance(name, str)
        }
    )
    names, all_settings = _metrics(raw.get("metrics"), where, per_method)
    metrics = {name: all_settings[name] for name in names}

    _require(entries, where, "no [methods.*] table: a study needs at least one method")
    runs: list[RunSpec] = []
    for mname, key, conf in entries:
        try:
            cls = METHODS.get(mname)
        except RegistryError as exc:
            raise ProfileError(f"profile {where}: {exc}") from exc
        bad = sorted(set(conf) - _METHOD_KEYS)
        _require(not bad, where, f"[{key}] unknown key(s) {bad}; known: {sorted(_METHOD_KEYS)}")
        steps = conf.get("steps", train.get("steps", 1000))
        batch = conf.get("batch_size", train.get("batch_size", 64))
        _require(
            isinstance(steps, int) and steps > 0 and isinstance(batch, int) and batch > 0,
            where,
            f"[{key}] steps and batch_size must be positive integers",
        )
        extra = conf.get("metrics", [])
        _require(
            isinstance(extra, list) and all(isinstance(m, str) for m in extra),
            where,
            f"[{key}] metrics must be a list of metric names (added for this method's runs)",
        )
        m_metrics = {**metrics, **{name: all_settings[name] for name in extra}}
        m_seeds = _seeds(conf["seeds"], where, f"{key}.seeds") if "seeds" in conf else seeds
        m_data = (
            _datasets(conf["datasets"], where, f"{key}.datasets")
            if "datasets" in conf
            else datasets
        )
        for ds, hp, seed in itertools.product(m_data, _grid(cls, conf, where, key), m_seeds):
            versions = {
                "dataset": DATASETS.get(ds.name).version,
                "method": cls.version,
                "metrics": {name: METRICS.get(name).version for name in m_metrics},
            }
            budget = TrainBudget(steps, batch)
            runs.append(RunSpec(ds, mname, hp, seed, budget, eval_seed, m_metrics, versions))
    ids = [r.id for r in runs]
    _require(len(set(ids)) == len(ids), where, "two runs expand to the same spec")
    rank = _rank(raw.get("report", {}), metrics, where)
    note = raw.get("report", {}).get("note", "")
    return Study(name, raw.get("description", ""), runs, execution, raw, rank, note)


def method_entries(raw: dict[str, Any], where: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, key, settings) per configuration: ``[methods.X]`` is one, an array of tables
    ``[[methods.X]]`` one per entry (the same method on different datasets or budgets);
    ``[methods."*"]`` gives every registered method not named otherwise that table."""
    methods_conf = dict(raw.get("methods", {}))
    _require(isinstance(methods_conf, dict), where, "[methods] must be a table")
    wildcard = methods_conf.pop("*", None)
    if wildcard is not None:
        for m in METHODS.names():
            methods_conf.setdefault(m, copy.deepcopy(wildcard))
    out = []
    for mname, conf in methods_conf.items():
        confs = conf if isinstance(conf, list) else [conf or {}]
        for i, entry in enumerate(confs):
            key = f"methods.{mname}" + (f"[{i}]" if isinstance(conf, list) else "")
            _require(isinstance(entry, dict), where, f"[{key}] must be a table")
            out.append((mname, key, entry))
    for mname in {m for m, _, _ in out}:
        sizes = {str(c["group_size"]) for m, _, c in out if m == mname and "group_size" in c}
        _require(
            len(sizes) <= 1, where, f"[methods.{mname}] entries set different group_size values"
        )
    return out


def _rank(report: Any, metrics: dict[str, Any], where: str) -> list[str]:
    """``[report] rank``: the metrics the leaderboard's mean rank runs over."""
    _require(
        isinstance(report, dict) and set(report) <= {"rank", "note"},
        where,
        "[report] takes rank and note",
    )
    _require(isinstance(report.get("note", ""), str), where, "report.note must be a string")
    rank = report.get("rank", list(DEFAULT_RANK))
    _require(
        isinstance(rank, list) and rank and all(isinstance(m, str) for m in rank),
        where,
        f"report.rank must be a non-empty list of metric names, got {rank!r}",
    )
    missing = [m for m in rank if m not in metrics]
    if missing and report.get("rank") is not None:
        raise ProfileError(
            f"profile {where}: report.rank names {missing}, which the study does not compute"
        )
    return [m for m in rank if m in metrics]


def only_methods(study: Study, names: list[str]) -> Study:
    """The study restricted to ``names`` (``disbench run --methods a,b``), each of which the
    profile must train (``[methods."*"]`` trains every registered method)."""
    present = sorted({r.method for r in study.runs})
    missing = [n for n in names if n not in present]
    if missing:
        raise ProfileError(
            f"--methods: {missing} not in profile {study.name!r}, whose methods are "
            f"{', '.join(present)}"
        )
    runs = [r for r in study.runs if r.method in names]
    return Study(
        study.name, study.description, runs, study.execution, study.raw, study.rank, study.note
    )
