"""The one PyTorch training loop: every trained built-in's ``fit`` ends in :func:`run`.

A method builds its networks and optimisers, writes a ``step(i) -> loss terms`` function
(one update at step ``i``; the terms detached, scalars for one model or ``[N]`` for a
packed group of N), names everything the rest of the run depends on (``state``), and
hands them to :func:`run`. The loop owns the rest:

- **resume**: a saved state (``ctx.checkpoint``) is loaded into ``state`` and the loop
  continues from its step; the resumed run ends bit-identical to an uninterrupted one;
- **checkpoints**: saved when due, at the start of a step that is a multiple of
  ``save_every`` (a run drawing its factors ``DRAW_STEPS`` steps at a time can resume its
  data stream exactly only there);
- **progress**, the **loss curve** (:class:`LossCurve`, what the leaderboard's LF mark reads)
  and **finishing**: final losses, curve and timings into each run's ``ctx.info``, and a
  run whose final losses are not finite is a ``FloatingPointError`` naming its seed.

A run in several phases (train codes, then an encoder) calls :func:`run` once per phase
with its ``steps`` range and one checkpoint: a phase the saved state has passed only
restores its objects.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from disbench.api import FitContext, GroundTruthDataset, TrainBudget

CURVE_POINTS = 20  # loss-curve points recorded in the run record
DRAW_STEPS = 64  # training steps of factors drawn per call on a run's data stream


class Stateful(Protocol):
    """What the loop saves and restores: modules, optimisers, streams, curves all are."""

    def state_dict(self) -> Any: ...

    def load_state_dict(self, state: Any) -> Any: ...


class Streams:
    """A run's random streams, all derived from its seed; nothing global.

    ``init`` draws the initial weights (CPU), ``data`` the training factors, ``noise`` the
    reparameterisation noise and any permutation (on the device).
    """

    def __init__(self, seed: int, device: torch.device) -> None:
        init_seed, data_seed, noise_seed = np.random.SeedSequence(seed).generate_state(3)
        self.init = torch.Generator().manual_seed(int(init_seed))
        self.data = np.random.default_rng(int(data_seed))
        self.noise = torch.Generator(device=device).manual_seed(int(noise_seed))

    def state_dict(self) -> dict[str, Any]:
        return {
            "init": self.init.get_state(),
            "data": self.data.bit_generator.state,
            "noise": self.noise.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.init.set_state(state["init"])
        self.data.bit_generator.state = state["data"]
        self.noise.set_state(state["noise"])


class Tensors:
    """Plain tensors a run trains or keeps (free codes, a target), as one stateful object."""

    def __init__(self, **tensors: torch.Tensor) -> None:
        self.tensors = tensors

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.tensors.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for k, v in self.tensors.items():
                v.copy_(state[k])


class Generators:
    """A run's own numpy or torch generators, as one stateful object: for a method whose
    streams are seeded its own way rather than by :class:`Streams` (its results stay)."""

    def __init__(self, **generators: np.random.Generator | torch.Generator) -> None:
        self.generators = generators

    def state_dict(self) -> dict[str, Any]:
        return {
            k: g.bit_generator.state if isinstance(g, np.random.Generator) else g.get_state()
            for k, g in self.generators.items()
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, g in self.generators.items():
            if isinstance(g, np.random.Generator):
                g.bit_generator.state = state[k]
            else:
                g.set_state(state[k])


class LossCurve:
    """``CURVE_POINTS``-point loss curves of one model or of a packed group of models.

    Loss terms (scalars, or [N] for N packed models) are summed on the device between
    points, so training never waits for the device except at a point. ``end`` closes a
    last point early (a phase that stops before the run does); ``start`` is the first step
    of a phase that opens its curve off a point boundary (its first point averages fewer).
    """

    def __init__(self, steps: int, end: int | None = None, start: int = 0) -> None:
        self.steps = steps
        self.end = steps if end is None else end
        self.start = start
        self.chunk = max(1, math.ceil(steps / CURVE_POINTS))
        self.curves: list[list[dict[str, float]]] = []  # one curve per model
        self._acc: torch.Tensor | None = None

    def add(self, step: int, terms: Mapping[str, torch.Tensor]) -> bool:
        """Add step ``step``'s terms; True when it closed a curve point."""
        values = torch.stack(list(terms.values()), -1)  # [T] or [N, T]
        self._acc = values if self._acc is None else self._acc + values
        if (step + 1) % self.chunk and step + 1 != self.end:
            return False
        averaged = step + 1 - max(self.start, step - step % self.chunk)  # steps in this point
        means = (self._acc / averaged).reshape(-1, len(terms)).tolist()
        self.curves = self.curves or [[] for _ in means]
        for curve, row in zip(self.curves, means, strict=True):
            curve.append({"step": step + 1, **dict(zip(terms, row, strict=True))})
        self._acc = None
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"curves": self.curves, "acc": self._acc}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.curves, self._acc = state["curves"], state["acc"]


def factor_batches(
    dataset: GroundTruthDataset, rng: np.random.Generator, batch: int
) -> Iterator[np.ndarray]:
    """A run's training factors, int64 [batch, K] per step, drawn DRAW_STEPS steps per call.

    One draw per DRAW_STEPS steps rather than per step: a batched group draws for
    hundreds of models every step, and each numpy call has a fixed cost.
    """
    while True:
        yield from dataset.sample_factors(DRAW_STEPS * batch, rng).reshape(DRAW_STEPS, batch, -1)


