"""DOT-VAE (OAT) as rebuilt here: an intervention changes one z1 code only; the gamma mask
switches dimensions on exactly when its rule says so, and a short run switches several on;
each step lowers its own loss and a short run lowers the wake and generator losses; the
same seed gives the same weights; a crashed run resumes bit-identically; the representation
pickles to the same codes; the paper's numbers name a registered metric and dataset."""

from __future__ import annotations

import pickle
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from disbench.api import Checkpoint, FitContext, TrainBudget
from disbench.datasets.blobs import Blobs
from disbench.methods.dot_vae import (
    DOTVAE,
    DOTVAERepresentation,
    GammaMask,
    ImageDiscriminator,
    OATModel,
    OATNets,
    activation_decision,
    beta_at,
    discriminator_step,
    intervene,
    sleep_step,
    wake_step,
)
from disbench.methods.nn.architectures import init_like_tf
from disbench.registry import DATASETS, METRICS

# A short run on blobs (3 factors) that switches several z1 dimensions on: 60 pre-training
# steps, then 140 main steps with a rule window of 8 steps.
BUDGET = TrainBudget(200, 8)
HP = {"lr": 2e-3, "disc_lr": 1e-3, "window": 8}
K, D = 4, 3


def _nets(model: OATModel | None = None, disc: ImageDiscriminator | None = None) -> OATNets:
    """Networks (new ones drawn from seed 0 unless given) with fresh Adams."""
    init = torch.Generator().manual_seed(0)
    model = init_like_tf(OATModel(1, K, D), init) if model is None else model
    disc = init_like_tf(ImageDiscriminator(1), init) if disc is None else disc
    adam = torch.optim.Adam
    return OATNets(model, adam(model.parameters(), 1e-3), disc, adam(disc.parameters(), 1e-3))


