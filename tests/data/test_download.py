"""Tests for duet_pipeline.data.download: a declared archive, fetched, checked, extracted atomically."""
from __future__ import annotations

import hashlib
import http.server
import io
import socket
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from duet_pipeline.data.declarations import Download, parse_declarations
from duet_pipeline.data.download import ensure_present
from duet_pipeline.data.events import read_events
from duet_pipeline.data.readers import RawDataError

REPO_ROOT = Path(__file__).resolve().parents[2]
DECLARED = parse_declarations(yaml.safe_load((REPO_ROOT / "conf" / "base" / "datasets.yml").read_text())["datasets"])
U_DATA = b"196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n"
ML_100K = {
    "ml-100k/": b"",
    "ml-100k/u.data": U_DATA,
    "ml-100k/u.item": b"1|Toy Story (1995)\n",
    "ml-100k/sub/extra.txt": b"nested\n",
    "other/ignored.txt": b"not part of the dataset\n",
}


def _zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _download(url: str, payload: bytes | None = None, sha256: str | None = None) -> Download:
    digest = sha256 or hashlib.sha256(payload or b"").hexdigest()
    return Download(url=url, sha256=digest, archive_root="ml-100k")


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make sure urllib talks to 127.0.0.1 directly even if a proxy is configured."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def serve(no_proxy: None) -> Iterator[Callable[[bytes], str]]:
    """``serve(payload)`` -> the URL of a local HTTP server that answers /archive.zip with
    ``payload`` and anything else with 404; it also counts the requests."""
    servers = []

    def start(payload: bytes) -> str:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # http.server's name
                server.requests += 1
                if self.path != "/archive.zip":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.requests = 0
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/archive.zip"

    start.servers = servers
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_download_success(tmp_path: Path, serve) -> None:
    payload = _zip_bytes(ML_100K)
    url = serve(payload)
    path = tmp_path / "ml-100k" / "u.data"
    assert ensure_present(path, _download(url, payload), allowed=True, timeout=5) == path
    assert path.read_bytes() == U_DATA
    assert (tmp_path / "ml-100k" / "u.item").is_file()
    assert (tmp_path / "ml-100k" / "sub" / "extra.txt").read_bytes() == b"nested\n"
    assert not (tmp_path / "ml-100k" / "other").exists() and not (tmp_path / "other").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ml-100k"]  # no temporary leftovers
    frame = read_events(path, DECLARED["ml-100k"]).interactions
    assert frame["item_id"].tolist() == [242, 302, 377]
    # A present file is never fetched again: no request, even with a bogus URL.
    assert serve.servers[0].requests == 1
    assert ensure_present(path, _download("http://127.0.0.1:1/x.zip", b""), allowed=True, timeout=5) == path
    assert ensure_present(path, None, allowed=False) == path


def test_download_into_existing_folder_keeps_user_files(tmp_path: Path, serve) -> None:
    payload = _zip_bytes(ML_100K)
    url = serve(payload)
    (tmp_path / "ml-100k").mkdir()
    (tmp_path / "ml-100k" / "u.item").write_bytes(b"mine\n")
    path = ensure_present(tmp_path / "ml-100k" / "u.data", _download(url, payload), allowed=True, timeout=5)
    assert path.read_bytes() == U_DATA
    assert (tmp_path / "ml-100k" / "u.item").read_bytes() == b"mine\n"  # not overwritten
    assert (tmp_path / "ml-100k" / "sub" / "extra.txt").read_bytes() == b"nested\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ml-100k"]


def test_download_checksum_mismatch(tmp_path: Path, serve) -> None:
    payload = _zip_bytes(ML_100K)
    url = serve(payload)
    wrong = "0" * 64
    with pytest.raises(RawDataError) as exc:
        ensure_present(tmp_path / "ml-100k" / "u.data", _download(url, sha256=wrong), allowed=True, timeout=5)
    message = str(exc.value)
    assert "Checksum mismatch" in message
    assert wrong in message and hashlib.sha256(payload).hexdigest() in message and url in message
    assert str(tmp_path / "ml-100k" / "u.data") in message  # where to put the file by hand
    assert list(tmp_path.iterdir()) == []  # nothing extracted, no temporary files


def test_download_http_error(tmp_path: Path, serve) -> None:
    url = serve(_zip_bytes(ML_100K)).replace("archive.zip", "missing.zip")
    with pytest.raises(RawDataError, match="HTTP 404") as exc:
        ensure_present(tmp_path / "ml-100k" / "u.data", _download(url, b""), allowed=True, timeout=5)
    assert url in str(exc.value)
    assert list(tmp_path.iterdir()) == []


def test_download_archive_without_the_file(tmp_path: Path, serve) -> None:
    payload = _zip_bytes({"ml-100k/u.item": b"x\n", "u.data": U_DATA})  # u.data, but not under archive_root
    url = serve(payload)
    with pytest.raises(RawDataError, match="does not contain 'ml-100k/u.data'"):
        ensure_present(tmp_path / "ml-100k" / "u.data", _download(url, payload), allowed=True, timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_download_not_a_zip(tmp_path: Path, serve) -> None:
    payload = b"<html>maintenance</html>"
    url = serve(payload)
    with pytest.raises(RawDataError, match="not a readable zip file"):
        ensure_present(tmp_path / "ml-100k" / "u.data", _download(url, payload), allowed=True, timeout=5)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("unsafe", ["ml-100k/../escaped.txt", "ml-100k/sub/../../escaped.txt"])
def test_download_refuses_path_traversal(tmp_path: Path, serve, unsafe: str) -> None:
    payload = _zip_bytes({"ml-100k/u.data": U_DATA, unsafe: b"evil\n"})
    url = serve(payload)
    root = tmp_path / "raw"
    with pytest.raises(RawDataError, match="unsafe path") as exc:
        ensure_present(root / "ml-100k" / "u.data", _download(url, payload), allowed=True, timeout=5)
    assert unsafe in str(exc.value)
    assert not list(tmp_path.rglob("escaped.txt"))
    assert not (root / "ml-100k").exists()
    assert list(root.iterdir()) == []


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_download_unreachable_server(tmp_path: Path, no_proxy: None) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/ml-1m.zip"
    path = tmp_path / "ml-1m" / "ratings.dat"
    with pytest.raises(RawDataError) as exc:
        ensure_present(path, Download(url=url, sha256="0" * 64, archive_root="ml-1m"), allowed=True, timeout=5)
    message = str(exc.value)
    assert "failed" in message and url in message
    assert str(path) in message and "DUET_DATA_DIR" in message
    assert exc.value.path == path
    assert not (tmp_path / "ml-1m").exists() and list(tmp_path.iterdir()) == []


def test_download_disabled_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "ml-latest-small" / "ratings.csv"
    with pytest.raises(RawDataError) as exc:
        ensure_present(path, DECLARED["ml-latest-small"].download, allowed=False)
    message = str(exc.value)
    assert str(path) in message and "DUET_DATA_DIR" in message and "disabled" in message
    assert DECLARED["ml-latest-small"].download.url in message
    assert not path.parent.exists()


def test_missing_without_a_declared_download(tmp_path: Path) -> None:
    path = tmp_path / "clickstream"
    with pytest.raises(RawDataError, match="no such file or folder") as exc:
        ensure_present(path, None, allowed=True)
    assert str(path) in str(exc.value) and "DUET_DATA_DIR" in str(exc.value)
    assert not path.exists()


def test_present_folder_is_returned(tmp_path: Path) -> None:
    (tmp_path / "log").mkdir()
    assert ensure_present(tmp_path / "log", None, allowed=False) == tmp_path / "log"