def to_device(factors: np.ndarray, device: torch.device) -> torch.Tensor:
    """Factors on ``device``; on CUDA through pinned memory without blocking, so drawing
    the next batch overlaps the device's work on this one."""
    tensor = torch.from_numpy(factors)
    if device.type != "cuda":
        return tensor
    return tensor.pin_memory().to(device, non_blocking=True)


def memory_format(device: torch.device) -> torch.memory_format:
    """The conv layout of a single model's training: channels-last on the CPU, oneDNN's own
    layout (NCHW pays a reorder copy around every convolution; perf/train_throughput.txt
    measures it); torch's default on GPUs, where the single-model loop has not been
    measured in channels-last."""
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format


def check_budget(name: str, budget: TrainBudget, min_batch: int = 2) -> None:
    """A run needs a step and a batch of ``min_batch`` (statistics over the batch, pairs);
    otherwise a one-line error naming the method."""
    if budget.steps < 1 or budget.batch_size < min_batch:
        raise ValueError(
            f"method {name!r}: need steps >= 1 and batch_size >= {min_batch}, got {budget}"
        )


@dataclass
class Finished:
    """What :func:`run` leaves besides ``ctx.info``: per model, whether it diverged."""

    diverged: list[FloatingPointError | None]
    seconds: float


def run(
    name: str,
    contexts: Sequence[FitContext],
    seeds: Sequence[int],
    steps: int | range,
    step: Callable[[int], Mapping[str, torch.Tensor]],
    state: Mapping[str, Stateful | Sequence[Stateful]],
    curve: LossCurve,
    *,
    total: int | None = None,
    save_every: int = DRAW_STEPS,
    key: Any = None,
    precision: str = "fp32",
    record: bool = True,
    curve_name: str = "curve",
) -> Finished:
    """Run ``step`` over ``steps`` for the runs of ``contexts`` (one, or a packed group
    with one seed each) and finish them.

    ``state`` names everything the rest of the run depends on; ``curve`` joins it. The
    group's state lives in the first run's checkpoint, valid only for the same ``key``
    (a packed group's members). ``total`` is the run's whole length (progress, timings;
    the end of ``steps`` by default). With ``record`` the curve, final losses and timings
    go into each ``ctx.info``; a single run that diverged raises, a packed group gets one
    slot per model in the result. ``curve_name`` is the curve's name in the checkpoint: a
    phase with a curve of its own names it apart, so a later phase's state keeps both.
    """
    span = range(steps) if isinstance(steps, int) else steps
    total = span.stop if total is None else total
    device = torch.device(contexts[0].device)
    held = {**state, curve_name: curve}
    checkpoint = contexts[0].checkpoint
    saved = checkpoint.load() if checkpoint else None
    first = span.start
    if saved is not None and saved.get("key") == repr(key) and saved["step"] > span.start:
        for field, obj in held.items():
            if field in saved["state"]:
                _load(obj, saved["state"][field])
        first = int(saved["step"])
    start = time.perf_counter()
    for i in range(first, span.stop):
        if checkpoint and i > first and i % save_every == 0 and checkpoint.due():
            checkpoint.save(
                {"step": i, "key": repr(key), "state": {f: _dump(o) for f, o in held.items()}}
            )
        if curve.add(i, step(i)):
            for ctx in contexts:
                ctx.progress(i + 1, total)
    seconds = time.perf_counter() - start
    diverged: list[FloatingPointError | None] = [None] * len(contexts)
    if record and curve.curves:
        for j, (ctx, seed, points) in enumerate(zip(contexts, seeds, curve.curves, strict=True)):
            _record(ctx, points, seconds, total, device, precision)
            final = ctx.info["final_losses"]
            if not all(math.isfinite(v) for v in final.values()):
                diverged[j] = FloatingPointError(
                    f"method {name!r}: non-finite loss terms (seed, terms): {[(seed, final)]}"
                )
        if len(contexts) == 1 and diverged[0] is not None:
            raise diverged[0]
    return Finished(diverged, seconds)


def _dump(obj: Stateful | Sequence[Stateful]) -> Any:
    if isinstance(obj, list | tuple):
        return [o.state_dict() for o in obj]
    return obj.state_dict()


def _load(obj: Stateful | Sequence[Stateful], state: Any) -> None:
    if isinstance(obj, list | tuple):
        for o, s in zip(obj, state, strict=True):
            o.load_state_dict(s)
    else:
        obj.load_state_dict(state)


def _record(
    ctx: FitContext,
    curve: list[dict[str, float]],
    seconds: float,
    steps: int,
    device: torch.device,
    precision: str,
) -> None:
    """The final losses (last curve point), the curve and the timings into ``ctx.info``."""
    ctx.info.update(
        {
            "final_losses": {k: v for k, v in curve[-1].items() if k != "step"},
            "loss_curve": curve,
            "train_seconds": seconds,
            "steps_per_second": steps / seconds if seconds > 0 else math.inf,
            "device": str(device),
            "precision": precision,
        }
    )
    if device.type == "cuda":
        ctx.info["deterministic_algorithms"] = torch.are_deterministic_algorithms_enabled()
        ctx.info["cudnn_deterministic"] = bool(torch.backends.cudnn.deterministic)
