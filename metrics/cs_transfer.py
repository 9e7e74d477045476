"""Content/style transfer against the ground truth, for content/style representations.

For pairs of images (a, b) drawn from the dataset, the representation generates the image
with the content of a and the style of b. On a procedural dataset every factor is known, so
the intended image can be rendered: each ground-truth factor is taken from a or from b. Which
factors are content is the method's own finding, so every assignment of the factors to the
content side (a) or the style side (b) is tried and the one that explains the transferred
images best (lowest mean squared error per pixel) is kept; the error is reported with, for
each factor, whether it followed the content side. An exact content/style model scores 0;
a model that ignores the style code scores the error of copying a.
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import numpy as np

from disbench.api import ContentStyle, EvalContext, Metric, MetricError, register

MAX_FACTORS = 8  # 2^8 assignments: the search is exhaustive


def cs_transfer(
    rep: ContentStyle, dataset: Any, rng: np.random.Generator, num_pairs: int
) -> dict[str, float]:
    """Transfer error of ``rep`` on ``num_pairs`` pairs and the factor assignment it follows."""
    k = dataset.num_factors
    if k > MAX_FACTORS:
        raise MetricError(f"cs_transfer: {k} factors; the exhaustive search stops at {MAX_FACTORS}")
    fa, fb = dataset.sample_factors(num_pairs, rng), dataset.sample_factors(num_pairs, rng)
    xa, xb = dataset.render(fa), dataset.render(fb)
    ca, cb = np.asarray(rep.encode(xa)), np.asarray(rep.encode(xb))
    d = rep.content_dims
    moved = np.asarray(rep.decode(np.concatenate([ca[:, :d], cb[:, d:]], axis=1)), np.float64)
    best: tuple[float, tuple[bool, ...]] | None = None
    for content in itertools.product((True, False), repeat=k):
        target = dataset.render(np.where(np.array(content)[None, :], fa, fb))
        error = float(np.mean((moved - target) ** 2))
        if best is None or error < best[0]:
            best = (error, content)
    assert best is not None
    error, content = best
    copy_a = float(np.mean((moved - xa) ** 2))
    out = {"transfer_error": error, "copy_content_error": copy_a, "content_factors": sum(content)}
    for name, follows in zip(dataset.factor_names, content, strict=True):
        out[f"content.{name}"] = float(follows)
    return out


@register
class CSTransferMetric(Metric):
    name: ClassVar[str] = "cs_transfer"
    description: ClassVar[str] = (
        "content/style transfer error against the rendered ground truth (C-S methods only)"
    )
    primary: ClassVar[str] = "transfer_error"
    defaults: ClassVar[dict[str, Any]] = {"num_pairs": 64}
    needs_dataset: ClassVar[bool] = True
    higher_is_better: ClassVar[bool] = False
    in_all: ClassVar[bool] = False

    def compute(self, ctx: EvalContext, settings: dict[str, Any]) -> dict[str, float]:
        if not isinstance(ctx.representation, ContentStyle) or ctx.dataset is None:
            raise MetricError(
                "cs_transfer needs a content/style representation (disbench.api.ContentStyle) "
                "and the dataset"
            )
        rng = ctx.rng("cs_transfer")
        return cs_transfer(ctx.representation, ctx.dataset, rng, int(settings["num_pairs"]))
