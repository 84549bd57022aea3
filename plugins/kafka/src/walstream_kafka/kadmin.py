"""The admin classes of confluent-kafka this backend uses, in one place.

``confluent_kafka.admin`` re-exports them at runtime without declaring them (no
``__all__`` entry), which strict mypy rejects; importing them once here keeps the
``type: ignore`` to one line.
"""

from typing import Any

from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

__all__ = ["Admin", "AdminClient", "ConfigResource", "NewTopic", "OffsetSpec", "ResourceType"]


class Admin:
    """The opener's admin client, renewed when a transient error suggests stale metadata.

    librdkafka's admin client keeps leader epochs from its metadata cache; after a
    broker restart its requests can fail with FENCED_LEADER_EPOCH until the next
    periodic refresh (minutes). A new client starts with fresh metadata. Retired clients
    are kept alive a little longer, because destroying a client fails its pending
    requests.
    """

    _KEEP_RETIRED = 4

    def __init__(self, config: dict[str, Any]) -> None:
        self._config = config
        self._client: AdminClient | None = None
        self._retired: list[AdminClient] = []

    @property
    def client(self) -> AdminClient:
        """The current client (created on first use)."""
        if self._client is None:
            self._client = AdminClient(self._config)
        return self._client

    def renew(self) -> None:
        """Use a fresh client from the next request on."""
        if self._client is not None:
            self._retired = [*self._retired[-(self._KEEP_RETIRED - 1) :], self._client]
            self._client = None

    def close(self) -> None:
        """Drop every client."""
        self._client = None
        self._retired.clear()
