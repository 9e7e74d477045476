"""``disbench datasets show NAME``: a PNG of random samples and one traversal row per factor.

So a person can see at a glance what every factor does: the top rows are samples drawn with
``sample_factors`` and each following row starts from one random factor vector and steps a
single factor through (up to) ``TRAVERSAL_STEPS`` evenly spaced values, labelled with the
factor's name and number of values.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from disbench.api import GroundTruthDataset, RegistryError  # noqa: E402
from disbench.run.overrides import parse_override  # noqa: E402

TRAVERSAL_STEPS = 10
SAMPLE_ROWS = 2
DEFAULT_DIR = Path("results/plots/datasets")


def traversal_factors(dataset: GroundTruthDataset, base: np.ndarray, k: int) -> np.ndarray:
    """Copies of ``base`` with factor ``k`` stepped evenly over its index range."""
    size = dataset.factor_sizes[k]
    steps = np.unique(np.linspace(0, size - 1, min(size, TRAVERSAL_STEPS)).round().astype(int))
    rows = np.repeat(base[None], len(steps), axis=0)
    rows[:, k] = steps
    return rows


def show_dataset(dataset: GroundTruthDataset, path: str | Path, seed: int = 0) -> Path:
    """Write the sample grid and the per-factor traversals of ``dataset`` to ``path`` (PNG)."""
    rng = np.random.default_rng(seed)
    samples = dataset.render(dataset.sample_factors(SAMPLE_ROWS * TRAVERSAL_STEPS, rng))
    base = dataset.sample_factors(1, rng)[0]
    rows = [(f"samples ({dataset.kind})", samples[i::SAMPLE_ROWS]) for i in range(SAMPLE_ROWS)]
    for k, name in enumerate(dataset.factor_names):
        images = dataset.render(traversal_factors(dataset, base, k))
        rows.append((f"{name} ({dataset.factor_sizes[k]})", images))

    fig, axes = plt.subplots(
        len(rows), TRAVERSAL_STEPS, figsize=(TRAVERSAL_STEPS * 0.9 + 1.2, len(rows) * 0.9 + 0.4)
    )
    for r, (label, images) in enumerate(rows):
        for c in range(TRAVERSAL_STEPS):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(images):
                img = np.clip(images[c].transpose(1, 2, 0), 0.0, 1.0)
                ax.imshow(img[..., 0] if img.shape[2] == 1 else img, cmap="gray", vmin=0, vmax=1)
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(f"{dataset.name}: samples, then one factor traversed per row", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``disbench datasets show``."""
    parser.add_argument("name", help="registered dataset name (see `disbench list`)")
    parser.add_argument(
        "--out", type=Path, default=None, help=f"PNG path (default {DEFAULT_DIR}/<name>.png)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the samples (default 0)")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dataset keyword parameter, repeatable (e.g. --param distribution=gaussian)",
    )


def parse_params(items: list[str]) -> dict[str, object]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` (TOML values, else strings)."""
    params: dict[str, object] = {}
    for item in items:
        keys, value = parse_override(item, "--param", "distribution=gaussian")
        if len(keys) != 1:
            raise ValueError(f"--param {item!r}: expected KEY=VALUE with a plain key")
        params[keys[0]] = value
    return params


def run(args: argparse.Namespace) -> int:
    """Build the dataset, write its PNG, print the path; one-line error and 2 on bad input."""
    try:
        from disbench.registry import DATASETS  # the CLI imports the registry only when it runs

        params = parse_params(args.param)
        factory = DATASETS.get(args.name)
        try:
            dataset = factory(**params)
        except TypeError as exc:
            raise ValueError(f"dataset {args.name!r}: bad --param ({exc})") from exc
        suffix = "".join(f"-{k}={v}" for k, v in params.items())
        out = args.out or DEFAULT_DIR / f"{args.name}{suffix}.png"
        path = show_dataset(dataset, out, seed=args.seed)
    except (RegistryError, ValueError) as exc:
        print(f"disbench datasets show: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0
