"""Selecting policies in settings, third-party policies through entry points, clear errors."""

import importlib
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from stevedore import ExtensionManager
from stevedore import _cache as stevedore_cache
from walstream import plugins
from walstream.errors import PluginLoadError, PluginNotFoundError, SettingsError
from walstream.policy import (
    BUILTIN_POLICIES,
    DEFAULT_POLICIES,
    CapacityPolicy,
    IdlePolicy,
    InsertStats,
    MemoryReading,
    SegmentLimits,
    SegmentStats,
    build_chain,
    get_policy_class,
    installed_policy_names,
    load_policy_settings,
    process_memory,
    system_memory,
)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "walstream.toml"
    monkeypatch.setenv("WALSTREAM_CONFIG", str(path))
    return path


def make_dist(root: Path, dist: str, entry_points: str, modules: dict[str, str]) -> None:
    """Lay out an installed distribution (dist-info plus modules) under ``root``."""
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    for name, source in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))


BIG_ROWS = """
from typing import ClassVar
from walstream.policy import SealDecision, SegmentPolicy
from walstream.settings import WalstreamBaseSettings, driver_settings_config

class BigRowsSettings(WalstreamBaseSettings):
    toml_table: ClassVar[str] = "segment_policy.big_rows"
    model_config = driver_settings_config("segment_policy.big_rows")
    max_rows: int = 10

class BigRowsPolicy(SegmentPolicy):
    name = "big_rows"
    settings_class = BigRowsSettings

    def check_periodic(self, snapshot):
        for seg in snapshot.segments:
            if seg.rows > self.settings.max_rows:
                yield SealDecision(seg.segment_id, "big_rows", f"{seg.rows} rows")

class Misnamed(BigRowsPolicy):
    name = "something_else"

class NotAPolicy:
    plugin_api = ">=1.0"
"""


