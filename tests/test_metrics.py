"""Behaviour of the metric suite: known answers, invariances, degenerate input, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import mutual_info_score

from disbench.api import EvalContext, MetricError
from disbench.metrics._synthetic import FactorVectorDataset, synthetic_codes
from disbench.metrics._utils import discrete_entropy, discrete_mutual_info, histogram_discretize
from disbench.metrics.beta_vae import beta_vae_score
from disbench.metrics.dci import completeness, dci, disentanglement
from disbench.metrics.factor_vae import factor_vae_score, majority_vote_accuracy
from disbench.metrics.irs import irs
from disbench.metrics.mcc import mcc
from disbench.metrics.mig import mig
from disbench.metrics.modularity_explicitness import modularity, modularity_explicitness
from disbench.metrics.sap_score import sap
from disbench.metrics.unsupervised import unsupervised
from disbench.registry import METRICS

ARRAY_METRICS = ["mig", "dci", "sap_score", "modularity_explicitness", "irs", "unsupervised", "mcc"]
SMALL = {"num_train": 600, "num_test": 300}


def split(kind: str, n_train: int = 2000, n_test: int = 1000, **kw) -> tuple[np.ndarray, ...]:
    codes, factors = synthetic_codes(n_train + n_test, kind=kind, **kw)
    return codes[:n_train], factors[:n_train], codes[n_train:], factors[n_train:]


def small_grid() -> FactorVectorDataset:
    return FactorVectorDataset((4, 5, 6))


def identity(obs: np.ndarray) -> np.ndarray:
    return obs.reshape(len(obs), -1).astype(np.float64)


MIX = np.array([[1.0, 1.0, 0.0], [1.0, -1.0, 1.0], [0.0, 1.0, 1.0]])


def mixed(obs: np.ndarray) -> np.ndarray:
    return identity(obs) @ MIX


# --- shared helpers ---------------------------------------------------------------------


def test_mutual_info_and_entropy_equal_sklearn():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 7, size=(500, 3))
    b = (a[:, :2] + rng.integers(0, 2, size=(500, 2))) * 10 - 3  # arbitrary integer labels
    got = discrete_mutual_info(a, b)
    want = [[mutual_info_score(b[:, k], a[:, j]) for k in range(2)] for j in range(3)]
    np.testing.assert_allclose(got, want, atol=1e-12)
    np.testing.assert_allclose(
        discrete_entropy(b), [mutual_info_score(b[:, k], b[:, k]) for k in range(2)], atol=1e-12
    )


def test_histogram_discretize_bins_hand_example():
    codes = np.array([[0.0], [0.24], [0.26], [1.0]])
    # 4 equal-width bins over [0, 1]: left edges 0, .25, .5, .75 -> bins 1, 1, 2, 4.
    assert histogram_discretize(codes, 4)[:, 0].tolist() == [1, 1, 2, 4]


# --- known answers ----------------------------------------------------------------------


def test_perfect_codes_score_near_one():
    ztr, ftr, zte, fte = split("perfect", noise=0.0)
    assert mig(ztr, ftr)["discrete_mig"] >= 0.9
    small = split("perfect", n_train=500, n_test=250, sizes=(4, 3, 5), noise=0.0)
    d = dci(*small, mode="exact")
    assert d["disentanglement"] >= 0.95 and d["completeness"] >= 0.95
    assert d["informativeness_test"] == 1.0
    assert sap(ztr, ftr, zte, fte, continuous_factors=True)["SAP_score"] >= 0.99
    me = modularity_explicitness(ztr, ftr, zte, fte)
    assert me["modularity_score"] >= 0.95 and me["explicitness_score_test"] >= 0.95
    assert irs(ztr, ftr)["IRS"] == pytest.approx(1.0)
    assert mcc(ztr, ftr)["MCC"] == pytest.approx(1.0)
    assert unsupervised(ztr)["gaussian_total_correlation"] < 0.01


def test_perfect_codes_factor_vae_is_exactly_one_and_beta_vae_high():
    grid = small_grid()
    fv = factor_vae_score(
        grid,
        identity,
        np.random.default_rng(0),
        batch_size=16,
        num_train=300,
        num_eval=300,
        num_variance_estimate=500,
    )
    assert fv == {"train_accuracy": 1.0, "eval_accuracy": 1.0, "num_active_dims": 3.0}
    bv = beta_vae_score(
        grid, identity, np.random.default_rng(0), batch_size=16, num_train=300, num_eval=300
    )
    assert bv["eval_accuracy"] >= 0.95


def test_mixed_codes_score_low():
    ztr, ftr, zte, fte = split("rotated", noise=0.02)
    pztr, pftr, pzte, pfte = split("perfect", noise=0.02)
    assert mig(ztr, ftr)["discrete_mig"] < 0.25 < mig(pztr, pftr)["discrete_mig"]
    assert mcc(ztr, ftr)["MCC"] < 0.8
    d = dci(ztr, ftr, zte, fte, mode="fast")
    assert d["disentanglement"] < 0.5
    assert modularity_explicitness(ztr, ftr, zte, fte)["modularity_score"] < 0.8
    grid = small_grid()
    fv = factor_vae_score(
        grid,
        mixed,
        np.random.default_rng(0),
        batch_size=16,
        num_train=300,
        num_eval=300,
        num_variance_estimate=500,
    )
    assert fv["eval_accuracy"] < 0.75


def test_mig_hand_example():
    """Code 0 copies a binary factor, code 1 is constant: gap = H, so MIG = 1 exactly."""
    f = np.array([[0], [1], [0], [1], [1], [0]])
    codes = np.hstack([f.astype(float), np.zeros((6, 1))])
    assert mig(codes, f)["discrete_mig"] == pytest.approx(1.0)


def test_dci_scores_hand_importance_matrices():
    assert disentanglement(np.eye(3)) == pytest.approx(1.0, abs=1e-8)
    assert completeness(np.eye(3)) == pytest.approx(1.0, abs=1e-8)
    assert disentanglement(np.ones((3, 3))) == pytest.approx(0.0, abs=1e-8)
    # One code explains both factors: completeness 1 (each factor has one code), but that
    # code is shared: its row is uniform over 2 factors, so disentanglement 0.
    r = np.array([[0.5, 0.5], [0.0, 0.0]])
    assert completeness(r) == pytest.approx(1.0, abs=1e-8)
    assert disentanglement(r) == pytest.approx(0.0, abs=1e-8)


def test_modularity_hand_example():
    # Code 0: one-hot -> 1. Code 1: equal MI with both -> 1 - 1/1 = 0. Code 2: zero MI -> 0.
    m = np.array([[2.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    assert modularity(m) == pytest.approx(1 / 3)


def test_factor_vae_majority_vote_hand_example():
    train = np.array([[5, 0, 1], [1, 4, 3]])  # code 0 -> factor 0, codes 1, 2 -> factor 1
    evaluation = np.array([[2, 1, 0], [2, 1, 4]])
    assert majority_vote_accuracy(train, evaluation) == (12 / 14, 7 / 10)


def test_mcc_matches_hand_matching_and_handles_d_ne_k():
    rng = np.random.default_rng(0)
    v = rng.uniform(size=(1000, 3))
    codes = np.stack([-2 * v[:, 2], v[:, 0] + 0.1, v[:, 1]], axis=1)
    assert mcc(codes, v)["MCC"] == pytest.approx(1.0)
    # D < K: two codes for three factors; the unmatched factor counts 0.
    assert mcc(codes[:, :2], v)["MCC"] == pytest.approx(2 / 3)
    # D > K: the extra noise code is ignored.
    extra = np.hstack([codes, rng.standard_normal((1000, 2))])
    assert mcc(extra, v)["MCC"] == pytest.approx(1.0)


def test_mcc_uses_the_dataset_real_factor_values():
    """A code linear in the real value but not in the index: MCC 1 only with real values."""

    class Curved(FactorVectorDataset):
        def factor_values(self, factors):
            return np.asarray(factors, dtype=float) ** 2

    factors = Curved((4, 5, 6)).sample_factors(500, np.random.default_rng(0))
    codes = factors.astype(float) ** 2
    ctx = EvalContext.from_arrays(codes, factors, codes, factors)
    ctx.dataset = Curved((4, 5, 6))
    assert METRICS.get("mcc")().compute(ctx, {"num_train": 500})["MCC"] == pytest.approx(1.0)
    ctx.dataset = None
    assert METRICS.get("mcc")().compute(ctx, {"num_train": 500})["MCC"] < 0.99


# --- invariances --------------------------------------------------------------------------


def test_invariance_to_code_permutation_scaling_and_sign():
    ztr, ftr, zte, fte = split("mixed", extra=2, noise=0.05)
    perm = np.random.default_rng(1).permutation(ztr.shape[1])
    scale = np.linspace(0.5, 3.0, ztr.shape[1]) * np.where(np.arange(ztr.shape[1]) % 2, -1, 1)
    ptr, pte = ztr[:, perm] * scale[perm], zte[:, perm] * scale[perm]
    assert mig(ptr, ftr)["discrete_mig"] == pytest.approx(mig(ztr, ftr)["discrete_mig"], abs=1e-12)
    assert mcc(ptr, ftr)["MCC"] == pytest.approx(mcc(ztr, ftr)["MCC"], abs=1e-12)
    got = sap(ptr, ftr, pte, fte, continuous_factors=True)["SAP_score"]
    assert got == pytest.approx(sap(ztr, ftr, zte, fte, continuous_factors=True)["SAP_score"])
    tc = unsupervised(ptr)["gaussian_total_correlation"]
    assert tc == pytest.approx(unsupervised(ztr)["gaussian_total_correlation"], abs=1e-9)
    a = modularity_explicitness(ptr, ftr, pte, fte)["modularity_score"]
    assert a == pytest.approx(modularity_explicitness(ztr, ftr, zte, fte)["modularity_score"])


def test_dci_invariant_to_code_permutation():
    """Up to ties: when two codes split a small node equally well, the trees pick by code
    order (sklearn: a random code order), which moves the scores by up to ~1e-2 on 300
    points (a few 1e-4 at 10,000)."""
    ztr, ftr, zte, fte = split("mixed", n_train=300, n_test=150, sizes=(3, 4), noise=0.05)
    perm = np.array([1, 0])
    for mode in ("exact", "fast"):
        a = dci(ztr, ftr, zte, fte, mode=mode)
        b = dci(ztr[:, perm], ftr, zte[:, perm], fte, mode=mode)
        for key in a:
            assert b[key] == pytest.approx(a[key], abs=1e-2), (mode, key)


# --- DCI modes ------------------------------------------------------------------------------


def test_dci_fast_close_to_exact():
    """The full measurement (default sizes, more inputs) is in docs/metrics.md."""
    ztr, ftr, zte, fte = split("mixed", n_train=1000, n_test=500, sizes=(6, 5, 4), noise=0.05)
    exact = dci(ztr, ftr, zte, fte, mode="exact")
    fast = dci(ztr, ftr, zte, fte, mode="fast")
    for key in ("disentanglement", "completeness", "informativeness_test"):
        assert fast[key] == pytest.approx(exact[key], abs=0.03), key


def test_dci_fast_with_one_bin_per_value_reproduces_exact():
    """With a bin for every distinct value the fast booster searches the same splits as
    scikit-learn's trees, so it must land on the exact values (up to tie-breaking)."""
    ztr, ftr, zte, fte = split("mixed", n_train=400, n_test=200, sizes=(4, 3), noise=0.2)
    exact = dci(ztr, ftr, zte, fte, mode="exact")
    fast = dci(ztr, ftr, zte, fte, mode="fast", num_bins=len(ztr))
    for key in exact:
        assert fast[key] == pytest.approx(exact[key], abs=5e-3), key


