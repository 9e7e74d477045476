"""Batched (packed) training: N models trained as one equal the N models trained one by one.

Two levels. One step (test_one_packed_step_is_n_train_steps): from the same weights,
batch and noise, every model's loss terms (1e-5 relative) and gradients (1e-4 relative
in norm; a bias gradient sums thousands of terms) equal those of ``train_step``, for
every variant, with a different hyperparameter value per model.
Short training (test_batched_models_equal_models_trained_one_by_one): ``fit_many`` and
N ``fit`` calls with the same seeds give the same models, as far as floating point lets
two computations that sum in another order (grouped convolutions, batched matmuls) stay
together: on fresh observations the codes within 5% of the distance the run moved them
from their initial values, 99% of the weights within 5% of the distance Adam can move a
weight in the run (lr per step), loss curves within 1e-2 (relative; absolute below 1).
Both bounds are relative to the run's own scale, not to one CPU's digits: how far rounding
carries two orders of summation apart depends on the instruction set (beta-TCVAE's codes:
2e-5 apart on an Intel Xeon, 4.4e-4 on an AMD EPYC, where the run moved them 2.6e-2).
Not to the last bit: where a gradient is a small
difference of large terms (near-zero gradients; DIP-VAE's Cov - 1 at Cov ~ 1) rounding
changes it relatively much, Adam, dividing by the gradient's own scale, turns that into
a visible step, and FactorVAE's adversarial pair amplifies such differences ~10x per
step once its discriminator starts to learn. Measured on the EPYC: codes within 1.7% of
their movement, 99% of weights within 2.2% of that distance, curves within 1e-6; the control
(test_the_check_tells_models_apart: same seed, another beta) is off by 1e-2 in codes and
its 99th-percentile weight difference is 63% of that distance. Torch runs on one thread
(see test_vae_training.py).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from disbench.api import FitContext, GroundTruthDataset, Kind, Representation, TrainBudget
from disbench.datasets.blobs import Blobs
from disbench.methods.beta_vae import BetaVAE
from disbench.methods.factor_vae import FactorVAE
from disbench.methods.nn.batched import (
    PackedAutoEncoder,
    PackedDiscriminator,
    PackedOptions,
    auto_group_size,
    build_packed,
    bytes_per_model,
    copy_in,
    copy_out,
    group_key,
    model_slot,
    packed_step,
    split_hparams,
)
from disbench.methods.nn.loop import Streams
from disbench.methods.nn.vae import AutoEncoder, VAERepresentation, build, train_step
from disbench.registry import METHODS
from disbench.run.runner import run_study
from disbench.run.store import ResultsStore
from disbench.run.study import load_profile

CPU = torch.device("cpu")
BUDGET = TrainBudget(steps=10, batch_size=16)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class ColourBars(GroundTruthDataset):
    """3 channels, so the packing of N models' channel blocks is exercised: a bar of one
    of 3 colours at one of 8 heights, with a grey level that varies."""

    kind: ClassVar[Kind] = "procedural"

    def __init__(self) -> None:
        self.name = "colour_bars"
        self.factor_names = ("colour", "posY", "level")
        self.factor_sizes = (3, 8, 4)
        self.observation_shape = (3, 64, 64)

    def render(self, factors: np.ndarray) -> np.ndarray:
        out = np.zeros((len(factors), 3, 64, 64), dtype=np.float32)
        for k, (colour, pos, level) in enumerate(np.asarray(factors)):
            out[k, colour, 6 * pos : 6 * pos + 10, 8:56] = 0.4 + 0.2 * level
        return out


def one_by_one(
    name: str, ds: GroundTruthDataset, hps: list[dict[str, Any]], seeds: list[int]
) -> list[tuple[Representation, FitContext]]:
    method = METHODS.get(name)()
    out = []
    for hp, seed in zip(hps, seeds, strict=True):
        ctx = FitContext()
        out.append((method.fit(ds, method.resolve_hparams(hp), seed, BUDGET, ctx), ctx))
    return out


def batched(
    name: str, ds: GroundTruthDataset, hps: list[dict[str, Any]], seeds: list[int]
) -> list[tuple[Representation, FitContext]]:
    method = METHODS.get(name)()
    ctxs = [FitContext() for _ in hps]
    jobs = [(method.resolve_hparams(hp), s, c) for hp, s, c in zip(hps, seeds, ctxs, strict=True)]
    return list(zip(method.fit_many(ds, jobs, BUDGET), ctxs, strict=True))


def initial_codes(name: str, ds: GroundTruthDataset, hp: dict[str, Any], seed: int, x: np.ndarray):
    """The codes of ``x`` under the weights a run with ``seed`` starts from."""
    method = METHODS.get(name)()
    nets = build(
        method,
        ds.observation_shape[0],
        method.resolve_hparams(hp),
        Streams(seed, CPU).init,
        CPU,
    )
    with torch.no_grad():
        return nets.model.encoder(torch.from_numpy(x))[0].numpy()


def differences(
    a: tuple[Representation, FitContext],
    b: tuple[Representation, FitContext],
    x: np.ndarray,
    start: np.ndarray,
) -> dict[str, float]:
    """Largest loss-curve difference (relative, absolute below 1), largest code difference
    on ``x`` in units of the largest distance run ``a`` moved a code from ``start`` (its
    initial codes), and the 99th percentile of the weight differences in units of
    lr x steps."""
    (rep_a, ctx_a), (rep_b, ctx_b) = a, b
    assert isinstance(rep_a, VAERepresentation) and isinstance(rep_b, VAERepresentation)
    curve = max(
        abs(pa[k] - pb[k]) / max(abs(pa[k]), 1.0)
        for pa, pb in zip(ctx_a.info["loss_curve"], ctx_b.info["loss_curve"], strict=True)
        for k in pa
    )
    wa, wb = rep_a.model.state_dict(), rep_b.model.state_dict()
    diff = torch.cat([(wa[k] - wb[k]).abs().flatten() for k in wa])
    reach = rep_a.config["hparams"]["lr"] * rep_a.config["steps"]
    codes_a = rep_a.encode(x)
    moved = float(np.abs(codes_a - start).max())
    codes = float(np.abs(codes_a - rep_b.encode(x)).max()) / moved
    return {"curve": curve, "codes": codes, "weights": diff.quantile(0.99).item() / reach}


def identical(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    wa, wb = a.state_dict(), b.state_dict()
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def assert_equal_models(d: dict[str, float]) -> None:
    assert d["curve"] < 1e-2 and d["codes"] < 0.05 and d["weights"] < 0.05, d


STEP_CASES = {
    "ae": (1, [{}, {}]),
    "beta_vae": (3, [{"beta": 1.0}, {"beta": 16.0}, {"beta": 4.0}]),
    "annealed_vae": (1, [{"c_max": 5.0}, {"c_max": 100.0, "gamma": 10.0}, {"c_max": 25.0}]),
    "factor_vae": (1, [{"gamma": 10.0}, {"gamma": 100.0}]),
    "dip_vae_i": (3, [{"lambda_od": 1.0}, {"lambda_od": 50.0}]),
    "dip_vae_ii": (1, [{"lambda_od": 2.0}, {"lambda_od": 20.0}]),
    "beta_tc_vae": (3, [{"beta": 1.0}, {"beta": 10.0}, {"beta": 6.0}]),
}


@pytest.mark.parametrize("name", list(STEP_CASES))
def test_one_packed_step_is_n_train_steps(name: str) -> None:
    """Same weights, batch and noise: the packed step's per-model loss terms and gradients
    are those of ``train_step``, each model with its own hyperparameters (AnnealedVAE at
    step 2 of a 4-step schedule, so C differs per model)."""
    channels, given = STEP_CASES[name]
    method = METHODS.get(name)()
    hps = [
        method.resolve_hparams(
            {**hp, **({"iteration_threshold": 4} if name == "annealed_vae" else {})}
        )
        for hp in given
    ]
    n = len(hps)
    ds = ColourBars() if channels == 3 else Blobs()
    _, x = ds.sample(8 * n, np.random.default_rng(1))
    x = torch.from_numpy(x)
    singles = [build(method, channels, hp, Streams(i, CPU).init, CPU) for i, hp in enumerate(hps)]
    packed = build_packed(
        method,
        channels,
        hps[0],
        [Streams(i, CPU).init for i in range(n)],
        CPU,
        PackedOptions(),
    )
    terms = [
        train_step(method, nets, x[8 * i : 8 * i + 8], hp, 2, torch.Generator().manual_seed(i))
        for i, (nets, hp) in enumerate(zip(singles, hps, strict=True))
    ]
    shared, per_model = split_hparams(method, hps, CPU)
    gens = [torch.Generator().manual_seed(i) for i in range(n)]
    packed_terms = packed_step(method, packed, x, shared, per_model, 2, gens)
    assert list(packed_terms) == list(terms[0])
    for i, nets in enumerate(singles):
        for k, v in terms[i].items():
            torch.testing.assert_close(packed_terms[k][i], v, rtol=1e-5, atol=1e-6)
        pairs = [(packed.model, nets.model)] + ([(packed.disc, nets.disc)] if nets.disc else [])
        for many, one in pairs:
            params = dict(one.named_parameters())
            for pname, p in many.named_parameters():
                want = params[pname].grad
                if want is None:  # the AE never uses its log-variance head
                    assert p.grad is None, pname
                    continue
                got = model_slot(p.grad, i, want.shape)
                assert (got - want).norm() <= 1e-4 * want.norm() + 1e-12, (name, i, pname)


CASES = {
    # FactorVAE: the packed discriminator, its own Adam, per-model permutations.
    "factor_vae": (Blobs(), [{"gamma": 10.0}, {"gamma": 100.0}]),
    # AnnealedVAE: the capacity schedule with per-model c_max and gamma.
    "annealed_vae": (
        Blobs(),
        [{"c_max": 5.0, "gamma": 1000.0}, {"c_max": 100.0, "gamma": 100.0}, {"c_max": 25.0}],
    ),
    # beta-TCVAE: the minibatch TC estimator; three channels.
    "beta_tc_vae": (ColourBars(), [{"beta": 1.0}, {"beta": 10.0}]),
    # DIP-VAE-II: covariance of the aggregate posterior, the most rounding-sensitive.
    "dip_vae_ii": (Blobs(), [{"lambda_od": 1.0}, {"lambda_od": 50.0}]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_batched_models_equal_models_trained_one_by_one(name: str) -> None:
    ds, hps = CASES[name]
    seeds = [3 + i for i in range(len(hps))]
    _, x = ds.sample(200, np.random.default_rng(9))
    singles = one_by_one(name, ds, hps, seeds)
    group = batched(name, ds, hps, seeds)
    for single, packed, hp, seed in zip(singles, group, hps, seeds, strict=True):
        assert_equal_models(differences(single, packed, x, initial_codes(name, ds, hp, seed, x)))
        assert packed[1].info["batched_group_size"] == len(hps)
        assert packed[0].config == single[0].config  # type: ignore[attr-defined]
        assert set(packed[1].info["final_losses"]) == set(single[1].info["final_losses"])


def test_the_check_tells_models_apart() -> None:
    """Control: batched model 0 against a one-by-one run with its seed (so the same
    initial weights and data) but the other model's beta fails every criterion."""
    ds = Blobs()
    hps = [{"beta": 1.0}, {"beta": 16.0}]
    _, x = ds.sample(200, np.random.default_rng(9))
    group = batched("beta_vae", ds, hps, [3, 4])
    swapped = one_by_one("beta_vae", ds, [hps[1]], [3])[0]
    start = initial_codes("beta_vae", ds, hps[1], 3, x)  # seed 3's initial weights
    d = differences(swapped, group[0], x, start)
    assert d["curve"] > 1e-3 and d["codes"] > 0.2 and d["weights"] > 0.3, d
    same = one_by_one("beta_vae", ds, [hps[0]], [3])[0]
    assert_equal_models(differences(same, group[0], x, start))


