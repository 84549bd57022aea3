"""Regressions of the s3 driver found in review: AWS 409 conflicts, no credentials with no
metadata service, the AWS environment (region, endpoint, plain http), two writers with equal
bytes, misclassified errors (RequestTimeout as 400, TLS, HEAD on a missing bucket), virtual-
hosted style, and scripts/s3proxy adopting another run dir's server.

Tests taking ``s3_server``/``s3_fresh`` run against the real test server (scripts/s3proxy).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest
from objectstore_helpers import SCRIPT, StatusServer, closed_port_url
from walstream.errors import (
    ObjectAlreadyExistsError,
    ObjectNotFoundError,
    ObjectStoreError,
    SettingsError,
)
from walstream.objectstore import open_store
from walstream_objectstore import _remote
from walstream_objectstore.s3 import S3Settings

T = TypeVar("T")
CREDS = {"access_key_id": "AKIDEXAMPLE", "secret_access_key": "SECRETEXAMPLE"}
AWS_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ALLOW_HTTP",
    "AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_METADATA_ENDPOINT",
)


def run(coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No walstream.toml, no WALSTREAM_OBJECTSTORE_S3_* and no AWS_* variables."""
    monkeypatch.setenv("WALSTREAM_CONFIG", str(tmp_path / "walstream.toml"))
    for field in S3Settings.model_fields:
        monkeypatch.delenv(f"WALSTREAM_OBJECTSTORE_S3_{field.upper()}", raising=False)
    for name in AWS_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


