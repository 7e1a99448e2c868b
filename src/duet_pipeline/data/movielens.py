"""MovieLens raw-data access: locating, downloading and strictly parsing ratings.

This module is deliberately Kedro-free (plain Python + pandas) so it can be used
from nodes, notebooks, benchmarks and tests alike.

Three GroupLens releases are supported (see :data:`SUPPORTED_DATASETS`); each is
described by a :class:`DatasetSpec` that records where its ratings file lives,
how it is delimited and where the official archive can be fetched from.

Design notes
------------
* Every problem that the *user* can fix (a missing or malformed raw file, a
  failed download, a corrupted archive) is raised as :class:`RawDataError`, whose
  message names the file and, for content problems, the 1-based line number, so
  the fix is obvious without a debugger.
* :func:`read_ratings` has a fast vectorised path (pandas' C parser) and a slow
  line-by-line reference parser. The slow parser only runs when the fast path sees
  something suspicious, and it is the authority: it reports the first offending
  line in file order, or, if it finds nothing wrong, its own result is returned.
"""

from __future__ import annotations

import csv
import hashlib
import http.client
import io
import math
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from duet_pipeline.parameters import Block, parse_block
from duet_pipeline.processes import owner_tag

__all__ = [
    "DATASET_SPECS",
    "DATA_DIR_ENV_VAR",
    "DatasetSpec",
    "RATING_COLUMNS",
    "RawDataError",
    "RawDataParams",
    "SUPPORTED_DATASETS",
    "build_item_index",
    "ensure_ratings_file",
    "get_spec",
    "read_ratings",
    "resolve_dataset_dir",
]

SUPPORTED_DATASETS: tuple[str, ...] = ("ml-latest-small", "ml-100k", "ml-1m")

#: Environment variable that overrides where raw datasets are looked for.
DATA_DIR_ENV_VAR = "DUET_DATA_DIR"

#: Column order of the frame returned by :func:`read_ratings`.
RATING_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "rating", "timestamp", "row_order")

# The four fields every MovieLens ratings line carries, in file order.
_FIELDS: tuple[str, ...] = ("user_id", "item_id", "rating", "timestamp")
_N_FIELDS = len(_FIELDS)
# Human-readable names used in error messages.
_FIELD_LABELS = {
    "user_id": "user id",
    "item_id": "item id",
    "rating": "rating",
    "timestamp": "timestamp",
}

