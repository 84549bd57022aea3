"""The entry point ``walstream.wal:pulsar``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic_settings import BaseSettings
from walstream.errors import SettingsError
from walstream.message import MessageID
from walstream.walimpls import Builder, Opener

from walstream_pulsar.message_id import PulsarMessageID
from walstream_pulsar.opener import PulsarOpener
from walstream_pulsar.settings import PulsarSettings


class PulsarBuilder(Builder):
    """Builds openers of pchannels stored as non-partitioned Pulsar topics."""

    name: ClassVar[str] = "pulsar"
    plugin_api: ClassVar[str] = ">=1.0,<2"
    settings_class: ClassVar[type[BaseSettings]] = PulsarSettings
    message_id_class: ClassVar[type[MessageID]] = PulsarMessageID

    def build(self, settings: BaseSettings | Mapping[str, Any] | None = None) -> Opener:
        """An opener; ``settings`` may be ``PulsarSettings``, a dict of overrides or None
        (env ``WALSTREAM_PULSAR_*`` and ``[pulsar]`` in ``walstream.toml``)."""
        if settings is None or isinstance(settings, Mapping):
            settings = self.load_settings(dict(settings or {}))
        if not isinstance(settings, PulsarSettings):
            raise SettingsError(
                f"the pulsar backend needs PulsarSettings, got {type(settings).__name__}"
            )
        return PulsarOpener(settings)
