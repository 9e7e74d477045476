"""The metric interface and the shared evaluation context.

A metric is a pure array core (codes, factors, settings -> dict of floats) wrapped in
a :class:`Metric` subclass whose ``compute(ctx, settings)`` takes its arrays from an
:class:`EvalContext`. The context draws the train/test points once per run (sized
for the largest request of any metric), encodes them once, and hands slices to
every metric. Sampling metrics (BetaVAE, FactorVAE) use ``ctx.dataset``,
``ctx.encode`` and their own generator ``ctx.rng(name)``. All randomness flows from
the evaluation seed; nothing touches a global RNG.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from disbench.api._dataset import GroundTruthDataset

Encoder = Callable[[np.ndarray], np.ndarray]


class MetricError(ValueError):
    """Input a metric cannot score (degenerate or too small); the message says why."""


class Metric(ABC):
    """A registered metric: ``compute(ctx, settings) -> {key: value}``.

    ``primary`` is the key shown on the leaderboard; ``sizes(settings)`` tells the
    context how many (train, test) points this metric will ask for; ``needs_dataset``
    marks metrics that need the dataset (they sample their own interventions, or render
    observations) and so cannot run on arrays.
    Bump ``version`` whenever a value or a default changes: it enters every run id.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    primary: ClassVar[str]
    defaults: ClassVar[Mapping[str, Any]] = {}
    needs_dataset: ClassVar[bool] = False
    higher_is_better: ClassVar[bool] = True
    version: ClassVar[int] = 1
    # False: the metric applies to some representations only (content/style ones) and runs
    # only where a profile names it, never through `names = "all"`.
    in_all: ClassVar[bool] = True

    @abstractmethod
    def compute(self, ctx: EvalContext, settings: dict[str, Any]) -> dict[str, float]:
        """The metric's values on the context's points (or its own samples)."""

    @classmethod
    def settings(cls, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults overlaid with ``given``; an unknown key is an error naming the metric."""
        given = dict(given or {})
        unknown = sorted(set(given) - set(cls.defaults))
        if unknown:
            raise ValueError(
                f"metric {cls.name!r}: unknown setting(s) {unknown}; known: {sorted(cls.defaults)}"
            )
        return {**cls.defaults, **given}

    @classmethod
    def caveats(cls, settings: Mapping[str, Any]) -> list[str]:
        """How these settings depart from the published protocol so that values may differ
        (the leaderboard marks the metric approximate and prints these); none by default."""
        return []

    @classmethod
    def resolution(cls, settings: Mapping[str, Any]) -> float | None:
        """The smallest step the primary score can take (1 / votes for a vote fraction);
        the leaderboard prints no more digits than that. None: continuous."""
        return None

    @classmethod
    def sizes(cls, settings: Mapping[str, Any]) -> tuple[int, int]:
        if cls.needs_dataset:
            return 0, 0
        return int(settings.get("num_train", 0)), int(settings.get("num_test", 0))


@dataclass
class EvalContext:
    """Shared evaluation inputs: points drawn and encoded once, per-metric generators."""

    seed: int
    dataset: GroundTruthDataset | None = None
    encode: Encoder | None = None
    representation: Any = None  # the trained Representation, for metrics that decode
    encode_batch: int = 256
    _train: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    _test: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_arrays(
        cls,
        codes_train: np.ndarray,
        factors_train: np.ndarray,
        codes_test: np.ndarray | None = None,
        factors_test: np.ndarray | None = None,
        seed: int = 0,
    ) -> EvalContext:
        """A context over given arrays (``disbench score``); without a test split, the
        train arrays are split deterministically (first 2/3 train, last 1/3 test)."""
        ctx = cls(seed=seed)
        codes_train = np.asarray(codes_train, dtype=np.float64)
        factors_train = np.asarray(factors_train, dtype=np.int64)
        if codes_test is None or factors_test is None:
            cut = (2 * len(codes_train)) // 3
            ctx._train = (codes_train[:cut], factors_train[:cut])
            ctx._test = (codes_train[cut:], factors_train[cut:])
            ctx.notes.append(
                f"no test arrays: split the {len(codes_train)} train points into the first "
                f"{cut} (train) and the last {len(codes_train) - cut} (test)"
            )
        else:
            ctx._train = (codes_train, factors_train)
            ctx._test = (
                np.asarray(codes_test, dtype=np.float64),
                np.asarray(factors_test, dtype=np.int64),
            )
        return ctx

    def rng(self, name: str) -> np.random.Generator:
        """An independent generator per consumer, so metric order never changes values."""
        digest = hashlib.sha256(f"{self.seed}:{name}".encode()).digest()
        return np.random.default_rng(int.from_bytes(digest[:8], "little"))

    def random_state(self, name: str) -> int:
        """An integer seed for scikit-learn estimators, derived like :meth:`rng`."""
        return int(self.rng(name).integers(0, 2**31 - 1))

    def prepare(self, num_train: int, num_test: int) -> None:
        """Draw and encode the shared points (called once by the evaluator)."""
        if self._train is not None:
            return
        self._train = self._draw("train", num_train)
        self._test = self._draw("test", num_test)

    def _draw(self, split: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        if self.dataset is None:
            raise MetricError("no dataset to draw evaluation points from")
        factors = self.dataset.sample_factors(n, self.rng(f"points:{split}"))
        if n == 0:
            return np.zeros((0, 0)), factors
        chunk = 2048  # bounds the memory of rendered observations
        parts = [
            self.encode_observations(self.dataset.render(factors[i : i + chunk]))
            for i in range(0, n, chunk)
        ]
        return np.concatenate(parts, axis=0), factors

    def encode_observations(self, obs: np.ndarray) -> np.ndarray:
        """Encode in batches and check the codes: finite, 2-D, one row per observation."""
        if self.encode is None:
            raise MetricError("no encoder to encode observations with")
        parts = [
            np.asarray(self.encode(obs[i : i + self.encode_batch]))
            for i in range(0, len(obs), self.encode_batch)
        ]
        codes = np.concatenate(parts, axis=0)
        if codes.ndim != 2 or codes.shape[0] != len(obs):
            raise MetricError(
                f"encode returned shape {codes.shape} for {len(obs)} observations; expected [n, D]"
            )
        if not np.isfinite(codes).all():
            raise MetricError("encode returned NaN or infinite codes")
        return codes.astype(np.float64)

    def points(self, split: str, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(codes [n, D], factors [n, K]) of the shared sample; the first ``n`` rows."""
        data = self._train if split == "train" else self._test
        if data is None:
            raise MetricError(f"evaluation points for {split!r} were not prepared")
        codes, factors = data
        if n is not None:
            if n > len(codes):
                raise MetricError(
                    f"asked for {n} {split} points but only {len(codes)} are available"
                )
            codes, factors = codes[:n], factors[:n]
        return codes, factors
