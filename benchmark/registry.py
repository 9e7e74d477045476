"""One registry per kind of plugin: datasets, methods, metrics.

Built-ins register themselves with the decorators below when their package is
discovered (every top-level module of ``benchmark.datasets``, ``methods`` and
``metrics`` whose name does not start with ``_``). Third-party plugins arrive
through the entry-point groups ``disbench.datasets``, ``disbench.methods`` and
``disbench.metrics`` (the entry point names a module or object; loading it
registers), or through ``--plugin some.module`` for quick local experiments.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class RegistryError(LookupError):
    """An unknown name, a duplicate registration or a plugin that fails to load."""


class Registry(Generic[T]):
    """Name -> object, with a clear error listing the known names and the closest match."""

    def __init__(self, kind: str, group: str, builtin_package: str) -> None:
        self.kind = kind
        self.group = group
        self.builtin_package = builtin_package
        self._items: dict[str, T] = {}
        self._origin: dict[str, str] = {}
        self._loaded = False

    def add(self, name: str, item: T, origin: str = "") -> T:
        if name in self._items and self._items[name] is not item:
            raise RegistryError(
                f"{self.kind} {name!r} is registered twice "
                f"({self._origin[name] or 'unknown'} and {origin or 'unknown'})"
            )
        self._items[name] = item
        self._origin[name] = origin
        return item

    def load(self) -> None:
        """Import the built-ins and the installed entry-point plugins (once)."""
        if self._loaded:
            return
        self._loaded = True
        package = importlib.import_module(self.builtin_package)
        for info in pkgutil.iter_modules(package.__path__):
            if info.ispkg or info.name.startswith("_"):
                continue
            _import(f"{self.builtin_package}.{info.name}", f"built-in {self.kind} module")
        for ep in entry_points(group=self.group):
            try:
                ep.load()
            except Exception as exc:  # noqa: BLE001 - any plugin failure is reported the same way
                raise RegistryError(
                    f"{self.kind} plugin entry point {ep.name!r} ({ep.value}) in group "
                    f"{self.group} failed to load: {type(exc).__name__}: {exc}"
                ) from exc

    def get(self, name: str) -> T:
        self.load()
        if name not in self._items:
            known = sorted(self._items)
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise RegistryError(
                f"unknown {self.kind} {name!r}{hint}; known {self.kind}s: {', '.join(known)}"
            )
        return self._items[name]

    def names(self) -> list[str]:
        self.load()
        return sorted(self._items)

    def origin(self, name: str) -> str:
        self.load()
        return self._origin.get(name, "")

    def __contains__(self, name: object) -> bool:
        self.load()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def _import(module: str, what: str) -> None:
    try:
        importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001
        raise RegistryError(
            f"{what} {module!r} failed to import: {type(exc).__name__}: {exc}"
        ) from exc


DATASETS: Registry[Any] = Registry("dataset", "disbench.datasets", "benchmark.datasets")
METHODS: Registry[Any] = Registry("method", "disbench.methods", "methods")
METRICS: Registry[Any] = Registry("metric", "disbench.metrics", "metrics")


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


def register_dataset(name: str) -> Callable[[T], T]:
    """Register a dataset factory (a class or function taking keyword parameters)."""

    def deco(factory: T) -> T:
        return DATASETS.add(name, factory, getattr(factory, "__module__", ""))

    return deco


def register_method(cls: T) -> T:
    """Register a :class:`methods.base.Method` subclass under its ``name``."""
    return METHODS.add(cls.name, cls, cls.__module__)  # type: ignore[attr-defined]


def register_metric(metric: T) -> T:
    """Register a :class:`metrics.base.Metric` under its ``name``."""
    return METRICS.add(metric.name, metric, getattr(metric.compute, "__module__", ""))  # type: ignore[attr-defined]
