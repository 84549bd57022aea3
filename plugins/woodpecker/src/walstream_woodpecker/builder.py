"""The entry point ``walstream.wal:woodpecker``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic_settings import BaseSettings
from walstream.errors import SettingsError
from walstream.message import MessageID
from walstream.walimpls import Builder, Opener

from walstream_woodpecker.message_id import WoodpeckerMessageID
from walstream_woodpecker.opener import WoodpeckerOpener
from walstream_woodpecker.settings import WoodpeckerSettings


class WoodpeckerBuilder(Builder):
    """Builds openers of the woodpecker log: local files, or zero-disk block objects."""

    name: ClassVar[str] = "woodpecker"
    plugin_api: ClassVar[str] = ">=1.0,<2"
    settings_class: ClassVar[type[BaseSettings]] = WoodpeckerSettings
    message_id_class: ClassVar[type[MessageID]] = WoodpeckerMessageID

    def build(self, settings: BaseSettings | Mapping[str, Any] | None = None) -> Opener:
        """An opener; ``settings`` may be ``WoodpeckerSettings``, a dict of overrides or None
        (env ``WALSTREAM_WOODPECKER_*`` and ``[woodpecker]`` in ``walstream.toml``)."""
        if settings is None or isinstance(settings, Mapping):
            settings = self.load_settings(dict(settings or {}))
        if not isinstance(settings, WoodpeckerSettings):
            raise SettingsError(
                f"the woodpecker backend needs WoodpeckerSettings, got {type(settings).__name__}"
            )
        if settings.storage == "object":
            from walstream_woodpecker.objectmode.opener import ObjectOpener

            return ObjectOpener(settings)
        return WoodpeckerOpener(settings)
