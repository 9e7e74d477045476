"""Loss terms and regularisers of the VAE baselines against hand computations.

Each regulariser is evaluated on a tiny hand-made batch and compared with the value
worked out by hand (in the comments) or by an independent, slower computation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from disbench.methods.annealed_vae import AnnealedVAE, capacity
from disbench.methods.beta_tc_vae import BetaTCVAE
from disbench.methods.beta_vae import BetaVAE
from disbench.methods.dip_vae_i import DIPVAEI
from disbench.methods.dip_vae_ii import DIPVAEII
from disbench.methods.factor_vae import FactorVAE
from disbench.methods.nn import losses
from disbench.methods.nn.architectures import FCDiscriminator, init_like_tf
from disbench.methods.nn.vae import LatentTerms

D = torch.float64


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Small ops on a shared 2-core machine run many times faster on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def t(x: object) -> torch.Tensor:
    return torch.tensor(x, dtype=D)


def terms(
    mean: object, logvar: object, z: object | None = None, logits: object = None
) -> LatentTerms:
    mean_t, logvar_t = t(mean), t(logvar)
    z_t = mean_t if z is None else t(z)
    kl = losses.gaussian_kl(mean_t, logvar_t)
    return LatentTerms(mean_t, logvar_t, z_t, kl, None if logits is None else t(logits))


def test_bernoulli_reconstruction_is_pixel_sum_batch_mean() -> None:
    x = [[[[1.0, 0.0]]], [[[0.25, 0.5]]]]  # two 1x1x2 images
    logits = [[[[0.0, 2.0]]], [[[-1.0, 3.0]]]]

    def xent(p: float, logit: float) -> float:
        s = 1 / (1 + math.exp(-logit))
        return -(p * math.log(s) + (1 - p) * math.log(1 - s))

    per_sample = [xent(1.0, 0.0) + xent(0.0, 2.0), xent(0.25, -1.0) + xent(0.5, 3.0)]
    got = losses.bernoulli_reconstruction(t(x), t(logits))
    assert got.item() == pytest.approx(sum(per_sample) / 2, rel=1e-12)


def test_gaussian_kl_by_hand() -> None:
    # sample 0 is the prior (KL 0); sample 1: latent 0 has mean 1, var 1 -> 0.5;
    # latent 1 has mean 0, var 2 -> 0.5 (2 - ln 2 - 1). Batch mean of the sums.
    kl = losses.gaussian_kl(t([[0.0, 0.0], [1.0, 0.0]]), t([[0.0, 0.0], [0.0, math.log(2)]]))
    assert kl.item() == pytest.approx((0.5 + 0.5 * (1 - math.log(2))) / 2, rel=1e-12)


def test_beta_vae_regularizer_is_beta_times_kl() -> None:
    tm = terms([[0.0, 0.0], [1.0, 0.0]], [[0.0, 0.0], [0.0, math.log(2)]])
    kl = (0.5 + 0.5 * (1 - math.log(2))) / 2
    assert BetaVAE.regularizer(tm, {"beta": 6.0}, 0).item() == pytest.approx(6 * kl, rel=1e-12)


def test_annealed_capacity_schedule_and_regularizer() -> None:
    # dlib: C = min(c_max, c_max * step / threshold), step = global step before the update.
    assert capacity(10.0, 0, 100) == 0.0
    assert capacity(10.0, 50, 100) == 5.0
    assert capacity(10.0, 100, 100) == 10.0
    assert capacity(10.0, 250, 100) == 10.0
    tm = terms([[2.0], [0.0]], [[0.0], [0.0]])  # KL = (0.5 * 4 + 0) / 2 = 1
    hp = {"gamma": 1000.0, "c_max": 10.0, "iteration_threshold": 100}
    assert AnnealedVAE.regularizer(tm, hp, 50).item() == pytest.approx(1000 * abs(1 - 5))
    assert AnnealedVAE.regularizer(tm, hp, 5).item() == pytest.approx(1000 * abs(1 - 0.5))


def test_dip_vae_i_regularizer_by_hand() -> None:
    # means (1, 2), (-1, 0), (0, -2): E[mu] = 0; biased covariance [[2/3, 2/3], [2/3, 8/3]].
    # off-diagonal: 2 (2/3)^2 = 8/9; diagonal: (2/3 - 1)^2 + (8/3 - 1)^2 = 26/9.
    mean = [[1.0, 2.0], [-1.0, 0.0], [0.0, -2.0]]
    logvar = [[0.1, -0.2], [0.0, 0.3], [-0.1, 0.2]]
    tm = terms(mean, logvar)
    hp = {"lambda_od": 2.0, "lambda_d_factor": 10.0}
    expected = tm.kl.item() + 2.0 * 8 / 9 + 20.0 * 26 / 9
    assert DIPVAEI.regularizer(tm, hp, 0).item() == pytest.approx(expected, rel=1e-12)
    assert torch.allclose(losses.covariance(t(mean)), t([[2 / 3, 2 / 3], [2 / 3, 8 / 3]]))


def test_dip_vae_ii_regularizer_by_hand() -> None:
    # Same means; encoder variances average to (1, 1), so Cov[z] = [[5/3, 2/3], [2/3, 11/3]].
    # off-diagonal 8/9; diagonal (2/3)^2 + (8/3)^2 = 68/9; lambda_d = lambda_od = 3.
    mean = [[1.0, 2.0], [-1.0, 0.0], [0.0, -2.0]]
    logvar = np.log([[0.5, 1.0], [1.5, 1.0], [1.0, 1.0]]).tolist()
    tm = terms(mean, logvar)
    hp = {"lambda_od": 3.0, "lambda_d_factor": 1.0}
    expected = tm.kl.item() + 3.0 * 8 / 9 + 3.0 * 68 / 9
    assert DIPVAEII.regularizer(tm, hp, 0).item() == pytest.approx(expected, rel=1e-12)


def slow_total_correlation(z: np.ndarray, mean: np.ndarray, logvar: np.ndarray) -> float:
    """The minibatch-weighted-sampling estimate written out with loops over densities."""
    m, dims = z.shape
    std = np.exp(logvar / 2)
    total = 0.0
    for j in range(m):
        joint = sum(
            math.prod(norm.pdf(z[j, l], mean[i, l], std[i, l]) for l in range(dims))
            for i in range(m)
        )
        marginals = [
            sum(norm.pdf(z[j, l], mean[i, l], std[i, l]) for i in range(m)) for l in range(dims)
        ]
        total += math.log(joint) - sum(math.log(q) for q in marginals)
    return total / m


def test_beta_tc_vae_total_correlation_matches_slow_computation() -> None:
    rng = np.random.default_rng(0)
    mean, logvar, z = (
        rng.normal(size=(6, 3)),
        rng.normal(0, 0.3, size=(6, 3)),
        rng.normal(size=(6, 3)),
    )
    got = losses.total_correlation(t(z), t(mean), t(logvar)).item()
    assert got == pytest.approx(slow_total_correlation(z, mean, logvar), rel=1e-10)
    tm = LatentTerms(t(mean), t(logvar), t(z), losses.gaussian_kl(t(mean), t(logvar)), None)
    reg = BetaTCVAE.regularizer(tm, {"beta": 4.0}, 0).item()
    assert reg == pytest.approx(tm.kl.item() + 3.0 * got, rel=1e-10)


def test_total_correlation_of_identical_posteriors_is_the_dropped_constant() -> None:
    # All q(z|x_i) equal: the aggregate factorises and the estimate is -(L - 1) log M exactly.
    mean, logvar = t([[0.3, -1.0, 2.0]] * 5), t([[0.1, 0.4, -0.3]] * 5)
    z = t(np.random.default_rng(1).normal(size=(5, 3)))
    assert losses.total_correlation(z, mean, logvar).item() == pytest.approx(-2 * math.log(5))


def test_total_correlation_estimates_a_known_gaussian_tc() -> None:
    # q(z|x_i) = N(mu_i, 0.1^2) with mu_i ~ N(0, [[1, .8], [.8, 1]]): q(z) is Gaussian with
    # covariance S = Cov[mu] + 0.01 I, TC = (sum log diag S - log det S) / 2. Adding back the
    # dropped constant (L - 1) log M, the estimate on a large batch is close to it.
    rng = np.random.default_rng(0)
    m = 2000
    mu = rng.multivariate_normal([0, 0], [[1, 0.8], [0.8, 1]], size=m)
    logvar = np.full((m, 2), math.log(0.01))
    z = mu + 0.1 * rng.normal(size=(m, 2))
    s = np.array([[1.01, 0.8], [0.8, 1.01]])
    true_tc = 0.5 * (np.log(np.diag(s)).sum() - np.log(np.linalg.det(s)))
    est = losses.total_correlation(t(z), t(mu), t(logvar)).item() + math.log(m)
    assert est == pytest.approx(true_tc, abs=0.05)


def test_factor_vae_regularizer_and_discriminator_loss_by_hand() -> None:
    logits = [[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]]  # logit differences 2, -1, 0 -> TC 1/3
    tm = terms([[1.0], [0.0], [0.0]], [[0.0], [0.0], [0.0]], logits=logits)
    assert FactorVAE.regularizer(tm, {"gamma": 30.0}, 0).item() == pytest.approx(
        tm.kl.item() + 30.0 / 3, rel=1e-12
    )
    permuted = [[0.0, 3.0], [0.5, 0.5]]

    def log_softmax(row: list[float], k: int) -> float:
        return row[k] - math.log(sum(math.exp(v) for v in row))

    real = sum(log_softmax(r, 0) for r in logits) / 3
    perm = sum(log_softmax(r, 1) for r in permuted) / 2
    got = losses.discriminator_loss(t(logits), t(permuted)).item()
    assert got == pytest.approx(-(0.5 * real + 0.5 * perm), rel=1e-12)
    # dlib clips the probabilities to [1e-6, 1 - 1e-6] before the log.
    clipped = losses.discriminator_loss(t([[0.0, 40.0]]), t([[0.0, 40.0]])).item()
    assert clipped == pytest.approx(-0.5 * math.log(1e-6) - 0.5 * math.log(1 - 1e-6), rel=1e-9)


def test_permute_dims_shuffles_each_latent_independently() -> None:
    z = torch.arange(200, dtype=D).reshape(100, 2)
    z[:, 1] += 1000
    p = losses.permute_dims(z, torch.Generator().manual_seed(0))
    for col in range(2):  # each column is a permutation of itself
        assert torch.equal(p[:, col].sort().values, z[:, col])
    assert not torch.equal(p[:, 0] - z[:, 0].min(), p[:, 1] - z[:, 1].min())  # different orders


def test_factor_vae_discriminator_estimates_a_known_tc() -> None:
    # The density-ratio trick with a trained discriminator recovers the TC of correlated
    # Gaussian codes, -log(1 - rho^2) / 2 = 0.511 for rho = 0.8 (a small discriminator).
    rho, true_tc = 0.8, -0.5 * math.log(1 - 0.8**2)
    gen = torch.Generator().manual_seed(0)
    disc = init_like_tf(FCDiscriminator(2, width=64, depth=2), gen)
    opt = torch.optim.Adam(disc.parameters(), lr=1e-3, betas=(0.5, 0.9))
    chol = torch.linalg.cholesky(torch.tensor([[1.0, rho], [rho, 1.0]]))

    def codes(n: int) -> torch.Tensor:
        return torch.randn(n, 2, generator=gen) @ chol.T

    for _ in range(600):
        z = codes(256)
        loss = losses.discriminator_loss(disc(z), disc(losses.permute_dims(z, gen)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        est = losses.density_ratio_tc(disc(codes(20000))).item()
    assert est == pytest.approx(true_tc, abs=0.1)


@pytest.mark.parametrize(
    ("method", "hp"),
    [
        (BetaVAE, {"beta": 4.0}),
        (AnnealedVAE, {"gamma": 1000.0, "c_max": 10.0, "iteration_threshold": 100}),
        (FactorVAE, {"gamma": 10.0}),
        (DIPVAEI, {"lambda_od": 2.0, "lambda_d_factor": 10.0}),
        (DIPVAEII, {"lambda_od": 2.0, "lambda_d_factor": 1.0}),
        (BetaTCVAE, {"beta": 6.0}),
    ],
)
def test_regularizers_are_pure_and_vmap_over_a_model_axis(method: type, hp: dict) -> None:
    """A batched multi-model trainer can vmap each regulariser over stacked models."""
    rng = np.random.default_rng(3)
    models, batch, dims = 4, 8, 3
    mean, logvar, z = (t(rng.normal(size=(models, batch, dims))) for _ in range(3))
    kl = torch.stack([losses.gaussian_kl(mean[k], logvar[k]) for k in range(models)])
    logits = t(rng.normal(size=(models, batch, 2)))
    stacked = LatentTerms(mean, logvar, z, kl, logits)
    batched = torch.func.vmap(lambda tm: method.regularizer(tm, hp, 30))(stacked)
    single = [
        method.regularizer(LatentTerms(*(f[k] for f in stacked)), hp, 30) for k in range(models)
    ]
    assert torch.allclose(batched, torch.stack(single), rtol=1e-12)


def test_covariance_matches_numpy() -> None:
    x = np.random.default_rng(0).normal(size=(50, 4))
    got = losses.covariance(t(x)).numpy()
    assert np.allclose(got, np.cov(x, rowvar=False, bias=True), atol=1e-12)
