"""Profiles (TOML study descriptions), parsed once into typed objects, and their expansion
into run specs with stable ids.

A profile names datasets, methods with hyperparameter grids, seeds, the training budget,
metric settings and the evaluation seed; see ``benchmark/profiles/*.toml`` and the README.
``[methods."*"]`` applies to every registered method the profile does not name, so a
plugin method joins a study without editing the profile.

:func:`load_profile` reads the TOML, applies ``--set`` options and checks every key into a
:class:`Study`: its :class:`Execution` (how it runs), its :class:`MethodEntry` per method
table (what each method trains) and its run specs. Every default of a profile key is a field
default of these classes and nowhere else; nothing downstream reads the TOML again. A bad
value is a one-line :class:`ProfileError` naming the file, the key and, when the value came
from the command line, the ``--set KEY=VALUE`` option.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import os
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, NoReturn

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


Key = tuple[str, ...]  # a profile key as a path: ("methods", "pca", "grid")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# What a key takes: (the words an error says it must be, the test).
Check = tuple[str, Callable[[Any], bool]]
_POSITIVE_INT: Check = ("a positive integer", lambda v: _is_int(v) and v > 0)
_INT: Check = ("an integer", _is_int)
_STRING: Check = ("a string", lambda v: isinstance(v, str))
_BOOL: Check = ("true or false", lambda v: isinstance(v, bool))
_GROUP_SIZE: Check = ('a positive integer or "auto"', lambda v: v == "auto" or _POSITIVE_INT[1](v))


def _one_of(*choices: Any) -> Check:
    return (f"one of {list(choices)}", lambda v: v in choices)


def _checked(default: Any, check: Check) -> Any:
    """A profile key's field: its default, and what a value must be."""
    return field(default=default, metadata={"check": check})


@dataclass(frozen=True)
class Train:
    """``[train]``: the budget of every method entry that sets none of its own."""

    steps: int = _checked(1000, _POSITIVE_INT)
    batch_size: int = _checked(64, _POSITIVE_INT)


