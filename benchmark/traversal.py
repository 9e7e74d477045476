"""Reconstruction and latent-traversal images for representations that can decode."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from disbench.api import GroundTruthDataset


def traversal_grid(
    rep: object, dataset: GroundTruthDataset, seed: int, columns: int = 8
) -> tuple[np.ndarray, list[str]]:
    """Rows: inputs, reconstructions, then one row per latent traversed over [-2, 2]
    around the first input's code. Returns the image [rows*H, columns*W, C] and row labels."""
    _, x = dataset.sample(columns, np.random.default_rng(seed))
    codes = np.asarray(rep.encode(x), dtype=np.float32)  # type: ignore[attr-defined]
    rows = [x, rep.decode(codes)]  # type: ignore[attr-defined]
    labels = ["input", "recon"]
    values = np.linspace(-2.0, 2.0, columns, dtype=np.float32)
    for d in range(codes.shape[1]):
        z = np.repeat(codes[:1], columns, axis=0)
        z[:, d] = values
        rows.append(rep.decode(z))  # type: ignore[attr-defined]
        labels.append(f"z{d}")
    tiles = np.stack([np.clip(np.asarray(r, dtype=np.float32), 0, 1) for r in rows])
    n_rows, n_cols, c, h, w = tiles.shape
    image = tiles.transpose(0, 3, 1, 4, 2).reshape(n_rows * h, n_cols * w, c)
    return image, labels


def write_traversal_png(rep: object, dataset: GroundTruthDataset, path: Path, seed: int) -> Path:
    """Save the grid of :func:`traversal_grid` with row labels as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    image, labels = traversal_grid(rep, dataset, seed)
    h = dataset.observation_shape[1]
    fig, ax = plt.subplots(figsize=(image.shape[1] / 64 + 0.8, image.shape[0] / 64))
    ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1)
    ax.set_yticks([h * (i + 0.5) for i in range(len(labels))], labels, fontsize=7)
    ax.set_xticks([])
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return path
