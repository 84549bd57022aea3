"""pchannel -> topic and transactional id."""

from __future__ import annotations

import pytest
from walstream_kafka.naming import (
    MAX_PREFIX_LENGTH,
    check_topic_prefix,
    topic_name,
    transactional_id,
)


def test_topic_is_prefix_plus_pchannel() -> None:
    assert topic_name("walstream-", "by-dev-rootcoord-dml_0") == "walstream-by-dev-rootcoord-dml_0"
    assert topic_name("", "a.b") == "a.b"


def test_longest_names_fit_kafka() -> None:
    name = topic_name("p" * MAX_PREFIX_LENGTH, "c" * 200)
    assert len(name) == 249


@pytest.mark.parametrize(
    "prefix", ["with space", "slash/", "ü", "x" * (MAX_PREFIX_LENGTH + 1), "__internal"]
)
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError):
        check_topic_prefix(prefix)


def test_bad_pchannel_is_refused() -> None:
    with pytest.raises(ValueError):
        topic_name("p-", "no spaces")


def test_transactional_id_is_per_pchannel() -> None:
    assert transactional_id("walstream-a") != transactional_id("walstream-b")
    assert transactional_id("walstream-a") == transactional_id("walstream-a")
