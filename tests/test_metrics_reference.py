"""Agreement with disentanglement_lib 1.5 on the same arrays.

disentanglement_lib's own ``compute_*`` functions are called with a stand-in dataset that
hands out fixed rows in order (train rows, then test rows) and a representation function
that looks the codes up, so both libraries score exactly the same points. Its metric
modules import ``gin.tf`` (which pulls TensorFlow) but only use ``gin.configurable``, so an
empty ``gin.tf`` module is placed in ``sys.modules`` first. The reference is installed by
the nox tests session from tests/requirements-reference.txt.
"""

from __future__ import annotations

import logging
import sys
import types

import numpy as np
import pytest

from disbench.metrics._synthetic import FactorVectorDataset, synthetic_codes
from disbench.metrics.beta_vae import beta_vae_score
from disbench.metrics.dci import dci
from disbench.metrics.factor_vae import factor_vae_score
from disbench.metrics.irs import irs
from disbench.metrics.mig import mig
from disbench.metrics.modularity_explicitness import modularity_explicitness
from disbench.metrics.sap_score import sap
from disbench.metrics.unsupervised import unsupervised

CASES = {
    "perfect": dict(kind="perfect"),
    "permuted": dict(kind="permuted", noise=0.02),
    "rotated": dict(kind="rotated", noise=0.02),
    "noisy": dict(kind="perfect", noise=0.2, extra=2),
    "mixed": dict(kind="mixed", alpha=0.3, extra=5, noise=0.05),
    "d_lt_k": dict(kind="mixed", alpha=0.3, drop=2, noise=0.05),
    "d_gt_k": dict(kind="permuted", extra=4, noise=0.05),
}


@pytest.fixture(scope="module")
def dlib() -> types.SimpleNamespace:
    pytest.importorskip(
        "disentanglement_lib",
        reason="reference: pip install --no-deps -r tests/requirements-reference.txt",
    )
    gin = pytest.importorskip("gin")
    sys.modules.setdefault("gin.tf", types.ModuleType("gin.tf"))
    logging.getLogger().setLevel(logging.ERROR)  # gin's "blacklist is deprecated" chatter
    from disentanglement_lib.evaluation.metrics import (
        beta_vae,
        dci,
        factor_vae,
        irs,
        mig,
        modularity_explicitness,
        sap_score,
        unsupervised_metrics,
        utils,
    )

    gin.clear_config()
    gin.bind_parameter("discretizer.discretizer_fn", utils._histogram_discretize)
    gin.bind_parameter("discretizer.num_bins", 20)
    gin.bind_parameter("prune_dims.threshold", 0.05)
    yield types.SimpleNamespace(
        mig=mig,
        dci=dci,
        sap=sap_score,
        irs=irs,
        modexp=modularity_explicitness,
        unsup=unsupervised_metrics,
        factor_vae=factor_vae,
        beta_vae=beta_vae,
    )
    gin.clear_config()


class Replay:
    """disentanglement_lib's GroundTruthData interface over fixed rows, handed out in order."""

    def __init__(self, codes: np.ndarray, factors: np.ndarray) -> None:
        self.codes, self.factors, self.pos = codes, factors, 0
        self.num_factors = factors.shape[1]

    def sample(self, num: int, random_state: np.random.RandomState) -> tuple[np.ndarray, ...]:
        rows = np.arange(self.pos, self.pos + num)
        self.pos += num
        return self.factors[rows], rows

    def represent(self, rows: np.ndarray) -> np.ndarray:
        return self.codes[rows]