def _batch(n: int = 8) -> torch.Tensor:
    _, x = Blobs(positions=8, sizes=2).sample(n, np.random.default_rng(5))
    return torch.from_numpy(x)


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """One torch thread, as the cpu profile trains: faster on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def fitted() -> Iterator[tuple]:
    """One fit, with deterministic algorithms as the harness runs it on the CPU."""
    torch.use_deterministic_algorithms(True, warn_only=True)
    dataset, ctx = Blobs(positions=8, sizes=2), FitContext()
    hp = DOTVAE.resolve_hparams(HP)
    rep = DOTVAE().fit(dataset, hp, 0, BUDGET, ctx)
    yield dataset, hp, rep, ctx
    torch.use_deterministic_algorithms(False)


def test_an_intervention_changes_only_the_chosen_code_fed_to_the_decoder() -> None:
    nets, x = _nets(), _batch()
    mask = torch.tensor([1.0, 1.0, 1.0, 0.0] + [1.0] * D)  # 3 of K = 4 z1 dims on
    with torch.no_grad():
        codes = nets.model.encoder(x)[0] * mask
    fed: list[torch.Tensor] = []
    hook = nets.model.decoder.register_forward_pre_hook(lambda _, args: fed.append(args[0]))
    sleep_step(nets, codes, mask, 3, 1.0, torch.Generator().manual_seed(0))
    hook.remove()
    changed = fed[0].detach() != codes
    assert changed.sum(1).tolist() == [1] * len(x)  # exactly one code per image
    dims = changed.int().argmax(1)
    assert set(dims.tolist()) <= {0, 1, 2} and len(set(dims.tolist())) > 1  # active ones, uniform
    # The direct form: entry (i, dims[i]) takes values[i], nothing else moves.
    values = torch.randn(len(x), generator=torch.Generator().manual_seed(1))
    out = intervene(codes, dims, values)
    assert torch.equal(out[torch.arange(len(x)), dims], values)
    out[torch.arange(len(x)), dims] = codes[torch.arange(len(x)), dims]
    assert torch.equal(out, codes)


def test_the_activation_rule_on_hand_made_kl_histories() -> None:
    w, tol, min_kl = 5, 0.1, 0.1

    def decide(history: list[float], first: bool = False) -> str:
        return activation_decision(history, w, tol, min_kl, first)

    assert decide([2.0] * (2 * w - 1)) == "wait"  # under two windows old
    assert decide([1.0] * w + [2.0] * w) == "wait"  # still rising
    assert decide([2.0] * w + [2.15] * w) == "activate"  # a rise of 7.5%: a plateau
    assert decide([2.0] * w + [2.25] * w) == "wait"  # 12.5%: still rising
    assert decide([3.0] * w + [2.0] * w) == "activate"  # falling counts as a plateau
    assert decide([0.01] * (2 * w)) == "stop"  # a plateau without information
    assert decide([0.01] * (2 * w), first=True) == "wait"  # ... but the first never stops
    assert decide([0.0] * w + [0.005] * w) == "stop"  # a rise under tol * min_kl: flat
    assert decide([0.0] * w + [0.05] * w) == "wait"  # rising from nothing

    mask = GammaMask(max_factors=3, window=w, plateau_tol=tol, min_kl=min_kl)
    mask.activate(0)
    for step in range(2 * w - 1):
        mask.update(step, 2.0)
    assert mask.active == 1  # two windows not yet full
    mask.update(2 * w - 1, 2.0)
    assert (mask.active, mask.activated_at, mask.history) == (2, [0, 2 * w], [])
    for step in range(2 * w, 4 * w):
        mask.update(step, 1.0 + step)  # rising: keeps waiting
    assert mask.active == 2
    for step in range(4 * w, 6 * w):
        mask.update(step, 1.5)
    assert mask.active == 3
    for step in range(6 * w, 8 * w):
        mask.update(step, 0.5)
    assert (mask.active, mask.stopped) == (3, "max_factors")  # K_max reached
    assert mask.gamma(torch.device("cpu")).tolist() == [1.0, 1.0, 1.0]

    mask = GammaMask(max_factors=5, window=w, plateau_tol=tol, min_kl=min_kl)
    mask.activate(0)
    for step in range(2 * w):
        mask.update(step, 1.0)
    for step in range(2 * w, 4 * w):
        mask.update(step, 0.001)  # the second dimension finds nothing
    assert (mask.active, mask.activated_at, mask.stopped) == (1, [0], "uninformative")
    mask.update(4 * w, 5.0)
    assert mask.active == 1  # stopped for good
    assert mask.gamma(torch.device("cpu")).tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]


def test_beta_rises_linearly_after_pre_training() -> None:
    assert [beta_at(s, 10, 20, 1.0, 4.0) for s in (0, 9)] == [1.0, 1.0]
    assert [beta_at(s, 10, 20, 2.0, 5.0) for s in (10, 13, 19)] == [2.0, 3.0, 5.0]


def test_a_short_run_switches_z1_dimensions_on_one_at_a_time(fitted) -> None:
    dataset, _, rep, ctx = fitted
    act = ctx.info["activation"]
    assert act["active_dims"] >= 2 and act["informative_dims"] >= 2, act
    steps = act["activated_at"]
    assert steps[0] == 60 and steps == sorted(steps) and len(set(steps)) == len(steps)
    assert all(b - a >= 2 * HP["window"] for a, b in zip(steps, steps[1:], strict=False))
    curve = ctx.info["loss_curve"]
    assert [p["active_dims"] for p in curve if p["step"] <= 60] == [0.0] * 6
    _, x = dataset.sample(16, np.random.default_rng(2))
    assert rep.encode(x).shape == (16, act["active_dims"])  # the active z1 means
    assert rep.decode(rep.encode(x)).shape == (16, 1, 64, 64)
    assert "caveats" not in ctx.info


def test_a_short_run_lowers_the_wake_and_generator_losses(fitted) -> None:
    """Over the run the wake loss (ELBO) and the adversarial term of the sleep loss fall; the
    discriminator's loss over a run is adversarial (it rises as the decoder's intervened
    images improve), so its own descent is checked step by step in the next test."""
    _, _, _, ctx = fitted
    main = [p for p in ctx.info["loss_curve"] if p["step"] > 70]  # sleep and D on throughout

    def early_late(key: str) -> tuple[float, float]:
        values = [p[key] for p in main]
        return float(np.mean(values[:4])), float(np.mean(values[-4:]))

    wake, generator = early_late("wake"), early_late("generator")
    assert wake[1] < 0.8 * wake[0], wake
    assert generator[1] < 0.5 * generator[0], generator


def test_each_step_lowers_its_own_loss_on_a_fixed_batch() -> None:
    """Wake, then sleep, then discriminator updates, each repeated on one batch with the
    same random draws and a fresh Adam (the fit shares one Adam between wake and sleep)."""
    nets, x = _nets(), _batch()
    mask = torch.tensor([1.0, 1.0, 0.0, 0.0] + [1.0] * D)

    def repeat(step, n: int = 15) -> list[float]:  # noqa: ANN001
        return [step(torch.Generator().manual_seed(0)) for _ in range(n)]

    wake = repeat(lambda g: float(wake_step(nets, x, mask, K, 1.0, g)["wake"]))
    codes = wake_step(nets, x, mask, K, 1.0, torch.Generator().manual_seed(0))["codes"]
    nets, images = _nets(nets.model, nets.disc), []

    def sleep(g: torch.Generator) -> float:
        terms, x_k = sleep_step(nets, codes, mask, 2, 1.0, g)
        images.append(x_k)
        return float(terms["sleep"])

    slept = repeat(sleep)
    disc = repeat(lambda g: float(discriminator_step(nets, x, images[-1])))
    for name, losses in (("wake", wake), ("sleep", slept), ("discriminator", disc)):
        assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), (name, losses)


def test_the_same_seed_gives_the_same_weights(fitted) -> None:
    dataset, hp, rep, ctx = fitted
    again_ctx = FitContext()
    again = DOTVAE().fit(dataset, hp, 0, BUDGET, again_ctx)
    a, b = rep.model.state_dict(), again.model.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert again_ctx.info["activation"] == ctx.info["activation"]
    assert again_ctx.info["loss_curve"] == ctx.info["loss_curve"]


class Crash(Exception):
    """Stands in for a killed process, raised from the progress callback."""


def test_a_crashed_run_resumes_bit_identically(fitted, tmp_path) -> None:
    """Crashed after the step-128 checkpoint (z1 dimensions on, the rule mid-window)."""
    dataset, hp, rep, ctx = fitted
    path = tmp_path / "state.pkl"

    def crash(step: int, total: int) -> None:
        if step >= 150:
            raise Crash

    with pytest.raises(Crash):
        DOTVAE().fit(
            dataset, hp, 0, BUDGET, FitContext(checkpoint=Checkpoint(path, 0.0), progress=crash)
        )
    saved = pickle.loads(path.read_bytes())
    assert (
        saved["step"] == 128
        and saved["state"]["mask"]["active"] >= 1
        and saved["state"]["mask"]["history"]
    )
    resumed_ctx = FitContext(checkpoint=Checkpoint(path, 0.0))
    resumed = DOTVAE().fit(dataset, hp, 0, BUDGET, resumed_ctx)
    a, b = rep.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed_ctx.info["activation"] == ctx.info["activation"]
    assert resumed_ctx.info["loss_curve"] == ctx.info["loss_curve"]


def test_the_representation_pickles_to_the_same_codes_and_offers_z1_z2(fitted) -> None:
    dataset, hp, rep, _ = fitted
    _, x = dataset.sample(32, np.random.default_rng(4))
    again = pickle.loads(pickle.dumps(rep))
    assert isinstance(again, DOTVAERepresentation)
    assert np.array_equal(again.encode(x), rep.encode(x))
    assert np.array_equal(again.decode(rep.encode(x)), rep.decode(rep.encode(x)))
    # code = "z1_z2": the active z1 means, then all of z2's.
    big_k, d, active = hp["max_factors"], hp["entangled_dims"], rep.config["active_dims"]
    mask = GammaMask(big_k, 1, 0.1, 0.1, active=active)
    both = DOTVAE()._representation(
        rep.model, mask, dataset, DOTVAE.typed({**hp, "code": "z1_z2"}), 0, FitContext()
    )
    with torch.no_grad():
        means = rep.model.encoder(torch.from_numpy(x))[0].numpy()
    codes = both.encode(x)
    assert codes.shape == (32, active + d)
    assert np.array_equal(codes[:, :active], rep.encode(x))
    assert np.array_equal(codes[:, active:], means[:, big_k:])
    assert both.decode(codes).shape == (32, 1, 64, 64)


def test_the_paper_numbers_name_a_registered_metric_on_the_published_dsprites() -> None:
    assert {r.metric for r in DOTVAE.paper_results} == {"factor_vae", "mig", "dci", "beta_vae"}
    for result in DOTVAE.paper_results:
        assert result.dataset == "dsprites" and result.dataset in DATASETS.names()
        assert result.metric in METRICS.names() and "Table 1" in result.source
