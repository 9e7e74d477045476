"""`disbench datasets fetch` against a local HTTP server on 127.0.0.1 serving small
format-exact fixtures: a good file, a gzipped one, a truncated transfer resumed with a range
request, a wrong checksum; the loaders then read what was fetched."""

from __future__ import annotations

import gzip
import hashlib
import tarfile
import threading
from collections.abc import Iterator
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import h5py
import numpy as np
import pytest
from test_datasets_files import (
    TinyCars3D,
    TinyDSprites,
    TinyNORB,
    TinyShapes3D,
    write_cars,
    write_dsprites,
    write_norb,
    write_shapes3d,
)

from disbench.cli import main
from disbench.cli.fetch import FetchError, fetch, fetch_files
from disbench.datasets._files import PublishedFile
from disbench.datasets.dsprites import HDF5_PATH
from disbench.datasets.shapes3d import RELATIVE_PATH
from disbench.registry import DATASETS


class Files(BaseHTTPRequestHandler):
    """Serves ``files`` (path -> bytes) with range requests; ``cut`` (path -> n) ends a
    transfer after n bytes, as a dropped connection does."""

    def __init__(self, *args, files: dict, cut: dict, **kwargs) -> None:  # noqa: ANN002, ANN003
        self.files, self.cut = files, cut
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:  # noqa: N802
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = int(self.headers.get("Range", "bytes=0-")[6:].rstrip("-") or 0)
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start : start + self.cut.pop(self.path, len(body))])

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, dict, dict]]:
    files: dict[str, bytes] = {}
    cut: dict[str, int] = {}
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Files, files=files, cut=cut))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", files, cut
    httpd.shutdown()


def _pinned(url: str, relative: str, body: bytes, gunzip: bool = False) -> PublishedFile:
    digest = f"sha256:{hashlib.sha256(body).hexdigest()}"
    return PublishedFile(url, relative, digest, "the test", len(body), gunzip)


def test_a_good_file_is_fetched_checked_and_read(server, tmp_path) -> None:
    base, files, _ = server
    body = write_shapes3d(tmp_path / "origin").read_bytes()
    files["/3dshapes.h5"] = body
    data = tmp_path / "data"
    lines: list[str] = []
    spec = _pinned(f"{base}/3dshapes.h5", RELATIVE_PATH, body)
    fetch_files("shapes3d", [spec], data, lines.append)
    assert (data / RELATIVE_PATH).read_bytes() == body
    assert lines == [f"{data / RELATIVE_PATH}: fetched, sha256 checked against the test"]
    assert TinyShapes3D(data_dir=data).num_observations == 2 * 2 * 2 * 2 * 4 * 3
    fetch_files("shapes3d", [spec], data, lines.append)  # a second call finds it there
    assert lines[-1].endswith(": present")


def test_gzipped_files_are_checked_then_unpacked(server, tmp_path) -> None:
    base, files, _ = server
    write_norb(tmp_path / "origin")
    specs = []
    for mat in sorted((tmp_path / "origin" / "small_norb").glob("*.mat")):
        body = gzip.compress(mat.read_bytes(), mtime=0)
        files[f"/{mat.name}.gz"] = body
        specs.append(_pinned(f"{base}/{mat.name}.gz", f"small_norb/{mat.name}", body, True))
    fetch_files("smallnorb", specs, tmp_path / "data", lambda line: None)
    assert TinyNORB(data_dir=tmp_path / "data", seed=0).factor_names[0] == "category"


def test_a_truncated_transfer_is_kept_and_resumed(server, tmp_path) -> None:
    base, files, cut = server
    body = write_shapes3d(tmp_path / "origin").read_bytes()
    files["/3dshapes.h5"] = body
    cut["/3dshapes.h5"] = len(body) // 3  # the connection drops a third of the way
    spec = _pinned(f"{base}/3dshapes.h5", RELATIVE_PATH, body)
    data = tmp_path / "data"
    with pytest.raises(FetchError, match=r"truncated, [\d,]+ of [\d,]+ bytes; kept .*\.part"):
        fetch_files("shapes3d", [spec], data, lambda line: None)
    part = data / f"{RELATIVE_PATH}.part"
    assert part.stat().st_size == len(body) // 3
    fetch_files("shapes3d", [spec], data, lambda line: None)  # resumes with a range request
    assert (data / RELATIVE_PATH).read_bytes() == body and not part.exists()


