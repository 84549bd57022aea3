"""Segment policies by name (entry-point group ``walstream.segment_policy``) and the chain the WAL runs.

``[segment_policy]`` in ``walstream.toml`` (env ``WALSTREAM_SEGMENT_POLICY_*``)
selects the policies; each has its own table ``[segment_policy.<name>]``::

    [segment_policy]
    enabled = ["capacity", "idle", "lifetime", "growing_bytes_hwm", "memory_pressure"]

    [segment_policy.capacity]
    max_bytes = 268435456
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, PositiveFloat, field_validator, model_validator
from pydantic_settings import NoDecode

from walstream import plugins
from walstream.errors import PluginLoadError, PluginNotFoundError, SettingsError
from walstream.policy.capacity import CapacityPolicy
from walstream.policy.chain import SealPolicyChain
from walstream.policy.idle import IdlePolicy
from walstream.policy.lifetime import LifetimePolicy
from walstream.policy.memory import MemoryProbe, default_probe
from walstream.policy.pressure import GrowingBytesHwmPolicy, MemoryPressurePolicy
from walstream.policy.spi import SegmentPolicy
from walstream.settings import WalstreamBaseSettings, driver_settings_config, load_driver_settings

BUILTIN_POLICIES: dict[str, type[SegmentPolicy]] = {
    cls.name: cls
    for cls in (
        CapacityPolicy,
        IdlePolicy,
        LifetimePolicy,
        GrowingBytesHwmPolicy,
        MemoryPressurePolicy,
    )
}
"""The policies shipped with the core. They are also entry points of the ``walstream``
distribution; knowing them here keeps them available from a source tree without metadata."""

DEFAULT_POLICIES = ("capacity", "idle", "lifetime", "growing_bytes_hwm", "memory_pressure")


class PolicySettings(WalstreamBaseSettings):
    """``[segment_policy]`` / ``WALSTREAM_SEGMENT_POLICY_*``: which policies run, and how often."""

    toml_table: ClassVar[str] = "segment_policy"
    model_config = driver_settings_config("segment_policy")

    enabled: Annotated[list[str], NoDecode] = Field(
        default=list(DEFAULT_POLICIES),
        description="Policies to run, in the order consulted (the first to seal a segment gives "
        "the reason). In env: comma-separated.",
    )
    check_interval_seconds: PositiveFloat = Field(
        default=5.0, description="How often the WAL runs the periodic check."
    )
    memory_source: Literal["system", "process"] = Field(
        default="system",
        description="What the memory probe measures: the whole machine or this process.",
    )
    policy_tables: tuple[str, ...] = Field(
        default=(),
        exclude=True,
        description="Names of the [segment_policy.<name>] tables found (filled in, not set).",
    )

    @model_validator(mode="before")
    @classmethod
    def _collect_policy_tables(cls, data: Any) -> Any:
        # The TOML source hands the policies' own tables in with ours: note their
        # names (checked against the installed policies) instead of failing on them.
        if isinstance(data, dict):
            tables = tuple(sorted(k for k, v in data.items() if isinstance(v, dict)))
            if tables:
                data = {k: v for k, v in data.items() if k not in tables}
                data["policy_tables"] = tables
        return data

    @field_validator("enabled", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("enabled")
    @classmethod
    def _no_repeats(cls, value: list[str]) -> list[str]:
        repeated = sorted({n for n in value if value.count(n) > 1})
        if repeated:
            raise ValueError(f"policies listed more than once: {', '.join(repeated)}")
        return value


def load_policy_settings(overrides: dict[str, Any] | None = None) -> PolicySettings:
    """``[segment_policy]`` from overrides, env and TOML; ``SettingsError`` names bad fields."""
    return load_driver_settings(PolicySettings, overrides or {})


def installed_policy_names() -> list[str]:
    """Names of the built-in policies and of every third-party policy that loaded."""
    found = {i.name for i in plugins.discover(plugins.SEGMENT_POLICY_GROUP) if i.status == "ok"}
    return sorted(found | set(BUILTIN_POLICIES))


def _check_policy(name: str, obj: Any) -> type[SegmentPolicy]:
    where = f"entry point {plugins.SEGMENT_POLICY_GROUP}:{name}"
    if not (isinstance(obj, type) and issubclass(obj, SegmentPolicy)):
        raise PluginLoadError(
            f"{where} gives {obj!r}, which is not a walstream SegmentPolicy subclass"
        )
    if getattr(obj, "name", None) != name:
        raise PluginLoadError(
            f"{where} gives a policy named {getattr(obj, 'name', None)!r}; the names must match"
        )
    return obj


def get_policy_class(name: str) -> type[SegmentPolicy]:
    """The policy class registered as ``name``; ``PluginNotFoundError`` lists the installed ones."""
    try:
        obj: Any = plugins.load(plugins.SEGMENT_POLICY_GROUP, name)
    except PluginNotFoundError:
        obj = BUILTIN_POLICIES.get(name)
        if obj is None:
            raise PluginNotFoundError(
                f"no segment policy named {name!r} (from [segment_policy] enabled); "
                f"installed: {', '.join(installed_policy_names())}; third-party policies register "
                f"in entry-point group {plugins.SEGMENT_POLICY_GROUP!r}"
            ) from None
    return _check_policy(name, obj)


def build_chain(
    settings: PolicySettings | None = None,
    *,
    policy_settings: Mapping[str, Mapping[str, Any]] | None = None,
    memory_probe: MemoryProbe | None = None,
) -> SealPolicyChain:
    """The chain of the policies ``settings.enabled`` selects, each with its validated settings.

    ``policy_settings`` maps a policy name to overrides of its own settings (they
    win over env and TOML). ``memory_probe`` replaces the probe ``memory_source``
    selects (tests pass a fake; ``lambda: None`` disables readings).
    """
    settings = settings if settings is not None else load_policy_settings()
    overrides = dict(policy_settings or {})
    unknown = sorted((set(settings.policy_tables) | set(overrides)) - set(installed_policy_names()))
    if unknown:
        raise SettingsError(
            f"settings given for unknown segment polic{'y' if len(unknown) == 1 else 'ies'} "
            f"{', '.join(unknown)} ([segment_policy.<name>]); "
            f"installed: {', '.join(installed_policy_names())}"
        )
    policies: list[SegmentPolicy] = []
    for name in settings.enabled:
        cls = get_policy_class(name)
        policies.append(cls(cls.load_settings(dict(overrides.get(name, {})))))
    probe = memory_probe if memory_probe is not None else default_probe(settings.memory_source)
    return SealPolicyChain(policies, memory_probe=probe)
