"""The plugin API: every type a method, dataset or metric needs, and ``@register``.

Built-ins and plugins import exactly this module. It imports numpy, attrs (typed
hyperparameters) and the standard library only (no torch, no jax, nothing of the harness),
so a plugin can depend on it without pulling in the harness, and the layers stack::

    disbench.api                                  (this module)
    disbench.datasets, disbench.methods, disbench.metrics   (import the API)
    the harness: study, runner, executors, store, report, cli   (imports all of them)

A plugin package declares an entry point in the group of its kind (``disbench.methods``,
``disbench.datasets``, ``disbench.metrics``) naming the module that registers it, or is
loaded with ``disbench run --plugin MODULE``.
"""

from disbench.api._dataset import GroundTruthDataset, Kind
from disbench.api._method import (
    Checkpoint,
    ContentStyle,
    FitContext,
    Method,
    PaperResult,
    Representation,
    TrainBudget,
)
from disbench.api._metric import Encoder, EvalContext, Metric, MetricError
from disbench.api._params import param
from disbench.api._register import KINDS, RegistryError, register, registered

__all__ = [
    "KINDS",
    "Checkpoint",
    "ContentStyle",
    "Encoder",
    "EvalContext",
    "FitContext",
    "GroundTruthDataset",
    "Kind",
    "Method",
    "Metric",
    "MetricError",
    "PaperResult",
    "RegistryError",
    "Representation",
    "TrainBudget",
    "param",
    "register",
    "registered",
]