@dataclass(frozen=True)
class Execution:
    """``[execution]``: how a study runs. None of it enters a run id; the device, threads
    and numerics a run had are kept in its record."""

    workers: int = _checked(1, _POSITIVE_INT)
    group_size: int | str = _checked("auto", _GROUP_SIZE)  # batched runs trained as one model
    device: str = _checked("auto", _one_of("auto", "cpu", "cuda"))
    torch_threads: int | None = _checked(None, _POSITIVE_INT)  # None: the cores per worker
    executor: str = _checked("local", _one_of("local", "ray"))
    ray_address: str | None = _checked(None, _STRING)  # None: $RAY_ADDRESS or a new Ray
    checkpoint_minutes: float = _checked(
        10,
        (
            "a number >= 0",
            lambda v: isinstance(v, int | float) and not isinstance(v, bool) and v >= 0,
        ),
    )
    numerics: str = _checked("native", _one_of(*MODES))

    def threads(self, workers: int) -> int:
        """Torch threads per worker: ``torch_threads``, else this machine's cores shared out."""
        return self.torch_threads or max(1, (os.cpu_count() or 1) // workers)


@dataclass(frozen=True)
class MethodEntry:
    """One ``[methods.X]`` table, or one table of an array ``[[methods.X]]``, with the
    study's settings filled in where it sets none."""

    method: str
    key: str  # what errors call it: "methods.pca", "methods.pca[1]"
    steps: int
    batch_size: int
    seeds: tuple[int, ...]
    datasets: tuple[DatasetSpec, ...]
    grid: dict[str, list[Any]]  # the method's sweep (``sweep = true``) overlaid with ``grid``
    sweep: bool
    group_size: int | str  # one value per method: its entries', else [execution]'s
    metrics: tuple[str, ...]  # added to the study's metrics for this entry's runs
    hparams: tuple[dict[str, Any], ...]  # the grid's combinations, defaults resolved


@dataclass(frozen=True)
class Study:
    """A checked profile: what the runner, the workers and the records need of it."""

    name: str
    description: str
    runs: list[RunSpec]
    execution: Execution
    entries: tuple[MethodEntry, ...]
    rank: list[str]  # ``[report] rank``: the metrics the leaderboard's mean rank runs over
    note: str = ""  # ``[report] note``: what the leaderboard header says of the study


@dataclass(frozen=True)
class _Source:
    """Where a profile's values came from: its file, and the ``--set`` options (each with
    the key it replaced) that changed some of them."""

    path: str
    overrides: tuple[tuple[Key, str], ...] = ()

    def fail(self, msg: str, *keys: Key) -> NoReturn:
        """Raise the one-line error; it names each ``--set`` that gave a value under (or
        above) one of ``keys``, the keys at fault, unless a later ``--set`` replaced it."""
        given = [
            f"--set {text}"
            for i, (key, text) in enumerate(self.overrides)
            if any(key[: len(k)] == k or k[: len(key)] == key for k in keys)
            and not any(key[: len(later)] == later for later, _ in self.overrides[i + 1 :])
        ]
        where = "".join(f"{g}: " for g in given)
        raise ProfileError(f"profile {self.path}: {where}{msg}")

    def require(self, cond: Any, msg: str, *keys: Key) -> None:
        if not cond:
            self.fail(msg, *keys)


def _label(key: Key) -> str:
    return ".".join(key)


def _table(value: Any, src: _Source, key: Key) -> dict[str, Any]:
    src.require(isinstance(value, dict), f"[{_label(key)}] must be a table", key)
    return value


def _check(value: Any, check: Check, src: _Source, key: Key) -> Any:
    what, test = check
    src.require(test(value), f"{_label(key)} must be {what}, got {value!r}", key)
    return value


def _typed(cls: type, value: Any, src: _Source, key: Key) -> Any:
    """The dataclass ``cls`` of a table whose keys are its fields, each value checked."""
    given = _table(value, src, key)
    known = {f.name: f for f in fields(cls)}
    for name, v in given.items():
        src.require(
            name in known,
            f"[{_label(key)}] unknown key {name!r}; known: {sorted(known)}",
            (*key, name),
        )
        _check(v, known[name].metadata["check"], src, (*key, name))
    return cls(**given)


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
    """The study of a profile, each ``--set KEY=VALUE`` of ``overrides`` applied first."""
    path = profile_path(profile)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"profile {path}: invalid TOML: {exc}") from exc
    given: list[tuple[Key, str]] = []
    for text in overrides or []:
        try:
            keys, value = parse_override(text)
        except ValueError as exc:
            raise ProfileError(f"profile {path}: {exc}") from exc
        given.append((tuple(keys), text))
        node = raw
        for i, k in enumerate(keys[:-1]):
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                _Source(str(path), tuple(given)).fail(
                    f"{_label(tuple(keys[: i + 1]))} is not a table", tuple(keys)
                )
        node[keys[-1]] = value
    return expand(raw, path.stem, _Source(str(path), tuple(given)))


def _seeds(value: Any, src: _Source, key: Key) -> tuple[int, ...]:
    src.require(
        isinstance(value, list) and value and all(_is_int(s) for s in value),
        f"{_label(key)} must be a non-empty list of integers, got {value!r}",
        key,
    )
    return tuple(value)


def _datasets(value: Any, src: _Source, key: Key) -> tuple[DatasetSpec, ...]:
    src.require(isinstance(value, list) and value, f"{_label(key)} must be a non-empty list", key)
    out = []
    for entry in value:
        if isinstance(entry, str):
            spec = DatasetSpec(entry)
        elif isinstance(entry, dict) and isinstance(entry.get("name"), str):
            params = {k: v for k, v in entry.items() if k != "name"}
            spec = DatasetSpec(entry["name"], params)
        else:
            src.fail(f"{_label(key)} entries are names or tables with a 'name', got {entry!r}", key)
        try:
            DATASETS.get(spec.name)
        except RegistryError as exc:
            src.fail(f"{_label(key)}: {exc}", key)
        out.append(spec)
    return tuple(out)


def _grid(
    cls: Any, conf: dict[str, Any], sweep: bool, src: _Source, key: Key, label: str
) -> dict[str, Any]:
    """The entry's grid: the method's sweep when ``sweep = true``, overlaid with ``grid``;
    each value a list of the values to take."""
    grid: dict[str, Any] = dict(cls.sweep) if sweep else {}
    grid.update(_table(conf.get("grid", {}), src, (*key, "grid")))
    try:
        cls.check_names(list(grid))
    except ValueError as exc:
        src.fail(f"{label}.grid: {exc}", (*key, "grid"))
    out = {n: grid[n] if isinstance(grid[n], list) else [grid[n]] for n in sorted(grid)}
    for n, values in out.items():
        src.require(values, f"{label}.grid.{n} is an empty list", (*key, "grid", n))
    return out


