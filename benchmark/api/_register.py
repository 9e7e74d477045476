"""One way to register a method, a dataset or a metric: the ``@register`` class decorator.

The same decorator serves built-ins and plugins. It files the class under its ``name`` in
the table of its kind (chosen by its base class); the harness reads these tables after
importing the built-in modules and the entry-point plugins. Registering imports nothing.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import TypeVar

from disbench.api._dataset import GroundTruthDataset
from disbench.api._method import Method
from disbench.api._metric import Metric

C = TypeVar("C", bound=type)

# kind -> (base class, entry-point group a plugin package declares)
KINDS: dict[str, tuple[type, str]] = {
    "dataset": (GroundTruthDataset, "disbench.datasets"),
    "method": (Method, "disbench.methods"),
    "metric": (Metric, "disbench.metrics"),
}
_TABLES: dict[str, dict[str, tuple[type, str]]] = {kind: {} for kind in KINDS}


class RegistryError(LookupError):
    """An unknown name, a duplicate registration or a plugin that fails to load."""


def register(cls: C) -> C:
    """Register ``cls`` (a subclass of Method, GroundTruthDataset or Metric) under its name."""
    kind = next(
        (k for k, (base, _) in KINDS.items() if isinstance(cls, type) and issubclass(cls, base)),
        None,
    )
    where = f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', cls)!s}"
    if kind is None:
        raise RegistryError(
            f"register: {where} is not a subclass of Method, GroundTruthDataset or Metric"
        )
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise RegistryError(
            f"register: {kind} {where} needs a class attribute `name` that is a Python "
            f"identifier, got {name!r}"
        )
    _check_attributes(kind, name, cls)
    version = getattr(cls, "version", None)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RegistryError(f"register: {kind} {name!r} needs an integer version >= 1")
    table = _TABLES[kind]
    if name in table and table[name][0] is not cls:
        raise RegistryError(
            f"{kind} {name!r} is registered twice ({table[name][1]} and {cls.__module__})"
        )
    table[name] = (cls, cls.__module__)
    return cls


# Class attributes each kind must set, and their types.
_REQUIRED: dict[str, dict[str, type]] = {
    "dataset": {"kind": str, "description": str},
    "method": {"description": str, "defaults": dict, "sweep": dict, "framework": str},
    "metric": {"description": str, "primary": str, "defaults": Mapping},
}


def _check_attributes(kind: str, name: str, cls: type) -> None:
    for attr, typ in _REQUIRED[kind].items():
        value = getattr(cls, attr, None)
        if not isinstance(value, typ):
            raise RegistryError(
                f"register: {kind} {name!r} needs a class attribute `{attr}` "
                f"({typ.__name__}), got {value!r}"
            )
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        raise RegistryError(f"register: {kind} {name!r} does not implement {missing}")


def registered(kind: str) -> dict[str, tuple[type, str]]:
    """Name -> (class, module that registered it) of one kind, as registered so far."""
    return dict(_TABLES[kind])
