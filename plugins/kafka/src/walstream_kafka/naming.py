"""How a pchannel maps to Kafka names: its topic and its transactional id.

The topic is ``topic_prefix + pchannel`` verbatim. Pchannel names are 1-200 characters
of ``[A-Za-z0-9_.-]`` starting with a letter or digit, all legal in a Kafka topic name,
so with a prefix of at most 49 such characters the topic stays within Kafka's 249.
Kafka refuses to create a topic that differs from an existing one only by ``.`` versus
``_`` (their metric names would collide); two such pchannels cannot both exist on one
cluster and the second open says so.
"""

from __future__ import annotations

import re

MAX_TOPIC_LENGTH = 249
MAX_PCHANNEL_LENGTH = 200
MAX_PREFIX_LENGTH = MAX_TOPIC_LENGTH - MAX_PCHANNEL_LENGTH
_PREFIX = re.compile(r"^[A-Za-z0-9._-]*$")
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


def check_topic_prefix(prefix: str) -> str:
    """Return ``prefix`` if it can start a Kafka topic name, else raise ``ValueError``."""
    if len(prefix) > MAX_PREFIX_LENGTH:
        raise ValueError(
            f"topic prefix {prefix!r} is {len(prefix)} characters; at most {MAX_PREFIX_LENGTH} "
            f"fit before a 200-character pchannel name in Kafka's 249"
        )
    if not _PREFIX.match(prefix):
        raise ValueError(
            f"topic prefix {prefix!r} may only hold letters, digits, '.', '_' and '-' "
            f"(the characters of a Kafka topic name)"
        )
    if prefix.startswith("__"):
        raise ValueError(
            f"topic prefix {prefix!r} starts with '__', which Kafka keeps for internal topics"
        )
    return prefix


def topic_name(prefix: str, pchannel: str) -> str:
    """The topic that holds ``pchannel``'s log."""
    name = check_topic_prefix(prefix) + pchannel
    if not _TOPIC.match(name) or name in (".", ".."):
        raise ValueError(
            f"pchannel {pchannel!r} with prefix {prefix!r} gives {name!r}, not a valid Kafka "
            f"topic name (1-249 characters of letters, digits, '.', '_' and '-')"
        )
    return name


def transactional_id(topic: str) -> str:
    """The transactional id every writer of ``topic`` uses: one per pchannel, so a new
    writer's ``init_transactions`` fences all earlier ones."""
    return f"walstream-wal:{topic}"
