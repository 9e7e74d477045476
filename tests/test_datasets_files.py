"""Loaders of the published files, on small files written in exactly the published format.

The published files are gigabytes, so each test shrinks the factor grid through a subclass
(the loaders take the grid from a class attribute) and writes a file with the same keys,
dtypes, axis order and row order; everything else is the real loading code.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from disbench.datasets._files import ENV_VAR, DatasetFileError
from disbench.datasets.cars3d import Cars3D
from disbench.datasets.dsprites import DSprites
from disbench.datasets.mpi3d import MPI3DReal, MPI3DToy
from disbench.datasets.proc_dsprites import dsprites_factor_values
from disbench.datasets.proc_shapes3d import shapes3d_factor_values
from disbench.datasets.shapes3d import Shapes3D
from disbench.datasets.smallnorb import CHUNKS, SmallNORB
from disbench.registry import DATASETS


def grid(sizes: tuple[int, ...]) -> np.ndarray:
    """Every factor vector in row-major order (last factor fastest), int64 [N, K]."""
    return np.stack(np.unravel_index(np.arange(np.prod(sizes)), sizes), axis=1).astype(np.int64)


def truncate(path: Path, keep: float = 0.6) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_published_names_and_kinds():
    for name in ("dsprites", "shapes3d", "mpi3d_toy", "mpi3d_realistic", "mpi3d_real"):
        assert DATASETS.get(name).kind == "published"
    for name in ("cars3d", "smallnorb"):
        assert DATASETS.get(name).kind == "published"
    for name in ("proc_dsprites", "proc_shapes3d", "isometric_manifold"):
        assert DATASETS.get(name).kind == "procedural"


def test_missing_file_names_file_and_where(tmp_path, monkeypatch):
    with pytest.raises(DatasetFileError) as err:
        DSprites(data_dir=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg
    assert str(tmp_path / "dsprites" / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz") in msg
    assert "--data-dir" in msg and ENV_VAR in msg
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "elsewhere"))
    for name in ("shapes3d", "mpi3d_toy", "cars3d", "smallnorb"):
        with pytest.raises(DatasetFileError, match=f"{name}: .*elsewhere"):
            DATASETS.get(name)()


# ----- dSprites ---------------------------------------------------------------------------


class TinyDSprites(DSprites):
    published_sizes = (3, 2, 4, 2, 2)


def write_dsprites(root: Path, imgs=None, classes=None, compress=True) -> Path:
    sizes = TinyDSprites.published_sizes
    f = grid(sizes)
    n = len(f)
    if imgs is None:
        imgs = (np.random.default_rng(0).random((n, 64, 64)) < 0.1).astype(np.uint8)
    if classes is None:
        classes = np.column_stack([np.zeros(n, np.int64), f])
    values = np.column_stack([np.ones(n), dsprites_factor_values(f)])
    meta = {"latents_sizes": np.array([1, *sizes]), "title": "dSprites dataset"}
    path = root / "dsprites" / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    save = np.savez_compressed if compress else np.savez
    save(path, imgs=imgs, latents_values=values, latents_classes=classes, metadata=meta)
    return path


@pytest.mark.parametrize("compress", [True, False])
def test_dsprites_reads_rows_in_factor_order(tmp_path, compress):
    write_dsprites(tmp_path, compress=compress)
    imgs = np.load(tmp_path / "dsprites" / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz")["imgs"]
    ds = TinyDSprites(data_dir=tmp_path)
    assert ds.factor_names == ("shape", "scale", "orientation", "posX", "posY")
    f = np.array([[2, 1, 3, 0, 1], [0, 0, 0, 0, 0], [1, 1, 2, 1, 0]])
    rows = (((f[:, 0] * 2 + f[:, 1]) * 4 + f[:, 2]) * 2 + f[:, 3]) * 2 + f[:, 4]
    obs = ds.render(f)
    assert obs.shape == (3, 1, 64, 64) and obs.dtype == np.float32
    np.testing.assert_array_equal(obs[:, 0], imgs[rows].astype(np.float32))
    np.testing.assert_allclose(ds.factor_values(f)[0], [3, 0.6, 3 * 2 * np.pi / 39, 0, 1 / 31])


def test_dsprites_real_grid_is_published_grid():
    assert DSprites.published_sizes == (3, 6, 40, 32, 32)


def test_dsprites_rejects_corrupt_files(tmp_path):
    path = write_dsprites(tmp_path)
    truncate(path)
    with pytest.raises(DatasetFileError, match=r"dsprites: .*\.npz"):
        TinyDSprites(data_dir=tmp_path)

    n = int(np.prod(TinyDSprites.published_sizes))
    write_dsprites(tmp_path, imgs=np.zeros((n, 32, 32), np.uint8))
    with pytest.raises(
        DatasetFileError,
        match=r"'imgs' is uint8 \[96, 32, 32\]; expected 'imgs' uint8 \[96, 64, 64\]",
    ):
        TinyDSprites(data_dir=tmp_path)

    classes = np.column_stack([np.zeros(n, np.int64), grid(TinyDSprites.published_sizes)])
    write_dsprites(tmp_path, classes=classes[::-1].copy())
    with pytest.raises(DatasetFileError, match="row-major factor order"):
        TinyDSprites(data_dir=tmp_path)

    write_dsprites(tmp_path, imgs=np.full((n, 64, 64), 255, np.uint8))
    with pytest.raises(DatasetFileError, match="binary"):
        TinyDSprites(data_dir=tmp_path)


# ----- 3D Shapes --------------------------------------------------------------------------


class TinyShapes3D(Shapes3D):
    published_sizes = (2, 2, 2, 2, 4, 3)


def write_shapes3d(root: Path, images=None, labels=None) -> Path:
    f = grid(TinyShapes3D.published_sizes)
    if images is None:
        images = np.random.default_rng(1).integers(0, 256, (len(f), 64, 64, 3), dtype=np.uint8)
    if labels is None:
        labels = shapes3d_factor_values(f)
    path = root / "3dshapes" / "3dshapes.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as h5:
        h5.create_dataset("images", data=images)
        h5.create_dataset("labels", data=labels)
    return path


def test_shapes3d_reads_rows_in_factor_order(tmp_path):
    path = write_shapes3d(tmp_path)
    with h5py.File(path) as h5:
        images = h5["images"][:]
    ds = TinyShapes3D(data_dir=tmp_path)
    f = np.array([[1, 0, 1, 1, 3, 2], [0, 0, 0, 0, 0, 0], [1, 0, 1, 1, 3, 2]])
    rows = ((((f[:, 0] * 2 + f[:, 1]) * 2 + f[:, 2]) * 2 + f[:, 3]) * 4 + f[:, 4]) * 3 + f[:, 5]
    obs = ds.render(f)
    assert obs.shape == (3, 3, 64, 64)
    np.testing.assert_allclose(obs, images[rows].transpose(0, 3, 1, 2) / 255.0, atol=1e-7)
    assert ds.factor_names[0] == "floor_hue" and ds.factor_names[-1] == "orientation"


def test_shapes3d_rejects_corrupt_files(tmp_path):
    n = int(np.prod(TinyShapes3D.published_sizes))
    write_shapes3d(tmp_path, images=np.zeros((n, 64, 64, 3), np.float32))
    with pytest.raises(DatasetFileError, match=r"'images' is float32 .* expected 'images' uint8"):
        TinyShapes3D(data_dir=tmp_path)

    labels = shapes3d_factor_values(grid(TinyShapes3D.published_sizes))[::-1].copy()
    write_shapes3d(tmp_path, labels=labels)
    with pytest.raises(DatasetFileError, match="row-major factor grid"):
        TinyShapes3D(data_dir=tmp_path)

    truncate(write_shapes3d(tmp_path))
    with pytest.raises(DatasetFileError, match=r"shapes3d: .*3dshapes\.h5"):
        TinyShapes3D(data_dir=tmp_path)


# ----- MPI3D ------------------------------------------------------------------------------

TINY_MPI3D = (2, 2, 2, 3, 3, 2, 2)


class TinyMPI3DToy(MPI3DToy):
    layouts = (TINY_MPI3D, (1, 2, 2, 3, 3, 2, 2))


class TinyMPI3DReal(MPI3DReal):
    layouts = (TINY_MPI3D,)


def write_mpi3d(root: Path, name: str, images: np.ndarray, compress: bool) -> Path:
    path = root / name / f"{name}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    (np.savez_compressed if compress else np.savez)(path, images=images)
    return path


@pytest.mark.parametrize("compress", [False, True])
def test_mpi3d_reads_rows_in_factor_order(tmp_path, compress):
    n = int(np.prod(TINY_MPI3D))
    images = np.random.default_rng(2).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
    write_mpi3d(tmp_path, "mpi3d_toy", images, compress)
    ds = TinyMPI3DToy(data_dir=tmp_path)
    assert ds.factor_sizes == TINY_MPI3D
    assert isinstance(ds.images, np.memmap) == (not compress)
    f = grid(TINY_MPI3D)[[5, 100, 287]]
    np.testing.assert_allclose(
        ds.render(f), images[[5, 100, 287]].transpose(0, 3, 1, 2) / 255.0, atol=1e-7
    )
    # The second layout of the same variant is recognised by its length. (A new directory:
    # rewriting a memory-mapped file in place would pull the pages from under ``ds``.)
    write_mpi3d(tmp_path / "half", "mpi3d_toy", images[: n // 2], compress)
    assert TinyMPI3DToy(data_dir=tmp_path / "half").factor_sizes == (1, 2, 2, 3, 3, 2, 2)
    # The 10-d export (grid axes kept) reads the same.
    write_mpi3d(tmp_path, "mpi3d_real", images.reshape(*TINY_MPI3D, 64, 64, 3), compress)
    np.testing.assert_array_equal(TinyMPI3DReal(data_dir=tmp_path).render(f), ds.render(f))


def test_mpi3d_rejects_corrupt_files(tmp_path):
    images = np.zeros((100, 64, 64, 3), np.uint8)
    write_mpi3d(tmp_path, "mpi3d_toy", images, False)
    with pytest.raises(DatasetFileError, match=r"'images' is uint8 \[100, 64, 64, 3\]"):
        TinyMPI3DToy(data_dir=tmp_path)
    n = int(np.prod(TINY_MPI3D))
    path = write_mpi3d(tmp_path, "mpi3d_toy", np.zeros((n, 64, 64, 3), np.uint8), False)
    with zipfile.ZipFile(path) as z:  # cut the data but keep a valid archive directory
        header = z.read("images.npy")[:5000]
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("images.npy", header)
    with pytest.raises(DatasetFileError, match="truncated"):
        TinyMPI3DToy(data_dir=tmp_path)
    truncate(path, 0.5)
    with pytest.raises(DatasetFileError, match=r"mpi3d_toy: .*mpi3d_toy\.npz"):
        TinyMPI3DToy(data_dir=tmp_path)


# ----- Cars3D -----------------------------------------------------------------------------


class TinyCars3D(Cars3D):
    num_cars = 3


def car_colour(car: int, azimuth: int, elevation: int) -> np.ndarray:
    return np.array([car * 80, azimuth * 10, elevation * 60], np.uint8)


def write_cars(root: Path, shape=(128, 128, 3, 24, 4)) -> None:
    (root / "cars").mkdir(parents=True, exist_ok=True)
    for car in range(TinyCars3D.num_cars):
        im = np.zeros(shape, np.uint8)
        for a in range(shape[3]):
            for e in range(shape[4]):
                im[:, :, :, a, e] = car_colour(car, a, e)[: shape[2]]
        scipy.io.savemat(root / "cars" / f"car_{car:03d}_mesh.mat", {"im": im})


def test_cars3d_axis_order_and_resize(tmp_path):
    write_cars(tmp_path)
    ds = TinyCars3D(data_dir=tmp_path)
    assert ds.factor_names == ("elevation", "azimuth", "object_type")
    assert ds.factor_sizes == (4, 24, 3)
    f = np.array([[3, 17, 2], [0, 0, 0], [1, 23, 1]])
    obs = ds.render(f)
    assert obs.shape == (3, 3, 64, 64)
    for row, (e, a, car) in zip(obs, f, strict=True):
        expected = car_colour(car, a, e) / 255.0
        np.testing.assert_allclose(
            row, np.broadcast_to(expected[:, None, None], row.shape), atol=1e-6
        )


def test_cars3d_rejects_corrupt_files(tmp_path):
    write_cars(tmp_path, shape=(128, 128, 3, 24, 3))
    with pytest.raises(DatasetFileError, match=r"'im' is uint8 \[128, 128, 3, 24, 3\]"):
        TinyCars3D(data_dir=tmp_path)
    (tmp_path / "cars" / "car_002_mesh.mat").unlink()
    with pytest.raises(DatasetFileError, match="found 2 files .* expected 3"):
        TinyCars3D(data_dir=tmp_path)
    write_cars(tmp_path)
    truncate(tmp_path / "cars" / "car_001_mesh.mat", 0.3)
    with pytest.raises(DatasetFileError, match=r"cars3d: .*car_001_mesh\.mat"):
        TinyCars3D(data_dir=tmp_path)


# ----- SmallNORB --------------------------------------------------------------------------

TINY_NORB = (2, 2, 2, 3, 2)  # category, instance, elevation, azimuth, lighting


class TinyNORB(SmallNORB):
    published_grid = TINY_NORB


def norb_bytes(array: np.ndarray, magic: int) -> bytes:
    dims = list(array.shape) + [1] * max(0, 3 - array.ndim)
    header = np.array([magic, array.ndim, *dims], "<i4").tobytes()
    return header + array.astype(array.dtype.newbyteorder("<")).tobytes()


def norb_value(label: np.ndarray) -> int:
    category, instance, elevation, azimuth, lighting = label
    return int(((((category * 2 + instance) * 2 + elevation) * 3 + azimuth) * 2 + lighting) * 5)


def write_norb(root: Path, drop_last: bool = False) -> None:
    (root / "small_norb").mkdir(parents=True, exist_ok=True)
    labels = grid(TINY_NORB)
    for half, chunk in enumerate(CHUNKS):  # instance 1 in training, instance 0 in testing
        rows = labels[labels[:, 1] == 1 - half]
        if drop_last and half == 1:
            rows = np.concatenate([rows[:-1], rows[:1]])  # one combination twice, one missing
        dat = np.zeros((len(rows), 2, 96, 96), np.uint8)
        dat[:, 0] = np.array([norb_value(r) for r in rows], np.uint8)[:, None, None]
        dat[:, 1] = 255  # the right camera, unused
        info = np.column_stack([rows[:, 1], rows[:, 2], rows[:, 3] * 2, rows[:, 4]])
        base = root / "small_norb" / f"smallnorb-{chunk}"
        Path(f"{base}-dat.mat").write_bytes(norb_bytes(dat, 507333717))
        Path(f"{base}-cat.mat").write_bytes(norb_bytes(rows[:, 0].astype(np.int32), 507333716))
        Path(f"{base}-info.mat").write_bytes(norb_bytes(info.astype(np.int32), 507333716))


def test_smallnorb_reads_both_files_and_draws_instances(tmp_path):
    write_norb(tmp_path)
    ds = TinyNORB(data_dir=tmp_path, seed=0)
    assert ds.factor_names == ("category", "elevation", "azimuth", "lighting")
    assert ds.factor_sizes == (2, 2, 3, 2)
    f = np.repeat(np.array([[1, 0, 2, 1]]), 40, axis=0)
    obs = ds.render(f)
    assert obs.shape == (40, 1, 64, 64)
    seen = {round(float(v) * 255) for v in obs[:, 0, 0, 0]}
    expected = {norb_value(np.array([1, inst, 0, 2, 1])) for inst in range(2)}
    assert seen == expected  # the left image, resized, of either instance
    np.testing.assert_array_equal(obs[0], obs[0, 0, 0, 0])  # constant image stays constant
    again = TinyNORB(data_dir=tmp_path, seed=0).render(f)
    np.testing.assert_array_equal(obs, again)  # same seed, same instances


def test_smallnorb_rejects_corrupt_files(tmp_path):
    write_norb(tmp_path, drop_last=True)
    with pytest.raises(DatasetFileError, match="never appears"):
        TinyNORB(data_dir=tmp_path)
    write_norb(tmp_path)
    dat = tmp_path / "small_norb" / f"smallnorb-{CHUNKS[0]}-dat.mat"
    truncate(dat, 0.9)
    with pytest.raises(DatasetFileError, match=r"smallnorb: .*training-dat\.mat: .*truncated"):
        TinyNORB(data_dir=tmp_path)
    write_norb(tmp_path)
    cat = tmp_path / "small_norb" / f"smallnorb-{CHUNKS[1]}-cat.mat"
    cat.write_bytes(b"\x00\x00\x00\x00" + cat.read_bytes()[4:])
    with pytest.raises(DatasetFileError, match="testing-cat.mat: magic number 0x0"):
        TinyNORB(data_dir=tmp_path)
