"""The entry point ``walstream.wal:kafka``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic_settings import BaseSettings
from walstream.errors import SettingsError
from walstream.message import MessageID
from walstream.walimpls import Builder, Opener

from walstream_kafka.message_id import KafkaMessageID
from walstream_kafka.opener import KafkaOpener
from walstream_kafka.settings import KafkaSettings


class KafkaBuilder(Builder):
    """Builds openers of pchannels stored as single-partition Kafka topics."""

    name: ClassVar[str] = "kafka"
    plugin_api: ClassVar[str] = ">=1.0,<2"
    settings_class: ClassVar[type[BaseSettings]] = KafkaSettings
    message_id_class: ClassVar[type[MessageID]] = KafkaMessageID

    def build(self, settings: BaseSettings | Mapping[str, Any] | None = None) -> Opener:
        """An opener; ``settings`` may be ``KafkaSettings``, a dict of overrides or None
        (env ``WALSTREAM_KAFKA_*`` and ``[kafka]`` in ``walstream.toml``)."""
        if settings is None or isinstance(settings, Mapping):
            settings = self.load_settings(dict(settings or {}))
        if not isinstance(settings, KafkaSettings):
            raise SettingsError(
                f"the kafka backend needs KafkaSettings, got {type(settings).__name__}"
            )
        return KafkaOpener(settings)
