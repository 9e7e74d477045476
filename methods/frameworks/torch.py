"""PyTorch's side of a run (:class:`disbench.methods.frameworks.Framework`)."""

from __future__ import annotations

import torch


def set_threads(threads: int) -> None:
    torch.set_num_threads(threads)


def seed(seed: int) -> None:
    torch.manual_seed(seed)


def deterministic(on: bool) -> None:
    """Warn, not raise, where an op has no deterministic kernel: the run goes on, and the
    fingerprint records the setting."""
    torch.use_deterministic_algorithms(on, warn_only=True)


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError)


def free_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def has_gpu() -> bool:
    return torch.cuda.is_available()
