"""The base class of every Locatello et al. 2019 VAE variant (and the plain AE).

A variant supplies only ``regularizer(terms, hp, step)`` and its defaults; ``fit`` runs the
one training loop (:mod:`disbench.methods.nn.vae`), ``fit_many`` the packed batched one
(:mod:`disbench.methods.nn.batched`). Both loops see the variant through ``vae.Variant``,
so neither imports this module.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch

from disbench.api import FitContext, GroundTruthDataset, Method, Representation, TrainBudget
from disbench.methods.nn import batched, vae
from disbench.methods.nn.architectures import check_reference_shape
from disbench.methods.nn.vae import PRECISIONS, LatentTerms


class VAEMethod(Method):
    """Base of the Locatello et al. 2019 baselines; subclasses define ``regularizer``."""

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

    def check_hparams(self, hp: Mapping[str, Any], budget: TrainBudget) -> None:
        """Raise a one-line error naming the method and the option at fault."""
        if hp["precision"] not in PRECISIONS:
            raise ValueError(
                f"method {self.name!r}: precision must be one of {PRECISIONS}, "
                f"got {hp['precision']!r}"
            )
        if int(hp["num_latents"]) < 1 or float(hp["lr"]) <= 0:
            raise ValueError(f"method {self.name!r}: need num_latents >= 1 and lr > 0")
        if budget.steps < 1 or budget.batch_size < 2:
            raise ValueError(
                f"method {self.name!r}: need steps >= 1 and batch_size >= 2, got {budget}"
            )

    def prepare(
        self,
        dataset: GroundTruthDataset,
        hparams: Mapping[str, Any],
        budget: TrainBudget,
        ctx: FitContext,
    ) -> dict[str, Any]:
        """Check a run's options and return the hyperparameters it trains with.

        Variants whose defaults depend on the budget resolve them here (and note them in
        ``ctx.info``), so ``fit`` and ``fit_many`` train with the same values.
        """
        self.check_hparams(hparams, budget)
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
