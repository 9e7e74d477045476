"""Shared pieces of the loaders for the published dataset files.

Where the files live: a ``data_dir`` keyword, else the ``DISBENCH_DATA_DIR`` environment
variable (``disbench --data-dir`` sets it), else ``./data``. The layout under it is
disentanglement_lib's (``dsprites/``, ``3dshapes/``, ``mpi3d_toy/``, ``cars/``,
``small_norb/``), so a data directory prepared for disentanglement_lib works unchanged.

Every problem with a file (missing, truncated, not the expected keys, dtype or shape) is a
:class:`DatasetFileError` with one line naming the file, what was expected and where to put it.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from disbench.api import GroundTruthDataset, Kind

ENV_VAR = "DISBENCH_DATA_DIR"
DEFAULT_DIR = "data"


class DatasetFileError(ValueError):
    """A published dataset file is missing, truncated or not in the published format."""


@dataclass(frozen=True)
class PublishedFile:
    """One file ``disbench datasets fetch`` downloads: its official address, where it goes
    under the data directory, and the checksum (``"sha256:..."`` or ``"md5:..."``) and,
    where pinned, the size that a maintained library pins for it (``pinned_by`` names
    where). ``gunzip``: the address serves it gzipped."""

    url: str
    relative: str
    digest: str
    pinned_by: str
    size: int | None = None
    gunzip: bool = False
    extract: str | None = None


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """``data_dir``, else ``$DISBENCH_DATA_DIR``, else ``./data``."""
    return Path(data_dir if data_dir is not None else os.environ.get(ENV_VAR, DEFAULT_DIR))


def where_hint(relative: str) -> str:
    return (
        f"put it there, or point --data-dir (or ${ENV_VAR}) at the directory that holds {relative}"
    )


def require_file(
    dataset: str, data_dir: Path, relative: str, what: str, source: str, fetchable: bool = False
) -> Path:
    """The path of a published file, or a one-line error saying what and where (and, for a
    dataset ``disbench datasets fetch`` can download, that command)."""
    path = data_dir / relative
    if not path.is_file():
        how = (
            f"run `disbench datasets fetch {dataset} --data-dir {data_dir}`, or "
            if fetchable
            else ""
        )
        raise DatasetFileError(
            f"{dataset}: missing file {path}; expected {what} from {source}; {how}"
            + where_hint(relative)
        )
    return path


def fail(dataset: str, path: Path, problem: str, expected: str) -> DatasetFileError:
    return DatasetFileError(f"{dataset}: {path}: {problem}; expected {expected}")


def check_array(
    dataset: str,
    path: Path,
    key: str,
    shape: tuple[int, ...],
    dtype: np.dtype,
    want_shape: tuple[int, ...],
    want_dtype: str,
) -> None:
    """Compare an array's shape and dtype (read from a header) with the published ones."""
    if tuple(shape) != tuple(want_shape) or np.dtype(dtype) != np.dtype(want_dtype):
        raise fail(
            dataset,
            path,
            f"{key!r} is {describe(np.dtype(dtype).name, shape)}",
            f"{key!r} {describe(want_dtype, want_shape)} as in the published file",
        )


def describe(dtype: str, shape: tuple[int, ...]) -> str:
    return f"{dtype} [{', '.join(str(s) for s in shape)}]"