@pytest.fixture
def fake_policies(config: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = config.parent / "site"
    root.mkdir()
    make_dist(
        root,
        "fake-policy",
        """
        [walstream.segment_policy]
        big_rows = fake_policy:BigRowsPolicy
        misnamed = fake_policy:Misnamed
        not_a_policy = fake_policy:NotAPolicy
        """,
        {"fake_policy": BIG_ROWS},
    )
    make_dist(
        root,
        "fake-broken-policy",
        "[walstream.segment_policy]\nbroken = fake_broken_policy:Policy\n",
        {"fake_broken_policy": "raise ImportError('needs libsegment.so')\n"},
    )
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    # stevedore memoizes entry points per process and on disk: give the fakes a cache of their own
    isolated = stevedore_cache.Cache(str(root / "stevedore-cache"))
    monkeypatch.setattr(stevedore_cache, "get_group_all", isolated.get_group_all)
    monkeypatch.setattr(ExtensionManager, "ENTRY_POINT_CACHE", {})
    plugins.refresh()
    yield root
    plugins.refresh()


def segment(segment_id: int, rows: int) -> SegmentStats:
    return SegmentStats(
        segment_id=segment_id,
        collection_id=1,
        partition_id=1,
        vchannel="v",
        limits=SegmentLimits(),
        created_at=0.0,
        last_insert_at=0.0,
        rows=rows,
        binary_bytes=rows,
    )


def test_default_chain_runs_the_five_builtins_in_order(config: Path) -> None:
    chain = build_chain(memory_probe=lambda: None)
    assert [p.name for p in chain.policies] == list(DEFAULT_POLICIES)
    assert set(DEFAULT_POLICIES) == set(BUILTIN_POLICIES)
    assert load_policy_settings().check_interval_seconds == 5.0


def test_builtins_are_known_by_name(config: Path) -> None:
    assert get_policy_class("capacity") is CapacityPolicy
    assert get_policy_class("idle") is IdlePolicy
    assert set(DEFAULT_POLICIES) <= set(installed_policy_names())


def test_enabled_from_env_comma_separated(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WALSTREAM_SEGMENT_POLICY_ENABLED", "lifetime, capacity")
    chain = build_chain(memory_probe=lambda: None)
    assert [p.name for p in chain.policies] == ["lifetime", "capacity"]


def test_toml_selects_and_configures_policies_and_overrides_win(config: Path) -> None:
    config.write_text(
        textwrap.dedent(
            """
            [segment_policy]
            enabled = ["capacity", "idle"]
            check_interval_seconds = 0.5

            [segment_policy.capacity]
            max_bytes = 1000
            seal_proportion = 1.0
            seal_proportion_jitter = 0.0

            [segment_policy.idle]
            max_idle_seconds = 30
            """
        )
    )
    settings = load_policy_settings()
    assert settings.enabled == ["capacity", "idle"] and settings.check_interval_seconds == 0.5
    chain = build_chain(settings, policy_settings={"idle": {"max_idle_seconds": 7}})
    cap, idle = chain.policies
    assert isinstance(cap, CapacityPolicy) and cap.settings.max_bytes == 1000
    assert chain.new_segment_limits().max_bytes == 1000
    assert isinstance(idle, IdlePolicy) and idle.settings.max_idle_seconds == 7
    assert "policy_tables" not in settings.model_dump()


def test_unknown_policy_name_lists_the_installed_ones(config: Path) -> None:
    settings = load_policy_settings({"enabled": ["capacity", "idel"]})
    with pytest.raises(PluginNotFoundError) as info:
        build_chain(settings)
    text = str(info.value)
    assert "'idel'" in text and "[segment_policy] enabled" in text
    for name in DEFAULT_POLICIES:
        assert name in text
    assert "walstream.segment_policy" in text


def test_settings_table_of_an_unknown_policy_is_an_error(config: Path) -> None:
    config.write_text("[segment_policy.capacty]\nmax_bytes = 10\n")
    with pytest.raises(
        SettingsError, match=r"unknown segment policy capacty .*installed: .*capacity"
    ):
        build_chain()
    with pytest.raises(SettingsError, match="lifetim"):
        build_chain(load_policy_settings({}), policy_settings={"lifetim": {}})


def test_misspelt_and_invalid_root_settings(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config.write_text('[segment_policy]\nenable = ["idle"]\n')
    with pytest.raises(SettingsError, match=r"enable: unknown setting.*known: .*enabled"):
        load_policy_settings()
    config.write_text("")
    with pytest.raises(SettingsError, match="listed more than once: idle"):
        load_policy_settings({"enabled": "idle,capacity,idle"})
    monkeypatch.setenv("WALSTREAM_SEGMENT_POLICY_CHECK_INTERVAL_SECONDS", "-2")
    with pytest.raises(SettingsError, match="WALSTREAM_SEGMENT_POLICY_CHECK_INTERVAL_SECONDS"):
        load_policy_settings()
    monkeypatch.delenv("WALSTREAM_SEGMENT_POLICY_CHECK_INTERVAL_SECONDS")
    with pytest.raises(SettingsError, match="memory_source"):
        load_policy_settings({"memory_source": "swap"})


def test_bad_policy_settings_surface_from_build_chain(config: Path) -> None:
    config.write_text("[segment_policy.lifetime]\nmax_lifetime_seconds = -1\n")
    with pytest.raises(SettingsError, match=r"max_lifetime_seconds.*\[segment_policy.lifetime\]"):
        build_chain()


def test_memory_source_selects_the_default_probe(config: Path) -> None:
    assert build_chain(load_policy_settings({})).memory_probe is system_memory
    chain = build_chain(load_policy_settings({"memory_source": "process"}))
    assert chain.memory_probe is process_memory
    fake = lambda: MemoryReading(1, 2)  # noqa: E731
    assert build_chain(load_policy_settings({}), memory_probe=fake).memory_probe is fake


def test_third_party_policy_found_through_its_entry_point(fake_policies: Path) -> None:
    config = fake_policies.parent / "walstream.toml"
    config.write_text(
        '[segment_policy]\nenabled = ["capacity", "big_rows"]\n'
        "[segment_policy.big_rows]\nmax_rows = 3\n"
    )
    assert "big_rows" in installed_policy_names()
    chain = build_chain(memory_probe=lambda: None)
    assert [p.name for p in chain.policies] == ["capacity", "big_rows"]
    decided = chain.tick([segment(1, 3), segment(2, 4)], now=1.0)
    assert [(d.segment_id, d.reason) for d in decided] == [(2, "big_rows")]
    # the built-ins keep working beside it, and the broken plugin does not take them down
    insert = InsertStats(collection_id=1, partition_id=1, vchannel="v", rows=1, binary_bytes=1)
    assert chain.assign([segment(1, 3)], insert, now=1.0).segment_id == 1
    info = {i.name: i for i in plugins.discover(plugins.SEGMENT_POLICY_GROUP)}
    assert info["big_rows"].distribution == "fake-policy" and info["broken"].status == "error"


def test_broken_and_wrong_third_party_policies_are_clear_errors(fake_policies: Path) -> None:
    with pytest.raises(PluginLoadError, match=r"fake-broken-policy.*libsegment\.so"):
        get_policy_class("broken")
    with pytest.raises(PluginLoadError, match="not a walstream SegmentPolicy subclass"):
        get_policy_class("not_a_policy")
    with pytest.raises(PluginLoadError, match="named 'something_else'; the names must match"):
        get_policy_class("misnamed")
    with pytest.raises(PluginNotFoundError, match=r"installed: .*big_rows.*capacity"):
        get_policy_class("nosuch")
