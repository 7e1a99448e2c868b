"""Tests for duet_pipeline.data.movielens (raw MovieLens access)."""

from __future__ import annotations

import hashlib
import http.server
import io
import re
import socket
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from duet_pipeline.data.movielens import (
    DATASET_SPECS,
    SUPPORTED_DATASETS,
    RawDataError,
    build_item_index,
    ensure_ratings_file,
    get_spec,
    read_ratings,
    resolve_dataset_dir,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_RATINGS = REPO_ROOT / "data" / "01_raw" / "ml-latest-small" / "ratings.csv"
EXPECTED_DTYPES = {
    "user_id": np.int64,
    "item_id": np.int64,
    "rating": np.float64,
    "timestamp": np.int64,
    "row_order": np.int64,
}


def _assert_located(exc: pytest.ExceptionInfo[RawDataError], path: Path, line: int) -> None:
    """The message names the file and exactly this line (not e.g. line 10 for 1)."""
    message = str(exc.value)
    assert path.name in message, message
    assert re.search(rf"\bline {line}\b", message), message
    assert exc.value.line == line


# --------------------------------------------------------------------------- #
# Specs and directory resolution
# --------------------------------------------------------------------------- #


def test_specs_cover_supported_datasets() -> None:
    assert set(DATASET_SPECS) == set(SUPPORTED_DATASETS)
    for name, spec in DATASET_SPECS.items():
        assert spec.name == name == spec.archive_root
        assert spec.url == f"https://files.grouplens.org/datasets/movielens/{name}.zip"
        assert re.fullmatch(r"[0-9a-f]{64}", spec.sha256)
    assert get_spec("ml-1m").separator == "::"
    assert (get_spec("ml-latest-small").min_rating, get_spec("ml-100k").min_rating) == (0.5, 1.0)


def test_get_spec_unknown_lists_choices() -> None:
    with pytest.raises(ValueError) as exc:
        get_spec("ml-20m")
    message = str(exc.value)
    assert "`dataset`" in message and "'ml-20m'" in message
    for name in SUPPORTED_DATASETS:
        assert name in message


def test_resolve_dataset_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DUET_DATA_DIR", raising=False)
    assert resolve_dataset_dir("ml-100k", fallback_root=tmp_path / "fb") == tmp_path / "fb" / "ml-100k"
    assert resolve_dataset_dir("ml-1m") == Path("data/01_raw/ml-1m")
    monkeypatch.setenv("DUET_DATA_DIR", str(tmp_path / "env"))
    assert resolve_dataset_dir("ml-1m", fallback_root=tmp_path / "fb") == tmp_path / "env" / "ml-1m"
    assert resolve_dataset_dir("ml-1m", data_dir=tmp_path / "arg") == tmp_path / "arg" / "ml-1m"
    with pytest.raises(ValueError, match="dataset"):
        resolve_dataset_dir("nope")


# --------------------------------------------------------------------------- #
# Reading well-formed files
# --------------------------------------------------------------------------- #


def _assert_schema(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == list(EXPECTED_DTYPES)
    for column, dtype in EXPECTED_DTYPES.items():
        assert frame[column].dtype == dtype, column
    np.testing.assert_array_equal(frame["row_order"].to_numpy(), np.arange(len(frame)))
    assert isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0


def test_read_shipped_ml_latest_small() -> None:
    frame = read_ratings(SHIPPED_RATINGS, "ml-latest-small")
    assert len(frame) == 100_836
    assert frame["user_id"].nunique() == 610
    assert frame["item_id"].nunique() == 9_724
    _assert_schema(frame)
    assert frame["rating"].between(0.5, 5.0).all()
    # First data line of the file is "1,1,4.0,964982703".
    assert frame.iloc[0][["user_id", "item_id", "rating", "timestamp"]].tolist() == [1, 1, 4.0, 964982703]


@pytest.mark.parametrize(
    ("name", "filename", "content"),
    [
        (
            "ml-latest-small",
            "ratings.csv",
            b"userId,movieId,rating,timestamp\r\n7,31,2.5,1260759144\r\n3,1029,0.5,1260759179\r\n7,2,5.0,1\r\n",
        ),
        ("ml-100k", "u.data", b"7\t31\t2\t1260759144\n3\t1029\t1\t1260759179\n7\t2\t5\t1\n"),
        ("ml-1m", "ratings.dat", b"7::31::2::1260759144\n3::1029::1::1260759179\n7::2::5::1"),  # no final newline
    ],
)
def test_read_each_format(tmp_path: Path, name: str, filename: str, content: bytes) -> None:
    path = tmp_path / filename
    path.write_bytes(content)
    frame = read_ratings(path, name)
    _assert_schema(frame)
    first_rating = 2.5 if name == "ml-latest-small" else 2.0
    second_rating = 0.5 if name == "ml-latest-small" else 1.0
    expected = pd.DataFrame(
        {
            "user_id": np.array([7, 3, 7], dtype=np.int64),
            "item_id": np.array([31, 1029, 2], dtype=np.int64),
            "rating": np.array([first_rating, second_rating, 5.0]),
            "timestamp": np.array([1260759144, 1260759179, 1], dtype=np.int64),
            "row_order": np.array([0, 1, 2], dtype=np.int64),
        }
    )
    pd.testing.assert_frame_equal(frame, expected)


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "u.data"
    path.write_bytes(b"1\t2\t3\t4\n\n5\t6\t4\t8\n\n")
    frame = read_ratings(path, "ml-100k")
    assert frame["user_id"].tolist() == [1, 5]
    assert frame["row_order"].tolist() == [0, 1]


def test_reference_parser_used_when_fast_path_declines(tmp_path: Path) -> None:
    # A stray \x1f makes the fast path decline; the strict parser still finds the
    # file malformed (the field "1\x1f" is not an integer) and says where.
    path = tmp_path / "ratings.dat"
    path.write_bytes(b"1::2::3::4\n1\x1f::2::3::4\n")
    with pytest.raises(RawDataError, match="non-numeric user id") as exc:
        read_ratings(path, "ml-1m")
    _assert_located(exc, path, 2)


# --------------------------------------------------------------------------- #
# Malformed input
# --------------------------------------------------------------------------- #


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nothere" / "u.data"
    with pytest.raises(RawDataError, match="does not exist") as exc:
        read_ratings(path, "ml-100k")
    assert str(path) in str(exc.value)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "ratings.dat"
    path.write_bytes(b"")
    with pytest.raises(RawDataError, match="empty") as exc:
        read_ratings(path, "ml-1m")
    _assert_located(exc, path, 1)


def test_header_only(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    path.write_bytes(b"userId,movieId,rating,timestamp\r\n")
    with pytest.raises(RawDataError, match="no ratings") as exc:
        read_ratings(path, "ml-latest-small")
    _assert_located(exc, path, 2)


def test_missing_header(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    path.write_bytes(b"1,2,3.0,4\r\n")
    with pytest.raises(RawDataError, match="header") as exc:
        read_ratings(path, "ml-latest-small")
    _assert_located(exc, path, 1)


# (name, filename, content, bad line, message fragment)
BAD_INPUTS = [
    ("ml-100k", "u.data", b"1\t2\t3\t4\n1\t2\t3\t4\t5\n", 2, "expected 4 fields.*got 5"),
    ("ml-100k", "u.data", b"1\t2\t3\t4\t5\n1\t2\t3\t4\n", 1, "expected 4 fields.*got 5"),  # pandas drops it silently
    ("ml-1m", "ratings.dat", b"1::2::3::4\n1::2::3::4\n1::2::3\n", 3, "expected 4 fields.*got 3"),
    ("ml-latest-small", "ratings.csv", b"userId,movieId,rating,timestamp\r\n1,2,3.0,4\r\n1,2,3.0\r\n", 3, "got 3"),
    ("ml-100k", "u.data", b"1\t2\t3\t4\nabc\t2\t3\t4\n", 2, "non-numeric user id 'abc'"),
    ("ml-1m", "ratings.dat", b"1::2::3::4\n1::2::3::4\n1::x7::3::4\n", 3, "non-numeric item id"),
    ("ml-1m", "ratings.dat", b"1::2.5::3::4\n", 1, "non-integer item id"),
    ("ml-1m", "ratings.dat", b"1::2::3::4\n1::2::3::yesterday\n", 2, "non-numeric timestamp"),
    ("ml-latest-small", "ratings.csv", b"userId,movieId,rating,timestamp\r\n1,2,3.0,4\r\n1,2,good,4\r\n", 3,
     "non-numeric rating"),
    ("ml-latest-small", "ratings.csv", b"userId,movieId,rating,timestamp\r\n1,2,3.0,4\r\n1,2,5.5,4\r\n", 3,
     r"out of range.*\[0.5, 5\]"),
    ("ml-100k", "u.data", b"1\t2\t3\t4\n1\t2\t0\t4\n1\t2\t9\t4\n", 2, r"out of range.*\[1, 5\]"),
    ("ml-1m", "ratings.dat", b"1::2::3::4\n1::2::nan::4\n", 2, "non-numeric rating"),
    ("ml-100k", "u.data", b"1\t2\t3\t4\n1\t\t3\t4\n", 2, "non-numeric item id ''"),
    ("ml-100k", "u.data", b"1\t2\t3\t881250949\n1\t2\t3\t-5\n", 2, "negative timestamp '-5'"),
    ("ml-100k", "u.data", b"1\t2\t3\t881250949\n1\t2\t3\t881250949.5\n", 2, "non-integer timestamp"),
    ("ml-latest-small", "ratings.csv", b"userId,movieId,rating,timestamp\r\n1,2,3.0,4\r\n-1,2,3.0,4\r\n", 3,
     "negative user id"),
]


@pytest.mark.parametrize(("name", "filename", "content", "line", "fragment"), BAD_INPUTS)
def test_bad_input_reports_first_bad_line(
    tmp_path: Path, name: str, filename: str, content: bytes, line: int, fragment: str
) -> None:
    path = tmp_path / filename
    path.write_bytes(content)
    with pytest.raises(RawDataError, match=fragment) as exc:
        read_ratings(path, name)
    _assert_located(exc, path, line)


def test_first_bad_line_wins_across_kinds(tmp_path: Path) -> None:
    # A range error on line 4 and a field-count error on line 6: pandas notices the
    # latter first (parser error), but the report must be the earliest line.
    path = tmp_path / "ratings.dat"
    lines = [b"1::2::3::4"] * 3 + [b"1::2::7::4", b"1::2::3::4", b"1::2::3::4::5"]
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(RawDataError, match="out of range") as exc:
        read_ratings(path, "ml-1m")
    _assert_located(exc, path, 4)


# --------------------------------------------------------------------------- #
# Item index
# --------------------------------------------------------------------------- #


def test_build_item_index() -> None:
    interactions = pd.DataFrame({"user_id": [1, 1, 2, 3], "item_id": [50, 7, 50, 1000]})
    index = build_item_index(interactions)
    assert index["raw_item_id"].tolist() == [7, 50, 1000]
    assert index["item_index"].tolist() == [1, 2, 3]
    assert index["raw_item_id"].dtype == np.int64 and index["item_index"].dtype == np.int64


def test_build_item_index_empty() -> None:
    index = build_item_index(pd.DataFrame({"item_id": pd.Series([], dtype=np.int64)}))
    assert len(index) == 0 and list(index.columns) == ["raw_item_id", "item_index"]


# --------------------------------------------------------------------------- #
# Download
# --------------------------------------------------------------------------- #

U_DATA = b"196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n"


def _zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make sure urllib talks to 127.0.0.1 directly even if a proxy is configured."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def zip_server(no_proxy: None) -> Iterator[tuple[str, bytes]]:
    """Serve an ml-100k-shaped zip at http://127.0.0.1:<port>/ml-100k.zip."""
    payload = _zip_bytes(
        {
            "ml-100k/": b"",
            "ml-100k/u.data": U_DATA,
            "ml-100k/u.item": b"1|Toy Story (1995)\n",
            "ml-100k/sub/extra.txt": b"nested\n",
            "other/ignored.txt": b"not part of the dataset\n",
        }
    )

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
            if self.path != "/ml-100k.zip":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/ml-100k.zip", payload
    finally:
        server.shutdown()
        server.server_close()


def test_download_success(tmp_path: Path, zip_server: tuple[str, bytes]) -> None:
    url, payload = zip_server
    digest = hashlib.sha256(payload).hexdigest()
    path = ensure_ratings_file("ml-100k", data_dir=tmp_path, url=url, sha256=digest, timeout=5)
    assert path == tmp_path / "ml-100k" / "u.data"
    assert path.read_bytes() == U_DATA
    assert (tmp_path / "ml-100k" / "u.item").is_file()
    assert (tmp_path / "ml-100k" / "sub" / "extra.txt").read_bytes() == b"nested\n"
    assert not (tmp_path / "ml-100k" / "other").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ml-100k"]  # no temp leftovers
    assert read_ratings(path, "ml-100k")["item_id"].tolist() == [242, 302, 377]
    # Second call finds the file and must not touch the network (bogus URL).
    assert ensure_ratings_file("ml-100k", data_dir=tmp_path, url="http://127.0.0.1:1/x.zip") == path


def test_download_into_existing_dir_keeps_user_files(tmp_path: Path, zip_server: tuple[str, bytes]) -> None:
    url, payload = zip_server
    (tmp_path / "ml-100k").mkdir()
    (tmp_path / "ml-100k" / "u.item").write_bytes(b"mine\n")
    path = ensure_ratings_file("ml-100k", data_dir=tmp_path, url=url, sha256=hashlib.sha256(payload).hexdigest())
    assert path.read_bytes() == U_DATA
    assert (tmp_path / "ml-100k" / "u.item").read_bytes() == b"mine\n"


def test_download_checksum_mismatch(tmp_path: Path, zip_server: tuple[str, bytes]) -> None:
    url, payload = zip_server
    wrong = "0" * 64
    with pytest.raises(RawDataError) as exc:
        ensure_ratings_file("ml-100k", data_dir=tmp_path, url=url, sha256=wrong, timeout=5)
    message = str(exc.value)
    assert wrong in message and hashlib.sha256(payload).hexdigest() in message and url in message
    assert not (tmp_path / "ml-100k").exists()
    assert list(tmp_path.iterdir()) == []  # no temp files left behind either


def test_download_http_error(tmp_path: Path, zip_server: tuple[str, bytes]) -> None:
    url, _ = zip_server
    with pytest.raises(RawDataError, match="404"):
        ensure_ratings_file("ml-100k", data_dir=tmp_path, url=url.replace("ml-100k.zip", "missing.zip"))
    assert list(tmp_path.iterdir()) == []


def test_download_archive_without_ratings_file(tmp_path: Path, no_proxy: None) -> None:
    # Served via the same server type, but the archive lacks u.data.
    payload = _zip_bytes({"ml-100k/u.item": b"x\n"})

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    try:
        with pytest.raises(RawDataError, match="does not contain 'ml-100k/u.data'"):
            ensure_ratings_file(
                "ml-100k",
                data_dir=tmp_path,
                url=f"http://127.0.0.1:{server.server_address[1]}/z.zip",
                sha256=hashlib.sha256(payload).hexdigest(),
                timeout=5,
            )
    finally:
        thread.join(timeout=5)
        server.server_close()
    assert list(tmp_path.iterdir()) == []


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_download_unreachable_server(tmp_path: Path, no_proxy: None) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/ml-1m.zip"
    with pytest.raises(RawDataError) as exc:
        ensure_ratings_file("ml-1m", data_dir=tmp_path, url=url, timeout=5)
    message = str(exc.value)
    assert "failed" in message
    assert str(tmp_path / "ml-1m" / "ratings.dat") in message
    assert "DUET_DATA_DIR" in message
    assert not (tmp_path / "ml-1m").exists()


def test_download_disabled_and_missing(tmp_path: Path) -> None:
    with pytest.raises(RawDataError) as exc:
        ensure_ratings_file("ml-latest-small", data_dir=tmp_path, download=False)
    message = str(exc.value)
    assert str(tmp_path / "ml-latest-small" / "ratings.csv") in message
    assert "DUET_DATA_DIR" in message and "disabled" in message


def test_env_var_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "env_root" / "ml-1m" / "ratings.dat"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"1::2::3::4\n")
    monkeypatch.setenv("DUET_DATA_DIR", str(tmp_path / "env_root"))
    found = ensure_ratings_file("ml-1m", fallback_root=tmp_path / "elsewhere", download=False)
    assert found == target
    assert read_ratings(found, "ml-1m")["rating"].tolist() == [3.0]
