"""IRMAE: with no linear layers it is the reference autoencoder; its linear layers are
bias-free and square; it learns (the loss falls), its codes come after the linear layers,
ICA is an option, and a saved model reloads to the same codes."""

from __future__ import annotations

import pickle

import numpy as np
import torch

from disbench.api import FitContext, TrainBudget
from disbench.datasets.blobs import Blobs
from disbench.methods.irmae import IRMAE, IRMAEModel
from disbench.methods.nn.architectures import init_like_tf
from disbench.methods.nn.vae import AutoEncoder


def test_with_no_linear_layers_it_is_the_reference_autoencoder() -> None:
    plain = init_like_tf(AutoEncoder(1, 10), torch.Generator().manual_seed(3))
    irmae = init_like_tf(IRMAEModel(1, 10, 0), torch.Generator().manual_seed(3))
    a, b = plain.state_dict(), irmae.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.rand(4, 1, 64, 64)
    assert torch.equal(plain.decoder(plain.encoder(x)[0]), irmae(x))


def test_the_linear_layers_are_bias_free_and_square() -> None:
    model = IRMAEModel(3, 10, 8)
    assert len(model.linear) == 8
    assert all(layer.bias is None and layer.weight.shape == (10, 10) for layer in model.linear)


def test_it_learns_and_its_codes_come_after_the_linear_layers() -> None:
    dataset, ctx = Blobs(positions=8, sizes=2), FitContext()
    hp = IRMAE.resolve_hparams({"lr": 1e-3, "num_linear": 4})
    rep = IRMAE().fit(dataset, hp, 0, TrainBudget(150, 16), ctx)
    losses = [p["loss"] for p in ctx.info["loss_curve"]]
    assert losses[-1] < 0.5 * losses[0]
    _, x = dataset.sample(20, np.random.default_rng(1))
    with torch.no_grad():
        after = rep.model.linear(rep.model.encoder(torch.from_numpy(x))[0]).numpy()
    assert np.allclose(rep.encode(x), after, atol=1e-6)
    again = pickle.loads(pickle.dumps(rep))
    assert np.array_equal(again.encode(x), rep.encode(x))


def test_ica_on_its_codes_is_an_option() -> None:
    dataset, ctx = Blobs(positions=8, sizes=2), FitContext()
    hp = IRMAE.resolve_hparams({"lr": 1e-3, "num_latents": 3, "ica": True})
    rep = IRMAE().fit(dataset, hp, 0, TrainBudget(60, 16), ctx)
    _, x = dataset.sample(500, np.random.default_rng(2))
    codes = rep.encode(x)
    assert codes.shape == (500, 3) and "ica_converged" in ctx.info
    assert np.allclose(np.corrcoef(codes.T), np.eye(3), atol=0.15)  # ICA whitens
    assert rep.decode(codes[:4]).shape == (4, 1, 64, 64)
