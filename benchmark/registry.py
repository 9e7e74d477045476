"""The harness's view of what is registered: built-ins, entry-point plugins, ``--plugin``.

Classes register themselves with :func:`disbench.api.register`. A registry imports a module
only when one of its names is asked for: a built-in's module from :data:`BUILTINS`, an
entry point of the kind's group (read by name, loaded on first use), or a ``--plugin``
module (imported by :func:`load_plugin`). A module that fails to import makes its names
unavailable, with a one-line reason, and the rest of its kind keeps working.
:meth:`Registry.listing` describes every name from the modules' source without running
them, so ``disbench list`` loads neither torch nor jax.
"""

from __future__ import annotations

import ast
import difflib
import functools
import importlib
import importlib.util
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from disbench.api import KINDS, RegistryError, registered

__all__ = [
    "BUILTINS",
    "DATASETS",
    "METHODS",
    "METRICS",
    "Listed",
    "Registry",
    "RegistryError",
    "load_plugin",
]

# kind -> name -> the module that registers it: every built-in, imported only when asked for
# (tests/test_registry.py checks this against the modules on disk and what they register).
BUILTINS: dict[str, dict[str, str]] = {
    "dataset": {
        "blobs": "disbench.datasets.blobs",
        "cars3d": "disbench.datasets.cars3d",
        "dsprites": "disbench.datasets.dsprites",
        "isometric_manifold": "disbench.datasets.isometric_manifold",
        "mpi3d_real": "disbench.datasets.mpi3d",
        "mpi3d_realistic": "disbench.datasets.mpi3d",
        "mpi3d_toy": "disbench.datasets.mpi3d",
        "proc_dsprites": "disbench.datasets.proc_dsprites",
        "proc_shapes3d": "disbench.datasets.proc_shapes3d",
        "shapes3d": "disbench.datasets.shapes3d",
        "smallnorb": "disbench.datasets.smallnorb",
    },
    "method": {
        "ae": "disbench.methods.ae",
        "annealed_vae": "disbench.methods.annealed_vae",
        "beta_tc_vae": "disbench.methods.beta_tc_vae",
        "beta_vae": "disbench.methods.beta_vae",
        "cs_dismo": "disbench.methods.cs_dismo",
        "dip_vae_i": "disbench.methods.dip_vae_i",
        "dip_vae_ii": "disbench.methods.dip_vae_ii",
        "disdiff": "disbench.methods.disdiff",
        "dot_vae": "disbench.methods.dot_vae",
        "factor_vae": "disbench.methods.factor_vae",
        "fastica": "disbench.methods.ica",
        "hlle_ica": "disbench.methods.hlle_ica",
        "irmae": "disbench.methods.irmae",
        "li_ae": "disbench.methods.li_ae",
        "pca": "disbench.methods.pca",
        "protovae": "disbench.methods.protovae",
    },
    "metric": {
        "beta_vae": "disbench.metrics.beta_vae",
        "cs_transfer": "disbench.metrics.cs_transfer",
        "dci": "disbench.metrics.dci",
        "factor_vae": "disbench.metrics.factor_vae",
        "irs": "disbench.metrics.irs",
        "local_isometry": "disbench.metrics.local_isometry",
        "mcc": "disbench.metrics.mcc",
        "mig": "disbench.metrics.mig",
        "modularity_explicitness": "disbench.metrics.modularity_explicitness",
        "sap_score": "disbench.metrics.sap_score",
        "unsupervised": "disbench.metrics.unsupervised",
    },
}


@dataclass(frozen=True)
class Listed:
    """One name as ``disbench list`` shows it."""

    name: str
    source: str  # the module, or entry point, that registers it
    description: str
    unavailable: str | None  # why it cannot be used; None when nothing is known against it