@pytest.mark.parametrize("channels_last", [False, True])
def test_packed_networks_compute_what_the_single_networks_compute(channels_last: bool) -> None:
    n, channels = 3, 3
    method = FactorVAE()
    hp = method.resolve_hparams({})
    singles = [build(method, channels, hp, Streams(s, CPU).init, CPU) for s in range(n)]
    model, disc = PackedAutoEncoder(channels, 10, n), PackedDiscriminator(10, n)
    for i, nets in enumerate(singles):
        copy_in(model, i, nets.model)
        copy_in(disc, i, nets.disc)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    _, x = ColourBars().sample(5 * n, np.random.default_rng(0))
    xs = torch.from_numpy(x).reshape(n, 5, channels, 64, 64)
    packed_x = xs.transpose(0, 1).reshape(5, n * channels, 64, 64)
    with torch.no_grad():
        mean, logvar = model.encoder(packed_x)
        logits = model.decoder(mean).reshape(5, n, channels, 64, 64)
        d_logits = disc(mean)
        for i, nets in enumerate(singles):
            m, lv = nets.model.encoder(xs[i])
            torch.testing.assert_close(mean[i], m, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(logvar[i], lv, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(logits[:, i], nets.model.decoder(m), rtol=1e-5, atol=1e-4)
            torch.testing.assert_close(d_logits[i], nets.disc(m), rtol=1e-5, atol=1e-5)
    for i, nets in enumerate(singles):  # unpacking gives back exactly what was packed
        out = copy_out(model, i, AutoEncoder(channels, 10))
        assert identical(out, nets.model)


def test_fit_many_groups_compatible_runs_keeps_order_and_fills_each_record() -> None:
    method = BetaVAE()
    ds = Blobs()
    hps = [{"beta": 1.0}, {"beta": 4.0, "lr": 2e-4}, {"beta": 8.0}]  # lr cannot vary in a group
    progress: dict[int, list[tuple[int, int]]] = {i: [] for i in range(3)}
    ctxs = [FitContext(progress=lambda s, t, i=i: progress[i].append((s, t))) for i in range(3)]
    jobs = [(method.resolve_hparams(hp), 10 + i, ctxs[i]) for i, hp in enumerate(hps)]
    reps = method.fit_many(ds, jobs, TrainBudget(4, 8))
    assert [r.config["seed"] for r in reps] == [10, 11, 12]  # type: ignore[attr-defined]
    assert [c.info["batched_group_size"] for c in ctxs] == [2, 1, 2]
    for i, ctx in enumerate(ctxs):
        assert progress[i][-1] == (4, 4)
        final = ctx.info["final_losses"]
        assert final["loss"] == pytest.approx(final["reconstruction"] + final["regularizer"])
        assert final["regularizer"] == pytest.approx(hps[i]["beta"] * final["kl"], rel=1e-5)
        assert len(ctx.info["loss_curve"]) == 4 and ctx.info["train_seconds"] > 0
    assert ctxs[0].info["model_steps_per_second"] > ctxs[0].info["steps_per_second"]
    # The lone run trained by the single-model loop: identical to fit.
    alone = method.fit(ds, jobs[1][0], 11, TrainBudget(4, 8), FitContext())
    assert identical(alone.model, reps[1].model)  # type: ignore[attr-defined]


def test_optimiser_settings_split_groups_regulariser_weights_do_not() -> None:
    fv = FactorVAE()
    base = fv.resolve_hparams({})
    assert group_key(fv, base) == group_key(fv, {**base, "gamma": 40.0})
    for key, value in [("disc_lr", 1e-3), ("adam_beta1", 0.5), ("num_latents", 6)]:
        assert group_key(fv, base) != group_key(fv, {**base, key: value}), key
    assert group_key(fv, base) != group_key(fv, {**base, "precision": "bf16"})


def test_batched_training_is_reproducible() -> None:
    ds = Blobs()
    hps = [{"beta": 1.0}, {"beta": 6.0}]
    a, b = batched("beta_tc_vae", ds, hps, [0, 1]), batched("beta_tc_vae", ds, hps, [0, 1])
    for (ra, ca), (rb, cb) in zip(a, b, strict=True):
        assert identical(ra.model, rb.model)  # type: ignore[attr-defined]
        assert ca.info["loss_curve"] == cb.info["loss_curve"]


def test_annealed_threshold_is_resolved_per_run_in_a_group() -> None:
    method = METHODS.get("annealed_vae")()
    ctxs = [FitContext(), FitContext()]
    jobs = [
        (method.resolve_hparams({}), 0, ctxs[0]),
        (method.resolve_hparams({"iteration_threshold": 2}), 1, ctxs[1]),
    ]
    method.fit_many(Blobs(), jobs, TrainBudget(9, 4))
    assert [c.info["iteration_threshold"] for c in ctxs] == [3, 2]
    assert [c.info["batched_group_size"] for c in ctxs] == [2, 2]  # an int hparam may vary


def test_memory_plan_counts_parameters_and_activations() -> None:
    # Reference networks, 3 channels, 10 latents: encoder 310,228 and decoder 382,339
    # parameters (conv 4x4 32, 4x4 32, 2x2 64, 2x2 64, FC 256, 2 x FC 10; FC 256, FC 1024,
    # convT 64, 32, 32, 3), four fp32 copies each (weights, gradients, two Adam moments).
    # The activation part is linear in the batch, so 2 b(32) - b(64) is the parameter part.
    params = 310_228 + 382_339
    b32, b64 = bytes_per_model(BetaVAE, batch=32), bytes_per_model(BetaVAE, batch=64)
    assert 2 * b32 - b64 == 16 * params
    assert 20 * 2**20 < b64 - b32 < 200 * 2**20  # 32 images' saved activations: tens of MiB
    disc = 10 * 1000 + 5 * 1000 * 1000 + 1000 * 2 + 6 * 1000 + 2
    f32, f64 = bytes_per_model(FactorVAE, batch=32), bytes_per_model(FactorVAE, batch=64)
    assert 2 * f32 - f64 == 16 * (params + disc)
    assert auto_group_size(BetaVAE, CPU) == 1


def test_a_diverged_model_is_named_by_its_seed() -> None:
    """beta = inf: the loss is not finite from the first step, and the run says which."""
    hp = BetaVAE.resolve_hparams({"beta": math.inf})
    with pytest.raises(FloatingPointError, match=r"'beta_vae'.*\(7, \{'loss': nan"):
        BetaVAE().fit(Blobs(positions=8, sizes=2), hp, 7, TrainBudget(2, 4), FitContext())


def test_a_diverging_model_fails_alone_and_leaves_its_group_untouched() -> None:
    """beta = inf makes seed 1's loss non-finite from the first step; seed 0 beside it in
    the packed group must train exactly as it does beside a healthy model."""
    ds = Blobs(positions=8, sizes=2)
    x = ds.render(ds.sample_factors(64, np.random.default_rng(5)))
    healthy = batched("beta_vae", ds, [{"beta": 1.0}, {"beta": 4.0}], [0, 1])
    mixed = batched("beta_vae", ds, [{"beta": 1.0}, {"beta": math.inf}], [0, 1])
    (rep, _), (error, ctx) = mixed
    assert isinstance(rep, VAERepresentation)
    assert isinstance(error, FloatingPointError)
    assert "'beta_vae'" in str(error) and "(1, {" in str(error)
    assert not math.isfinite(ctx.info["final_losses"]["loss"])
    assert identical(rep.model, healthy[0][0].model)  # type: ignore[attr-defined]
    assert np.isfinite(rep.encode(x)).all()


def run_group_study(tmp_path: Path, seeds: str, beta_vae: str) -> tuple[dict[str, int], Path]:
    """A blobs study of beta-VAEs trained in groups of 2 (``beta_vae``: the method's table
    body); returns the run counts and the results directory."""
    profile = tmp_path / "study.toml"
    profile.write_text(
        f"""
seeds = {seeds}
datasets = [{{name = "blobs", positions = 8, sizes = 2}}]
[train]
steps = 3
batch_size = 8
[execution]
group_size = 2
torch_threads = 1
[metrics]
names = ["mig"]
common = {{num_train = 300}}
[methods.beta_vae]
{beta_vae}
"""
    )
    out = tmp_path / "results"
    return run_study(load_profile(str(profile)), out, show_progress=False), out


def test_runner_records_a_diverged_group_member_as_failed(tmp_path: Path) -> None:
    counts, out = run_group_study(tmp_path, "[0]", "grid = {beta = [1.0, inf]}")
    assert counts == {"ok": 1, "failed": 1, "skipped": 0}
    by_beta = {str(r["spec"]["hparams"]["beta"]): r for r in ResultsStore(out).records()}
    assert by_beta["1.0"]["status"] == "ok" and "mig" in by_beta["1.0"]["scores"]
    failed = by_beta["inf"]
    assert failed["status"] == "failed" and failed["scores"] == {}
    assert failed["error"].startswith("FloatingPointError: method 'beta_vae'")
    assert "FloatingPointError" in failed["traceback"]
    assert failed["execution"]["group_size"] == 2


def test_runner_trains_a_group_and_records_each_run(tmp_path: Path) -> None:
    counts, out = run_group_study(tmp_path, "[0, 1]", "")
    assert counts == {"ok": 2, "failed": 0, "skipped": 0}
    records = list(ResultsStore(out).records())
    assert sorted(r["spec"]["seed"] for r in records) == [0, 1]
    for rec in records:
        assert rec["info"]["batched_group_size"] == 2
        assert rec["execution"]["group_size"] == 2
        assert "mig" in rec["scores"]
