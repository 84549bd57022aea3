"""pchannel -> topic name, and the key of stored messages."""

from __future__ import annotations

import pytest
from walstream_pulsar.naming import MAX_PREFIX_LENGTH, check_topic_prefix, topic_name
from walstream_pulsar.records import CLAIM, DATA, parse_key, record_key


def test_topic_is_tenant_namespace_prefix_pchannel() -> None:
    assert (
        topic_name("public", "default", "walstream-", "by-dev-rootcoord-dml_0")
        == "persistent://public/default/walstream-by-dev-rootcoord-dml_0"
    )
    assert topic_name("t1", "ns.a", "", "a.b") == "persistent://t1/ns.a/a.b"


@pytest.mark.parametrize(
    "prefix", ["with space", "slash/", "ü", "x" * (MAX_PREFIX_LENGTH + 1), "a-partition-"]
)
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError):
        check_topic_prefix(prefix)


@pytest.mark.parametrize(("tenant", "namespace"), [("", "default"), ("public", "a/b"), ("..", "x")])
def test_bad_tenant_or_namespace_is_refused(tenant: str, namespace: str) -> None:
    with pytest.raises(ValueError):
        topic_name(tenant, namespace, "p-", "c")


def test_bad_pchannel_is_refused() -> None:
    with pytest.raises(ValueError):
        topic_name("public", "default", "p-", "no spaces")
    with pytest.raises(ValueError):
        topic_name("public", "default", "p-", "x-partition-0")


def test_keys_round_trip() -> None:
    assert parse_key(record_key(DATA, 7)) == (DATA, 7)
    assert parse_key(record_key(CLAIM, 0)) == (CLAIM, 0)
    for other in (None, "", "D:", "X:1", "D:-1", "D:1a", "D:\u0661"):
        assert parse_key(other) is None
