"""MPI3D (Gondal et al. 2019): ``mpi3d_toy``, ``mpi3d_realistic``, ``mpi3d_real`` files.

File: ``<data_dir>/<name>/<name>.npz`` with ``images`` uint8 [1036800, 64, 64, 3]; factors object
colour 6, object shape 6, object size 2, camera height 3, background colour 3, horizontal axis
40, vertical axis 40, in that order, the last varying fastest. The 460,800-image release that
disentanglement_lib was written for (4 colours, 4 shapes) is recognised by its length. A
member stored uncompressed (``np.savez``) is memory-mapped; a compressed one is read into memory.
"""

from __future__ import annotations

import os
from math import prod
from typing import ClassVar

from disbench.api import register
from disbench.datasets._files import (
    NpzMember,
    PublishedDataset,
    PublishedFile,
    describe,
    fail,
    require_file,
    resolve_data_dir,
)

FACTOR_NAMES = (
    "object_color",
    "object_shape",
    "object_size",
    "camera_height",
    "background_color",
    "horizontal_axis",
    "vertical_axis",
)
SOURCE = "https://github.com/rr-learning/disentanglement_dataset"
# Full-file MD5s of the official .npz files, as disent pins them (Mpi3dData.MPI3D_DATASETS).
MD5 = {
    "mpi3d_toy": "55889cb7c7dfc655d6e0277beee88868",
    "mpi3d_realistic": "59a6225b88b635365f70c91b3e52f70f",
    "mpi3d_real": "0f33f609918fb5c97996692f91129802",
}


def published_file(name: str) -> PublishedFile:
    return PublishedFile(
        f"https://storage.googleapis.com/disentanglement_dataset/Final_Dataset/{name}.npz",
        f"{name}/{name}.npz",
        f"md5:{MD5[name]}",
        "disent, Mpi3dData.MPI3D_DATASETS",
    )


class MPI3D(PublishedDataset):
    """One MPI3D variant read from its published ``.npz``."""

    layouts: ClassVar[tuple[tuple[int, ...], ...]] = (
        (6, 6, 2, 3, 3, 40, 40),
        (4, 4, 2, 3, 3, 40, 40),
    )

    def __init__(self, data_dir: str | os.PathLike[str] | None = None) -> None:
        self.factor_names = FACTOR_NAMES
        self.observation_shape = (3, 64, 64)
        sizes = self.layouts[0]
        path = require_file(
            self.name,
            resolve_data_dir(data_dir),
            f"{self.name}/{self.name}.npz",
            f"the {self.name} archive (images {describe('uint8', (prod(sizes), 64, 64, 3))})",
            SOURCE,
            fetchable=True,
        )
        images = NpzMember(self.name, path, "images")
        shapes = {(prod(s), 64, 64, 3): s for s in self.layouts}
        shapes.update({(*s, 64, 64, 3): s for s in self.layouts})
        if images.shape not in shapes or images.dtype != "uint8":
            wanted = " or ".join(describe("uint8", (prod(s), 64, 64, 3)) for s in self.layouts)
            raise fail(
                self.name,
                path,
                f"'images' is {describe(images.dtype.name, images.shape)}",
                f"'images' {wanted} as in the published file",
            )
        self.factor_sizes = shapes[images.shape]
        self.images = images.load().reshape(-1, 64, 64, 3)


@register
class MPI3DToy(MPI3D):
    name: ClassVar[str] = "mpi3d_toy"
    files: ClassVar[tuple[PublishedFile, ...]] = (published_file("mpi3d_toy"),)
    description: ClassVar[str] = "published MPI3D-toy file (7 factors, 6x6x2x3x3x40x40); 64x64x3"


@register
class MPI3DRealistic(MPI3D):
    name: ClassVar[str] = "mpi3d_realistic"
    files: ClassVar[tuple[PublishedFile, ...]] = (published_file("mpi3d_realistic"),)
    description: ClassVar[str] = "published MPI3D-realistic file (7 factors); 64x64x3"


@register
class MPI3DReal(MPI3D):
    name: ClassVar[str] = "mpi3d_real"
    files: ClassVar[tuple[PublishedFile, ...]] = (published_file("mpi3d_real"),)
    description: ClassVar[str] = "published MPI3D-real file (7 factors); 64x64x3"
