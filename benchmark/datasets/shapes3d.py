"""``shapes3d``: the published 3D Shapes file (Burgess & Kim 2018).

File: ``<data_dir>/3dshapes/3dshapes.h5`` with ``images`` uint8 [480000, 64, 64, 3] and ``labels``
float64 [480000, 6]; factors floor hue 10, wall hue 10, object hue 10, scale 8, shape 4,
orientation 15 in that order, the last varying fastest (disentanglement_lib's order; it read an
older ``.npz`` export of the same grid). Images are read lazily through h5py; on load a sample
of the labels is checked against the row-major grid.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import h5py
import numpy as np

from disbench.api import register
from disbench.datasets._files import (
    PublishedDataset,
    PublishedFile,
    check_array,
    fail,
    require_file,
    resolve_data_dir,
)
from disbench.datasets.proc_shapes3d import FACTOR_NAMES, shapes3d_factor_values

RELATIVE_PATH = "3dshapes/3dshapes.h5"
SOURCE = "https://github.com/deepmind/3d-shapes (gs://3d-shapes/3dshapes.h5)"
LABEL_CHECKS = 1000  # evenly spaced rows whose labels must match the grid


class H5Rows:
    """An h5py dataset opened on first use, so the dataset object can cross processes."""

    def __init__(self, path: Path, key: str) -> None:
        self.path, self.key = path, key
        self._handle: Any = None

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        if self._handle is None:
            self._handle = h5py.File(self.path, "r")
        return self._handle[self.key][index]

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "key": self.key, "_handle": None}


@register
class Shapes3D(PublishedDataset):
    """3D Shapes read from the published ``.h5``."""

    name: ClassVar[str] = "shapes3d"

    description: ClassVar[str] = (
        "published 3D Shapes file (floor/wall/object hue 10, scale 8, shape 4, orientation 15); "
        "64x64x3"
    )
    published_sizes: ClassVar[tuple[int, ...]] = (10, 10, 10, 8, 4, 15)
    files: ClassVar[tuple[PublishedFile, ...]] = (
        PublishedFile(
            "https://storage.googleapis.com/3d-shapes/3dshapes.h5",
            RELATIVE_PATH,
            "sha256:0a0f6ed98baff276a50f3a081a7434d788da63cb135a98189b2a5b5769be1785",
            "tensorflow_datasets, url_checksums/shapes3d.txt",
            size=267_573_662,
        ),
    )

    def __init__(self, data_dir: str | os.PathLike[str] | None = None) -> None:
        self.factor_names = FACTOR_NAMES
        self.factor_sizes = self.published_sizes
        self.observation_shape = (3, 64, 64)
        n = self.num_observations
        path = require_file(
            self.name,
            resolve_data_dir(data_dir),
            RELATIVE_PATH,
            "the 3D Shapes HDF5 file (images uint8 [480000, 64, 64, 3])",
            SOURCE,
            fetchable=True,
        )
        try:
            with h5py.File(path, "r") as f:
                for key in ("images", "labels"):
                    if key not in f:
                        raise fail(self.name, path, f"no dataset {key!r}", "'images' and 'labels'")
                images, labels = f["images"], f["labels"]
                check_array(
                    self.name, path, "images", images.shape, images.dtype, (n, 64, 64, 3), "uint8"
                )
                check_array(
                    self.name, path, "labels", labels.shape, labels.dtype, (n, 6), "float64"
                )
                rows = np.unique(np.linspace(0, n - 1, LABEL_CHECKS).astype(np.int64))
                sample = labels[rows]
                images[n - 1]  # the last image is readable: the file is not truncated
        except OSError as exc:
            raise fail(self.name, path, f"unreadable ({exc})", "a complete HDF5 file") from None
        if not np.allclose(sample, shapes3d_factor_values(self.factors_of(rows)), atol=1e-4):
            raise fail(
                self.name,
                path,
                "labels do not follow the row-major factor grid",
                "the published row order (orientation fastest)",
            )
        self.images = H5Rows(path, "images")

    def factor_values(self, factors: np.ndarray) -> np.ndarray:
        return shapes3d_factor_values(factors)
