"""scripts/download_modelnet40.py against an archive served from 127.0.0.1."""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from pointnormals.data.modelnet import ModelNet40

SCRIPT = REPO / "scripts" / "download_modelnet40.py"


def load_script():
    spec = importlib.util.spec_from_file_location("download_modelnet40", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


download = load_script()


def build_archive(path: Path) -> bytes:
    """A tiny ``modelnet40_normal_resampled.zip`` (one class, two shapes)."""
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as zf:
        base = "modelnet40_normal_resampled"
        zf.writestr(f"{base}/modelnet40_shape_names.txt", "chair\n")
        zf.writestr(f"{base}/modelnet40_train.txt", "chair_0001\n")
        zf.writestr(f"{base}/modelnet40_test.txt", "chair_0002\n")
        for name in ("chair_0001", "chair_0002"):
            normal = rng.normal(size=(500, 3))
            normal /= np.linalg.norm(normal, axis=1, keepdims=True)
            rows = "\n".join(",".join(f"{x:.6f}" for x in r) for r in np.hstack([normal, normal]))
            zf.writestr(f"{base}/chair/{name}.txt", rows + "\n")
        zf.writestr("padding.bin", rng.bytes(300_000))  # several download chunks
    return path.read_bytes()


class Server:
    """Serves ``payload`` at ``/m.zip``; honours ``Range`` unless told not to."""

    def __init__(self, payload: bytes) -> None:
        self.payload, self.ranges, self.honour_range = payload, [], True
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/m.zip":
                    self.send_error(404)
                    return
                header = self.headers.get("Range")
                server.ranges.append(header)
                start = int(header[6:-1]) if header and server.honour_range else 0
                if start >= len(server.payload):
                    self.send_error(416)
                    return
                self.send_response(206 if start else 200)
                if start:
                    total = len(server.payload)
                    self.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
                self.send_header("Content-Length", str(len(server.payload) - start))
                self.end_headers()
                self.wfile.write(server.payload[start:])

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/m.zip"


@pytest.fixture
def server(tmp_path) -> Iterator[Server]:
    served = Server(build_archive(tmp_path / "archive.zip"))
    thread = threading.Thread(target=served.httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield served
    served.httpd.shutdown()
    served.httpd.server_close()


def args(server: Server, dest: Path, *extra: str) -> list[str]:
    return ["--layout", "resampled", "--url", server.url, "--dest", str(dest), *extra]


def test_download_verifies_unpacks_and_is_loadable(server, tmp_path, capsys):
    digest = hashlib.sha256(server.payload).hexdigest()
    dest = tmp_path / "data"
    assert download.main(args(server, dest, "--sha256", digest)) == 0
    out = capsys.readouterr().out
    assert f"sha256 {digest}" in out and "ready:" in out
    assert not (dest / "m.zip").exists() and not (dest / "m.zip.part").exists()
    data = ModelNet40(dest / "modelnet40_normal_resampled", "train", cache_dir=tmp_path / "c")
    assert len(data) == 1 and data[0].pos.shape == (500, 3)
    # a second run finds the data and does not download again
    assert download.main(args(server, dest)) == 0
    assert "already exists" in capsys.readouterr().out and len(server.ranges) == 1


@pytest.mark.parametrize("honour_range", [True, False])
def test_download_resumes_a_partial_file(server, tmp_path, honour_range):
    server.honour_range = honour_range
    dest = tmp_path / "data"
    dest.mkdir()
    half = len(server.payload) // 2
    (dest / "m.zip.part").write_bytes(server.payload[:half])
    digest = hashlib.sha256(server.payload).hexdigest()
    assert download.main(args(server, dest, "--sha256", digest, "--keep-archive")) == 0
    assert server.ranges == [f"bytes={half}-"]
    assert (dest / "m.zip").read_bytes() == server.payload  # restarted cleanly if ignored
    assert (dest / "modelnet40_normal_resampled" / "chair" / "chair_0002.txt").is_file()


def test_complete_part_file_is_not_downloaded_again(server, tmp_path):
    dest = tmp_path / "data"
    dest.mkdir()
    (dest / "m.zip.part").write_bytes(server.payload)
    assert download.main(args(server, dest)) == 0
    assert server.ranges == [f"bytes={len(server.payload)}-"]  # answered 416


def run_cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True)


def test_checksum_mismatch_fails_with_one_line(server, tmp_path):
    result = run_cli(*args(server, tmp_path, "--sha256", "0" * 64))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "sha256 mismatch" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "m.zip").exists()


@pytest.mark.parametrize("url_suffix", ["/missing.zip", "-closed"])
def test_unreachable_or_missing_url_fails_with_one_line(server, tmp_path, capsys, url_suffix):
    url = server.url.replace("/m.zip", url_suffix)
    if url_suffix == "-closed":
        url = "http://127.0.0.1:9/m.zip"  # the discard port: nothing listens
    assert download.main(["--url", url, "--dest", str(tmp_path), "--timeout", "5"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and url in err


def test_not_a_zip_fails_cleanly(server, tmp_path, capsys):
    server.payload = b"<html>mirror is down</html>"
    assert download.main(args(server, tmp_path)) == 1
    assert "not a valid zip archive" in capsys.readouterr().err
