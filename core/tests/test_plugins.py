"""Plugin discovery: clear errors for missing, broken, duplicate and incompatible plugins."""

import importlib
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from stevedore import ExtensionManager
from stevedore import _cache as stevedore_cache
from walstream import hooks, plugins
from walstream.errors import (
    DuplicatePluginError,
    PluginIncompatibleError,
    PluginLoadError,
    PluginNotFoundError,
)
from walstream.walimpls.registry import build_opener, get_builder


def make_dist(root: Path, dist: str, entry_points: str, modules: dict[str, str]) -> None:
    """Lay out an installed distribution (dist-info plus modules) under ``root``."""
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    for name, source in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def fake_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    make_dist(
        tmp_path,
        "fake-broken",
        "[walstream.wal]\nbroken = fake_broken:Builder\n",
        {"fake_broken": "raise ImportError('libfoo.so: cannot open shared object file')\n"},
    )
    make_dist(
        tmp_path,
        "fake-dup-a",
        "[walstream.wal]\ntwin = fake_twin_a:Builder\n",
        {"fake_twin_a": "class Builder:\n    plugin_api = '>=1.0'\n"},
    )
    make_dist(
        tmp_path,
        "fake-dup-b",
        "[walstream.wal]\ntwin = fake_twin_b:Builder\n",
        {"fake_twin_b": "class Builder:\n    plugin_api = '>=1.0'\n"},
    )
    make_dist(
        tmp_path,
        "fake-future",
        "[walstream.wal]\nfuture = fake_future:Builder\n",
        {"fake_future": "class Builder:\n    plugin_api = '>=2.0,<3'\n"},
    )
    make_dist(
        tmp_path,
        "fake-observer",
        "[walstream.hooks]\nboom = fake_observer:observer\n",
        {
            "fake_observer": """
            from walstream.hooks import hookimpl
            seen = []
            class Observer:
                @hookimpl
                def walstream_wal_opened(self, pchannel, wal_name):
                    raise RuntimeError("observer bug")
                @hookimpl
                def walstream_wal_closed(self, pchannel, wal_name):
                    seen.append((pchannel.name, wal_name))
            observer = Observer()
            """
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    # stevedore memoizes entry points per process and on disk: give the fakes a cache of their own
    isolated = stevedore_cache.Cache(str(tmp_path / "stevedore-cache"))
    monkeypatch.setattr(stevedore_cache, "get_group_all", isolated.get_group_all)
    monkeypatch.setattr(ExtensionManager, "ENTRY_POINT_CACHE", {})
    plugins.refresh()
    yield tmp_path
    plugins.refresh()


def test_broken_plugin_is_one_clear_error_and_others_still_load(fake_plugins: Path) -> None:
    with pytest.raises(PluginLoadError) as info:
        get_builder("broken")
    text = str(info.value)
    assert "fake-broken" in text and "walstream.wal:broken" in text and "libfoo.so" in text
    assert get_builder("memory").name == "memory"
    statuses = {i.name: i.status for i in plugins.discover(plugins.WAL_GROUP)}
    assert statuses["memory"] == "ok" and statuses["broken"] == "error"


def test_duplicate_names_are_an_error_naming_both(fake_plugins: Path) -> None:
    with pytest.raises(DuplicatePluginError) as info:
        plugins.load(plugins.WAL_GROUP, "twin")
    assert "fake-dup-a" in str(info.value) and "fake-dup-b" in str(info.value)


def test_incompatible_plugin_skipped_with_one_warning(fake_plugins: Path) -> None:
    plugins._warned.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plugins.discover(plugins.WAL_GROUP)
        plugins.discover(plugins.WAL_GROUP)
    mine = [w for w in caught if "future" in str(w.message)]
    assert len(mine) == 1 and "plugin API >=2.0,<3" in str(mine[0].message)
    with pytest.raises(PluginIncompatibleError, match=r"implements 1\.0"):
        plugins.load(plugins.WAL_GROUP, "future")


def test_unknown_plugin_lists_installed_and_hints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        plugins._INSTALL_HINTS, (plugins.WAL_GROUP, "nosuch"), "pip install walstream-nosuch"
    )
    with pytest.raises(
        PluginNotFoundError, match=r"installed: .*memory.*pip install walstream-nosuch"
    ):
        get_builder("nosuch")
    with pytest.raises(
        PluginNotFoundError, match=r"no plugin named 'neither' .*installed: .*memory"
    ):
        get_builder("neither")


def test_failing_observer_never_breaks_the_operation(
    fake_plugins: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio

    from walstream.walimpls import PChannelInfo
    from walstream.walimpls.observed import open_observed

    hooks._manager = None  # rebuild with the fake observer's entry point
    try:

        async def go() -> None:
            async with build_opener("memory", {"namespace": "obs"}) as opener:
                wal = await open_observed(opener, PChannelInfo("obs", 1))
                await wal.close()

        asyncio.run(go())
        import fake_observer  # type: ignore[import-not-found]

        assert fake_observer.seen == [("obs", "memory")]
        assert "observer bug" in caplog.text and "walstream_wal_opened" in caplog.text
    finally:
        hooks._manager = None


def test_async_and_wrapper_observers_are_refused() -> None:
    class AsyncObserver:
        @hooks.hookimpl
        async def walstream_wal_closed(self, pchannel: object, wal_name: str) -> None:
            return None

    class Wrapper:
        @hooks.hookimpl(wrapper=True)
        def walstream_wal_closed(self, pchannel: object, wal_name: str):  # type: ignore[no-untyped-def]
            return (yield)

    for observer in (AsyncObserver(), Wrapper()):
        with pytest.raises(ValueError, match="observers are"):
            hooks.register(observer)
