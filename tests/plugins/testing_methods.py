"""Methods for the harness tests, loaded with ``--plugin testing_methods``.

``always_fails`` raises, ``nan_codes`` encodes to NaN, ``sleepy_pca`` is PCA that
sleeps first so a test can kill a study in the middle of a run, ``kills_its_worker`` ends
its process during fit (only ever run it in a worker: in-process it ends the tests),
``nan_while_marked`` is PCA whose codes are NaN while the file ``marker`` exists, and
``killed_while_marked`` is PCA whose process is SIGKILLed (as by the out-of-memory killer)
while the file ``marker`` exists. The rest break one rule of the plugin contract each.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any, ClassVar

import attrs
import numpy as np
import torch

from disbench.api import Representation, param, register
from disbench.methods._linear import PixelParams
from disbench.methods.pca import PCAMethod


@attrs.frozen(kw_only=True)
class SleepParams(PixelParams):
    sleep_s: float = param(0.5, ge=0)


@attrs.frozen(kw_only=True)
class MarkerParams(PixelParams):
    marker: str = param("", str)


@attrs.frozen(kw_only=True)
class LogParams(PixelParams):
    log: str = param("", str)
    sleep_s: float = param(0.5, ge=0)


@register
class AlwaysFails(PCAMethod):
    name: ClassVar[str] = "always_fails"
    description: ClassVar[str] = "test method that raises during fit"

    def fit(self, *args: Any, **kwargs: Any) -> Representation:
        raise RuntimeError("deliberate failure for the test")


class NaNRepresentation(Representation):
    def encode(self, x: np.ndarray) -> np.ndarray:
        return np.full((len(x), 3), np.nan)


@register
class NaNCodes(PCAMethod):
    name: ClassVar[str] = "nan_codes"
    description: ClassVar[str] = "test method whose codes are NaN"

    def fit(self, *args: Any, **kwargs: Any) -> Representation:
        return NaNRepresentation()


@register
class SleepyPCA(PCAMethod):
    name: ClassVar[str] = "sleepy_pca"
    description: ClassVar[str] = "PCA that sleeps first (for the kill-and-resume test)"
    Params = SleepParams

    def fit(self, dataset, hparams, seed, budget, ctx):  # type: ignore[no-untyped-def]
        time.sleep(hparams["sleep_s"])
        inner = {k: v for k, v in hparams.items() if k != "sleep_s"}
        return super().fit(dataset, inner, seed, budget, ctx)


@register
class KillsItsWorker(PCAMethod):
    name: ClassVar[str] = "kills_its_worker"
    description: ClassVar[str] = "test method whose process dies during fit (a crashed worker)"

    def fit(self, *args: Any, **kwargs: Any) -> Representation:
        os._exit(3)


@register
class NaNWhileMarked(PCAMethod):
    name: ClassVar[str] = "nan_while_marked"
    description: ClassVar[str] = "PCA whose codes are NaN while the file `marker` exists"
    Params = MarkerParams

    def fit(self, dataset, hparams, seed, budget, ctx):  # type: ignore[no-untyped-def]
        if Path(hparams["marker"]).exists():
            return NaNRepresentation()
        inner = {k: v for k, v in hparams.items() if k != "marker"}
        return super().fit(dataset, inner, seed, budget, ctx)


@register
class KilledWhileMarked(PCAMethod):
    name: ClassVar[str] = "killed_while_marked"
    description: ClassVar[str] = "PCA whose process is SIGKILLed while the file `marker` exists"
    Params = MarkerParams

    def fit(self, dataset, hparams, seed, budget, ctx):  # type: ignore[no-untyped-def]
        if Path(hparams["marker"]).exists():
            os.kill(os.getpid(), signal.SIGKILL)
        inner = {k: v for k, v in hparams.items() if k != "marker"}
        return super().fit(dataset, inner, seed, budget, ctx)


class _Codes(Representation):
    """Encodes with a given function of the observations (for the contract tests)."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def encode(self, x: np.ndarray) -> Any:
        return self.fn(x)


def _codes_method(name: str, fn: Any, what: str) -> type:
    """A PCA-based test method whose fit returns codes made by ``fn`` (a contract breach)."""

    def fit(self: Any, *args: Any, **kwargs: Any) -> Representation:
        return _Codes(fn)

    cls = type(name, (PCAMethod,), {"name": name, "description": what, "fit": fit})
    return register(cls)


_codes_method("returns_one_row", lambda x: np.zeros((1, 3)), "encode returns one row")
_codes_method("complex_codes", lambda x: np.zeros((len(x), 3), complex), "complex codes")
_codes_method("tensor_codes", lambda x: [[0.0] * 3] * len(x), "encode returns a list")


@register
class ReturnsDict(PCAMethod):
    name: ClassVar[str] = "returns_dict"
    description: ClassVar[str] = "test method whose fit returns a dict"

    def fit(self, *args: Any, **kwargs: Any) -> Any:
        return {"codes": None}


@register
class Unseeded(PCAMethod):
    name: ClassVar[str] = "unseeded"
    description: ClassVar[str] = "test method that ignores its seed (declares determinism)"

    def fit(self, dataset, hparams, seed, budget, ctx):  # type: ignore[no-untyped-def]
        weights = np.random.default_rng().normal(size=(int(np.prod(dataset.observation_shape)), 3))
        return _Codes(lambda x: x.reshape(len(x), -1) @ weights)


@register
class OutOfMemoryWhenGrouped(PCAMethod):
    name: ClassVar[str] = "oom_when_grouped"
    description: ClassVar[str] = "batched PCA whose groups of more than one model run out of memory"
    batchable: ClassVar[bool] = True

    def fit_many(self, dataset, jobs, budget):  # type: ignore[no-untyped-def]
        if len(jobs) > 1:
            raise torch.cuda.OutOfMemoryError("simulated: CUDA out of memory")
        return super().fit_many(dataset, jobs, budget)


@register
class LoggedPCA(PCAMethod):
    name: ClassVar[str] = "logged_pca"
    description: ClassVar[str] = "PCA that sleeps, then appends its seed to the file `log`"
    Params = LogParams

    def fit(self, dataset, hparams, seed, budget, ctx):  # type: ignore[no-untyped-def]
        time.sleep(hparams["sleep_s"])
        with open(hparams["log"], "a") as fh:
            fh.write(f"{seed}\n")
        inner = {k: v for k, v in hparams.items() if k not in ("log", "sleep_s")}
        return super().fit(dataset, inner, seed, budget, ctx)