def test_a_wrong_checksum_names_both_and_keeps_nothing(server, tmp_path) -> None:
    base, files, _ = server
    files["/3dshapes.h5"] = b"not the published file" * 10
    spec = _pinned(f"{base}/3dshapes.h5", RELATIVE_PATH, b"x" * 220)
    with pytest.raises(FetchError) as err:
        fetch_files("shapes3d", [spec], tmp_path, lambda line: None)
    message = str(err.value)
    assert f"expected sha256 {spec.digest[7:]}" in message and "got " in message
    assert "the download was removed" in message
    assert not list(tmp_path.rglob("*.h5*"))


def test_an_md5_pinned_file_without_a_size_resumes_from_the_content_length(
    server, tmp_path
) -> None:
    """As disent pins MPI3D: a full-file MD5 and no size; the server's Content-Length tells
    a dropped transfer from a finished one."""
    base, files, cut = server
    body = bytes(range(256)) * 40
    files["/mpi3d_toy.npz"] = body
    cut["/mpi3d_toy.npz"] = 1000
    spec = PublishedFile(
        f"{base}/mpi3d_toy.npz",
        "mpi3d_toy/mpi3d_toy.npz",
        f"md5:{hashlib.md5(body).hexdigest()}",
        "the test",
    )
    with pytest.raises(FetchError, match=r"truncated, 1,000 of 10,240 bytes"):
        fetch_files("mpi3d_toy", [spec], tmp_path, lambda line: None)
    lines: list[str] = []
    fetch_files("mpi3d_toy", [spec], tmp_path, lines.append)
    assert (tmp_path / "mpi3d_toy" / "mpi3d_toy.npz").read_bytes() == body
    assert "md5 checked against the test" in lines[0]


def test_dsprites_is_fetched_as_its_hdf5_release_and_read_like_the_npz(server, tmp_path) -> None:
    """tensorflow_datasets pins the HDF5 release of dSprites; the loader reads it as it
    reads the .npz: the same images, rows and factors."""
    npz = np.load(write_dsprites(tmp_path / "npz"))
    origin = tmp_path / "origin.hdf5"
    with h5py.File(origin, "w") as f:
        f.create_dataset("imgs", data=npz["imgs"])
        f.create_dataset("latents/classes", data=npz["latents_classes"])
        f.create_dataset("latents/values", data=npz["latents_values"])
    base, files, _ = server
    files["/dsprites.hdf5"] = origin.read_bytes()
    spec = _pinned(f"{base}/dsprites.hdf5", HDF5_PATH, files["/dsprites.hdf5"])
    fetch_files("dsprites", [spec], tmp_path / "data", lambda line: None)
    fetched, published = TinyDSprites(data_dir=tmp_path / "data"), TinyDSprites(tmp_path / "npz")
    factors = fetched.factors_of(np.arange(fetched.num_observations))
    np.testing.assert_array_equal(fetched.render(factors), published.render(factors))


def test_cars3d_is_extracted_from_its_archive(server, tmp_path) -> None:
    """disent pins the MD5 of the whole analogy-data archive; its data/cars folder is what
    the loader reads."""
    write_cars(tmp_path / "origin" / "data")
    archive = tmp_path / "analogy.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "origin" / "data", arcname="data")
    base, files, _ = server
    files["/analogy.tar.gz"] = archive.read_bytes()
    spec = PublishedFile(
        f"{base}/analogy.tar.gz",
        "cars",
        f"md5:{hashlib.md5(files['/analogy.tar.gz']).hexdigest()}",
        "the test",
        extract="data/cars",
    )
    fetch_files("cars3d", [spec], tmp_path / "data", lambda line: None)
    assert TinyCars3D(data_dir=tmp_path / "data").num_observations == 4 * 24 * TinyCars3D.num_cars
    assert not list((tmp_path / "data").glob("*.part"))


def test_procedural_datasets_have_nothing_to_fetch(tmp_path, capsys) -> None:
    assert main(["datasets", "fetch", "blobs", "--data-dir", str(tmp_path)]) == 1
    assert "a procedural dataset, rendered on demand" in capsys.readouterr().err


def test_a_missing_file_names_the_fetch_command(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"run `disbench datasets fetch shapes3d --data-dir"):
        TinyShapes3D(data_dir=tmp_path)


def test_a_published_dataset_without_pinned_files_is_refused(tmp_path, monkeypatch) -> None:
    """A dataset plugin that declares no files: fetched by hand, never unchecked."""
    monkeypatch.setattr(DATASETS.get("dsprites"), "files", ())
    with pytest.raises(FetchError, match="no maintained library pins a checksum"):
        fetch("dsprites", tmp_path)