_UTF8_BOM = b"\xef\xbb\xbf"
# Strict lexical forms for the reference parser. Python's int()/float() are too
# permissive for validation: they accept "1_000", "nan", "inf", "infinity".
_INT_RE = re.compile(rb"[+-]?[0-9]+")
_DECIMAL_RE = re.compile(rb"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INT64_MIN = int(np.iinfo(np.int64).min)
_INT64_MAX = int(np.iinfo(np.int64).max)
# Single byte substituted for a multi-byte separator ("::") so pandas can use its
# fast C engine; Unit Separator never occurs in real MovieLens files, and if it
# does we fall back to the reference parser instead of mis-splitting.
_SUBSTITUTE_SEPARATOR = b"\x1f"
_DOWNLOAD_CHUNK = 1 << 16


class RawDataError(ValueError):
    """A problem with raw input data that the user has to fix.

    Raised for missing/empty/malformed ratings files and for failed or corrupted
    downloads. The message always names the file involved and, for problems inside
    a file, the 1-based line number (a header counts as line 1).

    Attributes:
        path: The file the problem is about, if any.
        line: The 1-based line number of the problem, if it is about one line.
    """

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.path = Path(path) if path is not None else None
        self.line = line


@dataclass(frozen=True)
class DatasetSpec:
    """Static description of one MovieLens release.

    Attributes:
        name: Dataset name, also the folder name under the data directory.
        ratings_file: Path of the ratings file relative to the dataset folder.
        separator: Field separator used in the ratings file.
        has_header: Whether the ratings file starts with a header line.
        min_rating: Smallest valid rating (inclusive).
        max_rating: Largest valid rating (inclusive).
        url: Official GroupLens download URL of the zip archive.
        sha256: SHA-256 of the official zip archive.
        archive_root: Folder inside the zip that holds the dataset files.
    """

    name: str
    ratings_file: str
    separator: str
    has_header: bool
    min_rating: float
    max_rating: float
    url: str
    sha256: str
    archive_root: str

    @property
    def header(self) -> str | None:
        """The exact header line expected in the ratings file (``None`` if headerless)."""
        return _EXPECTED_HEADERS.get(self.name) if self.has_header else None


_GROUPLENS = "https://files.grouplens.org/datasets/movielens"

# Only ml-latest-small ships a header; checking it catches a headerless file, whose
# first rating would otherwise be silently swallowed as column names.
_EXPECTED_HEADERS: dict[str, str] = {"ml-latest-small": "userId,movieId,rating,timestamp"}

# SHA-256 values of the official archives. Source: TensorFlow Datasets'
# published checksum list, github.com/tensorflow/datasets
# tensorflow_datasets/url_checksums/movielens.txt (which also records the sizes:
# ml-latest-small 978,202 B, ml-100k 4,924,029 B, ml-1m 5,917,549 B). Each value is
# independently pinned by several other public repositories (e.g. the ml-100k value
# alongside GroupLens' own MD5 0e33842e24a9c977be4e0107933c0723, the ml-1m value
# alongside MD5 c4d9eecfca2ab87c1945afe126590906). Note that ml-latest-small is a
# rolling release: if GroupLens ever re-publishes it, this pin fails loudly
# (RawDataError) instead of silently changing the data; pass ``sha256=`` to
# :func:`ensure_ratings_file` to accept a newer snapshot deliberately.
DATASET_SPECS: dict[str, DatasetSpec] = {
    "ml-latest-small": DatasetSpec(
        name="ml-latest-small",
        ratings_file="ratings.csv",
        separator=",",
        has_header=True,
        min_rating=0.5,
        max_rating=5.0,
        url=f"{_GROUPLENS}/ml-latest-small.zip",
        sha256="696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
        archive_root="ml-latest-small",
    ),
    "ml-100k": DatasetSpec(
        name="ml-100k",
        ratings_file="u.data",
        separator="\t",
        has_header=False,
        min_rating=1.0,
        max_rating=5.0,
        url=f"{_GROUPLENS}/ml-100k.zip",
        sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
        archive_root="ml-100k",
    ),
    "ml-1m": DatasetSpec(
        name="ml-1m",
        ratings_file="ratings.dat",
        separator="::",
        has_header=False,
        min_rating=1.0,
        max_rating=5.0,
        url=f"{_GROUPLENS}/ml-1m.zip",
        sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        archive_root="ml-1m",
    ),
}


def get_spec(name: str) -> DatasetSpec:
    """Return the :class:`DatasetSpec` for a dataset name.

    Args:
        name: One of :data:`SUPPORTED_DATASETS`.

    Raises:
        ValueError: If ``name`` is not supported; the message names the
            ``dataset`` parameter and lists the valid choices.
    """
    try:
        return DATASET_SPECS[name]
    except (KeyError, TypeError):  # TypeError: unhashable garbage from a config file
        raise ValueError(
            f"Unknown value {name!r} for parameter `dataset`; "
            f"valid choices are: {', '.join(SUPPORTED_DATASETS)}"
        ) from None


def resolve_dataset_dir(
    name: str,
    data_dir: str | Path | None = None,
    fallback_root: str | Path = "data/01_raw",
) -> Path:
    """Return the folder where the files of dataset ``name`` are expected.

    The root is chosen by precedence: the explicit ``data_dir`` argument, else the
    ``DUET_DATA_DIR`` environment variable (if set and non-empty), else
    ``fallback_root``; the dataset name is then appended, giving e.g.
    ``<root>/ml-100k/u.data``. Relative roots are relative to the current working
    directory (the project root when run through Kedro).

    Args:
        name: One of :data:`SUPPORTED_DATASETS` (validated).
        data_dir: Explicit root directory, highest precedence.
        fallback_root: Root used when neither ``data_dir`` nor the env var is set.

    Raises:
        ValueError: If ``name`` is not supported.
    """
    spec = get_spec(name)
    if data_dir is not None and str(data_dir) != "":
        root = Path(data_dir)
    elif os.environ.get(DATA_DIR_ENV_VAR):
        root = Path(os.environ[DATA_DIR_ENV_VAR])
    else:
        root = Path(fallback_root)
    return root.expanduser() / spec.name


def _placement_help(spec: DatasetSpec, ratings_path: Path, url: str) -> str:
    """Explain where the user has to put the files by hand."""
    return (
        f"To provide the data manually, download {url} and unzip it so that the "
        f"ratings file is at {ratings_path} (i.e. the '{spec.archive_root}' folder of the "
        f"archive becomes {ratings_path.parent}). Alternatively set the {DATA_DIR_ENV_VAR} "
        f"environment variable (or pass data_dir) to a directory containing "
        f"'{spec.name}/{spec.ratings_file}'."
    )


class RawDataParams(Block):
    """The ``raw_data`` parameters: where the ratings files are."""

    data_dir: str | None  # None: $DUET_DATA_DIR, else fallback_root
    fallback_root: str
    download: bool  # fetch the official GroupLens zip (sha256-checked) when absent

    @classmethod
    def from_params(cls, params: dict) -> "RawDataParams":
        return parse_block(cls, params, "raw_data")


def ensure_ratings_file(
    name: str,
    data_dir: str | Path | None = None,
    fallback_root: str | Path = "data/01_raw",
    download: bool = True,
    url: str | None = None,
    sha256: str | None = None,
    timeout: float = 30.0,
) -> Path:
    """Return the path of the ratings file of ``name``, downloading it if needed.

    If the ratings file already exists under :func:`resolve_dataset_dir` it is
    returned untouched (no network access). Otherwise, when ``download`` is true,
    the official zip is fetched, its SHA-256 verified, and the files of its
    ``archive_root`` folder extracted into the dataset folder. Extraction happens in
    a temporary sibling folder that is then renamed into place, so an interrupted
    or failed download never leaves a half-populated dataset folder.

    Args:
        name: One of :data:`SUPPORTED_DATASETS`.
        data_dir: Explicit root directory (see :func:`resolve_dataset_dir`).
        fallback_root: Root used when neither ``data_dir`` nor ``DUET_DATA_DIR`` is set.
        download: Whether a missing file may be downloaded.
        url: Override of the archive URL (e.g. a mirror or a local test server).
        sha256: Override of the expected archive SHA-256.
        timeout: Socket timeout in seconds for the download.

    Returns:
        Path to the ratings file.

    Raises:
        ValueError: If ``name`` is not supported.
        RawDataError: If the file is missing and downloading is disabled or fails,
            or the archive is corrupted / has the wrong checksum / lacks the file.
            The message says where to put the files manually.
    """
    spec = get_spec(name)
    dataset_dir = resolve_dataset_dir(name, data_dir, fallback_root)
    ratings_path = dataset_dir / spec.ratings_file
    if ratings_path.is_file():
        return ratings_path

    source_url = url or spec.url
    expected_sha = (sha256 or spec.sha256).strip().lower()
    if not download:
        raise RawDataError(
            f"Ratings file for dataset '{name}' not found at {ratings_path} and downloading "
            f"is disabled. {_placement_help(spec, ratings_path, source_url)}",
            path=ratings_path,
        )

    # Everything temporary lives next to the dataset folder so the final rename
    # stays on one filesystem (and therefore atomic).
    dataset_dir.parent.mkdir(parents=True, exist_ok=True)
    fd, archive_tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".zip.part", dir=dataset_dir.parent)
    extract_tmp: Path | None = None
    try:
        with os.fdopen(fd, "wb") as sink:
            got_sha = _download(source_url, sink, timeout, spec, ratings_path)
        if got_sha != expected_sha:
            raise RawDataError(
                f"Checksum mismatch for {source_url}: expected sha256 {expected_sha}, got "
                f"{got_sha}. Nothing was extracted; the download may be corrupted or the "
                f"upstream file may have changed. {_placement_help(spec, ratings_path, source_url)}",
                path=ratings_path,
            )
        # Named for this process: a run starting meanwhile leaves a live owner's partial alone.
        extract_tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=f".{owner_tag()}.partial",
                                            dir=dataset_dir.parent))
        _extract_root(Path(archive_tmp), spec, extract_tmp, source_url, ratings_path)
        _move_into_place(extract_tmp, dataset_dir, spec.ratings_file)
    finally:
        Path(archive_tmp).unlink(missing_ok=True)
        if extract_tmp is not None and extract_tmp.exists():
            shutil.rmtree(extract_tmp, ignore_errors=True)
    if not ratings_path.is_file():  # pragma: no cover - only on a concurrent deletion
        raise RawDataError(f"Extraction finished but {ratings_path} is missing.", path=ratings_path)
    return ratings_path


