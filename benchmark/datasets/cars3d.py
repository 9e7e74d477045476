"""``cars3d``: the published Cars3D files (Reed et al. 2015).

Files: ``<data_dir>/cars/car_*_mesh.mat``, 183 MATLAB files, each holding ``im`` uint8
[128, 128, 3, 24, 4] (height, width, RGB, azimuth, elevation). Factors as in
disentanglement_lib: elevation 4, azimuth 24, car 183, row-major. Cars are numbered in the
sorted order of their file names (disentanglement_lib used the directory listing's order, which
the file system decides). Images are resized to 64x64 with a Lanczos filter on load, as in
disentanglement_lib, and kept in memory (216 MB).
"""

from __future__ import annotations

import os
from typing import ClassVar

import numpy as np
import scipy.io
from PIL import Image

from disbench.api import register
from disbench.datasets._files import (
    DatasetFileError,
    PublishedDataset,
    PublishedFile,
    check_array,
    fail,
    resolve_data_dir,
    where_hint,
)

SOURCE = "http://www.scottreed.info (the 'cars' folder of the Deep Visual Analogy-Making data)"
MESH_SHAPE = (128, 128, 3, 24, 4)


@register
class Cars3D(PublishedDataset):
    """Cars3D read from the published per-car ``.mat`` files."""

    name: ClassVar[str] = "cars3d"

    description: ClassVar[str] = (
        "published Cars3D files (elevation 4, azimuth 24, car 183); resized to 64x64x3"
    )
    num_cars: ClassVar[int] = 183
    files: ClassVar[tuple[PublishedFile, ...]] = (
        PublishedFile(
            "http://www.scottreed.info/files/nips2015-analogy-data.tar.gz",
            "cars",
            "md5:4e866a7919c1beedf53964e6f7a23686",
            "disent, Cars3dData.datafile (full-file MD5 of the archive)",
            extract="data/cars",
        ),
    )

    def __init__(self, data_dir: str | os.PathLike[str] | None = None) -> None:
        self.factor_names = ("elevation", "azimuth", "object_type")
        self.factor_sizes = (4, 24, self.num_cars)
        self.observation_shape = (3, 64, 64)
        root = resolve_data_dir(data_dir)
        files = sorted((root / "cars").glob("car_*_mesh.mat"))
        if len(files) != self.num_cars:
            raise DatasetFileError(
                f"cars3d: found {len(files)} files matching {root / 'cars' / 'car_*_mesh.mat'}; "
                f"expected {self.num_cars} from {SOURCE}; run `disbench datasets fetch cars3d "
                f"--data-dir {root}`, or " + where_hint("cars/car_*_mesh.mat")
            )
        images = np.empty((4, 24, self.num_cars, 64, 64, 3), np.uint8)
        for car, path in enumerate(files):
            try:
                mesh = scipy.io.loadmat(path)["im"]
            except KeyError:
                raise fail(self.name, path, "no variable 'im'", "a .mat with 'im'") from None
            except (ValueError, OSError, TypeError) as exc:
                raise fail(self.name, path, f"unreadable ({exc})", "a MATLAB .mat file") from None
            check_array(self.name, path, "im", mesh.shape, mesh.dtype, MESH_SHAPE, "uint8")
            for a in range(24):
                for e in range(4):
                    images[e, a, car] = resize(mesh[:, :, :, a, e])
        self.images = images.reshape(-1, 64, 64, 3)


def resize(image: np.ndarray, size: int = 64) -> np.ndarray:
    """Lanczos resize of a uint8 image [H, W(, C)], as disentanglement_lib does with PIL."""
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.LANCZOS))
