"""``dsprites``: the published dSprites file (Matthey et al. 2017).

File: ``<data_dir>/dsprites/dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` with ``imgs`` uint8
[737280, 64, 64] (0/1), ``latents_classes`` int64 [737280, 6] and ``latents_values`` float64
[737280, 6] (``metadata`` is not read: it is a pickle, and nothing in it is needed); or the
same data as the published HDF5 release (``.hdf5``: ``imgs``, ``latents/classes``,
``latents/values``), which ``disbench datasets fetch dsprites`` downloads because
tensorflow_datasets pins its checksum. Factors as
in disentanglement_lib's ``dsprites_full``: the constant colour dropped, then shape 3, scale 6,
orientation 40, posX 32, posY 32, in the file's row-major order (checked against
``latents_classes`` on load). The images are streamed out of the archive once and kept as
packed bits (47 MB instead of 3 GB).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import h5py
import numpy as np

from disbench.api import register
from disbench.datasets._files import (
    NpzMember,
    PublishedDataset,
    PublishedFile,
    check_array,
    fail,
    read_rows,
    require_file,
    resolve_data_dir,
)
from disbench.datasets.proc_dsprites import FACTOR_NAMES, dsprites_factor_values

RELATIVE_PATH = "dsprites/dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
HDF5_PATH = "dsprites/dsprites_ndarray_co1sh3sc6or40x32y32_64x64.hdf5"
SOURCE = "https://github.com/deepmind/dsprites-dataset"


@register
class DSprites(PublishedDataset):
    """dSprites read from the published ``.npz``."""

    name: ClassVar[str] = "dsprites"

    description: ClassVar[str] = (
        "published dSprites file (shape 3, scale 6, orientation 40, posX 32, posY 32); 64x64x1"
    )
    published_sizes: ClassVar[tuple[int, ...]] = (3, 6, 40, 32, 32)
    pixel_scale: ClassVar[float] = 1.0
    files: ClassVar[tuple[PublishedFile, ...]] = (
        PublishedFile(
            "https://github.com/deepmind/dsprites-dataset/blob/master/"
            "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.hdf5?raw=true",
            HDF5_PATH,
            "sha256:729fa22e884c9c500e1f17415d580746b4c5894fbbb780a1319bbcfa39a745bb",
            "tensorflow_datasets, url_checksums/dsprites.txt",
            size=28_024_106,
        ),
    )

    def __init__(self, data_dir: str | os.PathLike[str] | None = None) -> None:
        self.factor_names = FACTOR_NAMES
        self.factor_sizes = self.published_sizes
        self.observation_shape = (1, 64, 64)
        n = self.num_observations
        root = resolve_data_dir(data_dir)
        if (root / HDF5_PATH).is_file() and not (root / RELATIVE_PATH).is_file():
            path = root / HDF5_PATH
            imgs, classes = H5Array(path, "imgs"), H5Array(path, "latents/classes")
        else:
            path = require_file(
                self.name,
                root,
                RELATIVE_PATH,
                "the dSprites archive (imgs uint8 [737280, 64, 64]) or its .hdf5 release",
                SOURCE,
                fetchable=True,
            )
            imgs, classes = (
                NpzMember(self.name, path, "imgs"),
                NpzMember(self.name, path, "latents_classes"),
            )
        check_array(self.name, path, "imgs", imgs.shape, imgs.dtype, (n, 64, 64), "uint8")
        check_array(
            self.name, path, "latents_classes", classes.shape, classes.dtype, (n, 6), "int64"
        )
        if not np.array_equal(classes.load()[:, 1:], self.factors_of(np.arange(n))):
            raise fail(
                self.name,
                path,
                "latents_classes are not in row-major factor order",
                "the published row order (posY fastest)",
            )
        packed = []
        for block in imgs.chunks(rows=8192):
            if block.max(initial=0) > 1:
                raise fail(self.name, path, "'imgs' holds values above 1", "binary 0/1 images")
            packed.append(np.packbits(block, axis=-1))
        self.images = np.concatenate(packed)  # [n, 64, 8] bits

    def factor_values(self, factors: np.ndarray) -> np.ndarray:
        return dsprites_factor_values(factors)

    def image_rows(self, factors: np.ndarray) -> np.ndarray:
        return np.unpackbits(read_rows(self.images, self.index_of(factors)), axis=-1)


class H5Array:
    """An array of the HDF5 release, read the way ``NpzMember`` reads the ``.npz``."""

    def __init__(self, path: Path, key: str) -> None:
        self.path, self.key = path, key
        with h5py.File(path, "r") as f:
            self.shape, self.dtype = f[key].shape, f[key].dtype

    def load(self) -> np.ndarray:
        with h5py.File(self.path, "r") as f:
            return f[self.key][()]

    def chunks(self, rows: int) -> Iterator[np.ndarray]:
        with h5py.File(self.path, "r") as f:
            for start in range(0, self.shape[0], rows):
                yield f[self.key][start : start + rows]