def test_dci_parallel_threads_give_the_same_values():
    ztr, ftr, zte, fte = split("mixed", n_train=300, n_test=150, sizes=(3, 4, 2), noise=0.05)
    for mode in ("exact", "fast"):
        assert dci(ztr, ftr, zte, fte, mode=mode, n_jobs=1) == dci(
            ztr, ftr, zte, fte, mode=mode, n_jobs=2
        )


def test_dci_handles_binary_factors_and_unknown_mode():
    ztr, ftr, zte, fte = split("perfect", n_train=400, n_test=200, sizes=(2, 2), noise=0.01)
    assert dci(ztr, ftr, zte, fte, mode="fast")["disentanglement"] > 0.9
    with pytest.raises(MetricError, match="unknown mode 'slow'"):
        dci(ztr, ftr, zte, fte, mode="slow")


# --- degenerate input ---------------------------------------------------------------------


def _run_all(codes, factors, codes_test=None, factors_test=None) -> dict[str, dict[str, float]]:
    ctx = EvalContext.from_arrays(codes, factors, codes_test, factors_test)
    out = {}
    for name in ARRAY_METRICS:
        metric = METRICS.get(name)()
        out[name] = metric.compute(
            ctx,
            metric.settings(
                {
                    **{k: v for k, v in SMALL.items() if k in metric.defaults},
                    **({"mode": "fast"} if name == "dci" else {}),
                }
            ),
        )
    return out


