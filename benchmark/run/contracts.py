"""The plugin contract, checked where the harness meets a plugin.

A plugin that breaks it gets a one-line error naming the plugin, the rule and what was
expected (:class:`ContractError`); in a study that run is recorded as failed and the others
go on. ``disbench check-method NAME`` runs every check on one method, determinism included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from disbench.api import FitContext, GroundTruthDataset, Representation, TrainBudget
from disbench.methods import frameworks
from disbench.registry import DATASETS, METHODS


class ContractError(ValueError):
    """A plugin broke the contract of :mod:`disbench.api`."""


def broke(kind: str, name: str, rule: str, expected: str, got: str) -> ContractError:
    return ContractError(
        f"{kind} {name!r} broke the contract: {rule}; expected {expected}, got {got}"
    )


def check_representation(method: str, rep: Any) -> Representation:
    if not isinstance(rep, Representation):
        raise broke(
            "method",
            method,
            "fit must return a Representation",
            "an instance of a disbench.api.Representation subclass",
            f"{type(rep).__module__}.{type(rep).__qualname__}",
        )
    return rep


def checked_encoder(
    method: str, encode: Callable[[np.ndarray], Any]
) -> Callable[[np.ndarray], np.ndarray]:
    """``encode`` wrapped so that codes that break the contract raise a ContractError."""

    def checked(x: np.ndarray) -> np.ndarray:
        codes = encode(x)
        if not isinstance(codes, np.ndarray):
            raise broke(
                "method",
                method,
                "encode must return a numpy array",
                "numpy.ndarray",
                type(codes).__qualname__,
            )
        if codes.ndim != 2 or len(codes) != len(x):
            raise broke(
                "method",
                method,
                "encode must return one row of codes per observation",
                f"shape [{len(x)}, D]",
                f"shape {list(codes.shape)}",
            )
        if codes.dtype.kind not in "iuf":
            raise broke(
                "method",
                method,
                "codes must be real numbers",
                "a float or integer dtype",
                f"dtype {codes.dtype}",
            )
        bad = int(np.size(codes) - np.isfinite(codes).sum())
        if bad:
            raise broke(
                "method",
                method,
                "codes must be finite",
                "no NaN or infinite values",
                f"{bad} NaN or infinite values",
            )
        return codes

    return checked


def check_dataset(name: str, dataset: Any) -> GroundTruthDataset:
    """The attributes the harness reads, and one rendered batch's shape and dtype."""
    if not isinstance(dataset, GroundTruthDataset):
        raise broke(
            "dataset",
            name,
            "the registered class must build a GroundTruthDataset",
            "a disbench.api.GroundTruthDataset",
            type(dataset).__qualname__,
        )
    for attr in ("factor_names", "factor_sizes", "observation_shape"):
        if not hasattr(dataset, attr):
            raise broke("dataset", name, f"it must set {attr}", f"a {attr} attribute", "none")
    if len(dataset.factor_names) != len(dataset.factor_sizes):
        raise broke(
            "dataset",
            name,
            "one name per factor",
            f"{len(dataset.factor_sizes)} names",
            f"{len(dataset.factor_names)}",
        )
    obs = dataset.render(dataset.sample_factors(2, np.random.default_rng(0)))
    expected = (2, *dataset.observation_shape)
    if not isinstance(obs, np.ndarray) or obs.shape != expected or obs.dtype != np.float32:
        got = f"{type(obs).__qualname__} {getattr(obs, 'shape', '')} {getattr(obs, 'dtype', '')}"
        raise broke(
            "dataset",
            name,
            "render must return float32 observations [n, C, H, W]",
            f"float32 {list(expected)}",
            got.strip(),
        )
    return dataset


def check_method(
    name: str, dataset: str = "blobs", params: dict[str, Any] | None = None, steps: int = 20
) -> list[str]:
    """Fit ``name`` twice with one seed on a small dataset and check every rule; returns
    what was checked (raises :class:`ContractError` at the first broken rule)."""
    cls = METHODS.get(name)
    data = check_dataset(dataset, DATASETS.get(dataset)(**(params or {})))
    hparams = cls.resolve_hparams({})
    budget = TrainBudget(steps, 16)
    _, obs = data.sample(64, np.random.default_rng(1))
    for helper in frameworks.for_method(cls):
        helper.deterministic(True)  # as the harness runs the CPU
    codes = []
    for _ in range(2):
        rep = check_representation(name, cls().fit(data, hparams, 0, budget, FitContext()))
        codes.append(checked_encoder(name, rep.encode)(obs))
    done = [
        f"fit returns a {type(rep).__qualname__}",
        f"encode gives finite {codes[0].dtype} codes {list(codes[0].shape)}",
    ]
    if cls.deterministic:
        if not np.array_equal(codes[0], codes[1]):
            diff = float(np.max(np.abs(codes[0] - codes[1])))
            raise broke(
                "method",
                name,
                "it declares deterministic = True: the same seed must give the same codes",
                "identical codes from two fits with seed 0",
                f"a largest difference of {diff:.3g}",
            )
        done.append("two fits with the same seed give identical codes")
    return done
