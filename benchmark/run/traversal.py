"""Reconstruction, latent-traversal and content/style transfer images for representations
that can decode."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from disbench.api import ContentStyle, GroundTruthDataset


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


def transfer_grid(
    rep: ContentStyle, dataset: GroundTruthDataset, seed: int, n: int = 6
) -> np.ndarray:
    """Row 0: the style sources; column 0: the content sources; cell (i, j): the content of
    row i's image with the style of column j's. Returns the image [(n+1)*H, (n+1)*W, C]."""
    _, x = dataset.sample(2 * n, np.random.default_rng(seed))
    codes = np.asarray(rep.encode(x), dtype=np.float32)
    content, style = codes[:n, : rep.content_dims], codes[n:, rep.content_dims :]
    mixed = np.concatenate(
        [np.repeat(content, n, axis=0), np.tile(style, (n, 1))], axis=1
    )  # row i, column j at i * n + j
    out = np.asarray(rep.decode(mixed), dtype=np.float32).reshape(n, n, *x.shape[1:])
    blank = np.zeros((1, *x.shape[1:]), dtype=np.float32)
    rows = [np.concatenate([blank, x[n:]])]
    rows += [np.concatenate([x[i : i + 1], out[i]]) for i in range(n)]
    tiles = np.clip(np.stack(rows), 0, 1)
    n_rows, n_cols, c, h, w = tiles.shape
    return tiles.transpose(0, 3, 1, 4, 2).reshape(n_rows * h, n_cols * w, c)


def write_transfer_png(
    rep: ContentStyle, dataset: GroundTruthDataset, path: Path, seed: int
) -> Path:
    """Save :func:`transfer_grid` as a PNG."""
    return _save(
        transfer_grid(rep, dataset, seed),
        path,
        "content from the left column, style from the top row",
        [],
        dataset.observation_shape[1],
    )


def write_traversal_png(rep: object, dataset: GroundTruthDataset, path: Path, seed: int) -> Path:
    """Save the grid of :func:`traversal_grid` with row labels as a PNG."""
    image, labels = traversal_grid(rep, dataset, seed)
    return _save(image, path, "", labels, dataset.observation_shape[1])


def _save(image: np.ndarray, path: Path, title: str, labels: list[str], h: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(image.shape[1] / 64 + 0.8, image.shape[0] / 64 + 0.3))
    ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1)
    ax.set_yticks([h * (i + 0.5) for i in range(len(labels))], labels, fontsize=7)
    ax.set_xticks([])
    if title:
        ax.set_title(title, fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return path
