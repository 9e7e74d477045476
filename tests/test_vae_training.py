"""The shared VAE training loop: it learns, beta does what it should, runs are reproducible.

Training runs are short (tens to a couple of hundred steps at small batches). Torch is
held to one thread here: on a shared 2-core machine, two OpenMP threads per process make
small convolutions many times slower, and one thread gives the same results.
"""

from __future__ import annotations

import copy
from typing import ClassVar

import numpy as np
import pytest
import torch

from disbench.api import FitContext, GroundTruthDataset, Kind, Representation, TrainBudget
from disbench.datasets.blobs import Blobs
from disbench.methods.factor_vae import FactorVAE
from disbench.methods.nn import losses
from disbench.methods.nn.loop import Streams
from disbench.methods.nn.vae import VAERepresentation, build, train_step
from disbench.methods.nn.vae_method import VAEMethod
from disbench.registry import DATASETS, METHODS

VAE_METHODS = [
    "ae",
    "beta_vae",
    "annealed_vae",
    "factor_vae",
    "dip_vae_i",
    "dip_vae_ii",
    "beta_tc_vae",
]
CPU = torch.device("cpu")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class ColourSquares(GroundTruthDataset):
    """A 3-channel test dataset: a square of one of 3 colours at one of 4 x positions."""

    kind: ClassVar[Kind] = "procedural"

    def __init__(self) -> None:
        self.name = "colour_squares"
        self.factor_names = ("colour", "posX")
        self.factor_sizes = (3, 4)
        self.observation_shape = (3, 64, 64)

    def render(self, factors: np.ndarray) -> np.ndarray:
        out = np.zeros((len(factors), 3, 64, 64), dtype=np.float32)
        for k, (colour, pos) in enumerate(np.asarray(factors)):
            out[k, colour, 24:40, 8 + 12 * pos : 24 + 12 * pos] = 1.0
        return out


def fit(name: str, dataset: GroundTruthDataset, steps: int, batch: int, seed: int = 0, **hp):
    method = METHODS.get(name)()
    ctx = FitContext(device="cpu")
    rep = method.fit(dataset, method.resolve_hparams(hp), seed, TrainBudget(steps, batch), ctx)
    return rep, ctx


def weights(rep: Representation) -> dict[str, torch.Tensor]:
    assert isinstance(rep, VAERepresentation)
    return rep.model.state_dict()


def test_all_seven_are_registered_with_their_published_grids() -> None:
    grids = {
        "beta_vae": ("beta", [1, 2, 4, 6, 8, 16]),
        "annealed_vae": ("c_max", [5, 10, 25, 50, 75, 100]),
        "factor_vae": ("gamma", [10, 20, 30, 40, 50, 100]),
        "dip_vae_i": ("lambda_od", [1, 2, 5, 10, 20, 50]),
        "dip_vae_ii": ("lambda_od", [1, 2, 5, 10, 20, 50]),
        "beta_tc_vae": ("beta", [1, 2, 4, 6, 8, 10]),
    }
    for name in VAE_METHODS:
        cls = METHODS.get(name)
        assert issubclass(cls, VAEMethod) and cls.framework == "torch"
        assert cls.defaults["num_latents"] == 10 and cls.defaults["lr"] == 1e-4
        if name in grids:
            key, values = grids[name]
            assert cls.sweep == {key: values}
    assert METHODS.get("annealed_vae").defaults["gamma"] == 1000
    assert METHODS.get("dip_vae_i").defaults["lambda_d_factor"] == 10
    assert METHODS.get("dip_vae_ii").defaults["lambda_d_factor"] == 1
    fv = METHODS.get("factor_vae").defaults
    assert (fv["disc_lr"], fv["disc_adam_beta1"], fv["disc_adam_beta2"]) == (1e-4, 0.5, 0.9)


@pytest.mark.parametrize("name", VAE_METHODS)
def test_every_method_trains_on_three_channels_and_encodes(name: str) -> None:
    ds = ColourSquares()
    progress: list[tuple[int, int]] = []
    method = METHODS.get(name)()
    ctx = FitContext(device="cpu", progress=lambda s, n: progress.append((s, n)))
    rep = method.fit(ds, method.resolve_hparams({}), 0, TrainBudget(4, 8), ctx)
    _, x = ds.sample(5, np.random.default_rng(0))
    codes = rep.encode(x)
    assert codes.shape == (5, 10) and np.isfinite(codes).all()
    images = rep.decode(codes)
    assert images.shape == (5, 3, 64, 64) and images.min() >= 0 and images.max() <= 1
    assert progress[-1] == (4, 4)
    final = ctx.info["final_losses"]
    assert final["loss"] == pytest.approx(final["reconstruction"] + final["regularizer"], rel=1e-5)
    assert ("kl" in final) == (name != "ae")
    assert ("discriminator_loss" in final) == (name == "factor_vae")


