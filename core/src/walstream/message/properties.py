"""Reserved system property names and the rules for user properties.

Every key starting with ``_`` belongs to the system; users pick any other key.
"""

from __future__ import annotations

from collections.abc import Mapping

from walstream.errors import MessageError, ReservedPropertyError

RESERVED_PREFIX = "_"

VERSION = "_v"
TYPE = "_t"
HEADER = "_h"
VCHANNEL = "_vc"
TIMETICK = "_tt"
BARRIER_TIMETICK = "_btt"
LAST_CONFIRMED = "_lc"
LAST_CONFIRMED_USE_SELF = "_lcs"
WAL_TERM = "_wt"
TXN_CONTEXT = "_tx"
BROADCAST_HEADER = "_bh"
NOT_PERSISTED = "_np"

SYSTEM_PROPERTIES = frozenset(
    {
        VERSION,
        TYPE,
        HEADER,
        VCHANNEL,
        TIMETICK,
        BARRIER_TIMETICK,
        LAST_CONFIRMED,
        LAST_CONFIRMED_USE_SELF,
        WAL_TERM,
        TXN_CONTEXT,
        BROADCAST_HEADER,
        NOT_PERSISTED,
    }
)


def validate_user_properties(properties: Mapping[str, str]) -> dict[str, str]:
    """Return a copy of ``properties`` after checking they are legal user properties."""
    checked: dict[str, str] = {}
    for key, value in properties.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise MessageError(
                f"property {key!r}={value!r}: keys and values must be str "
                f"(encode binary data, e.g. base64, before putting it in a property)"
            )
        if not key:
            raise MessageError("property keys may not be empty")
        if key.startswith(RESERVED_PREFIX):
            raise ReservedPropertyError(
                f"property {key!r} uses the reserved prefix {RESERVED_PREFIX!r}, "
                f"which belongs to walstream; rename it (e.g. {key.lstrip('_') or 'key'!r})"
            )
        try:
            key.encode()
            value.encode()
        except UnicodeEncodeError as exc:
            raise MessageError(
                f"property {key!r} is not valid Unicode text (lone surrogate?): {exc.reason}"
            ) from exc
        checked[key] = value
    return checked


def properties_size(properties: Mapping[str, str]) -> int:
    """Bytes taken by the properties when UTF-8 encoded (keys plus values)."""
    return sum(len(k.encode()) + len(v.encode()) for k, v in properties.items())
