"""The s3 driver beyond the contract: URLs, settings, secrets, credentials, retries, lost answers.

Tests taking ``s3_server``/``s3_fresh`` run against the real test server (scripts/s3proxy);
the others need no server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from objectstore_helpers import StatusServer, closed_port_url, s3_settings
from obstore.exceptions import GenericError
from walstream.errors import (
    CapabilityError,
    ObjectAlreadyExistsError,
    ObjectNotFoundError,
    ObjectStoreError,
    SettingsError,
)
from walstream.objectstore import get_driver, open_store, open_store_url, require
from walstream_objectstore import _remote
from walstream_objectstore.s3 import S3ObjectStore, S3Settings

T = TypeVar("T")
SECRET = "s3cr3t-VALUE-that-must-never-show-0123456789"
TOKEN = "session-TOKEN-that-must-never-show-9876543210"
DUMMY_CREDENTIALS = {"access_key_id": "AKIDEXAMPLE", "secret_access_key": SECRET}


def run(coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture
def no_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No walstream.toml and no WALSTREAM_OBJECTSTORE_S3_* variables unless a test sets them."""
    config = tmp_path / "walstream.toml"
    monkeypatch.setenv("WALSTREAM_CONFIG", str(config))
    for field in S3Settings.model_fields:
        monkeypatch.delenv(f"WALSTREAM_OBJECTSTORE_S3_{field.upper()}", raising=False)
    return config


def _chain(exc: BaseException) -> str:
    """str and repr of an error and of everything it chains to."""
    parts: list[str] = []
    seen: BaseException | None = exc
    while seen is not None:
        parts += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


# --- URLs and settings (no server) -----------------------------------------------------


def test_s3_urls() -> None:
    driver = get_driver("s3")
    assert driver.settings_from_url("s3://bkt") == {"bucket": "bkt"}
    assert driver.settings_from_url("s3://bkt/") == {"bucket": "bkt"}
    assert driver.settings_from_url("s3://bkt/a/b/") == {"bucket": "bkt", "prefix": "a/b"}
    assert driver.settings_from_url(
        "s3://bkt/p?endpoint=http://127.0.0.1:9000&region=eu-west-1"
    ) == {
        "bucket": "bkt",
        "prefix": "p",
        "endpoint": "http://127.0.0.1:9000",
        "region": "eu-west-1",
    }
    for bad, why in [
        ("s3://", "names no bucket"),
        ("s3://bkt/p?acl=public", "unknown query parameter 'acl'"),
        ("s3://bkt:9000/p", "port"),
        ("s3://bkt/p#frag", "fragment"),
    ]:
        with pytest.raises(SettingsError, match=why):
            driver.settings_from_url(bad)


def test_credentials_in_url_are_refused_without_repeating_them() -> None:
    with pytest.raises(SettingsError, match="carries credentials") as info:
        get_driver("s3").settings_from_url(f"s3://AKIDEXAMPLE:{SECRET}@bkt/p")
    assert SECRET not in _chain(info.value)