def _hparams(
    cls: Any, grid: dict[str, list[Any]], src: _Source, key: Key, label: str
) -> tuple[dict[str, Any], ...]:
    """Every combination of the grid's values, with the method's defaults, checked."""
    combos = [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())]
    try:
        return tuple(cls.resolve_hparams(c) for c in combos)
    except ValueError as exc:
        src.fail(f"{label}.grid: {exc}", (*key, "grid"), (*key, "sweep"))


def _metrics(
    conf: Any, src: _Source, per_method: list[str]
) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """(the study's metric names, settings of those and of the ``per_method`` extras)."""
    conf = copy.deepcopy(_table(conf, src, ("metrics",)))
    names = conf.pop("names", "all")
    common = _table(conf.pop("common", {}), src, ("metrics", "common"))
    if names == "all":
        names = [n for n in METRICS.names() if METRICS.get(n).in_all]
    src.require(
        isinstance(names, list) and all(isinstance(n, str) for n in names),
        f'metrics.names must be "all" or a list of metric names, got {names!r}',
        ("metrics", "names"),
    )
    for extra in conf:
        src.require(
            extra in names or extra in per_method,
            f"[metrics.{extra}] configures a metric that is not in metrics.names "
            "nor in any method's metrics",
            ("metrics", extra),
        )
    out = {}
    for name in [*names, *(n for n in per_method if n not in names)]:
        try:
            metric = METRICS.get(name)
        except RegistryError as exc:
            src.fail(f"metrics.names: {exc}", ("metrics", "names"))
        own = _table(conf.get(name, {}), src, ("metrics", name))
        try:
            shared = {k: v for k, v in common.items() if k in metric.defaults}
            out[name] = metric.settings({**shared, **own})
        except ValueError as exc:
            src.fail(f"metrics.{name}: {exc}", ("metrics", name), ("metrics", "common"))
    return names, out


def _report(value: Any, computed: dict[str, Any], src: _Source) -> tuple[list[str], str]:
    """``[report]``: (the metrics the leaderboard's mean rank runs over, the header note)."""
    report = _table(value, src, ("report",))
    bad = sorted(set(report) - {"rank", "note"})
    src.require(not bad, f"[report] takes rank and note, got {bad}", ("report", *bad[:1]))
    note = _check(report.get("note", ""), _STRING, src, ("report", "note"))
    rank = report.get("rank", list(DEFAULT_RANK))
    src.require(
        isinstance(rank, list) and rank and all(isinstance(m, str) for m in rank),
        f"report.rank must be a non-empty list of metric names, got {rank!r}",
        ("report", "rank"),
    )
    missing = [m for m in rank if m not in computed]
    if missing and "rank" in report:
        src.fail(
            f"report.rank names {missing}, which the study does not compute", ("report", "rank")
        )
    return [m for m in rank if m in computed], note


def _method_tables(raw: dict[str, Any], src: _Source) -> list[tuple[str, Key, str, Any]]:
    """(method, the key it came from, what errors call it, its table) per configuration:
    ``[methods.X]`` is one, an array of tables ``[[methods.X]]`` one per entry (the same
    method on different datasets or budgets); ``[methods."*"]`` gives every registered
    method not named otherwise that table."""
    methods_conf = dict(_table(raw.get("methods", {}), src, ("methods",)))
    wildcard = methods_conf.pop("*", None)
    origin = {m: ("methods", m) for m in methods_conf}
    if wildcard is not None:
        for m in METHODS.names():
            if m not in methods_conf:
                methods_conf[m] = copy.deepcopy(wildcard)
                origin[m] = ("methods", "*")
    out = []
    for mname, conf in methods_conf.items():
        confs = conf if isinstance(conf, list) else [conf or {}]
        for i, entry in enumerate(confs):
            label = f"methods.{mname}" + (f"[{i}]" if isinstance(conf, list) else "")
            src.require(isinstance(entry, dict), f"[{label}] must be a table", origin[mname])
            out.append((mname, origin[mname], label, entry))
    return out


