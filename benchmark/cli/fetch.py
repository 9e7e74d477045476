"""``disbench datasets fetch NAME``: a published dataset's files, downloaded and checked.

Each file comes from its official address and must have the checksum (and size, where
pinned) that a maintained library pins for it (the dataset's ``files`` say which); a partial
download is resumed with an HTTP range request; a file moves into place atomically only once
it checks out. A truncated download stays as ``.part`` for the next call to resume; a corrupt one is
removed and reported with the expected and the actual checksum. Nothing is ever downloaded
but by this command.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from disbench.datasets._files import PublishedFile, resolve_data_dir

CHUNK = 1 << 20


class FetchError(ValueError):
    """A file that could not be fetched, or did not check out; the message says which."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="a published dataset (see `disbench list`)")


def fetch(name: str, data_dir: Path, log: Callable[[str], None] = print) -> list[Path]:
    """Fetch every file of the registered dataset ``name`` into ``data_dir``."""
    from disbench.registry import DATASETS  # the CLI imports the registry only when it runs

    cls = DATASETS.get(name)
    if getattr(cls, "kind", "") == "procedural":
        raise FetchError(f"{name}: a procedural dataset, rendered on demand; nothing to fetch")
    files = getattr(cls, "files", ())
    if not files:
        raise FetchError(
            f"{name}: no maintained library pins a checksum for the files this loader reads, "
            "so disbench does not download them; fetch them by hand (docs/datasets.md)"
        )
    return fetch_files(name, files, data_dir, log)


def fetch_files(
    name: str, files: Sequence[PublishedFile], data_dir: Path, log: Callable[[str], None]
) -> list[Path]:
    out = []
    for spec in files:
        target = data_dir / spec.relative
        if target.is_file() or (spec.extract and target.is_dir() and any(target.iterdir())):
            log(f"{target}: present")
        else:
            _fetch_one(name, spec, target)
            algorithm = spec.digest.split(":", 1)[0]
            log(f"{target}: fetched, {algorithm} checked against {spec.pinned_by}")
        out.append(target)
    return out


def _fetch_one(name: str, spec: PublishedFile, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".tar.gz" if spec.extract else ".gz" if spec.gunzip else ""
    part = target.with_name(target.name + suffix + ".part")
    have = part.stat().st_size if part.exists() else 0
    total = spec.size
    if total is None or have < total:
        headers = {"Range": f"bytes={have}-"} if have else {}
        request = urllib.request.Request(spec.url, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:
                resumed = bool(have) and resp.status == 206  # 200: the server starts over
                length = resp.headers.get("Content-Length")
                if total is None and length is not None:
                    total = int(length) + (have if resumed else 0)
                with open(part, "ab" if resumed else "wb") as fh:
                    shutil.copyfileobj(resp, fh, CHUNK)
        except (urllib.error.URLError, OSError) as exc:
            raise FetchError(
                f"{name}: {spec.url}: download failed ({exc}); run again to resume"
            ) from exc
    size = part.stat().st_size
    if total is not None and size < total:
        raise FetchError(
            f"{name}: {spec.url}: truncated, {size:,} of {total:,} bytes; kept {part}, "
            "run the same command again to resume"
        )
    algorithm, expected = spec.digest.split(":", 1)
    actual = _digest(part, algorithm)
    if actual != expected or (spec.size is not None and size != spec.size):
        part.unlink()
        raise FetchError(
            f"{name}: {spec.url}: checksum mismatch: expected {algorithm} {expected} "
            f"(pinned by {spec.pinned_by}), got {actual} ({size:,} bytes); the download "
            "was removed"
        )
    if spec.extract:
        _extract(part, spec.extract, target)
        part.unlink()
    elif spec.gunzip:
        tmp = target.with_name(f".{target.name}.tmp")
        with gzip.open(part, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK)
        os.replace(tmp, target)
        part.unlink()
    else:
        os.replace(part, target)


def _extract(archive: Path, folder: str, target: Path) -> None:
    """The archive's files under ``folder`` into the folder ``target``, which appears whole
    or not at all (extracted beside it, then renamed)."""
    tmp = target.with_name(f".{target.name}.extracting")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    prefix = folder.rstrip("/") + "/"
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.startswith(prefix):
                member.name = member.name[len(prefix) :]
                tar.extract(member, tmp, filter="data")
    os.replace(tmp, target)


def _digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def run(args: argparse.Namespace) -> int:
    try:
        fetch(args.name, resolve_data_dir(args.data_dir))
    except FetchError as exc:
        print(f"disbench datasets fetch: {exc}", file=sys.stderr)
        return 1
    return 0