class NpzMember:
    """One array of an ``.npz`` file, read without loading the whole archive.

    An uncompressed member is memory-mapped in place; a compressed one is streamed.
    """

    def __init__(self, dataset: str, path: Path, key: str) -> None:
        self.dataset, self.path, self.key = dataset, path, key
        try:
            with zipfile.ZipFile(path) as archive:
                info = archive.getinfo(f"{key}.npy")
                with archive.open(info) as f:
                    self.shape, self.dtype, header_len = _read_npy_header(f)
        except KeyError:
            raise fail(dataset, path, f"no array {key!r}", f"an npz with {key!r}") from None
        except (zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:
            raise fail(dataset, path, f"unreadable ({exc})", "a complete .npz archive") from None
        self.compressed = info.compress_type != zipfile.ZIP_STORED
        self._offset = _member_data_offset(path, info) + header_len
        if not self.compressed and info.file_size < header_len + self.nbytes:
            raise fail(dataset, path, f"{key!r} is truncated", f"{self.nbytes} bytes of data")

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def memmap(self) -> np.ndarray:
        """The array mapped from disk (only for an uncompressed member)."""
        return np.memmap(self.path, self.dtype, "r", offset=self._offset, shape=self.shape)

    def chunks(self, rows: int) -> Iterator[np.ndarray]:
        """The array in blocks of ``rows`` along the first axis, decompressing as it goes."""
        row_bytes = self.nbytes // max(self.shape[0], 1)
        try:
            with zipfile.ZipFile(self.path) as archive, archive.open(f"{self.key}.npy") as f:
                _read_npy_header(f)
                for start in range(0, self.shape[0], rows):
                    n = min(rows, self.shape[0] - start)
                    buf = f.read(n * row_bytes)
                    if len(buf) != n * row_bytes:
                        raise EOFError("archive ends early")
                    yield np.frombuffer(buf, self.dtype).reshape(n, *self.shape[1:])
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise fail(
                self.dataset,
                self.path,
                f"{self.key!r} is truncated or corrupt ({exc})",
                "a complete .npz archive",
            ) from None

    def load(self) -> np.ndarray:
        """The whole array in memory (memory-mapped when stored uncompressed)."""
        if not self.compressed:
            return self.memmap()
        return np.concatenate(
            list(self.chunks(max(1, 2**26 // max(self.nbytes // self.shape[0], 1))))
        )


def _read_npy_header(f: Any) -> tuple[tuple[int, ...], np.dtype, int]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    if fortran or dtype.hasobject:
        raise ValueError("array is Fortran-ordered or holds Python objects")
    return tuple(shape), dtype, f.tell()


def _member_data_offset(path: Path, info: zipfile.ZipInfo) -> int:
    """Where a stored member's bytes start: after its local header, name and extra field."""
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        header = f.read(30)
    if len(header) < 30 or header[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile("bad local file header")
    name_len = int.from_bytes(header[26:28], "little")
    extra_len = int.from_bytes(header[28:30], "little")
    return info.header_offset + 30 + name_len + extra_len


def read_rows(store: Any, index: np.ndarray) -> np.ndarray:
    """``store[index]`` for any row store (array, memmap, h5py dataset: increasing indices)."""
    unique, inverse = np.unique(index, return_inverse=True)
    return np.asarray(store[unique])[inverse]


class PublishedDataset(GroundTruthDataset):
    """A dataset whose images are rows of a published file, in the row-major factor order.

    Subclasses fill ``factor_names``, ``factor_sizes``, ``observation_shape`` and
    ``images`` (uint8 rows [N, H, W] or [N, H, W, C], any indexable store).
    """

    kind: ClassVar[Kind] = "published"
    pixel_scale: ClassVar[float] = 255.0  # stored value of a white pixel
    # What `disbench datasets fetch` downloads and checks; empty where no maintained library
    # pins a checksum for the files this loader reads (then the files are fetched by hand).
    files: ClassVar[tuple[PublishedFile, ...]] = ()
    images: Any

    def image_rows(self, factors: np.ndarray) -> np.ndarray:
        """The stored uint8 rows for factor indices (subclasses with nuisances override)."""
        return read_rows(self.images, self.index_of(factors))

    def render(self, factors: np.ndarray) -> np.ndarray:
        factors = np.asarray(factors, dtype=np.int64)
        self.check_factors(factors)
        rows = self.image_rows(factors)
        if rows.ndim == 3:
            rows = rows[..., None]
        obs = np.ascontiguousarray(rows.transpose(0, 3, 1, 2), dtype=np.float32)
        return obs / np.float32(self.pixel_scale)