def _entries(
    raw: dict[str, Any], train: Train, execution: Execution, src: _Source
) -> tuple[MethodEntry, ...]:
    """Every method table checked, with the study's seeds, datasets and budget where it
    sets none, and one group size per method."""
    tables = _method_tables(raw, src)
    src.require(tables, "no [methods.*] table: a study needs at least one method", ("methods",))
    seeds = _seeds(raw.get("seeds"), src, ("seeds",))
    datasets = _datasets(raw.get("datasets"), src, ("datasets",))
    group: dict[str, int | str] = {}
    for mname, key, _, conf in tables:
        if "group_size" in conf:
            size = _check(conf["group_size"], _GROUP_SIZE, src, (*key, "group_size"))
            src.require(
                group.setdefault(mname, size) == size,
                f"[methods.{mname}] entries set different group_size values",
                ("methods", mname),
            )
    out = []
    for mname, key, label, conf in tables:
        try:
            cls = METHODS.get(mname)
        except RegistryError as exc:
            src.fail(str(exc), key)
        bad = sorted(set(conf) - _METHOD_KEYS)
        src.require(
            not bad,
            f"[{label}] unknown key(s) {bad}; known: {sorted(_METHOD_KEYS)}",
            (*key, *bad[:1]),
        )
        extra = conf.get("metrics", [])
        src.require(
            isinstance(extra, list) and all(isinstance(m, str) for m in extra),
            f"{label}.metrics must be a list of metric names (added for this method's runs), "
            f"got {extra!r}",
            (*key, "metrics"),
        )
        for name in extra:
            try:
                METRICS.get(name)
            except RegistryError as exc:
                src.fail(f"{label}.metrics: {exc}", (*key, "metrics"))
        sweep = _check(conf.get("sweep", False), _BOOL, src, (*key, "sweep"))
        grid = _grid(cls, conf, sweep, src, key, label)
        out.append(
            MethodEntry(
                method=mname,
                key=label,
                steps=_check(conf.get("steps", train.steps), _POSITIVE_INT, src, (*key, "steps")),
                batch_size=_check(
                    conf.get("batch_size", train.batch_size),
                    _POSITIVE_INT,
                    src,
                    (*key, "batch_size"),
                ),
                seeds=_seeds(conf["seeds"], src, (*key, "seeds")) if "seeds" in conf else seeds,
                datasets=(
                    _datasets(conf["datasets"], src, (*key, "datasets"))
                    if "datasets" in conf
                    else datasets
                ),
                grid=grid,
                sweep=sweep,
                group_size=group.get(mname, execution.group_size),
                metrics=tuple(extra),
                hparams=_hparams(cls, grid, src, key, label),
            )
        )
    return tuple(out)


def expand(raw: dict[str, Any], name: str, src: _Source) -> Study:
    """Check a parsed profile and expand it into run specs: per method entry, its datasets
    x its grid x its seeds, in that order (the order is part of what a study is)."""
    unknown = sorted(set(raw) - _TOP_KEYS)
    src.require(not unknown, f"unknown key(s) {unknown}; known: {sorted(_TOP_KEYS)}", unknown[:1])
    description = _check(raw.get("description", ""), _STRING, src, ("description",))
    eval_seed = _check(raw.get("eval_seed", 0), _INT, src, ("eval_seed",))
    train = _typed(Train, raw.get("train", {}), src, ("train",))
    execution = _typed(Execution, raw.get("execution", {}), src, ("execution",))
    entries = _entries(raw, train, execution, src)
    per_method = sorted({m for e in entries for m in e.metrics})
    names, all_settings = _metrics(raw.get("metrics", {}), src, per_method)
    metrics = {name: all_settings[name] for name in names}

    runs: list[RunSpec] = []
    for entry in entries:
        cls = METHODS.get(entry.method)
        m_metrics = {**metrics, **{name: all_settings[name] for name in entry.metrics}}
        budget = TrainBudget(entry.steps, entry.batch_size)
        for ds, hp, seed in itertools.product(entry.datasets, entry.hparams, entry.seeds):
            versions = {
                "dataset": DATASETS.get(ds.name).version,
                "method": cls.version,
                "metrics": {name: METRICS.get(name).version for name in m_metrics},
            }
            runs.append(RunSpec(ds, entry.method, hp, seed, budget, eval_seed, m_metrics, versions))
    ids = [r.id for r in runs]
    src.require(len(set(ids)) == len(ids), "two runs expand to the same spec", ("methods",))
    rank, note = _report(raw.get("report", {}), metrics, src)
    return Study(name, description, runs, execution, entries, rank, note)


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
    return replace(
        study,
        runs=[r for r in study.runs if r.method in names],
        entries=tuple(e for e in study.entries if e.method in names),
    )
