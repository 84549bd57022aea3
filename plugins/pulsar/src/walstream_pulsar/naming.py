"""How a pchannel maps to a Pulsar topic.

pchannel ``P`` is ``persistent://<tenant>/<namespace>/<topic_prefix>P``: one
non-partitioned persistent topic. Pchannel names (1-200 of ``[A-Za-z0-9_.-]``,
starting with a letter or digit) are valid Pulsar local topic names as they are, so
the name is readable in every Pulsar tool.
"""

from __future__ import annotations

import re

_NAME = re.compile(r"^[A-Za-z0-9_.=:-]+$")
_PREFIX = re.compile(r"^[A-Za-z0-9_.=:-]*$")
MAX_PREFIX_LENGTH = 50
TRUNCATION_SUBSCRIPTION = "walstream-truncation"


def check_tenant_or_namespace(value: str, what: str) -> str:
    """``value`` if it is a valid Pulsar tenant or namespace name, else ``ValueError``."""
    if not value or not _NAME.match(value) or value in (".", ".."):
        raise ValueError(
            f"{what} {value!r} is not a valid Pulsar {what} name (letters, digits, '_', '.', "
            f"'=', ':', '-')"
        )
    return value


def check_topic_prefix(prefix: str) -> str:
    """``prefix`` if it can start a Pulsar local topic name, else ``ValueError``."""
    if len(prefix) > MAX_PREFIX_LENGTH or not _PREFIX.match(prefix):
        raise ValueError(
            f"topic prefix {prefix!r} must be at most {MAX_PREFIX_LENGTH} letters, digits, "
            f"'_', '.', '=', ':' or '-'"
        )
    if "-partition-" in prefix:
        raise ValueError(f"topic prefix {prefix!r} may not hold '-partition-' (Pulsar reserves it)")
    return prefix


def topic_name(tenant: str, namespace: str, prefix: str, pchannel: str) -> str:
    """The full topic name of ``pchannel``."""
    check_tenant_or_namespace(tenant, "tenant")
    check_tenant_or_namespace(namespace, "namespace")
    local = check_topic_prefix(prefix) + pchannel
    if not _NAME.match(local) or "-partition-" in local:
        raise ValueError(
            f"pchannel {pchannel!r} with prefix {prefix!r} gives {local!r}, not a valid Pulsar "
            f"topic name"
        )
    return f"persistent://{tenant}/{namespace}/{local}"