@pytest.fixture(scope="module")
def beta_runs() -> dict[float, tuple[Representation, FitContext]]:
    """beta-VAE with beta 1 and 16, 150 steps of batch 32 on procedural dSprites."""
    ds = DATASETS.get("proc_dsprites")()
    return {beta: fit("beta_vae", ds, 150, 32, seed=0, beta=beta) for beta in (1.0, 16.0)}


def test_150_steps_lower_the_loss_on_procedural_dsprites(beta_runs) -> None:
    for _, ctx in beta_runs.values():
        curve = ctx.info["loss_curve"]
        assert 10 <= len(curve) <= 20 and curve[-1]["step"] == 150
        first, last = curve[0], curve[-1]
        assert last["loss"] < 0.7 * first["loss"]
        assert last["reconstruction"] < 0.7 * first["reconstruction"]


def test_increasing_beta_lowers_the_kl_of_the_trained_model(beta_runs) -> None:
    ds = DATASETS.get("proc_dsprites")()
    _, x = ds.sample(500, np.random.default_rng(7))
    kl = {}
    for beta, (rep, ctx) in beta_runs.items():
        with torch.no_grad():
            mean, logvar = rep.model.encoder(torch.from_numpy(x))
        kl[beta] = losses.gaussian_kl(mean, logvar).item()  # on fresh data, not the train log
        assert ctx.info["final_losses"]["kl"] == pytest.approx(kl[beta], rel=0.5)
    assert kl[16.0] < 0.5 * kl[1.0]


@pytest.mark.parametrize("name", ["beta_tc_vae", "factor_vae"])
def test_same_seed_gives_bit_identical_weights(name: str) -> None:
    ds = Blobs()
    a, ctx_a = fit(name, ds, 3, 8, seed=11)
    b, ctx_b = fit(name, ds, 3, 8, seed=11)
    c, _ = fit(name, ds, 3, 8, seed=12)
    wa, wb, wc = weights(a), weights(b), weights(c)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)
    assert ctx_a.info["final_losses"] == ctx_b.info["final_losses"]


def test_factor_vae_step_routes_each_loss_to_its_own_network() -> None:
    """One step equals the dlib update computed by hand: the VAE loss (with gamma TC) moves
    only the encoder/decoder, the discriminator loss on permuted codes only the discriminator,
    both from the same forward pass."""
    method = FactorVAE()
    hp = method.resolve_hparams({"gamma": 30.0})
    nets = build(method, 1, hp, Streams(0, CPU).init, CPU)
    ref = copy.deepcopy(nets)
    ds = Blobs()
    x = ds.render_torch(torch.from_numpy(ds.sample_factors(16, np.random.default_rng(0))), CPU)
    train_step(method, nets, x, hp, 0, torch.Generator().manual_seed(5))

    gen = torch.Generator().manual_seed(5)
    mean, logvar = ref.model.encoder(x)
    z = mean + torch.exp(logvar / 2) * torch.randn(mean.shape, generator=gen)
    recon = losses.bernoulli_reconstruction(x, ref.model.decoder(z))
    logits = ref.disc(z)
    vae_loss = (
        recon + losses.gaussian_kl(mean, logvar) + 30.0 * (logits[:, 0] - logits[:, 1]).mean()
    )
    d_loss = losses.discriminator_loss(
        ref.disc(z.detach()), ref.disc(losses.permute_dims(z.detach(), gen))
    )
    vae_params, disc_params = list(ref.model.parameters()), list(ref.disc.parameters())
    for p, g in zip(vae_params, torch.autograd.grad(vae_loss, vae_params), strict=True):
        p.grad = g
    for p, g in zip(disc_params, torch.autograd.grad(d_loss, disc_params), strict=True):
        p.grad = g
    ref.opt.step()
    ref.disc_opt.step()

    for got, want in [(nets.model, ref.model), (nets.disc, ref.disc)]:
        for (name, p), q in zip(got.named_parameters(), want.parameters(), strict=True):
            assert torch.allclose(p, q, atol=1e-7), name
    start = build(method, 1, hp, Streams(0, CPU).init, CPU)
    assert not torch.equal(next(start.disc.parameters()), next(nets.disc.parameters()))