def _finite(results: dict[str, dict[str, float]]) -> bool:
    return all(np.isfinite(v) for r in results.values() for v in r.values())


def test_constant_code_dimension_gives_finite_scores():
    ztr, ftr, zte, fte = split("mixed", n_train=600, n_test=300, noise=0.05)
    ztr[:, 1] = 3.0
    zte[:, 1] = 3.0
    results = _run_all(ztr, ftr, zte, fte)
    assert _finite(results)
    assert results["irs"]["num_active_dims"] == ztr.shape[1] - 1


def test_single_valued_factor_is_left_out_or_harmless():
    ztr, ftr, zte, fte = split("perfect", n_train=600, n_test=300, noise=0.01)
    ftr[:, 2] = 4
    fte[:, 2] = 4
    results = _run_all(ztr, ftr, zte, fte)
    assert _finite(results)
    keep = [0, 1, 3, 4]
    assert results["mig"]["discrete_mig"] == pytest.approx(mig(ztr, ftr[:, keep])["discrete_mig"])


def test_every_factor_constant_is_a_clear_error():
    codes = np.random.default_rng(0).standard_normal((50, 3))
    factors = np.zeros((50, 2), dtype=int)
    for fn in (
        lambda: mig(codes, factors),
        lambda: sap(codes, factors, codes, factors),
        lambda: dci(codes, factors, codes, factors, mode="fast"),
        lambda: mcc(codes, factors),
    ):
        with pytest.raises(MetricError, match="single value"):
            fn()


