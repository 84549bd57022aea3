"""Every error walstream raises on purpose.

One hierarchy so callers can catch ``WalstreamError`` and so each failure says
what was wrong and what to do about it.
"""

from __future__ import annotations


class WalstreamError(Exception):
    """Base class of every error raised by walstream on purpose."""


# --- messages -----------------------------------------------------------------


class MessageError(WalstreamError, ValueError):
    """A message was built or used in a way the model does not allow."""


class ReservedPropertyError(MessageError):
    """A user property used the reserved ``_`` prefix."""


class MessageTooLargeError(MessageError):
    """A message is over the size limit of the WAL it is appended to."""

    def __init__(self, size: int, limit: int, where: str) -> None:
        super().__init__(
            f"message is {size} bytes, over the {limit}-byte limit of {where} "
            f"(max_message_bytes); split the payload or raise the limit in settings"
        )
        self.size = size
        self.limit = limit


class MessageDecodeError(WalstreamError, ValueError):
    """Bytes could not be decoded into a message, header, body or message id."""


class MessageIDMismatchError(WalstreamError, TypeError):
    """Two message ids of different backends were compared."""


# --- WAL backends ---------------------------------------------------------------


class WALError(WalstreamError):
    """A WAL backend operation failed."""


class FencedError(WALError):
    """This writer was fenced by a writer of a higher term: it may never append again.

    Close the WAL; the pchannel now belongs to the newer term.
    """


class ReadOnlyWALError(WALError):
    """An append or truncate was attempted on a WAL opened read-only."""


class WALClosedError(WALError):
    """The WAL, opener or scanner was already closed."""


class InvalidPChannelError(WALError, ValueError):
    """A pchannel name, term or access mode is not valid."""


# --- plugins --------------------------------------------------------------------


class PluginError(WalstreamError):
    """A plugin could not be found, loaded or used."""


class PluginNotFoundError(PluginError, LookupError):
    """No installed plugin has the requested name."""


class PluginLoadError(PluginError):
    """A plugin is installed but failed to import or is not usable."""


class DuplicatePluginError(PluginError):
    """Two installed distributions registered the same plugin name."""


class PluginIncompatibleError(PluginError):
    """A plugin declares a plugin-API range that excludes this core."""


# --- settings -------------------------------------------------------------------


class SettingsError(WalstreamError, ValueError):
    """Configuration failed validation; the message names each bad field."""


# --- metastore and object store ---------------------------------------------------


class MetastoreError(WalstreamError):
    """The metastore failed or refused an operation."""


class ObjectStoreError(WalstreamError):
    """The object store failed or refused an operation."""


class ObjectNotFoundError(ObjectStoreError, KeyError):
    """The requested object does not exist."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want plain text
        return str(self.args[0]) if self.args else "object not found"


class ObjectAlreadyExistsError(ObjectStoreError):
    """A conditional create found the object already there."""


class InvalidObjectKeyError(ObjectStoreError, ValueError):
    """An object key is empty, malformed or would escape the store's root."""


class CapabilityError(WalstreamError):
    """A backend lacks a capability that the caller needs."""
