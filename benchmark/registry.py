"""The harness's view of what is registered: built-ins, entry-point plugins, ``--plugin``.

Classes register themselves with :func:`disbench.api.register`. On first use a registry
imports the built-in modules of its kind (every module of ``disbench.datasets``,
``disbench.methods`` or ``disbench.metrics`` whose name does not start with ``_``) and
the installed entry points of its group, then answers from the API's table.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Iterator
from importlib.metadata import entry_points
from typing import Any

from disbench.api import KINDS, RegistryError, registered

__all__ = ["DATASETS", "METHODS", "METRICS", "Registry", "RegistryError", "load_plugin"]


class Registry:
    """Name -> class of one kind, with a clear error listing the known names."""

    def __init__(self, kind: str, builtin_package: str) -> None:
        self.kind = kind
        self.group = KINDS[kind][1]
        self.builtin_package = builtin_package
        self._loaded = False
        # entry point name -> why it cannot load (a package it needs is not installed)
        self.unavailable: dict[str, str] = {}

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
            except ModuleNotFoundError as exc:  # an optional framework, e.g. jax, is missing
                self.unavailable[ep.name] = (
                    f"needs the package {exc.name!r}, which is not installed "
                    f"(plugin {ep.value} in group {self.group})"
                )
            except Exception as exc:  # noqa: BLE001 - any plugin failure is reported the same way
                raise RegistryError(
                    f"{self.kind} plugin entry point {ep.name!r} ({ep.value}) in group "
                    f"{self.group} failed to load: {type(exc).__name__}: {exc}"
                ) from exc

    def _table(self) -> dict[str, tuple[type, str]]:
        self.load()
        return registered(self.kind)

    def get(self, name: str) -> Any:
        table = self._table()
        if name not in table and name in self.unavailable:
            raise RegistryError(f"{self.kind} {name!r} is unavailable: {self.unavailable[name]}")
        if name not in table:
            known = sorted(table)
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise RegistryError(
                f"unknown {self.kind} {name!r}{hint}; known {self.kind}s: {', '.join(known)}"
            )
        return table[name][0]

    def names(self) -> list[str]:
        return sorted(self._table())

    def origin(self, name: str) -> str:
        return self._table().get(name, (None, ""))[1]

    def __contains__(self, name: object) -> bool:
        return name in self._table()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def _import(module: str, what: str) -> None:
    try:
        importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001
        raise RegistryError(
            f"{what} {module!r} failed to import: {type(exc).__name__}: {exc}"
        ) from exc


DATASETS = Registry("dataset", "disbench.datasets")
METHODS = Registry("method", "disbench.methods")
METRICS = Registry("metric", "disbench.metrics")


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
