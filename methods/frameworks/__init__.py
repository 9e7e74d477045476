"""What the harness sets up or asks of an array framework around a run, behind one
:class:`Framework` interface, so the harness itself imports no framework.

One module per framework here implements it (``torch``), imported by name on first use:
a numpy method never loads one it does not need. The harness's own framework
(:data:`HARNESS`) is set up for every run, whatever the method's: the built-in datasets
render with it and the numerics fingerprint (:mod:`disbench.run.numerics`) reads its
state. A method whose framework has no module here (numpy, jax) keeps no process-wide
state the harness could set: it seeds itself from the seed ``fit`` receives.
"""

from __future__ import annotations

import importlib
from typing import Protocol, cast

from disbench.api import Method

__all__ = ["HARNESS", "HELPERS", "Framework", "for_method", "get"]

HARNESS = "torch"
HELPERS = ("torch",)  # the frameworks with a module here


class Framework(Protocol):
    """One framework's process-wide state and errors, as the harness needs them."""

    def set_threads(self, threads: int) -> None:
        """Bound the framework's own CPU thread pool."""

    def seed(self, seed: int) -> None:
        """Seed the framework's global random state before a fit."""

    def deterministic(self, on: bool) -> None:
        """Pick deterministic kernels (or not) for what follows."""

    def is_out_of_memory(self, exc: BaseException) -> bool:
        """Whether ``exc`` is the framework's out-of-device-memory error."""

    def free_memory(self) -> None:
        """Hand cached device memory back before a smaller retry."""

    def has_gpu(self) -> bool:
        """Whether the framework sees a GPU in this process."""


def get(name: str) -> Framework:
    """The helper module of framework ``name`` (one of :data:`HELPERS`)."""
    if name not in HELPERS:
        raise ValueError(f"no framework helper {name!r}; there are: {', '.join(HELPERS)}")
    return cast(Framework, importlib.import_module(f"{__name__}.{name}"))


def for_method(cls: type[Method]) -> tuple[Framework, ...]:
    """The helpers a run of method ``cls`` sets up: the harness's, and the method's own
    framework's when it has one here (``cls.framework``)."""
    names = dict.fromkeys((HARNESS, cls.framework))
    return tuple(get(name) for name in names if name in HELPERS)