def _download(url: str, sink: io.BufferedWriter, timeout: float, spec: DatasetSpec, ratings_path: Path) -> str:
    """Stream ``url`` into ``sink`` and return the hex SHA-256 of the bytes."""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - URL is config
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
        raise RawDataError(
            f"Download of dataset '{spec.name}' from {url} failed ({reason}). "
            f"{_placement_help(spec, ratings_path, url)}",
            path=ratings_path,
        ) from exc
    return digest.hexdigest()


def _extract_root(archive: Path, spec: DatasetSpec, dest: Path, url: str, ratings_path: Path) -> None:
    """Extract the files under ``spec.archive_root/`` of ``archive`` into ``dest``."""
    prefix = spec.archive_root.strip("/") + "/"
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
            if spec.ratings_file not in relative_names:
                raise RawDataError(
                    f"Archive from {url} does not contain '{prefix}{spec.ratings_file}'. "
                    f"{_placement_help(spec, ratings_path, url)}",
                    path=archive,
                )
            for info, rel in zip(members, relative_names):
                if info.is_dir() or rel in ("", "."):
                    continue
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise RawDataError(
            f"Archive downloaded from {url} is not a readable zip file ({exc}). "
            f"{_placement_help(spec, ratings_path, url)}",
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


# --------------------------------------------------------------------------- #
# Parsing
# --------------------------------------------------------------------------- #


def read_ratings(path: str | Path, name: str) -> pd.DataFrame:
    """Read and validate a MovieLens ratings file.

    Args:
        path: The ratings file (``ratings.csv``, ``u.data`` or ``ratings.dat``).
        name: Dataset name selecting the format (one of :data:`SUPPORTED_DATASETS`).

    Returns:
        A frame with columns ``user_id`` (int64), ``item_id`` (int64), ``rating``
        (float64), ``timestamp`` (int64) and ``row_order`` (int64, ``0..n-1`` in
        original file order), on a default RangeIndex. Blank lines are ignored.

    Raises:
        ValueError: If ``name`` is not supported.
        RawDataError: If the file is missing or empty, has no ratings, has a line
            with the wrong number of fields, a non-integer id/timestamp, a
            non-numeric rating, or a rating outside ``[min_rating, max_rating]``.
            The message names the file and the 1-based line number of the first
            offending line.
    """
    spec = get_spec(name)
    path = Path(path)
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise RawDataError(
            f"Ratings file {path} {what} (dataset '{name}', expected '{spec.ratings_file}').",
            path=path,
        )
    raw = path.read_bytes()
    if not raw:
        raise RawDataError(f"{path}: line 1: file is empty (0 bytes); no ratings found.", path=path, line=1)
    if raw.startswith(_UTF8_BOM):  # e.g. re-saved by a spreadsheet program
        raw = raw[len(_UTF8_BOM):]

    body = raw
    if spec.has_header:
        body = _check_header(raw, spec, path)

    frame = _fast_parse(body, spec)
    if frame is None:
        # The fast path saw something odd. The reference parser either raises for the
        # first offending line, or (if the oddity was harmless) returns the data.
        frame = _reference_parse(raw, spec, path)
    if frame.empty:
        first_data_line = 2 if spec.has_header else 1
        raise RawDataError(
            f"{path}: line {first_data_line}: no ratings found"
            + (" after the header" if spec.has_header else "")
            + f" (expected lines like {_example_line(spec)!r}).",
            path=path,
            line=first_data_line,
        )
    frame["row_order"] = np.arange(len(frame), dtype=np.int64)
    return frame.reset_index(drop=True)


def _example_line(spec: DatasetSpec) -> str:
    """An illustrative well-formed ratings line for error messages."""
    rating = "4.5" if spec.min_rating % 1 else "4"
    return spec.separator.join(["1", "31", rating, "1260759144"])


def _check_header(raw: bytes, spec: DatasetSpec, path: Path) -> bytes:
    """Validate the header line and return the bytes after it."""
    newline = raw.find(b"\n")
    first = raw if newline < 0 else raw[:newline]
    rest = b"" if newline < 0 else raw[newline + 1:]
    got = first.rstrip(b"\r").decode("utf-8", errors="replace").strip()
    expected = spec.header
    if expected is not None and got != expected:
        raise RawDataError(
            f"{path}: line 1: expected the header {expected!r}, got {got!r}.", path=path, line=1
        )
    return rest


def _fast_parse(body: bytes, spec: DatasetSpec) -> pd.DataFrame | None:
    """Vectorised parse with pandas' C engine; ``None`` if anything looks wrong.

    Problems are only *detected* here, never reported: locating the exact line is
    left to :func:`_reference_parse`, which keeps this path simple and fast.
    """
    separator = spec.separator.encode()
    if len(separator) > 1:
        # pandas treats multi-character separators as regexes and then requires the
        # slow python engine (~10x slower on ml-1m); a byte substitution keeps the C
        # engine. Skip it if the substitute byte already occurs, to avoid mis-splits.
        if _SUBSTITUTE_SEPARATOR in body:
            return None
        body = body.replace(separator, _SUBSTITUTE_SEPARATOR)
        separator = _SUBSTITUTE_SEPARATOR
    try:
        with warnings.catch_warnings():
            # A surplus field on the first line only triggers a ParserWarning; the
            # separator count below catches it, so the warning is just noise.
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            frame = pd.read_csv(
                io.BytesIO(body),
                sep=separator.decode(),
                header=None,
                names=list(_FIELDS),
                index_col=False,
                engine="c",
                na_filter=False,  # faster; empty/"NA" fields make the column non-numeric
                quoting=csv.QUOTE_NONE,  # '"1"' must not silently become 1
                skip_blank_lines=True,
                dtype=None,
            )
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError, OverflowError):
        return None
    # Every non-blank line must contain exactly three separators; this catches
    # surplus and missing fields that pandas pads or truncates silently.
    if body.count(separator) != (_N_FIELDS - 1) * len(frame):
        return None
    for column in ("user_id", "item_id", "timestamp"):
        if frame[column].dtype != np.int64 or (len(frame) and frame[column].min() < 0):
            return None
    rating = frame["rating"]
    if not (pd.api.types.is_float_dtype(rating.dtype) or rating.dtype == np.int64):
        return None
    values = rating.to_numpy(dtype=np.float64)
    # NaN fails both comparisons, so this also rejects "nan"; inf is out of range.
    if len(values) and not bool(np.all((values >= spec.min_rating) & (values <= spec.max_rating))):
        return None
    frame["rating"] = values
    return frame


