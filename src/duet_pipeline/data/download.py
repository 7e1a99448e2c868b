"""Fetching a declared download: the official archive, sha256-checked, extracted atomically.

A dataset whose declaration has ``download`` (the MovieLens releases) is fetched when its
file is absent and ``raw_data.download`` allows it. Extraction happens in a temporary
sibling folder that is then renamed into place, so an interrupted or failed download never
leaves a half-populated dataset folder.
"""
from __future__ import annotations

import hashlib
import http.client
import io
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from duet_pipeline.processes import owner_tag

from .declarations import DATA_DIR_ENV_VAR, Download
from .readers import RawDataError

_DOWNLOAD_CHUNK = 1 << 16


def _placement_help(download: Download, path: Path) -> str:
    """Explain where the user has to put the files by hand."""
    return (
        f"To provide the data manually, download {download.url} and unzip it so that the file is at {path} "
        f"(the '{download.archive_root}' folder of the archive becomes {path.parent}). Alternatively set the "
        f"{DATA_DIR_ENV_VAR} environment variable (or raw_data.data_dir) to a folder that holds it."
    )


def ensure_present(path: Path, download: Download | None, allowed: bool, timeout: float = 30.0) -> Path:
    """``path`` (a declared file or folder), fetched first if it is absent and declared with a
    download that ``allowed`` permits; present files are never touched (no network access).

    Raises:
        RawDataError: the file is absent and cannot be fetched (no download declared,
            downloading disabled, the download failed, the archive is corrupt, has the wrong
            sha256 or lacks the file). The message says where to put the files by hand.
    """
    if path.exists():
        return path
    if download is None:
        raise RawDataError(f"{path}: no such file or folder (the declared path of the dataset; is raw_data.data_dir "
                           f"or {DATA_DIR_ENV_VAR} set to where your logs are?)", path=path)
    if not allowed:
        raise RawDataError(f"{path} not found and downloading is disabled (raw_data.download: false). "
                           f"{_placement_help(download, path)}", path=path)
    # Everything temporary lives next to the dataset folder so the final rename stays on
    # one filesystem (and therefore atomic).
    dataset_dir = path.parent
    dataset_dir.parent.mkdir(parents=True, exist_ok=True)
    fd, archive_tmp = tempfile.mkstemp(prefix=f".{dataset_dir.name}.", suffix=".zip.part", dir=dataset_dir.parent)
    extract_tmp: Path | None = None
    try:
        with os.fdopen(fd, "wb") as sink:
            got_sha = _download(download, sink, timeout, path)
        if got_sha != download.sha256:
            raise RawDataError(
                f"Checksum mismatch for {download.url}: expected sha256 {download.sha256}, got {got_sha}. Nothing was "
                f"extracted; the download may be corrupted or the upstream file may have changed. "
                f"{_placement_help(download, path)}", path=path)
        # Named for this process: a run starting meanwhile leaves a live owner's partial alone.
        extract_tmp = Path(tempfile.mkdtemp(prefix=f".{dataset_dir.name}.", suffix=f".{owner_tag()}.partial",
                                            dir=dataset_dir.parent))
        _extract_root(Path(archive_tmp), download, extract_tmp, path)
        _move_into_place(extract_tmp, dataset_dir, path.name)
    finally:
        Path(archive_tmp).unlink(missing_ok=True)
        if extract_tmp is not None and extract_tmp.exists():
            shutil.rmtree(extract_tmp, ignore_errors=True)
    if not path.exists():  # pragma: no cover - only on a concurrent deletion
        raise RawDataError(f"Extraction finished but {path} is missing.", path=path)
    return path


def _download(download: Download, sink: io.BufferedWriter, timeout: float, path: Path) -> str:
    """Stream ``url`` into ``sink`` and return the hex SHA-256 of the bytes."""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(download.url, timeout=timeout) as response:  # noqa: S310 - URL is config
            while chunk := response.read(_DOWNLOAD_CHUNK):
                digest.update(chunk)
                sink.write(chunk)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        # OSError covers URLError/HTTPError, timeouts and refused connections;
        # HTTPException covers truncated responses; ValueError a malformed URL.
        if isinstance(exc, urllib.error.HTTPError):
            reason = f"HTTP {exc.code} {exc.reason}"
        elif isinstance(exc, urllib.error.URLError):
            reason = f"{type(exc.reason).__name__}: {exc.reason}"
        else:
            reason = f"{type(exc).__name__}: {exc}"
        raise RawDataError(f"Download of {download.url} failed ({reason}). {_placement_help(download, path)}",
                           path=path) from exc
    return digest.hexdigest()


def _extract_root(archive: Path, download: Download, dest: Path, path: Path) -> None:
    """Extract the files under ``download.archive_root/`` of ``archive`` into ``dest``."""
    url = download.url
    prefix = download.archive_root.strip("/") + "/"
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [info for info in zf.infolist() if info.filename.startswith(prefix)]
            relative_names = []
            for info in members:
                rel = PurePosixPath(info.filename[len(prefix):])
                # Refuse path traversal ("../x", absolute names): a crafted archive
                # must not write outside the dataset folder.
                if rel.is_absolute() or ".." in rel.parts:
                    raise RawDataError(
                        f"Archive from {url} contains an unsafe path {info.filename!r}; refusing to extract.",
                        path=archive,
                    )
                relative_names.append(str(rel))
            if path.name not in relative_names:
                raise RawDataError(f"Archive from {url} does not contain '{prefix}{path.name}'. "
                                   f"{_placement_help(download, path)}", path=archive)
            for info, rel in zip(members, relative_names):
                if info.is_dir() or rel in ("", "."):
                    continue
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise RawDataError(
            f"Archive downloaded from {url} is not a readable zip file ({exc}). {_placement_help(download, path)}",
            path=archive,
        ) from exc


def _move_into_place(staged: Path, dataset_dir: Path, ratings_file: str) -> None:
    """Publish the staged folder as ``dataset_dir``.

    Normally this is one atomic rename. If the folder already exists (e.g. the user
    created it or put other files in it), files are moved one by one without
    overwriting anything the user put there, and the ratings file is moved last: its
    presence is what marks the dataset as complete, so an interrupted move is simply
    redone next time.
    """
    if not dataset_dir.exists():
        try:
            staged.rename(dataset_dir)
            return
        except OSError:
            if not dataset_dir.is_dir():  # a real failure, not a lost race
                raise
    files = sorted(p for p in staged.rglob("*") if p.is_file())
    files.sort(key=lambda p: p.relative_to(staged).as_posix() == ratings_file)  # ratings last
    for src in files:
        dst = dataset_dir / src.relative_to(staged)
        if dst.exists():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)


