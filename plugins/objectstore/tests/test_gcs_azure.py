"""The gcs and azure drivers without a real service (none is reachable from the test machines).

What is checked: settings and URL parsing, store construction, secrets kept out of reprs
and errors, and the error mapping, against a loopback HTTP server that answers every
request with one status (or a closed port). The data path itself (put/get/list, the
conditional create) is NOT checked against GCS or Azure here.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from objectstore_helpers import StatusServer, closed_port_url
from walstream.errors import (
    ObjectAlreadyExistsError,
    ObjectNotFoundError,
    ObjectStoreError,
    SettingsError,
)
from walstream.objectstore import driver_for_url, get_driver, open_store
from walstream_objectstore.azure import AzureSettings
from walstream_objectstore.gcs import GCSSettings

T = TypeVar("T")
SECRET = "c2VjcmV0LWF6dXJlLWtleS10aGF0LW11c3QtbmV2ZXItc2hvdw=="  # base64, as account keys are
SAS = "sv=2024-01-01&sig=SAS-SIGNATURE-that-must-never-show"
GCS_KEY = json.dumps({"type": "service_account", "private_key": "GCS-PRIVATE-never-show"})


def run(coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def _chain(exc: BaseException) -> str:
    parts: list[str] = []
    seen: BaseException | None = exc
    while seen is not None:
        parts += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


@pytest.fixture(autouse=True)
def no_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No walstream.toml, no driver env variables, no cloud credentials from the machine."""
    config = tmp_path / "walstream.toml"
    monkeypatch.setenv("WALSTREAM_CONFIG", str(config))
    for cls, prefix in ((GCSSettings, "GCS"), (AzureSettings, "AZURE")):
        for field in cls.model_fields:
            monkeypatch.delenv(f"WALSTREAM_OBJECTSTORE_{prefix}_{field.upper()}", raising=False)
    for name in (
        "GOOGLE_SERVICE_ACCOUNT",
        "GOOGLE_SERVICE_ACCOUNT_KEY",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "AZURE_STORAGE_ACCOUNT_NAME",
        "AZURE_STORAGE_ACCOUNT_KEY",
        "AZURE_STORAGE_SAS_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    return config


@pytest.fixture(autouse=True)
def gce_metadata(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A loopback GCE metadata server, so the GCS client gets a token without Google.

    (obstore 0.12.1's GCS client fetches a token for writes even with skip_signature.)
    """
    with StatusServer(404) as server:
        monkeypatch.setenv("GCE_METADATA_HOST", server.url.removeprefix("http://"))
        yield


def gcs_settings(endpoint: str, **extra: Any) -> dict[str, Any]:
    return {
        "bucket": "bkt",
        "endpoint": endpoint,
        "skip_signature": True,
        "retry_deadline_s": 1.0,
        **extra,
    }


def azure_settings(endpoint: str, **extra: Any) -> dict[str, Any]:
    return {
        "container": "ctr",
        "account": "devaccount",
        "access_key": SECRET,
        "endpoint": endpoint,
        "retry_deadline_s": 1.0,
        **extra,
    }


OPEN = {
    "gcs": gcs_settings,
    "azure": azure_settings,
}

# --- URLs and settings ---------------------------------------------------------------


def test_gs_urls() -> None:
    driver = get_driver("gcs")
    assert driver_for_url("gs://bkt/x").name == "gcs"
    assert driver.settings_from_url("gs://bkt/a/b") == {"bucket": "bkt", "prefix": "a/b"}
    assert driver.settings_from_url("gs://bkt?endpoint=http://127.0.0.1:4443") == {
        "bucket": "bkt",
        "endpoint": "http://127.0.0.1:4443",
    }
    for bad in ("gs://", "gs://bkt?region=x", "gs://user:pw@bkt/p"):
        with pytest.raises(SettingsError):
            driver.settings_from_url(bad)


def test_azure_urls() -> None:
    driver = get_driver("azure")
    for url in (
        "az://c/p",
        "abfs://c@acct.dfs.core.windows.net/p",
        "abfss://c@a.dfs.core.windows.net",
    ):
        assert driver_for_url(url).name == "azure"
    assert driver.settings_from_url("az://ctr/a/b?account=acct") == {
        "container": "ctr",
        "prefix": "a/b",
        "account": "acct",
    }
    assert driver.settings_from_url("abfss://ctr@acct.dfs.core.windows.net/x/y/") == {
        "container": "ctr",
        "account": "acct",
        "prefix": "x/y",
    }
    for bad in (
        "az://",
        "az://ctr?sas=abc",
        "abfs://acct.dfs.core.windows.net/p",
        "abfs://ctr@example.com/p",
        f"abfs://ctr:{SAS}@acct.dfs.core.windows.net/p",
    ):
        with pytest.raises(SettingsError) as info:
            driver.settings_from_url(bad)
        assert "SAS-SIGNATURE" not in _chain(info.value)


def test_settings_from_env_and_toml(no_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_config.write_text(
        '[objectstore.gcs]\nbucket = "g"\nprefix = "p/"\n'
        '[objectstore.azure]\ncontainer = "c"\naccount = "a"\n'
    )
    gcs = get_driver("gcs").load_settings({})
    assert isinstance(gcs, GCSSettings)
    assert (gcs.bucket, gcs.prefix) == ("g", "p")
    monkeypatch.setenv("WALSTREAM_OBJECTSTORE_AZURE_ACCESS_KEY", SECRET)
    monkeypatch.setenv("WALSTREAM_OBJECTSTORE_AZURE_USE_EMULATOR", "true")
    azure = get_driver("azure").load_settings({})
    assert isinstance(azure, AzureSettings)
    assert (azure.container, azure.account, azure.use_emulator) == ("c", "a", True)
    assert azure.access_key is not None and azure.access_key.get_secret_value() == SECRET


def test_bad_settings() -> None:
    with pytest.raises(SettingsError, match="bucket: required"):
        run(open_store("gcs", {}))
    with pytest.raises(SettingsError, match="container: required"):
        run(open_store("azure", {}))
    with pytest.raises(SettingsError, match="access_key or sas_token") as info:
        get_driver("azure").load_settings(
            {"container": "c", "access_key": SECRET, "sas_token": SAS}
        )
    assert SECRET not in _chain(info.value) and "SAS-SIGNATURE" not in _chain(info.value)
    with pytest.raises(SettingsError, match="prefix"):
        get_driver("gcs").load_settings({"bucket": "b", "prefix": "/abs"})


def test_capabilities() -> None:
    for name in ("gcs", "azure"):
        caps = get_driver(name).capabilities
        assert caps.conditional_create and caps.range_reads and caps.persistent


# --- construction and secrets ----------------------------------------------------------


def test_construction_and_secrets() -> None:
    async def main() -> None:
        stores = [
            await open_store("gcs", gcs_settings("http://127.0.0.1:9")),
            await open_store("azure", azure_settings("http://127.0.0.1:9")),
            await open_store(
                "azure", azure_settings("http://127.0.0.1:9", access_key=None, sas_token=SAS)
            ),
            await open_store(
                "azure", {"container": "c", "use_emulator": True, "access_key": SECRET}
            ),
        ]
        for store in stores:
            for text in (str(store), repr(store)):
                assert SECRET not in text and "SAS-SIGNATURE" not in text
                assert "GCS-PRIVATE" not in text
            await store.close()

    for name, overrides in (
        ("gcs", {"bucket": "b", "service_account_key": GCS_KEY}),
        ("azure", {"container": "c", "access_key": SECRET, "sas_token": None}),
        ("azure", {"container": "c", "sas_token": SAS}),
    ):
        settings = get_driver(name).load_settings(overrides)
        for text in (str(settings), repr(settings), str(settings.model_dump())):
            assert SECRET not in text and "SAS-SIGNATURE" not in text and "GCS-PRIVATE" not in text
    run(main())


def test_gcs_missing_service_account_file(tmp_path: Path) -> None:
    with pytest.raises(ObjectStoreError, match="service account file"):
        run(open_store("gcs", {"bucket": "b", "service_account_path": str(tmp_path / "none.json")}))


@pytest.mark.parametrize("key", [GCS_KEY, "not json, GCS-PRIVATE-never-show material"])
def test_gcs_bad_service_account_key_does_not_echo_it(key: str) -> None:
    try:
        store = run(
            open_store(
                "gcs",
                gcs_settings("http://127.0.0.1:9", skip_signature=False, service_account_key=key),
            )
        )
    except ObjectStoreError as exc:
        assert "GCS-PRIVATE" not in _chain(exc)
        return
    # Parsed lazily: then the first request fails, also without the key.
    with pytest.raises(ObjectStoreError) as info:
        run(store.get("k"))
    assert "GCS-PRIVATE" not in _chain(info.value)


# --- error mapping (against a loopback HTTP server) --------------------------------------


@pytest.mark.parametrize("driver", ["gcs", "azure"])
def test_404_is_not_found_naming_the_key(driver: str) -> None:
    with StatusServer(404) as server:

        async def main() -> None:
            async with await open_store(driver, OPEN[driver](server.url)) as store:
                for op in ("get", "head"):
                    with pytest.raises(ObjectNotFoundError, match="'seg/0001'"):
                        await getattr(store, op)("seg/0001")
                if driver == "gcs":  # (azure deletes with a batch request: not a plain 404)
                    await store.delete("seg/0001")  # missing: not an error

        run(main())


@pytest.mark.parametrize(("driver", "status"), [("gcs", 412), ("azure", 409), ("azure", 412)])
def test_conflict_on_create_is_already_exists(driver: str, status: int) -> None:
    with StatusServer(status) as server:

        async def main() -> None:
            async with await open_store(driver, OPEN[driver](server.url)) as store:
                with pytest.raises(ObjectAlreadyExistsError, match="'fence/1'"):
                    await store.put_if_absent("fence/1", b"x")

        run(main())
        assert server.requests == 1, "a lost race is final"


@pytest.mark.parametrize(("driver", "status"), [("gcs", 401), ("gcs", 403), ("azure", 403)])
def test_refused_credentials_are_final(driver: str, status: int) -> None:
    with StatusServer(status, b"<Error><Code>AuthenticationFailed</Code></Error>") as server:

        async def main() -> None:
            settings = OPEN[driver](server.url, retry_deadline_s=30.0)
            async with await open_store(driver, settings) as store:
                started = time.monotonic()
                with pytest.raises(ObjectStoreError, match="check the credentials") as info:
                    await store.put("k", b"v")
                assert time.monotonic() - started < 2
                assert SECRET not in _chain(info.value)

        run(main())
        assert server.requests == 1, "refused credentials are never retried"


@pytest.mark.parametrize("driver", ["gcs", "azure"])
def test_5xx_is_retried_within_the_bounds(driver: str) -> None:
    with StatusServer(503) as server:

        async def main() -> None:
            settings = OPEN[driver](server.url, retry_max_attempts=4, retry_deadline_s=30.0)
            async with await open_store(driver, settings) as store:
                with pytest.raises(ObjectStoreError, match=r"unreachable .*\(4 attempts"):
                    await store.get("k")

        run(main())
        assert server.requests == 4


@pytest.mark.parametrize("driver", ["gcs", "azure"])
def test_closed_port_is_unreachable_after_the_deadline(driver: str) -> None:
    async def main() -> None:
        async with await open_store(driver, OPEN[driver](closed_port_url())) as store:
            started = time.monotonic()
            with pytest.raises(ObjectStoreError, match=r"unreachable for \d\.\d s") as info:
                await store.put("k", b"v")
            assert time.monotonic() - started < 4
            assert SECRET not in _chain(info.value)

    run(main())


def test_azure_emulator_allows_http_without_an_endpoint() -> None:
    settings = get_driver("azure").load_settings({"container": "c", "use_emulator": True})
    assert isinstance(settings, AzureSettings)
    assert settings.allow_http is None
    # base64 of a key obstore accepts; only the construction is checked here.
    key = base64.b64encode(b"k" * 32).decode()
    run(open_store("azure", {"container": "c", "use_emulator": True, "access_key": key}))
