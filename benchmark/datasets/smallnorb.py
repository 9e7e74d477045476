"""``smallnorb``: the published SmallNORB files (LeCun et al. 2004).

Files: ``<data_dir>/small_norb/smallnorb-5x46789x9x18x6x2x96x96-training-{dat,cat,info}.mat``
and the same with ``5x01235x9x18x6x2x96x96-testing``, in NORB's binary matrix format: an int32
magic number (0x1E3D4C55 bytes, 0x1E3D4C54 int32), an int32 rank, max(3, rank) int32 dimensions,
then the data, little-endian. ``dat`` is uint8 [24300, 2, 96, 96] (stereo pairs), ``cat`` int32
[24300] (category), ``info`` int32 [24300, 4] (instance, elevation, azimuth 0, 2, ..., 34,
lighting). As in disentanglement_lib the left image is resized to 64x64 (Lanczos), the factors
are category 5, elevation 9, azimuth 18, lighting 6, and the instance (10 per category) is not a
factor: each observation shows an instance drawn at random, here from the dataset's own
generator seeded by ``seed`` (so a run is reproducible). disentanglement_lib reads the pixel
matrix as int8; NORB's format says unsigned bytes, which is what is used here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import numpy as np

from disbench.api import register
from disbench.datasets._files import (
    PublishedDataset,
    PublishedFile,
    describe,
    fail,
    require_file,
    resolve_data_dir,
)
from disbench.datasets.cars3d import resize

SOURCE = "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/"
CHUNKS = ("5x46789x9x18x6x2x96x96-training", "5x01235x9x18x6x2x96x96-testing")
# (chunk, part) -> (size, sha256) of the gzipped files, as tensorflow_datasets pins them.
PINNED = {
    (CHUNKS[0], "dat"): (
        131_896_188,
        "5ffd6272a07d32695ee1082a26a41a93a37aab8c28da047f8c34ed348d214873",
    ),
    (CHUNKS[0], "cat"): (348, "2784e542c1922060691090952b6cd6278879a216c90f81476f0f00256d42cdaa"),
    (CHUNKS[0], "info"): (
        71_052,
        "de7eb932ebe7a4ee16217fead60660d0eb3d23632c2f4d1c51f88c501c17bf32",
    ),
    (CHUNKS[1], "dat"): (
        130_799_817,
        "cf7104eed3e51174d2f65b66d1e5878b9da233b886f161b0d88f4510ba2c7474",
    ),
    (CHUNKS[1], "cat"): (347, "ecaf6d5bb8c3bc5eab9cf0258f6d2198dd474e016e374836fc097f2e5ff509ff"),
    (CHUNKS[1], "info"): (
        10_428,
        "16adf314226327ee006d1a44db8cfef52773c06c829951d5653a9f6f310248a2",
    ),
}
MAGIC = {507333717: "uint8", 507333716: "int32"}


def read_norb_matrix(dataset: str, path: Path, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """A NORB binary matrix, checked against the expected dtype and shape."""
    expected = f"a NORB {describe(dtype, shape)} matrix"
    raw = np.memmap(path, np.uint8, "r")
    if len(raw) < 20:
        raise fail(dataset, path, f"only {len(raw)} bytes", expected)
    magic, rank = (int(x) for x in raw[:8].view("<i4"))
    if MAGIC.get(magic) != dtype:
        raise fail(dataset, path, f"magic number {magic:#x}", expected)
    header = 8 + 4 * max(3, rank)
    dims = tuple(int(x) for x in raw[8:header].view("<i4")[:rank])
    if dims != shape:
        raise fail(dataset, path, f"dimensions {list(dims)}", expected)
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if len(raw) != header + nbytes:
        raise fail(
            dataset, path, f"{len(raw)} bytes (truncated or padded)", f"{header + nbytes} bytes"
        )
    return raw[header:].view(np.dtype(dtype).newbyteorder("<")).reshape(shape)


@register
class SmallNORB(PublishedDataset):
    """SmallNORB read from the published binary ``.mat`` files; the instance is a nuisance."""

    name: ClassVar[str] = "smallnorb"
    files: ClassVar[tuple[PublishedFile, ...]] = tuple(
        PublishedFile(
            f"{SOURCE}smallnorb-{chunk}-{part}.mat.gz",
            f"small_norb/smallnorb-{chunk}-{part}.mat",
            f"sha256:{sha256}",
            "tensorflow_datasets, url_checksums/smallnorb.txt",
            size=size,
            gunzip=True,
        )
        for (chunk, part), (size, sha256) in PINNED.items()
    )

    description: ClassVar[str] = (
        "published SmallNORB files (category 5, elevation 9, azimuth 18, lighting 6; random "
        "instance); resized to 64x64x1"
    )
    # category, instance, elevation, azimuth, lighting: the full grid over both files
    published_grid: ClassVar[tuple[int, ...]] = (5, 10, 9, 18, 6)

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, seed: int = 0) -> None:
        self.factor_names = ("category", "elevation", "azimuth", "lighting")
        grid = self.published_grid
        self.factor_sizes = (grid[0], grid[2], grid[3], grid[4])
        self.observation_shape = (1, 64, 64)
        self.rng = np.random.default_rng(seed)
        root = resolve_data_dir(data_dir)
        rows = int(np.prod(grid)) // len(CHUNKS)
        images, labels = [], []
        for chunk in CHUNKS:
            path = {}
            for part in ("dat", "cat", "info"):
                relative = f"small_norb/smallnorb-{chunk}-{part}.mat"
                what = f"the SmallNORB {chunk} {part} file"
                path[part] = require_file(self.name, root, relative, what, SOURCE, True)
            dat = read_norb_matrix(self.name, path["dat"], "uint8", (rows, 2, 96, 96))
            cat = read_norb_matrix(self.name, path["cat"], "int32", (rows,))
            info = read_norb_matrix(self.name, path["info"], "int32", (rows, 4))
            label = np.column_stack([cat, info]).astype(np.int64)
            label[:, 3] //= 2  # azimuth is stored as 0, 2, ..., 34
            if (label < 0).any() or (label >= np.array(grid)).any():
                raise fail(
                    self.name, path["info"], "labels out of range", f"values below {list(grid)}"
                )
            images.append(np.stack([resize(img) for img in dat[:, 0]]))
            labels.append(label)
        label = np.concatenate(labels)
        # lookup[category, instance, elevation, azimuth, lighting] -> row of self.images
        self.lookup = np.full(grid, -1, np.int64)
        self.lookup[tuple(label.T)] = np.arange(len(label))
        if (self.lookup < 0).any():
            raise fail(
                self.name,
                root / "small_norb",
                "some (category, instance, elevation, azimuth, lighting) never appears",
                "each combination exactly once over the training and testing files",
            )
        self.images = np.concatenate(images)

    def image_rows(self, factors: np.ndarray) -> np.ndarray:
        instance = self.rng.integers(0, self.published_grid[1], size=len(factors))
        f = np.asarray(factors)
        return self.images[self.lookup[f[:, 0], instance, f[:, 1], f[:, 2], f[:, 3]]]
