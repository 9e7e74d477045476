"""The method interface: ``fit`` a dataset into a :class:`Representation` that encodes.

A method is a class with a ``name``, a one-line ``description``, default
hyperparameters and the published sweep grid. The harness calls
``fit(dataset, hparams, seed, budget, ctx)``; everything random inside must flow from
``seed``. Methods that can train several runs as one batched model set
``batchable = True`` and override ``fit_many``.
"""

from __future__ import annotations

import os
import pickle
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from disbench.api import _params
from disbench.api._dataset import GroundTruthDataset


@dataclass(frozen=True)
class TrainBudget:
    """How much training a run gets: optimiser steps and per-model batch size."""

    steps: int
    batch_size: int = 64


class Checkpoint:
    """Where a training run keeps its full state, so a killed study resumes it.

    A method that opts in (``Method.checkpoints = True``) calls :meth:`load` before
    training (the state it saved, or None) and, at points where its state is complete,
    :meth:`save` whenever :meth:`due` says so. The state must hold everything the rest of
    the run depends on (weights, optimisers, every random stream, the data-stream position,
    the step, the loss curve), so that a resumed run ends bit-identical to an uninterrupted
    one on the CPU. The harness removes the file once the run's record is written.
    """

    def __init__(self, path: Path, every_s: float) -> None:
        self.path = path
        self.every_s = every_s
        self._last = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.every_s

    def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` (anything pickle can hold, tensors included) atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(tmp, "wb") as fh:
            pickle.dump(state, fh, protocol=pickle.HIGHEST_PROTOCOL)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        self._last = time.monotonic()

    def load(self) -> dict[str, Any] | None:
        if not self.path.is_file():
            return None
        with open(self.path, "rb") as fh:
            return pickle.load(fh)


# What a run can be flagged for on the leaderboard (see FitContext.caveat).
Caveat = Literal["not_converged", "privileged"]


@dataclass
class FitContext:
    """What the harness hands a method besides the data: the device (``cpu`` or ``cuda``),
    the threads it may use (torch's and BLAS's are already bounded to it), places to write,
    a progress callback, and ``info``, a JSON-able dict that goes into the run record."""

    device: str = "cpu"
    workdir: Path = field(default_factory=lambda: Path("."))
    cache_dir: Path = field(default_factory=lambda: Path("results/cache"))
    progress: Callable[[int, int], None] = lambda step, total: None
    threads: int = 1
    info: dict[str, Any] = field(default_factory=dict)
    checkpoint: Checkpoint | None = None  # set by the harness for methods that opt in

    def caveat(self, kind: Caveat, note: str) -> None:
        """Flag the run so the leaderboard marks its numbers: ``not_converged`` (a fit that
        stopped before converging) or ``privileged`` (it was given something the other
        methods are not, such as the true number of factors). ``note`` says what."""
        self.info.setdefault("caveats", {})[kind] = note


class Representation(ABC):
    """A trained model seen through its encoder: observations -> codes.

    Optional: ``decode(codes [n, D]) -> observations [n, C, H, W] in [0, 1]``; when a
    representation has it, the harness writes reconstruction and traversal images.
    """

    @abstractmethod
    def encode(self, x: np.ndarray) -> np.ndarray:
        """Codes float [n, D] for observations float32 [n, C, H, W] (the mean code)."""

    def save(self, path: Path) -> None:
        """Write the whole trained representation so scores can be recomputed later."""
        with open(path, "wb") as fh:
            pickle.dump(self, fh)

    @classmethod
    def load(cls, path: Path) -> Representation:
        """Read what :meth:`save` wrote; subclasses that override ``save`` override this too."""
        with open(path, "rb") as fh:
            rep = pickle.load(fh)
        if not isinstance(rep, cls):
            raise TypeError(f"{path}: not a saved {cls.__name__}")
        return rep


class ContentStyle(Representation):
    """A representation whose codes are ``[content, style]``: the first ``content_dims`` are
    content, the rest style, and ``decode`` generates an image from any content code paired
    with any style code. Content/style evaluations (``cs_transfer``) and the transfer-grid
    image need it."""

    content_dims: int

    @abstractmethod
    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Observations float32 [n, C, H, W] in [0, 1] for codes [n, D] = [content, style]."""


@dataclass(frozen=True)
class PaperResult:
    """One verified number from a method's paper, on the published dataset it names."""

    dataset: str
    metric: str
    value: float
    source: str


class Method(ABC):
    """A registered learning method. Subclasses are stateless; ``fit`` returns the model."""

    name: ClassVar[str]
    description: ClassVar[str]
    # Bump whenever training or a default changes: the version enters every run id, so a
    # changed method never reuses a stale record or saved model.
    version: ClassVar[int] = 1
    # The typed hyperparameters: a frozen attrs class of ``param`` fields (bounds, allowed
    # values). When set, ``defaults`` follows from it and every run's values are checked.
    Params: ClassVar[type | None] = None
    defaults: ClassVar[dict[str, Any]] = {}
    sweep: ClassVar[dict[str, list[Any]]] = {}
    framework: ClassVar[str] = "numpy"
    # False for a method rebuilt from its paper's text without reference code: the
    # leaderboard marks it, and its docs say what was reconstructed.
    reference_code: ClassVar[bool] = True
    # True: on the CPU the same seed gives the same codes (`disbench check-method` tests it).
    deterministic: ClassVar[bool] = True
    # True: fit saves and resumes its state through ctx.checkpoint (see Checkpoint).
    checkpoints: ClassVar[bool] = False
    batchable: ClassVar[bool] = False
    # Numbers the method's paper reports (never computed here), shown apart on the leaderboard.
    paper_results: ClassVar[tuple[PaperResult, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.Params is not None and "defaults" not in cls.__dict__:
            cls.defaults = _params.defaults(cls.Params)

    @abstractmethod
    def fit(
        self,
        dataset: GroundTruthDataset,
        hparams: dict[str, Any],
        seed: int,
        budget: TrainBudget,
        ctx: FitContext,
    ) -> Representation:
        """Train on ``dataset`` and return the representation."""

    def fit_many(
        self,
        dataset: GroundTruthDataset,
        jobs: Sequence[tuple[dict[str, Any], int, FitContext]],
        budget: TrainBudget,
    ) -> list[Representation | Exception]:
        """Train several (hparams, seed, ctx) runs; batched methods do it as one model.

        Each job's slot holds its representation, or the exception that failed that job
        alone (the runner records that run as failed and keeps the others); an exception
        raised out of ``fit_many`` fails every job of the call.
        """
        out: list[Representation | Exception] = []
        for hp, seed, ctx in jobs:
            try:
                out.append(self.fit(dataset, hp, seed, budget, ctx))
            except Exception as exc:  # noqa: BLE001 - one failing job must not fail the rest
                out.append(exc)
        return out

    @classmethod
    def check_names(cls, names: Sequence[str]) -> None:
        """An unknown hyperparameter name is an error naming the method and the known ones."""
        unknown = sorted(set(names) - set(cls.defaults))
        if unknown:
            raise ValueError(
                f"method {cls.name!r}: unknown hyperparameter(s) {unknown}; "
                f"known: {sorted(cls.defaults)}"
            )

    @classmethod
    def resolve_hparams(cls, given: dict[str, Any]) -> dict[str, Any]:
        """Defaults overlaid with ``given``, checked against ``Params`` when the method has
        it (values are checked, not converted: they are what the run id hashes)."""
        cls.check_names(list(given))
        merged = {**cls.defaults, **given}
        if cls.Params is not None:
            _params.validate(cls.Params, merged, cls.name)
        return merged

    @classmethod
    def typed(cls, hparams: dict[str, Any]) -> Any:
        """The run's hyperparameters as the method's ``Params`` instance (attribute access)."""
        if cls.Params is None:
            raise TypeError(f"method {cls.name!r} declares no Params class")
        return _params.validate(cls.Params, hparams, cls.name)