class Recorder:
    """A loopback S3 stand-in: answers scripted statuses to PUT, records each request."""

    def __init__(self, put_answers: list[tuple[int, bytes]] | None = None) -> None:
        owner = self
        self.put_answers = list(put_answers or [])
        self.requests: list[tuple[str, str, dict[str, str]]] = []

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, body: bytes = b"") -> None:
                self.send_response(status)
                self.send_header("content-length", str(len(body)))
                self.send_header("etag", '"abc"')
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_PUT(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                owner.requests.append(("PUT", self.path, dict(self.headers)))
                status, body = owner.put_answers.pop(0) if owner.put_answers else (200, b"")
                self._send(status, body)

            def do_GET(self) -> None:
                owner.requests.append((self.command, self.path, dict(self.headers)))
                self._send(404, b"<Error><Code>NoSuchKey</Code></Error>")

            do_HEAD = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Recorder:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


CONFLICT = (
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>ConditionalRequestConflict</Code>"
    b"<Message>A conflicting conditional operation is currently in progress against this "
    b"resource. Please try again.</Message></Error>"
)


# --- 1. AWS 409 ConditionalRequestConflict is retried, not "taken" ---------------------------


def test_409_conditional_request_conflict_is_retried(clean_env: pytest.MonkeyPatch) -> None:
    """Another conditional write was in flight (and then failed): the key is not taken."""
    with Recorder([(409, CONFLICT)]) as server:

        async def main() -> None:
            settings = {"bucket": "b", "endpoint": server.url, "retry_deadline_s": 5, **CREDS}
            async with await open_store("s3", settings) as store:
                meta = await store.put_if_absent("fence/1", b"x")
                assert meta.key == "fence/1"

        run(main())
        assert [r[0] for r in server.requests] == ["PUT", "PUT"]


def test_409_conflict_that_persists_is_unreachable_not_taken(
    clean_env: pytest.MonkeyPatch,
) -> None:
    with Recorder([(409, CONFLICT)] * 10) as server:

        async def main() -> None:
            settings = {
                "bucket": "b",
                "endpoint": server.url,
                "retry_max_attempts": 3,
                "retry_deadline_s": 10,
                **CREDS,
            }
            async with await open_store("s3", settings) as store:
                with pytest.raises(ObjectStoreError, match="unreachable") as info:
                    await store.put_if_absent("fence/1", b"x")
                assert not isinstance(info.value, ObjectAlreadyExistsError)

        run(main())
        assert len(server.requests) == 3


# --- 2. no credentials and no instance metadata service ---------------------------------------


@pytest.mark.parametrize("imds", ["closed", "503", "hang"])
def test_no_credentials_and_no_metadata_service_fails_fast(
    clean_env: pytest.MonkeyPatch, imds: str
) -> None:
    """'could not obtain credentials' quickly, not retried to the deadline as 'unreachable'.

    A refused connection or a 5xx gets one more try; a metadata service that accepts and never
    answers costs one request_timeout_s (obstore has no separate timeout for it), no retry.
    """
    with StatusServer(503) as failing, StatusServer(hang=True) as hanging:
        metadata = {"closed": closed_port_url(), "503": failing.url, "hang": hanging.url}[imds]
        clean_env.setenv("AWS_METADATA_ENDPOINT", metadata)

        async def main() -> tuple[float, str]:
            settings = {
                "bucket": "b",
                "endpoint": closed_port_url(),
                "request_timeout_s": 1.0,
                "retry_deadline_s": 20.0,
            }
            async with await open_store("s3", settings) as store:
                started = time.monotonic()
                with pytest.raises(ObjectStoreError) as info:
                    await store.get("k")
                return time.monotonic() - started, str(info.value)

        took, message = run(main())
        assert "could not obtain credentials" in message, message
        assert "unreachable" not in message
        assert took < 3, f"took {took:.1f}s: {message}"
        assert failing.requests == (2 if imds == "503" else 0)
        assert hanging.requests == (1 if imds == "hang" else 0)


# --- 3. the standard AWS environment ------------------------------------------------------------


def _signing_region(request: tuple[str, str, dict[str, str]]) -> str:
    auth = next(v for k, v in request[2].items() if k.lower() == "authorization")
    return auth.split("Credential=")[1].split("/")[2]


@pytest.mark.parametrize(
    ("env", "setting", "expected"),
    [
        ({}, None, "us-east-1"),
        ({"AWS_REGION": "eu-west-1"}, None, "eu-west-1"),
        ({"AWS_DEFAULT_REGION": "eu-west-2"}, None, "eu-west-2"),
        ({"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-2"}, None, "eu-west-1"),
        ({"AWS_REGION": "eu-west-1"}, "ap-south-1", "ap-south-1"),
    ],
)
def test_region_falls_back_to_the_aws_environment(
    clean_env: pytest.MonkeyPatch, env: dict[str, str], setting: str | None, expected: str
) -> None:
    for name, value in env.items():
        clean_env.setenv(name, value)
    with Recorder() as server:

        async def main() -> None:
            settings: dict[str, Any] = {"bucket": "b", "endpoint": server.url, **CREDS}
            if setting:
                settings["region"] = setting
            async with await open_store("s3", settings) as store:
                await store.put("k", b"v")

        run(main())
        assert _signing_region(server.requests[0]) == expected


@pytest.mark.parametrize("allow", [None, "true"])
def test_aws_endpoint_url_with_plain_http(clean_env: pytest.MonkeyPatch, allow: str | None) -> None:
    """AWS_ENDPOINT_URL=http://... (with or without AWS_ALLOW_HTTP=true) works, no builder error."""
    with Recorder() as server:
        clean_env.setenv("AWS_ENDPOINT_URL", server.url)
        if allow:
            clean_env.setenv("AWS_ALLOW_HTTP", allow)

        async def main() -> None:
            async with await open_store("s3", {"bucket": "b", "prefix": "p", **CREDS}) as store:
                await store.put("k", b"v")

        run(main())
        assert server.requests[0][:2] == ("PUT", "/b/p/k")  # path style for an endpoint


def test_aws_allow_http_false_is_respected(clean_env: pytest.MonkeyPatch) -> None:
    with Recorder() as server:
        clean_env.setenv("AWS_ENDPOINT_URL", server.url)
        clean_env.setenv("AWS_ALLOW_HTTP", "false")

        async def main() -> None:
            settings = {"bucket": "b", "retry_max_attempts": 1, **CREDS}
            async with await open_store("s3", settings) as store:
                with pytest.raises(ObjectStoreError):
                    await store.put("k", b"v")

        run(main())
        assert server.requests == []


def test_the_settings_woodpecker_passes_still_work(s3_server: dict[str, str]) -> None:
    """{bucket, prefix, endpoint, region, access_key_id, secret_access_key, allow_http}."""

    async def main() -> None:
        settings = {**s3_server, "prefix": f"t/{os.urandom(6).hex()}", "allow_http": True}
        assert set(settings) == {
            "bucket",
            "prefix",
            "endpoint",
            "region",
            "access_key_id",
            "secret_access_key",
            "allow_http",
        }
        async with await open_store("s3", settings) as store:
            await store.put("k", b"v")
            assert await store.get("k") == b"v"
            await store.delete("k")

    run(main())


# --- 4. two writers with equal bytes: exactly one wins -----------------------------------------


def test_equal_bytes_rival_wins_after_our_connect_failure(
    s3_fresh: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A's first attempt never reached the server; B creates the key with the same bytes; A's
    retry gets 412. A must lose (it used to read back equal bytes and 'win' too)."""
    real = _remote.obstore.put_async

    async def main() -> tuple[str, str]:
        a = await open_store("s3", s3_fresh)
        b = await open_store("s3", s3_fresh)
        b_won = asyncio.Event()
        a_calls = 0

        async def patched(store: Any, key: str, data: bytes, **kwargs: Any) -> Any:
            nonlocal a_calls
            if store is a._store and a_calls == 0:  # type: ignore[attr-defined]
                a_calls += 1
                await b_won.wait()
                raise ConnectionRefusedError("injected: A's request never reached the server")
            return await real(store, key, data, **kwargs)

        monkeypatch.setattr(_remote.obstore, "put_async", patched)

        async def writer(store: Any, delay: float) -> str:
            await asyncio.sleep(delay)
            try:
                await store.put_if_absent("lock", b"LOCKED")
            except ObjectAlreadyExistsError:
                return "lost"
            if store is b:
                b_won.set()
            return "won"

        results = await asyncio.gather(writer(a, 0), writer(b, 0.05))
        await a.close()
        await b.close()
        return results

    ra, rb = run(main())
    assert (ra, rb) == ("lost", "won")


def test_equal_bytes_rival_wins_after_our_lost_answer(
    s3_fresh: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A's first attempt may have reached the server (reset), but the object there is B's (same
    bytes, B's create token): A loses. Decided by the token, not by the bytes."""
    real = _remote.obstore.put_async
    calls = 0

    async def rival_then_reset(store: Any, key: str, data: bytes, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            rival = {**kwargs, "attributes": {_remote.CREATE_TOKEN: "writer-b"}}
            await real(store, key, data, **rival)
            raise ConnectionResetError("connection reset by peer (injected)")
        return await real(store, key, data, **kwargs)

    monkeypatch.setattr(_remote.obstore, "put_async", rival_then_reset)

    async def main() -> None:
        async with await open_store("s3", s3_fresh) as store:
            with pytest.raises(ObjectAlreadyExistsError):
                await store.put_if_absent("lock", b"LOCKED")

    run(main())
    assert calls == 2


# --- 5. misclassified errors ------------------------------------------------------------------


def test_tls_to_a_plain_http_server_is_final_and_says_so(clean_env: pytest.MonkeyPatch) -> None:
    with StatusServer(200) as server:

        async def main() -> tuple[float, str]:
            settings = {
                "bucket": "b",
                "endpoint": server.url.replace("http://", "https://"),
                "retry_deadline_s": 8,
                **CREDS,
            }
            async with await open_store("s3", settings) as store:
                started = time.monotonic()
                with pytest.raises(ObjectStoreError) as info:
                    await store.get("k")
                return time.monotonic() - started, str(info.value)

        took, message = run(main())
    assert took < 2, f"took {took:.1f}s: {message}"
    assert "TLS" in message and "scheme" in message and "unreachable" not in message


def test_request_timeout_as_400_is_retried(clean_env: pytest.MonkeyPatch) -> None:
    body = b"<Error><Code>RequestTimeout</Code><Message>Your socket connection...</Message></Error>"
    with Recorder([(400, body)]) as server:

        async def main() -> None:
            settings = {"bucket": "b", "endpoint": server.url, "retry_deadline_s": 5, **CREDS}
            async with await open_store("s3", settings) as store:
                await store.put("k", b"v")

        run(main())
        assert len(server.requests) == 2


def test_head_on_a_missing_bucket_names_the_bucket(s3_server: dict[str, str]) -> None:
    async def main() -> None:
        settings = {**s3_server, "bucket": f"no-such-bucket-{os.urandom(4).hex()}"}
        async with await open_store("s3", settings) as store:
            with pytest.raises(ObjectStoreError, match="does not exist") as info:
                await store.head("k")
            assert not isinstance(info.value, ObjectNotFoundError)

    run(main())


def test_head_of_a_missing_key_is_still_not_found(s3_fresh: dict[str, Any]) -> None:
    async def main() -> None:
        async with await open_store("s3", s3_fresh) as store:
            for _ in range(2):  # (the second time without the bucket probe)
                with pytest.raises(ObjectNotFoundError, match="nope"):
                    await store.head("nope")

    run(main())


# --- 6. virtual-hosted style --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"bucket": "mybucket"}, "true"),  # AWS: virtual-hosted
        ({"bucket": "my.bucket"}, "false"),  # a dot: the TLS certificate would not match
        ({"bucket": "mybucket", "endpoint": "http://127.0.0.1:9000"}, "false"),
        ({"bucket": "mybucket", "virtual_hosted_style": False}, "false"),
        (
            {
                "bucket": "mybucket",
                "endpoint": "https://mybucket.minio.example:9000",
                "virtual_hosted_style": True,
            },
            "true",
        ),
    ],
)
def test_virtual_hosted_style_default(
    clean_env: pytest.MonkeyPatch, settings: dict[str, Any], expected: str
) -> None:
    async def main() -> Any:
        async with await open_store("s3", {**settings, **CREDS}) as store:
            return store._store.config.get("virtual_hosted_style_request")  # type: ignore[attr-defined]

    assert str(run(main())).lower() == expected


def test_virtual_hosted_style_with_an_endpoint_without_the_bucket_is_refused(
    clean_env: pytest.MonkeyPatch,
) -> None:
    """obstore uses such an endpoint as given: the bucket would silently drop out."""

    async def main() -> None:
        settings = {
            "bucket": "mybucket",
            "endpoint": "http://s3.example.invalid:1",
            "virtual_hosted_style": True,
            **CREDS,
        }
        with pytest.raises(SettingsError, match="bucket's own URL"):
            await open_store("s3", settings)

    run(main())


# --- 7. scripts/s3proxy: a run dir never adopts another run dir's server ------------------------


@pytest.fixture
def impostor(tmp_path: Path) -> Iterator[tuple[Path, Path, subprocess.Popen[bytes]]]:
    """Run dir A, and a process that looks like the server of run dir B = <B root>/<A path>
    (A's properties path is a substring of B's), named by A's (stale) pid file."""
    a = tmp_path / "a"
    b = tmp_path / "b" / str(a).lstrip("/")
    for run_dir in (a, b):
        run_dir.mkdir(parents=True)
        (run_dir / ".walstream-s3proxy").touch()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; time.sleep(60)",
            "org.gaul.s3proxy.Main",
            "--properties",
            str(b / "s3proxy.properties"),
        ]
    )
    (a / "pid").write_text(f"{proc.pid}\n")
    try:
        yield a, b, proc
    finally:
        proc.kill()
        proc.wait()


def _script(run_dir: Path, command: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "S3PROXY_RUN_DIR": str(run_dir)}
    return subprocess.run(
        [str(SCRIPT), command], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_s3proxy_script_does_not_adopt_a_server_whose_path_contains_ours(
    impostor: tuple[Path, Path, subprocess.Popen[bytes]],
) -> None:
    a, _, proc = impostor
    status = _script(a, "status")
    assert status.returncode == 1 and "not running" in status.stdout, status
    stop = _script(a, "stop")
    assert "not running" in stop.stderr, stop.stderr
    assert proc.poll() is None, "run dir A stopped run dir B's server"


def test_s3proxy_script_does_stop_its_own_server(
    impostor: tuple[Path, Path, subprocess.Popen[bytes]],
) -> None:
    """The positive control: B's pid file names it, so B's stop does signal it."""
    _, b, proc = impostor
    (b / "pid").write_text(f"{proc.pid}\n")
    stop = _script(b, "stop")
    assert "stopped" in stop.stderr, stop.stderr
    assert proc.wait(timeout=10) is not None
