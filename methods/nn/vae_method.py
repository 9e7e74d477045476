"""The base class of every Locatello et al. 2019 VAE variant (and the plain AE).

A variant supplies only ``regularizer(terms, hp, step)`` and its ``Params`` (a subclass of
:class:`VAEParams`, the settings every variant shares); ``fit`` trains one model
(:func:`disbench.methods.nn.vae.train`), ``fit_many`` packed groups
(:mod:`disbench.methods.nn.batched`), both through the one training loop
(:mod:`disbench.methods.nn.loop`). They see the variant through ``vae.Variant``, so
neither imports this module.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs
import torch

from disbench.api import (
    FitContext,
    GroundTruthDataset,
    Method,
    Representation,
    TrainBudget,
    param,
)
from disbench.methods.nn import batched, vae
from disbench.methods.nn.architectures import check_reference_shape
from disbench.methods.nn.loop import check_budget
from disbench.methods.nn.vae import PRECISIONS, LatentTerms


@attrs.frozen(kw_only=True)
class VAEParams:
    """What every variant shares: dlib's unsupervised_study_v1 shared.gin (Adam 1e-4,
    10 latents), and the precision of the forward pass."""

    num_latents: int = param(10, int, ge=1)
    lr: float = param(1e-4, gt=0)
    adam_beta1: float = param(0.9, ge=0, lt=1)
    adam_beta2: float = param(0.999, ge=0, lt=1)
    adam_eps: float = param(1e-8, gt=0)
    precision: str = param("fp32", str, choices=PRECISIONS)


class VAEMethod(Method):
    """Base of the Locatello et al. 2019 baselines; subclasses define ``regularizer``."""

    Params: ClassVar[type] = VAEParams  # a variant with its own options subclasses it
    framework: ClassVar[str] = "torch"
    batchable: ClassVar[bool] = True  # fit_many trains a group as one packed model
    checkpoints: ClassVar[bool] = True  # fit and fit_many resume from ctx.checkpoint
    stochastic: ClassVar[bool] = True  # False: decode the mean, no sampling (plain AE)
    uses_discriminator: ClassVar[bool] = False
    # Hyperparameters every model of a batched group must share (one network shape, one
    # Adam per packed tensor); the others may differ per model (regulariser weights).
    shared_hparams: ClassVar[tuple[str, ...]] = (
        "num_latents",
        "lr",
        "adam_beta1",
        "adam_beta2",
        "adam_eps",
        "precision",
    )

    @staticmethod
    @abstractmethod
    def regularizer(terms: LatentTerms, hp: Mapping[str, Any], step: int) -> torch.Tensor:
        """The variant's term added to the reconstruction loss (dlib's ``regularizer``)."""

    def prepare(
        self,
        dataset: GroundTruthDataset,
        hparams: Mapping[str, Any],
        budget: TrainBudget,
        ctx: FitContext,
    ) -> dict[str, Any]:
        """Check a run's options (``Params``, the budget, the dataset) and return the
        hyperparameters it trains with: a dict, since the batched trainer passes the
        regulariser per-model values as tensors.

        Variants whose defaults depend on the budget resolve them here (and note them in
        ``ctx.info``), so ``fit`` and ``fit_many`` train with the same values.
        """
        self.typed(dict(hparams))
        check_budget(self.name, budget)
        check_reference_shape(self.name, dataset)
        return dict(hparams)

    def fit(
        self,
        dataset: GroundTruthDataset,
        hparams: dict[str, Any],
        seed: int,
        budget: TrainBudget,
        ctx: FitContext,
    ) -> Representation:
        return vae.train(
            self, dataset, self.prepare(dataset, hparams, budget, ctx), seed, budget, ctx
        )

    def fit_many(
        self,
        dataset: GroundTruthDataset,
        jobs: Sequence[tuple[dict[str, Any], int, FitContext]],
        budget: TrainBudget,
    ) -> list[Representation | Exception]:
        """Train the jobs as packed groups of models (``methods.nn.batched``).

        Each result equals what ``fit`` gives for the same job, within floating-point
        tolerance; jobs that differ in a ``shared_hparams`` value train in separate groups.
        A model that diverges gets a ``FloatingPointError`` in its slot; the others of its
        group are unaffected (their weights and losses never mix with it).
        """
        prepared = [(self.prepare(dataset, hp, budget, ctx), seed, ctx) for hp, seed, ctx in jobs]
        return list(batched.fit_many(self, dataset, prepared, budget))

    @classmethod
    def auto_group_size(cls, device: str) -> int:
        """Models per batched group that fit in half the free memory of the CUDA ``device``."""
        return batched.auto_group_size(cls, torch.device(device))
