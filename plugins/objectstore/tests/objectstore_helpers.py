"""Helpers shared by the objectstore tests (the S3 test server and its control)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from walstream.testing.services import ServiceScript

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "s3proxy"


def fresh_prefix() -> str:
    """A key prefix no other test uses."""
    return f"t/{uuid.uuid4().hex}"


def s3_settings(server: dict[str, str], **overrides: Any) -> dict[str, Any]:
    """Settings of a fresh, empty prefix of the test bucket, with test-sized retry bounds."""
    settings: dict[str, Any] = {
        **server,
        "prefix": fresh_prefix(),
        "connect_timeout_s": 2.0,
        "request_timeout_s": 30.0,
        "retry_deadline_s": 10.0,
    }
    settings.update(overrides)
    return settings


class ServerControl(ServiceScript):
    """Kills and restarts the test S3 server through ``scripts/s3proxy``."""

    def __init__(self, run_dir: str | None) -> None:
        super().__init__(SCRIPT, "S3PROXY_RUN_DIR", run_dir)


class StatusServer:
    """A loopback HTTP server that answers every request with one status (or never answers).

    For error-mapping tests of drivers without a real server: ``status`` and
    ``body`` are what every request gets; ``hang=True`` accepts and never answers.
    ``requests`` counts what arrived. It also serves GCE metadata tokens under
    ``/computeMetadata/`` (point ``GCE_METADATA_HOST`` at it), uncounted.
    """

    def __init__(self, status: int = 200, body: bytes = b"", *, hang: bool = False) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        owner = self
        self.status = status
        self.body = body
        self.hang = hang
        self.requests = 0
        self._stop = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                if self.path.startswith("/computeMetadata/"):
                    # The GCE metadata server (GCE_METADATA_HOST): a token for the GCS client.
                    token = b'{"access_token": "test-token", "expires_in": 3600}'
                    self.send_response(200)
                    self.send_header("content-length", str(len(token)))
                    self.send_header("content-type", "application/json")
                    self.end_headers()
                    self.wfile.write(token)
                    return
                owner.requests += 1
                if owner.hang:
                    owner._stop.wait(30)
                    return
                self.send_response(owner.status)
                self.send_header("content-length", str(len(owner.body)))
                self.send_header("content-type", "application/xml")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(owner.body)

            do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> StatusServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()


def closed_port_url() -> str:
    """``http://127.0.0.1:<port>`` with nothing listening (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"