def test_single_code_dimension_gives_defined_scores():
    ztr, ftr, zte, fte = split("perfect", n_train=600, n_test=300, noise=0.01)
    results = _run_all(ztr[:, :1], ftr, zte[:, :1], fte)
    assert _finite(results)
    assert results["dci"]["completeness"] == 1.0
    assert results["unsupervised"]["mutual_info_score"] == 0.0
    # One code that copies factor 0: MIG = I(z; v0)/H(v0) for that factor, 0 for the rest.
    assert 0.1 < results["mig"]["discrete_mig"] < 0.25


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_codes_are_a_clear_error(bad):
    ztr, ftr, zte, fte = split("perfect", n_train=100, n_test=50)
    ztr[3, 0] = bad
    for name in ARRAY_METRICS:
        ctx = EvalContext.from_arrays(ztr, ftr, zte, fte)
        metric = METRICS.get(name)()
        settings = metric.settings(
            {k: v for k, v in {"num_train": 100, "num_test": 50}.items() if k in metric.defaults}
        )
        with pytest.raises(MetricError, match="NaN or infinite"):
            metric.compute(ctx, settings)


def test_too_few_points_is_a_clear_error():
    ztr, ftr, zte, fte = split("perfect", n_train=100, n_test=50)
    ctx = EvalContext.from_arrays(ztr, ftr, zte, fte)
    with pytest.raises(MetricError, match="asked for 10000 train points but only 100"):
        METRICS.get("mig")().compute(ctx, METRICS.get("mig").settings())
    with pytest.raises(MetricError, match="at least 2 points"):
        mig(ztr[:1], ftr[:1])


def test_singular_covariance_is_a_clear_error():
    codes = np.random.default_rng(0).standard_normal((200, 2))
    codes = np.hstack([codes, codes[:, :1] * 2.0])
    with pytest.raises(MetricError, match="singular"):
        unsupervised(codes)


def test_all_codes_pruned_factor_vae_scores_zero():
    def tiny(obs):
        return identity(obs) * 1e-3  # std below the 0.05 pruning threshold

    got = factor_vae_score(
        small_grid(),
        tiny,
        np.random.default_rng(0),
        batch_size=8,
        num_train=20,
        num_eval=20,
        num_variance_estimate=100,
    )
    assert got == {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0.0}


def test_sampling_metrics_need_a_dataset():
    ztr, ftr, zte, fte = split("perfect", n_train=100, n_test=50)
    ctx = EvalContext.from_arrays(ztr, ftr, zte, fte)
    for name in ("factor_vae", "beta_vae"):
        metric = METRICS.get(name)()
        assert metric.needs_dataset
        with pytest.raises(MetricError, match="needs a dataset"):
            metric.compute(ctx, metric.settings())


# --- determinism and the shared context ---------------------------------------------------


def test_sampling_metrics_through_the_context_are_deterministic():
    def run(seed):
        ctx = EvalContext(seed=seed, dataset=small_grid(), encode=mixed)
        fv = METRICS.get("factor_vae")()
        bv = METRICS.get("beta_vae")()
        small = {"batch_size": 8, "num_train": 200, "num_eval": 100}
        return (
            fv.compute(ctx, fv.settings({**small, "num_variance_estimate": 300})),
            bv.compute(ctx, bv.settings(small)),
        )

    assert run(0) == run(0)
    assert run(0) != run(1)


def test_every_array_metric_is_deterministic_through_the_context():
    ztr, ftr, zte, fte = split("mixed", n_train=600, n_test=300, noise=0.05)
    assert _run_all(ztr, ftr, zte, fte) == _run_all(ztr, ftr, zte, fte)


def test_registry_names_and_primary_keys():
    expected = {
        "mig": "discrete_mig",
        "dci": "disentanglement",
        "sap_score": "SAP_score",
        "modularity_explicitness": "modularity_score",
        "irs": "IRS",
        "unsupervised": "gaussian_total_correlation",
        "mcc": "MCC",
        "factor_vae": "eval_accuracy",
        "beta_vae": "eval_accuracy",
    }
    for name, primary in expected.items():
        assert METRICS.get(name).primary == primary
