"""The method learns something: its training loss falls, and it encodes to [n, num_codes]."""

import numpy as np
from disbench.api import FitContext, TrainBudget
from disbench.datasets.blobs import Blobs
from disbench_torch_ae import TorchAeMethod


def test_it_learns_and_encodes() -> None:
    dataset = Blobs(positions=8, sizes=2)
    ctx = FitContext()
    hparams = TorchAeMethod.resolve_hparams({})
    rep = TorchAeMethod().fit(dataset, hparams, seed=0, budget=TrainBudget(200, 32), ctx=ctx)
    losses = [point["loss"] for point in ctx.info["loss_curve"]]
    assert losses[-1] < 0.5 * losses[0]
    _, obs = dataset.sample(50, np.random.default_rng(1))
    codes = rep.encode(obs)
    assert codes.shape == (50, hparams["num_codes"]) and np.isfinite(codes).all()
