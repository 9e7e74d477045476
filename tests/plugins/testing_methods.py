"""Methods for the harness tests, loaded with ``--plugin testing_methods``.

``always_fails`` raises, ``nan_codes`` encodes to NaN, ``sleepy_pca`` is PCA that
sleeps first so a test can kill a study in the middle of a run, ``kills_its_worker`` ends
its process during fit (only ever run it in a worker: in-process it ends the tests),
``nan_while_marked`` is PCA whose codes are NaN while the file ``marker`` exists, and
``killed_while_marked`` is PCA whose process is SIGKILLed (as by the out-of-memory killer)
while the file ``marker`` exists.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from disbench.api import Representation, register
from disbench.methods.pca import PCAMethod


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
    defaults: ClassVar[dict[str, Any]] = {**PCAMethod.defaults, "sleep_s": 0.5}

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
    defaults: ClassVar[dict[str, Any]] = {**PCAMethod.defaults, "marker": ""}

    def fit(self, dataset, hparams, seed, budget, ctx):  # type: ignore[no-untyped-def]
        if Path(hparams["marker"]).exists():
            return NaNRepresentation()
        inner = {k: v for k, v in hparams.items() if k != "marker"}
        return super().fit(dataset, inner, seed, budget, ctx)


@register
class KilledWhileMarked(PCAMethod):
    name: ClassVar[str] = "killed_while_marked"
    description: ClassVar[str] = "PCA whose process is SIGKILLed while the file `marker` exists"
    defaults: ClassVar[dict[str, Any]] = {**PCAMethod.defaults, "marker": ""}

    def fit(self, dataset, hparams, seed, budget, ctx):  # type: ignore[no-untyped-def]
        if Path(hparams["marker"]).exists():
            os.kill(os.getpid(), signal.SIGKILL)
        inner = {k: v for k, v in hparams.items() if k != "marker"}
        return super().fit(dataset, inner, seed, budget, ctx)