def _reference_parse(raw: bytes, spec: DatasetSpec, path: Path) -> pd.DataFrame:
    """Strict line-by-line parser; raises for the first bad line in file order."""
    separator = spec.separator.encode()
    columns: dict[str, list] = {field: [] for field in _FIELDS}
    # bytes.splitlines splits on \n, \r\n and \r, like pandas' C tokenizer.
    for line_no, line in enumerate(raw.splitlines(), start=1):
        if spec.has_header and line_no == 1:
            continue  # validated by _check_header
        if not line.strip():
            continue  # blank lines are skipped, as by the fast path
        fields = line.split(separator)
        if len(fields) != _N_FIELDS:
            raise RawDataError(
                f"{path}: line {line_no}: expected {_N_FIELDS} fields separated by "
                f"{spec.separator!r} (user id, item id, rating, timestamp), got {len(fields)}: "
                f"{_show(line)}.",
                path=path,
                line=line_no,
            )
        for field, token in zip(_FIELDS, fields):
            if field == "rating":
                columns[field].append(_parse_rating(token, spec, path, line_no))
            else:
                columns[field].append(_parse_int(token, field, path, line_no))
    return pd.DataFrame(
        {
            "user_id": np.asarray(columns["user_id"], dtype=np.int64),
            "item_id": np.asarray(columns["item_id"], dtype=np.int64),
            "rating": np.asarray(columns["rating"], dtype=np.float64),
            "timestamp": np.asarray(columns["timestamp"], dtype=np.int64),
        }
    )