class Registry:
    """Name -> class of one kind, each module imported on first use, with a clear error
    listing the known names."""

    def __init__(self, kind: str, builtins: Mapping[str, str]) -> None:
        self.kind = kind
        self.group = KINDS[kind][1]
        self.builtins = dict(builtins)
        # name -> why it cannot be used (its module failed to import), one line
        self.unavailable: dict[str, str] = {}
        self._tried: set[str] = set()
        self._entry_points: dict[str, EntryPoint] | None = None

    def entry_points(self) -> dict[str, EntryPoint]:
        """The installed entry points of this kind's group, by name (none is loaded)."""
        if self._entry_points is None:
            self._entry_points = {ep.name: ep for ep in entry_points(group=self.group)}
        return self._entry_points

    def get(self, name: str) -> Any:
        """The class registered as ``name``; imports only the module that declares it."""
        cls = self._find(name)
        if cls is not None:
            return cls
        if name in self.unavailable:
            raise RegistryError(f"{self.kind} {name!r} is unavailable: {self.unavailable[name]}")
        known = self.names()
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise RegistryError(
            f"unknown {self.kind} {name!r}{hint}; known {self.kind}s: {', '.join(known)}"
        )

    def load(self) -> None:
        """Import every built-in module and entry point of this kind (each once)."""
        for module in dict.fromkeys(self.builtins.values()):
            self._load_builtin(module)
        for ep in self.entry_points().values():
            self._load_entry_point(ep)

    def names(self) -> list[str]:
        """The names that can be had: imports the whole kind; what fails is unavailable."""
        self.load()
        return sorted(n for n in registered(self.kind) if n not in self.unavailable)

    def origin(self, name: str) -> str:
        """The module that registered ``name`` ("" when none did)."""
        return registered(self.kind)[name][1] if self._find(name) is not None else ""

    def listing(self) -> list[Listed]:
        """Every built-in, entry point and registered name, described without importing a
        module: from its source (the ``description`` of the class whose ``name`` it is)
        or, for an entry point, its distribution's summary. A module whose source does not
        parse, or imports at its top level a package that is not installed, is marked
        unavailable."""
        out: dict[str, Listed] = {}
        for name, module in self.builtins.items():
            where = f"built-in {self.kind} module {module}"
            why, described = _read_source(module, where)
            why = self.unavailable.get(name) or why
            out[name] = Listed(name, module, described.get(name, ""), why)
        for name, ep in self.entry_points().items():
            where = f"plugin {ep.value} in group {self.group}"
            why, described = _read_source(ep.module, where)
            summary = (ep.dist.metadata.get("Summary") or ep.dist.name) if ep.dist else ""
            why = self.unavailable.get(name) or why
            out.setdefault(name, Listed(name, ep.value, described.get(name, summary), why))
        for name, (cls, module) in registered(self.kind).items():
            out[name] = Listed(name, module, cls.description, self.unavailable.get(name))
        return sorted(out.values(), key=lambda listed: listed.name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._find(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def _find(self, name: str) -> type | None:
        """The class of ``name`` once what declares it is imported; None when it is
        unavailable or unknown. An unknown name loads every entry point: a plugin may
        register names other than its entry point's."""
        if name not in registered(self.kind) and name not in self.unavailable:
            if name in self.builtins:
                self._load_builtin(self.builtins[name])
            elif name in self.entry_points():
                self._load_entry_point(self.entry_points()[name])
            else:
                for ep in self.entry_points().values():
                    self._load_entry_point(ep)
        if name in self.unavailable:
            return None
        return registered(self.kind).get(name, (None, ""))[0]

    def _load_builtin(self, module: str) -> None:
        names = [n for n, m in self.builtins.items() if m == module]
        where = f"built-in {self.kind} module {module}"
        self._load(module, names, where, lambda: importlib.import_module(module))

    def _load_entry_point(self, ep: EntryPoint) -> None:
        where = f"plugin {ep.value} in group {self.group}"
        self._load(f"entry point {ep.name}", [ep.name], where, ep.load)

    def _load(self, key: str, names: list[str], where: str, load: Callable[[], object]) -> None:
        if key in self._tried:
            return
        self._tried.add(key)
        try:
            load()
        except Exception as exc:  # noqa: BLE001 - any failure makes these names unavailable
            for name in names:
                self.unavailable.setdefault(name, _why(exc, where))


def _why(exc: BaseException, where: str) -> str:
    """One line: a missing package by its name, else the exception's type and first line."""
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return f"needs the package {exc.name!r}, which is not installed ({where})"
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{where} failed to import: {type(exc).__name__}: {first}"


@functools.cache
def _read_source(module: str, where: str) -> tuple[str | None, dict[str, str]]:
    """What ``module``'s source tells without running it: why it cannot import (it is not
    found, does not parse, or an import at its top level names a package that is not
    installed; imports guarded by ``try`` or ``if`` are optional and left out), and the
    ``description`` of each class that sets ``name`` and ``description`` as strings."""
    try:
        spec = importlib.util.find_spec(module)  # imports the parent packages only
    except Exception as exc:  # noqa: BLE001 - a parent package that fails to import
        return _why(exc, where), {}
    if spec is None:
        return f"{where}: module {module!r} is not installed", {}
    if not spec.origin or not spec.origin.endswith(".py"):
        return None, {}
    try:
        tree = ast.parse(Path(spec.origin).read_text(), spec.origin)
    except SyntaxError as exc:
        return f"{where} failed to import: SyntaxError: {exc.msg} (line {exc.lineno})", {}
    described = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            strings = dict(_string_attributes(node))
            if "name" in strings and "description" in strings:
                described[strings["name"]] = strings["description"]
    for node in tree.body:
        imported = (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module]
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
            else []
        )
        for top in (name.partition(".")[0] for name in imported):
            if importlib.util.find_spec(top) is None:
                return f"needs the package {top!r}, which is not installed ({where})", described
    return None, described


def _string_attributes(node: ast.ClassDef) -> Iterator[tuple[str, str]]:
    """The class attributes set to a string literal in the class body."""
    for stmt in node.body:
        target = (
            stmt.targets[0]
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
            else stmt.target
            if isinstance(stmt, ast.AnnAssign)
            else None
        )
        value = getattr(stmt, "value", None)
        if isinstance(target, ast.Name) and isinstance(value, ast.Constant):
            if isinstance(value.value, str):
                yield target.id, value.value


DATASETS = Registry("dataset", BUILTINS["dataset"])
METHODS = Registry("method", BUILTINS["method"])
METRICS = Registry("metric", BUILTINS["metric"])


def load_plugin(module: str) -> None:
    """Import a local module given with ``--plugin``; it registers its own entries."""
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise RegistryError(
            f"--plugin {module!r}: module not found ({exc}); is it on PYTHONPATH?"
        ) from exc
    except Exception as exc:  # noqa: BLE001
        raise RegistryError(
            f"--plugin {module!r} failed to import: {type(exc).__name__}: {exc}"
        ) from exc