def _data(case: str, n_train: int, n_test: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    codes, factors = synthetic_codes(n_train + n_test, seed=seed, **CASES[case])
    return codes[:n_train], factors[:n_train], codes[n_train:], factors[n_train:]


def _replay(*arrays: np.ndarray) -> Replay:
    if len(arrays) == 2:
        return Replay(*arrays)
    return Replay(np.concatenate([arrays[0], arrays[2]]), np.concatenate([arrays[1], arrays[3]]))


RS = np.random.RandomState(0)  # unused by the replay; the compute functions require one


@pytest.mark.parametrize("case", CASES)
def test_mig_matches(dlib, case):
    ztr, ftr, _, _ = _data(case, 3000, 0)
    ref = _replay(ztr, ftr)
    expected = dlib.mig.compute_mig(ref, ref.represent, RS, num_train=len(ztr))
    assert mig(ztr, ftr)["discrete_mig"] == pytest.approx(expected["discrete_mig"], abs=1e-9)


@pytest.mark.parametrize("continuous", [False, True])
@pytest.mark.parametrize("case", CASES)
def test_sap_matches(dlib, case, continuous):
    arrays = _data(case, 1500, 700)
    ref = _replay(*arrays)
    expected = dlib.sap.compute_sap(
        ref, ref.represent, RS, num_train=1500, num_test=700, continuous_factors=continuous
    )
    got = sap(*arrays, continuous_factors=continuous)
    assert got["SAP_score"] == pytest.approx(expected["SAP_score"], abs=1e-9)


@pytest.mark.parametrize("case", CASES)
def test_modularity_explicitness_matches(dlib, case):
    arrays = _data(case, 1000, 500)
    ref = _replay(*arrays)
    expected = dlib.modexp.compute_modularity_explicitness(
        ref, ref.represent, RS, num_train=1000, num_test=500
    )
    got = modularity_explicitness(*arrays)
    for key in ("modularity_score", "explicitness_score_train", "explicitness_score_test"):
        assert got[key] == pytest.approx(expected[key], abs=1e-9), key


@pytest.mark.parametrize("case", CASES)
def test_irs_matches(dlib, case):
    ztr, ftr, _, _ = _data(case, 3000, 0)
    ref = _replay(ztr, ftr)
    expected = dlib.irs.compute_irs(ref, ref.represent, RS, num_train=3000, batch_size=16)
    got = irs(ztr, ftr)
    assert got["IRS"] == pytest.approx(expected["IRS"], abs=1e-9)
    assert got["num_active_dims"] == ztr.shape[1]  # dlib sums code values here (a bug)


@pytest.mark.parametrize("case", CASES)
def test_unsupervised_matches(dlib, case):
    ztr, ftr, _, _ = _data(case, 3000, 0)
    ref = _replay(ztr, ftr)
    expected = dlib.unsup.unsupervised_metrics(ref, ref.represent, RS, num_train=3000)
    got = unsupervised(ztr)
    for key, value in expected.items():
        assert got[key] == pytest.approx(np.real(value), abs=1e-9), key


@pytest.mark.parametrize("case", ["mixed", "d_lt_k"])
def test_dci_exact_matches(dlib, case):
    """Small sizes: disentanglement_lib's boosted trees cost seconds per factor."""
    spec = {**CASES[case], "drop": 1} if case == "d_lt_k" else CASES[case]
    codes, factors = synthetic_codes(450, sizes=(4, 3, 5), seed=1, **spec)
    arrays = codes[:300], factors[:300], codes[300:], factors[300:]
    ref = _replay(*arrays)
    expected = dlib.dci.compute_dci(ref, ref.represent, RS, num_train=300, num_test=150)
    got = dci(*arrays, mode="exact")
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-2), key


class DlibGrid:
    """The same dataset behind disentanglement_lib's sampling interface (RandomState)."""

    def __init__(self, dataset: FactorVectorDataset) -> None:
        self.dataset = dataset
        self.num_factors = dataset.num_factors

    def sample_factors(self, num: int, random_state: np.random.RandomState) -> np.ndarray:
        return np.stack([random_state.randint(s, size=num) for s in self.dataset.factor_sizes], 1)

    def sample_observations_from_factors(self, factors, random_state):
        return self.dataset.render(factors)

    def sample_observations(self, num, random_state):
        return self.dataset.render(self.sample_factors(num, random_state))


MIX = np.array([[1.0, 1.0, 0.0], [1.0, -1.0, 1.0], [0.0, 1.0, 1.0]])


def _entangled(obs: np.ndarray) -> np.ndarray:
    """An entangled encoder (factor values mixed by a fixed matrix): scores near 0.6."""
    return obs.reshape(len(obs), -1).astype(np.float64) @ MIX


def test_factor_vae_agrees_in_distribution(dlib):
    """Different random streams (Generator vs RandomState), so equal within sampling error."""
    grid = FactorVectorDataset((4, 5, 6))
    ours = factor_vae_score(
        grid,
        _entangled,
        np.random.default_rng(0),
        batch_size=16,
        num_train=1500,
        num_eval=1500,
        num_variance_estimate=2000,
    )
    ref = dlib.factor_vae.compute_factor_vae(
        DlibGrid(grid),
        _entangled,
        np.random.RandomState(0),
        batch_size=16,
        num_train=1500,
        num_eval=1500,
        num_variance_estimate=2000,
    )
    assert 0.4 < ref["eval_accuracy"] < 0.8
    assert ours["eval_accuracy"] == pytest.approx(ref["eval_accuracy"], abs=0.05)
    assert ours["num_active_dims"] == 3 and ref["num_active_dims"] == 3


def test_beta_vae_agrees_in_distribution(dlib):
    grid = FactorVectorDataset((4, 5, 6))
    ours = beta_vae_score(
        grid,
        _entangled,
        np.random.default_rng(0),
        random_state=0,
        batch_size=8,
        num_train=600,
        num_eval=600,
    )
    ref = dlib.beta_vae.compute_beta_vae_sklearn(
        DlibGrid(grid),
        _entangled,
        np.random.RandomState(0),
        batch_size=8,
        num_train=600,
        num_eval=600,
    )
    assert ours["eval_accuracy"] == pytest.approx(ref["eval_accuracy"], abs=0.05)
    assert ours["train_accuracy"] == pytest.approx(ref["train_accuracy"], abs=0.05)
