"""``isometric_manifold``: independent factors mapped to images by a locally isometric map.

The testbed for Horan, Richardson & Weiss (NeurIPS 2021): if the map f from factors z to
observations is a local isometry (its Jacobian has J^T J = c I everywhere) and the factors
are independent and non-Gaussian, the factors are recoverable up to permutation and sign.
Here the factor distribution is configurable, so each assumption can be broken on purpose.

Factors live on a grid of ``values`` indices; the coordinate of index i is
z = i / (values - 1) in [0, 1] (``factor_values``). ``sample_factors`` follows ``distribution``:

- ``uniform``: each factor uniform over its indices (independent, non-Gaussian).
- ``nonuniform``: independent, each with the ramp density p(z) proportional to 1 + 3z (skewed).
- ``gaussian``: independent normals, mean 0.5 and sd 0.15, truncated to [0, 1] (the negative
  control: a rotation of independent Gaussians is still independent, so ICA cannot resolve it).
- ``correlated``: factors (0, 1), (2, 3), ... in pairs, each pair joined by a Gaussian copula
  with correlation ``correlation``; the marginals stay uniform, only independence breaks.

Embeddings:

- ``sprite`` (default): a Gaussian blob (sd ``SIGMA`` pixels) whose centre is translated by the
  factors: factor 2j moves blob j in x and factor 2j+1 moves it in y, over ``TRAVEL`` pixels. Why
  this is an isometry: the image is I(p) = s(p - t(z)), so the Jacobian columns are the shifted
  partial derivatives of the sprite, and the Gram matrix J^T J holds integrals of products of
  partial derivatives of s, which do not depend on the shift (translation invariance). A
  radially symmetric sprite has equal integrals for x and y and a zero cross term, so J^T J is
  a constant multiple of I. The pixel grid and the canvas edge make it approximate: with a
  sd of 4 px the sampling error is ~exp(-2 pi^2 sigma^2) and the margin of 3 sd cuts ~1e-4 of
  the gradient energy (the tests measure J^T J by finite differences). One blob (1 channel) for
  up to 2 factors; for 3 to 6 factors blob j is drawn in colour channel j of an RGB image (a
  channel without a factor stays black), so different blobs occupy disjoint coordinates and
  the cross terms vanish exactly. With an odd number of factors the last blob moves in x only.
- ``random``: an exactly isometric smooth embedding. Factor k follows a unit-speed curve in its
  own ``2 * CURVE_TERMS`` coordinates, c(z) = sum_m a_m (cos w_m z, sin w_m z) with
  sum_m a_m^2 w_m^2 = 1; the curves sit in mutually orthogonal subspaces, are rotated into pixel
  space by a random orthonormal matrix (fixed by ``embedding_seed``), then scaled and offset into
  [0, 1]. J^T J = scale^2 I exactly; the images look like structured noise.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from scipy.special import ndtr

from disbench.api import GroundTruthDataset, Kind, register

DISTRIBUTIONS = ("uniform", "nonuniform", "gaussian", "correlated")
EMBEDDINGS = ("sprite", "random")
RESOLUTION = 64
SIGMA = 4.0  # blob sd in pixels: wide enough that neighbouring grid positions overlap
TRAVEL = RESOLUTION - 6 * SIGMA  # centre range in pixels, keeping 3 sd from the edge
GAUSSIAN_MEAN, GAUSSIAN_SD = 0.5, 0.15
CURVE_TERMS = 3


@register
class IsometricManifold(GroundTruthDataset):
    """Independent (or deliberately not) factors -> images through a locally isometric map."""

    name: ClassVar[str] = "isometric_manifold"

    kind: ClassVar[Kind] = "procedural"
    description: ClassVar[str] = (
        "procedural locally isometric manifold (Horan et al. 2021): translated Gaussian blob or "
        "random isometric embedding; factor distribution uniform/nonuniform/gaussian/correlated"
    )

    def __init__(
        self,
        distribution: str = "uniform",
        num_factors: int = 2,
        values: int = 64,
        embedding: str = "sprite",
        correlation: float = 0.8,
        embedding_seed: int = 0,
    ) -> None:
        if distribution not in DISTRIBUTIONS:
            raise ValueError(
                f"isometric_manifold: distribution={distribution!r}; choose one of {DISTRIBUTIONS}"
            )
        if embedding not in EMBEDDINGS:
            raise ValueError(
                f"isometric_manifold: embedding={embedding!r}; choose one of {EMBEDDINGS}"
            )
        max_factors = 6 if embedding == "sprite" else 64
        if not 1 <= num_factors <= max_factors:
            raise ValueError(
                f"isometric_manifold: num_factors={num_factors} must be in 1..{max_factors} "
                f"for embedding={embedding!r}"
            )
        if values < 2:
            raise ValueError(f"isometric_manifold: values={values} must be >= 2")
        if not -1.0 < correlation < 1.0:
            raise ValueError(f"isometric_manifold: correlation={correlation} must be in (-1, 1)")
        self.distribution = distribution
        self.embedding = embedding
        self.correlation = float(correlation)
        self.embedding_seed = int(embedding_seed)
        self.factor_names = tuple(f"z{k}" for k in range(num_factors))
        self.factor_sizes = (values,) * num_factors
        channels = 1 if embedding == "random" or num_factors <= 2 else 3
        self.observation_shape = (channels, RESOLUTION, RESOLUTION)
        if embedding == "random":
            self._setup_random_embedding()

    def describe(self) -> dict[str, object]:
        """The base description plus the options that change the factor law or the map."""
        params = {"distribution": self.distribution, "embedding": self.embedding}
        if self.distribution == "correlated":
            params["correlation"] = self.correlation
        if self.embedding == "random":
            params["embedding_seed"] = self.embedding_seed
        return {**super().describe(), "params": params}

    # ----- factors -------------------------------------------------------------------------

    def factor_values(self, factors: np.ndarray) -> np.ndarray:
        """Coordinates z = index / (values - 1) in [0, 1]: the map is isometric in these."""
        return np.asarray(factors, dtype=np.float64) / (self.factor_sizes[0] - 1)

    def index_probabilities(self) -> np.ndarray:
        """Marginal probability of each index of one factor (the same for every factor)."""
        z = np.linspace(0.0, 1.0, self.factor_sizes[0])
        if self.distribution == "nonuniform":
            weights = 1.0 + 3.0 * z
        elif self.distribution == "gaussian":
            weights = np.exp(-0.5 * ((z - GAUSSIAN_MEAN) / GAUSSIAN_SD) ** 2)
        else:  # uniform, and the uniform marginals of the copula pairs
            weights = np.ones_like(z)
        return weights / weights.sum()

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Factor indices int64 [n, K] drawn from the configured distribution."""
        values, k = self.factor_sizes[0], self.num_factors
        if self.distribution != "correlated":
            return rng.choice(values, size=(n, k), p=self.index_probabilities()).astype(np.int64)
        normals = rng.standard_normal((n, k))
        rho = self.correlation
        for a in range(0, k - 1, 2):  # pair (a, a+1): corr(normals) = rho
            normals[:, a + 1] = rho * normals[:, a] + np.sqrt(1 - rho**2) * normals[:, a + 1]
        uniforms = ndtr(normals)  # Gaussian copula: uniform marginals, dependent pairs
        return np.minimum(np.floor(uniforms * values), values - 1).astype(np.int64)

    # ----- rendering -----------------------------------------------------------------------

    def render(self, factors: np.ndarray) -> np.ndarray:
        factors = np.asarray(factors, dtype=np.int64)
        self.check_factors(factors)
        return self.render_torch(torch.from_numpy(factors), "cpu").numpy()

    def render_torch(self, factors: torch.Tensor, device: torch.device | str) -> torch.Tensor:
        z = factors.to(device=device, dtype=torch.float32) / (self.factor_sizes[0] - 1)
        if self.embedding == "random":
            return self._render_random(z)
        return self._render_sprites(z)

    def _render_sprites(self, z: torch.Tensor) -> torch.Tensor:
        n, k = z.shape
        channels = self.observation_shape[0]
        centre = torch.full((n, 2 * channels), RESOLUTION / 2, device=z.device)
        centre[:, :k] = 3 * SIGMA + TRAVEL * z  # odd K: the last blob stays centred in y
        cx, cy = centre[:, 0::2], centre[:, 1::2]  # [n, channels]
        grid = torch.arange(RESOLUTION, device=z.device, dtype=torch.float32) + 0.5
        gx = torch.exp(-0.5 * ((grid[None, None, :] - cx[..., None]) / SIGMA) ** 2)
        gy = torch.exp(-0.5 * ((grid[None, None, :] - cy[..., None]) / SIGMA) ** 2)
        img = gy[..., :, None] * gx[..., None, :]  # [n, channels, H, W], separable blob
        img[:, (k + 1) // 2 :] = 0.0  # channels without a blob stay black
        return img

    def _setup_random_embedding(self) -> None:
        """Unit-speed curves per factor, orthogonal subspaces, a random rotation into pixels."""
        rng = np.random.default_rng(self.embedding_seed)
        k, pixels = self.num_factors, RESOLUTION * RESOLUTION
        freqs = rng.uniform(0.5, 1.5, size=(k, CURVE_TERMS)) * np.pi  # < 3/4 turn: no closing up
        amps = rng.uniform(0.5, 1.0, size=(k, CURVE_TERMS))
        amps /= np.sqrt((amps**2 * freqs**2).sum(axis=1, keepdims=True))  # unit speed
        basis, _ = np.linalg.qr(rng.standard_normal((pixels, 2 * CURVE_TERMS * k)))
        # Every pixel is bounded by sum |basis| * |amp| <= bound; scale so it stays in [0, 1].
        coef = np.abs(basis).reshape(pixels, k, CURVE_TERMS, 2).sum(axis=3)
        bound = (coef * amps[None]).sum(axis=(1, 2)).max()
        self._curves = {"cpu": [torch.tensor(a, dtype=torch.float32) for a in (freqs, amps, basis)]}
        self.embedding_scale = 0.5 / bound  # J^T J = embedding_scale^2 I in the z coordinates

    def _render_random(self, z: torch.Tensor) -> torch.Tensor:
        dev = z.device
        key = str(dev)
        if key not in self._curves:  # copied to each device once
            self._curves[key] = [t.to(dev) for t in self._curves["cpu"]]
        freqs, amps, basis = self._curves[key]
        phase = z[:, :, None] * freqs[None]  # [n, K, M]
        amps = amps[None]
        curve = torch.stack([amps * torch.cos(phase), amps * torch.sin(phase)], dim=3)
        img = 0.5 + self.embedding_scale * curve.reshape(len(z), -1) @ basis.T
        return img.clamp(0.0, 1.0).reshape(len(z), 1, RESOLUTION, RESOLUTION)