def _show(token: bytes, limit: int = 80) -> str:
    """Printable, length-limited rendering of raw bytes for error messages."""
    text = token.decode("utf-8", errors="replace")
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _parse_int(token: bytes, field: str, path: Path, line_no: int) -> int:
    """Parse one integer field (id or timestamp) or raise a located error."""
    stripped = token.strip()
    label = _FIELD_LABELS[field]
    if not _INT_RE.fullmatch(stripped):
        kind = "non-integer" if _DECIMAL_RE.fullmatch(stripped) else "non-numeric"
        raise RawDataError(
            f"{path}: line {line_no}: {kind} {label} {_show(token)}; expected an integer.",
            path=path,
            line=line_no,
        )
    value = int(stripped)
    if value < 0:  # ids count from 1 and timestamps are seconds since 1970
        raise RawDataError(
            f"{path}: line {line_no}: negative {label} {_show(token)}; expected an integer >= 0.",
            path=path,
            line=line_no,
        )
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise RawDataError(
            f"{path}: line {line_no}: {label} {_show(token)} does not fit in a 64-bit integer.",
            path=path,
            line=line_no,
        )
    return value


def _parse_rating(token: bytes, spec: DatasetSpec, path: Path, line_no: int) -> float:
    """Parse and range-check one rating or raise a located error."""
    stripped = token.strip()
    if not _DECIMAL_RE.fullmatch(stripped):
        raise RawDataError(
            f"{path}: line {line_no}: non-numeric rating {_show(token)}; expected a number "
            f"in [{spec.min_rating:g}, {spec.max_rating:g}].",
            path=path,
            line=line_no,
        )
    value = float(stripped)
    if not (math.isfinite(value) and spec.min_rating <= value <= spec.max_rating):
        raise RawDataError(
            f"{path}: line {line_no}: rating {_show(token)} is out of range; expected a value "
            f"in [{spec.min_rating:g}, {spec.max_rating:g}] for dataset '{spec.name}'.",
            path=path,
            line=line_no,
        )
    return value


# --------------------------------------------------------------------------- #
# Indexing
# --------------------------------------------------------------------------- #


def build_item_index(interactions: pd.DataFrame) -> pd.DataFrame:
    """Map raw item ids to dense 1-based indices.

    Index 0 is reserved for padding in the sequence models, hence ``1..N``. Items
    are sorted by raw id so the mapping is deterministic and independent of row
    order.

    Args:
        interactions: A frame with an integer ``item_id`` column.

    Returns:
        A frame with columns ``raw_item_id`` (int64, distinct, ascending) and
        ``item_index`` (int64, ``1..N``).

    Raises:
        KeyError: If ``interactions`` has no ``item_id`` column.
    """
    if "item_id" not in interactions.columns:
        raise KeyError("build_item_index: interactions has no 'item_id' column")
    raw_ids = np.unique(interactions["item_id"].to_numpy(dtype=np.int64))  # sorted ascending
    return pd.DataFrame(
        {
            "raw_item_id": raw_ids.astype(np.int64, copy=False),
            "item_index": np.arange(1, len(raw_ids) + 1, dtype=np.int64),
        }
    )
