"""C-S DisMo as rebuilt here: the content constraint holds, style changes only the affine
parameters, a short run lowers the reconstruction loss, the encoders reproduce the optimised
codes of the training images, the same seed gives the same weights, and the harness trains,
scores and draws it (transfer grid and the cs_transfer metric)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from disbench.api import FitContext, TrainBudget
from disbench.datasets.blobs import Blobs
from disbench.methods.cs_dismo import CSDisMo, CSDisMoMethod, standardise
from disbench.report import build_report
from disbench.run.runner import run_study
from disbench.run.store import ResultsStore
from disbench.run.study import load_profile


def test_content_codes_are_standardised_across_the_dataset() -> None:
    codes = torch.randn(500, 6) * torch.arange(1, 7) + 3.0
    shared = standardise(codes)
    assert torch.allclose(shared.mean(0), torch.zeros(6), atol=1e-5)
    assert torch.allclose(shared.std(0, unbiased=False), torch.ones(6), atol=1e-4)


def test_a_style_code_changes_the_affine_parameters_and_not_the_content() -> None:
    torch.manual_seed(0)
    module = CSDisMo(channels=1, content_dims=6, style_dims=4)
    content = torch.randn(3, 6)
    before = content.clone()
    a = module.customise(content, torch.zeros(3, 4))
    b = module.customise(content, torch.ones(3, 4))
    assert torch.equal(content, before)  # the content code is never touched
    scale, shift = module.affine(torch.ones(3, 4)).split(6, dim=1)
    assert torch.allclose(b, (1 + scale) * content + shift)
    assert not torch.allclose(a, b)


@pytest.fixture(scope="module")
def fitted() -> Iterator[tuple]:
    """One fit, with deterministic algorithms as the harness runs it on the CPU (the
    scattered gradient of the per-image code tables is otherwise summed in thread order)."""
    torch.use_deterministic_algorithms(True, warn_only=True)
    dataset = Blobs(positions=8, sizes=2)
    ctx = FitContext()
    hp = CSDisMoMethod.resolve_hparams({"num_images": 300, "encoder_share": 0.5})
    rep = CSDisMoMethod().fit(dataset, hp, 0, TrainBudget(400, 32), ctx)
    yield dataset, hp, rep, ctx
    torch.use_deterministic_algorithms(False)


def test_a_short_run_lowers_the_loss_and_the_encoders_learn_the_codes(fitted) -> None:
    _, _, _, ctx = fitted
    losses = [p["loss"] for p in ctx.info["loss_curve"]]
    assert losses[-1] < 0.5 * losses[0]
    enc = [p["encoder_loss"] for p in ctx.info["encoder_curve"]]
    assert enc[-1] < 0.5 * enc[0]
    # Stated tolerance (docs/methods-cs-dismo.md): after 200 encoder steps on 300 training
    # images the encoders explain, on those images, at least 40% of every optimised code's
    # variance and 60% on average over the codes (R^2; more steps raise it).
    r2 = ctx.info["encoder_r2_train"]
    assert min(r2) >= 0.4 and np.mean(r2) >= 0.6, r2
    assert ctx.info["code_split"] == {"content": [0, 1, 2, 3, 4, 5], "style": [6, 7, 8, 9]}


def test_the_same_seed_gives_the_same_weights(fitted) -> None:
    dataset, hp, rep, _ = fitted
    again = CSDisMoMethod().fit(dataset, hp, 0, TrainBudget(400, 32), FitContext())
    for a, b in zip(
        rep.model.state_dict().values(), again.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    _, x = dataset.sample(20, np.random.default_rng(3))
    assert np.array_equal(rep.encode(x), again.encode(x))


def test_the_harness_scores_it_with_the_transfer_metric_and_grid(tmp_path) -> None:
    profile = tmp_path / "study.toml"
    profile.write_text(
        'seeds = [0]\ndatasets = [{name = "blobs", positions = 8, sizes = 2}]\n'
        '[metrics]\nnames = ["mig"]\ncommon = {num_train = 300}\n[metrics.cs_transfer]\n'
        "num_pairs = 16\n[methods.cs_dismo]\nsteps = 60\nbatch_size = 16\n"
        'metrics = ["cs_transfer"]\ngrid = {num_images = 200}\n'
        "[methods.pca.grid]\nnum_points = 200\n"
    )
    study = load_profile(str(profile))
    by_method = {r.method: r for r in study.runs}
    assert "cs_transfer" in by_method["cs_dismo"].metrics  # added for its runs only
    assert "cs_transfer" not in by_method["pca"].metrics
    out = tmp_path / "results"
    assert run_study(study, out, show_progress=False)["ok"] == 2
    (record,) = [r for r in ResultsStore(out).records() if r["spec"]["method"] == "cs_dismo"]
    assert 0 <= record["scores"]["cs_transfer"]["transfer_error"] < 1
    assert (out / record["artifacts"]["transfer_grid"]).stat().st_size > 1000
    assert record["method"]["reference_code"] is False
    # A metric added for one method keeps it in the study's section, beside the others.
    board = tmp_path / "leaderboard.md"
    build_report(out, board)
    text = board.read_text()
    assert text.count("## Study: ") == 1
    assert "| cs_dismo [PR" in text and "| pca [PI] |" in text
    assert "[transfer](results/plots/transfers/" in text


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"encoder_share": 1.0}, "method 'cs_dismo': hyperparameter encoder_share must be < 1"),
        ({"num_images": 0}, "method 'cs_dismo': hyperparameter num_images must be >= 1, got 0"),
        ({"content_dims": 6.0}, "hyperparameter content_dims must be an integer, got 6.0"),
    ],
)
def test_a_bad_hyperparameter_is_one_line_naming_it(given: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        CSDisMoMethod.resolve_hparams(given)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_budget_that_leaves_a_stage_without_steps_is_a_clear_error() -> None:
    hp = CSDisMoMethod.resolve_hparams({"encoder_share": 0.1, "num_images": 10})
    with pytest.raises(ValueError, match=r"encoder_share=0.1 of steps=4 leaves a stage without"):
        CSDisMoMethod().fit(Blobs(positions=8, sizes=2), hp, 0, TrainBudget(4, 16), FitContext())