def test_save_load_and_chunked_encoding(tmp_path) -> None:
    ds = Blobs()
    rep, _ = fit("beta_vae", ds, 3, 8)
    _, x = ds.sample(1100, np.random.default_rng(0))  # more than one encoding chunk
    codes = rep.encode(x)
    assert np.array_equal(codes[1000:], rep.encode(x[1000:]))
    rep.save(tmp_path / "rep.pkl")
    loaded = Representation.load(tmp_path / "rep.pkl")
    assert isinstance(loaded, VAERepresentation)
    assert np.array_equal(loaded.encode(x), codes)
    assert np.array_equal(loaded.decode(codes[:4]), rep.decode(codes[:4]))
    assert loaded.config["method"] == "beta_vae" and loaded.config["hparams"]["beta"] == 4.0
    assert rep.encode(x[:0]).shape == (0, 10)


def test_annealed_vae_threshold_defaults_to_a_third_of_the_steps() -> None:
    _, ctx = fit("annealed_vae", Blobs(), 9, 4)
    assert ctx.info["iteration_threshold"] == 3
    _, ctx = fit("annealed_vae", Blobs(), 2, 4, iteration_threshold=100000)
    assert ctx.info["iteration_threshold"] == 100000


def test_bad_options_are_one_line_errors_naming_the_culprit() -> None:
    with pytest.raises(
        ValueError, match="method 'beta_vae': hyperparameter precision must be one of"
    ):
        fit("beta_vae", Blobs(), 2, 4, precision="fp16")
    with pytest.raises(ValueError, match="method 'dip_vae_i': the reference networks need 64x64"):
        fit("dip_vae_i", Blobs(resolution=32), 2, 4)
    with pytest.raises(
        ValueError, match="method 'annealed_vae': hyperparameter iteration_threshold must be >= 1"
    ):
        fit("annealed_vae", Blobs(), 2, 4, iteration_threshold=0)
    with pytest.raises(
        ValueError, match="method 'factor_vae': need steps >= 1 and batch_size >= 2"
    ):
        fit("factor_vae", Blobs(), 2, 1)
    with pytest.raises(ValueError, match="method 'ae': unknown hyperparameter"):
        METHODS.get("ae").resolve_hparams({"beta": 2.0})
    rep, _ = fit("ae", Blobs(), 1, 4)
    with pytest.raises(ValueError, match="ae: encode expects observations"):
        rep.encode(np.zeros((2, 3, 64, 64), dtype=np.float32))


BAD = "method '{}': hyperparameter {}"


@pytest.mark.parametrize(
    ("name", "given", "message"),
    [
        ("beta_vae", {"beta": -1.0}, BAD.format("beta_vae", "beta must be >= 0, got -1.0")),
        ("ae", {"num_latents": 2.5}, BAD.format("ae", "num_latents must be an integer, got 2.5")),
        (
            "factor_vae",
            {"disc_adam_beta1": 1.0},
            BAD.format("factor_vae", "disc_adam_beta1 must be < 1, got 1.0"),
        ),
        ("dip_vae_ii", {"lr": 0}, BAD.format("dip_vae_ii", "lr must be > 0, got 0")),
        ("irmae", {"num_linear": -1}, BAD.format("irmae", "num_linear must be >= 0, got -1")),
        ("li_ae", {"pool_size": 0}, BAD.format("li_ae", "pool_size must be >= 1, got 0")),
        (
            "protovae",
            {"shift_min": 2.0},
            BAD.format("protovae", "shift_min 2.0 must be <= shift_max 1.5"),
        ),
        (
            "dot_vae",
            {"code": "z2"},
            BAD.format("dot_vae", "code must be one of ['z1', 'z1_z2'], got 'z2'"),
        ),
    ],
)
def test_a_bad_hyperparameter_is_one_line_naming_the_method_and_option(
    name, given, message
) -> None:
    """Checked by the typed ``Params`` when the profile is read and again by ``fit``, before
    any network is built (a one-step budget: nothing trains)."""
    cls = METHODS.get(name)
    with pytest.raises(ValueError) as caught:
        cls.resolve_hparams(given)
    assert str(caught.value) == message
    with pytest.raises(ValueError) as caught:
        cls().fit(Blobs(), {**cls.defaults, **given}, 0, TrainBudget(1, 4), FitContext())
    assert str(caught.value) == message


def test_bf16_autocast_trains_and_records_its_precision() -> None:
    rep, ctx = fit("beta_vae", Blobs(), 3, 8, precision="bf16")
    assert ctx.info["precision"] == "bf16"
    assert np.isfinite(rep.encode(Blobs().sample(4, np.random.default_rng(0))[1])).all()