def test_settings_from_env_and_toml(no_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_config.write_text('[objectstore.s3]\nbucket = "from-toml"\nprefix = "team/a/"\n')
    driver = get_driver("s3")
    settings = driver.load_settings({})
    assert isinstance(settings, S3Settings)
    assert (settings.bucket, settings.prefix) == ("from-toml", "team/a")
    assert settings.region is None  # AWS_REGION / AWS_DEFAULT_REGION / us-east-1 (obstore)
    assert settings.virtual_hosted_style is None
    assert settings.conditional_create is True
    monkeypatch.setenv("WALSTREAM_OBJECTSTORE_S3_BUCKET", "from-env")
    monkeypatch.setenv("WALSTREAM_OBJECTSTORE_S3_SECRET_ACCESS_KEY", SECRET)
    settings = driver.load_settings({})
    assert isinstance(settings, S3Settings)
    assert settings.bucket == "from-env"
    assert settings.secret_access_key is not None
    assert settings.secret_access_key.get_secret_value() == SECRET


def test_bad_settings_are_readable_errors(no_config: Path) -> None:
    driver = get_driver("s3")
    assert driver.load_settings({}), "settings without a bucket load (walstream config show)"
    with pytest.raises(SettingsError, match="bucket: required") as info:
        run(driver.open(driver.load_settings({})))
    assert "WALSTREAM_OBJECTSTORE_S3_BUCKET" in str(info.value)
    with pytest.raises(SettingsError, match="bucket"):
        driver.load_settings({"bucket": "a/b"})
    for prefix in ("/abs", "a//b", "../up"):
        with pytest.raises(SettingsError, match="prefix"):
            driver.load_settings({"bucket": "b", "prefix": prefix})
    with pytest.raises(SettingsError, match="retry_max_attempts"):
        driver.load_settings({"bucket": "b", "retry_max_attempts": 0})
    with pytest.raises(SettingsError, match="unknown setting"):
        driver.load_settings({"bucket": "b", "secret_key": SECRET})


def test_secrets_never_in_repr_or_errors(no_config: Path) -> None:
    overrides = {
        "bucket": "b",
        "endpoint": "http://127.0.0.1:9",
        "access_key_id": "AKIDEXAMPLE",
        "secret_access_key": SECRET,
        "session_token": TOKEN,
    }
    settings = get_driver("s3").load_settings(overrides)
    for text in (str(settings), repr(settings), str(settings.model_dump())):
        assert SECRET not in text and TOKEN not in text
    with pytest.raises(SettingsError) as bad:
        get_driver("s3").load_settings({**overrides, "region": ""})
    assert SECRET not in _chain(bad.value)

    async def main() -> None:
        store = await open_store("s3", {**overrides, "retry_deadline_s": 0.3})
        for text in (str(store), repr(store)):
            assert SECRET not in text and TOKEN not in text
        with pytest.raises(ObjectStoreError, match="unreachable") as info:
            await store.put("k", b"v")
        assert SECRET not in _chain(info.value) and TOKEN not in _chain(info.value)

    run(main())


# --- error mapping without a real server -----------------------------------------------


def test_unreachable_store_fails_after_the_deadline(no_config: Path) -> None:
    async def main() -> None:
        settings = {
            "bucket": "b",
            "endpoint": closed_port_url(),
            "retry_deadline_s": 1.0,
            **DUMMY_CREDENTIALS,
        }
        async with await open_store("s3", settings) as store:
            started = time.monotonic()
            with pytest.raises(ObjectStoreError, match=r"unreachable for \d\.\d s") as info:
                await store.get("k")
            assert time.monotonic() - started < 4
            assert not isinstance(info.value, ObjectNotFoundError)
            assert "attempts" in str(info.value)

    run(main())


def test_timeouts_are_retried_then_reported(no_config: Path) -> None:
    """A server that accepts and never answers: each attempt times out, then the deadline ends it."""
    with StatusServer(hang=True) as server:

        async def main() -> None:
            settings = {
                "bucket": "b",
                "endpoint": server.url,
                "request_timeout_s": 0.3,
                "retry_deadline_s": 1.0,
                **DUMMY_CREDENTIALS,
            }
            async with await open_store("s3", settings) as store:
                started = time.monotonic()
                with pytest.raises(ObjectStoreError, match="unreachable"):
                    await store.put("k", b"v")
                assert time.monotonic() - started < 5

        run(main())
        assert server.requests >= 2, "a timed-out attempt must be retried"


def test_no_credentials_anywhere(no_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials in settings or env, and the metadata service refuses: a final error."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    with StatusServer(403, b"denied") as metadata:
        monkeypatch.setenv("AWS_METADATA_ENDPOINT", metadata.url)

        async def main() -> None:
            settings = {"bucket": "b", "endpoint": closed_port_url(), "retry_deadline_s": 30.0}
            async with await open_store("s3", settings) as store:
                started = time.monotonic()
                with pytest.raises(ObjectStoreError, match="could not obtain credentials"):
                    await store.get("k")
                assert time.monotonic() - started < 2

        run(main())


def test_throttling_is_retried_within_max_attempts(no_config: Path) -> None:
    body = b"<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>"
    with StatusServer(503, body) as server:

        async def main() -> None:
            settings = {
                "bucket": "b",
                "endpoint": server.url,
                "retry_max_attempts": 3,
                "retry_deadline_s": 30.0,
                **DUMMY_CREDENTIALS,
            }
            async with await open_store("s3", settings) as store:
                with pytest.raises(ObjectStoreError, match=r"unreachable .*\(3 attempts"):
                    await store.get("k")

        run(main())
        assert server.requests == 3, "obstore's own retries are off: one request per attempt"


# --- against the real server --------------------------------------------------------------


def test_put_get_and_missing_keys(s3_fresh: dict[str, Any]) -> None:
    async def main() -> None:
        async with await open_store("s3", s3_fresh) as store:
            assert isinstance(store, S3ObjectStore)
            assert store.capabilities.persistent and store.capabilities.conditional_create
            await store.put("seg/0001", b"payload")
            assert await store.get("seg/0001") == b"payload"
            assert await store.get_range("seg/0001", 3, 100) == b"load"
            for key in ("absent/key-0042", "seg"):
                for op in ("get", "head"):
                    with pytest.raises(ObjectNotFoundError, match=repr(key)):
                        await getattr(store, op)(key)
                with pytest.raises(ObjectNotFoundError, match=repr(key)):
                    await store.get_range(key, 0, 1)

    run(main())


def test_prefixes_share_a_bucket(s3_server: dict[str, str]) -> None:
    a = s3_settings(s3_server)
    b = s3_settings(s3_server)

    async def main() -> None:
        async with (
            await open_store("s3", a) as sa,
            await open_store("s3", b) as sb,
            await open_store("s3", {**s3_server}) as whole,
        ):
            await sa.put("k", b"from a")
            await sb.put("k", b"from b")
            assert await sa.get("k") == b"from a"
            assert [m.key for m in await sb.list()] == ["k"]
            assert await whole.get(f"{a['prefix']}/k") == b"from a"
            await sa.delete("k")
            await sb.delete("k")

    run(main())


def test_url_opens_the_real_bucket(s3_server: dict[str, str]) -> None:
    prefix = s3_settings(s3_server)["prefix"]
    url = (
        f"s3://{s3_server['bucket']}/{prefix}?endpoint={s3_server['endpoint']}"
        f"&region={s3_server['region']}"
    )

    async def main() -> None:
        creds = {k: s3_server[k] for k in ("access_key_id", "secret_access_key")}
        async with await open_store_url(url, creds) as store:
            await store.put("u", b"url")
            assert await store.get("u") == b"url"
            await store.delete("u")

    run(main())


def test_credentials_from_the_aws_environment(
    s3_server: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server["access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server["secret_access_key"])
    settings = s3_settings(s3_server)
    del settings["access_key_id"], settings["secret_access_key"]

    async def main() -> None:
        async with await open_store("s3", settings) as store:
            await store.put("env", b"creds")
            assert await store.get("env") == b"creds"
            await store.delete("env")

    run(main())


@pytest.mark.parametrize("field", ["secret_access_key", "access_key_id"])
def test_wrong_credentials_fail_at_once_with_a_clear_error(
    s3_server: dict[str, str], field: str
) -> None:
    settings = s3_settings(s3_server, **{field: SECRET}, retry_deadline_s=30.0)

    async def main() -> None:
        async with await open_store("s3", settings) as store:
            for call in (lambda: store.put("k", b"v"), lambda: store.get("k"), store.list):
                started = time.monotonic()
                with pytest.raises(ObjectStoreError, match="check the credentials") as info:
                    await call()
                assert time.monotonic() - started < 2, "refused credentials are never retried"
                assert not isinstance(info.value, ObjectNotFoundError)
                assert SECRET not in _chain(info.value)
                assert s3_server["secret_access_key"] not in _chain(info.value)

    run(main())


def test_missing_bucket_is_named(s3_server: dict[str, str]) -> None:
    settings = s3_settings(s3_server, bucket="no-such-bucket-walstream")

    async def main() -> None:
        async with await open_store("s3", settings) as store:
            with pytest.raises(ObjectStoreError, match=r"bucket .* does not exist"):
                await store.put("k", b"v")

    run(main())


def test_without_conditional_create(s3_fresh: dict[str, Any]) -> None:
    async def main() -> None:
        async with await open_store("s3", {**s3_fresh, "conditional_create": False}) as store:
            assert not store.capabilities.conditional_create
            with pytest.raises(CapabilityError):
                await store.put_if_absent("k", b"v")
            with pytest.raises(CapabilityError, match="conditional_create"):
                require(store.capabilities, "conditional_create", consumer="woodpecker fencing")
            assert await store.list() == []

    run(main())


def test_transient_failures_are_retried(
    s3_fresh: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_put = _remote.obstore.put_async
    calls = 0

    async def flaky_put(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise GenericError(
                "Generic S3 error: Error performing PUT - Server returned non-2xx status code: "
                "503 Service Unavailable: <Error><Code>SlowDown</Code></Error>"
            )
        return await real_put(*args, **kwargs)

    monkeypatch.setattr(_remote.obstore, "put_async", flaky_put)

    async def main() -> None:
        async with await open_store("s3", s3_fresh) as store:
            await store.put_if_absent("k", b"v")
            assert calls == 3
            assert await store.get("k") == b"v"

    run(main())


class _LostAnswer:
    """obstore.put_async whose first call is applied and then loses its answer.

    ``first_write=None``: the first call is our own request; else another writer's, with
    ``first_write`` as its bytes and its own create token.
    """

    def __init__(self, first_write: bytes | None) -> None:
        self.real = _remote.obstore.put_async
        self.first_write = first_write
        self.calls = 0

    async def __call__(self, store: Any, key: str, data: bytes, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == 1:
            if self.first_write is None:  # our own request, applied
                await self.real(store, key, data, **kwargs)
            else:  # another writer's request (its own create token)
                other = {**kwargs, "attributes": {_remote.CREATE_TOKEN: "another-writer"}}
                await self.real(store, key, self.first_write, **other)
            raise ConnectionResetError("connection reset by peer (injected: answer lost)")
        return await self.real(store, key, data, **kwargs)


def test_put_if_absent_whose_answer_was_lost_succeeds(
    s3_fresh: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first attempt created the object but its answer was lost; the retry gets 412."""
    lost = _LostAnswer(first_write=None)
    monkeypatch.setattr(_remote.obstore, "put_async", lost)

    async def main() -> None:
        async with await open_store("s3", s3_fresh) as store:
            meta = await store.put_if_absent("fence/0001", b"our bytes")
            assert meta.key == "fence/0001" and meta.size == len(b"our bytes")
            assert lost.calls == 2
            assert await store.get("fence/0001") == b"our bytes"

    run(main())


def test_put_if_absent_lost_answer_but_another_writer_won(
    s3_fresh: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transient failure, then 412 with someone else's bytes there: we lost the race."""
    lost = _LostAnswer(first_write=b"someone else's bytes")
    monkeypatch.setattr(_remote.obstore, "put_async", lost)

    async def main() -> None:
        async with await open_store("s3", s3_fresh) as store:
            with pytest.raises(ObjectAlreadyExistsError, match="fence/0002"):
                await store.put_if_absent("fence/0002", b"our bytes")
            assert await store.get("fence/0002") == b"someone else's bytes"

    run(main())


def test_put_if_absent_without_retry_never_reads_back(
    s3_fresh: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no lost answer, an existing object (even with equal bytes) means we lost."""

    async def main() -> None:
        async with await open_store("s3", s3_fresh) as store:
            await store.put("fence/0003", b"same")
            with pytest.raises(ObjectAlreadyExistsError):
                await store.put_if_absent("fence/0003", b"same")

    run(main())
