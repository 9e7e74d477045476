"""The content/style transfer metric on a representation that is the true renderer: zero
error, the right factor assignment; and an error that grows as its images are perturbed."""

from __future__ import annotations

import numpy as np
import pytest

from disbench.api import ContentStyle, EvalContext, MetricError
from disbench.datasets.blobs import Blobs
from disbench.metrics.cs_transfer import CSTransferMetric, cs_transfer


class TrueRenderer(ContentStyle):
    """Codes = the factors (posX, posY are content, size is style), read back from a table
    of every image of the grid; decode renders the factors, plus noise of scale ``noise``."""

    content_dims = 2

    def __init__(self, dataset: Blobs, noise: float = 0.0) -> None:
        self.dataset = dataset
        self.noise = noise
        every = dataset.factors_of(np.arange(dataset.num_observations))
        images = dataset.render(every)
        self.table = {img.tobytes(): f for img, f in zip(images, every, strict=True)}

    def encode(self, x: np.ndarray) -> np.ndarray:
        return np.array([self.table[img.tobytes()] for img in x], dtype=np.float64)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        images = self.dataset.render(np.rint(codes).astype(np.int64))
        rng = np.random.default_rng(0)
        return images + self.noise * rng.normal(size=images.shape).astype(np.float32)


def test_the_true_renderer_scores_zero_and_perturbations_raise_the_error() -> None:
    dataset = Blobs(positions=8, sizes=2)
    exact = cs_transfer(TrueRenderer(dataset), dataset, np.random.default_rng(1), 64)
    assert exact["transfer_error"] == 0.0
    assert (exact["content.posX"], exact["content.posY"], exact["content.size"]) == (1, 1, 0)
    assert exact["content_factors"] == 2 and exact["copy_content_error"] > 0
    errors = [
        cs_transfer(TrueRenderer(dataset, s), dataset, np.random.default_rng(1), 64)[
            "transfer_error"
        ]
        for s in (0.0, 0.05, 0.1, 0.2)
    ]
    assert errors == sorted(errors) and errors[0] < errors[1]
    assert errors[3] == pytest.approx(0.2**2, rel=0.05)  # the noise's own mean square


def test_it_needs_a_content_style_representation() -> None:
    ctx = EvalContext(seed=0, dataset=Blobs(), encode=lambda x: x, representation=object())
    with pytest.raises(MetricError, match="needs a content/style representation"):
        CSTransferMetric().compute(ctx, CSTransferMetric.settings())
    assert not CSTransferMetric.in_all and not CSTransferMetric.higher_is_better
