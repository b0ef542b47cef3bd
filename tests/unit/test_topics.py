"""The topic registry: one versioned topic per event kind, prefixes for tests."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from asbuilt import events as ev
from asbuilt import topics
from asbuilt.errors import ConfigError

pytestmark = pytest.mark.unit


def test_every_event_type_has_its_own_topic() -> None:
    event_topics = [topics.topic_for(t) for t in ev.EVENT_TYPES]
    assert len(set(event_topics)) == len(ev.EVENT_TYPES)
    assert set(event_topics) <= set(topics.ALL_TOPICS)


def test_the_registry_names_each_topic_once_and_versioned() -> None:
    assert len(set(topics.ALL_TOPICS)) == len(topics.ALL_TOPICS) == len(topics.TOPIC_KINDS)
    assert all(t.startswith(f"asbuilt.v{topics.TOPIC_VERSION}.") for t in topics.ALL_TOPICS)
    assert set(topics.ALL_TOPICS) == {
        "asbuilt.v1.states",
        "asbuilt.v1.counters",
        "asbuilt.v1.process_values",
        "asbuilt.v1.alarms",
        "asbuilt.v1.batch",
        "asbuilt.v1.materials",
        "asbuilt.v1.dead_letters",
        "asbuilt.v1.alerts",
    }


def test_an_event_and_its_type_map_to_the_same_topic() -> None:
    event = ev.new_state_change(
        asset="acme/basel", ts=datetime(2024, 5, 1, tzinfo=UTC), state="Idle", mode="Produce"
    )
    assert topics.topic_for(event) == topics.topic_for(ev.StateChange) == "asbuilt.v1.states"
    assert topics.topic_kind_for(event) == "states"


def test_dead_letters_have_their_topic() -> None:
    letter = ev.decode(b"{", "somewhere")
    assert topics.topic_for(letter) == topics.topic_for(ev.DeadLetter) == "asbuilt.v1.dead_letters"


def test_a_prefix_gives_a_test_its_own_topics() -> None:
    assert topics.topic_name("counters", prefix="t123_") == "t123_asbuilt.v1.counters"
    assert topics.topic_for(ev.Alarm, prefix="t123_") == "t123_asbuilt.v1.alarms"
    prefixed = topics.all_topics("t123_")
    assert prefixed == tuple(f"t123_{t}" for t in topics.ALL_TOPICS)
    assert not set(prefixed) & set(topics.all_topics("t124_"))


@pytest.mark.parametrize("prefix", ["t 1_", "t/1_", "ü_", "x" * 240])
def test_a_prefix_that_kafka_would_refuse_is_a_config_error(prefix: str) -> None:
    with pytest.raises(ConfigError, match="prefix"):
        topics.topic_name("states", prefix=prefix)


def test_an_unknown_kind_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown topic kind"):
        topics.topic_name("state")  # type: ignore[arg-type]
