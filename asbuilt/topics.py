"""The one registry of Kafka topic names: ``asbuilt.v<TOPIC_VERSION>.<kind>``.

One topic per event kind (see :mod:`asbuilt.events`), plus ``dead_letters`` (what no consumer
could read, with the reason) and ``alerts`` (what the alert rules raise). Events are keyed by
their asset path, so one asset's events stay ordered within a partition.

The version is part of the name: a breaking change of the event contract (a removed, renamed or
retyped field, a stricter validation, a different event id) is a new topic version, produced
side by side with the old one while consumers migrate; additive changes stay on the same topics.

Tests and parallel deployments give every topic a ``prefix`` (e.g. ``"t123_"``), which is
prepended to the whole name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, Literal, TypeAlias, get_args

from asbuilt.errors import ConfigError
from asbuilt.events import (
    Alarm,
    BatchEvent,
    CounterSample,
    DeadLetter,
    Event,
    MaterialMovement,
    ProcessValue,
    StateChange,
)

__all__ = [
    "ALL_TOPICS",
    "EVENT_TOPIC_KINDS",
    "TOPIC_KINDS",
    "TOPIC_VERSION",
    "TopicKind",
    "all_topics",
    "topic_for",
    "topic_kind_for",
    "topic_name",
]

TOPIC_VERSION: Final = 1
"""The version in every topic name; incremented by a breaking contract change."""

TopicKind: TypeAlias = Literal[
    "states",
    "counters",
    "process_values",
    "alarms",
    "batch",
    "materials",
    "dead_letters",
    "alerts",
]
TOPIC_KINDS: Final[tuple[TopicKind, ...]] = get_args(TopicKind)

_TOPIC_OF: Final[Mapping[type[Event | DeadLetter], TopicKind]] = {
    StateChange: "states",
    CounterSample: "counters",
    ProcessValue: "process_values",
    Alarm: "alarms",
    BatchEvent: "batch",
    MaterialMovement: "materials",
    DeadLetter: "dead_letters",
}

EVENT_TOPIC_KINDS: Final[tuple[TopicKind, ...]] = tuple(
    kind for t, kind in _TOPIC_OF.items() if t is not DeadLetter
)
"""The kinds whose topics carry contract events (what the historian reads)."""

_PREFIX = re.compile(r"[A-Za-z0-9._-]*")
_MAX_TOPIC_LENGTH: Final = 249  # Kafka's limit


def topic_name(kind: TopicKind, prefix: str = "") -> str:
    """The topic of ``kind``, e.g. ``topic_name("states", "t1_") == "t1_asbuilt.v1.states"``.

    Raises :class:`~asbuilt.errors.ConfigError` if ``kind`` is unknown or ``prefix`` would make
    an illegal Kafka topic name.
    """
    if kind not in TOPIC_KINDS:
        msg = f"unknown topic kind {kind!r}; known: {', '.join(TOPIC_KINDS)}"
        raise ConfigError(msg)
    name = f"{prefix}asbuilt.v{TOPIC_VERSION}.{kind}"
    if not _PREFIX.fullmatch(prefix) or len(name) > _MAX_TOPIC_LENGTH:
        msg = (
            f"topic prefix {prefix!r} gives an illegal Kafka topic name: use [A-Za-z0-9._-] "
            f"and at most {_MAX_TOPIC_LENGTH} characters in all"
        )
        raise ConfigError(msg)
    return name


def topic_kind_for(event: Event | DeadLetter | type[Event | DeadLetter]) -> TopicKind:
    """The topic kind an event (or event type) is published to."""
    event_type = event if isinstance(event, type) else type(event)
    return _TOPIC_OF[event_type]


def topic_for(event: Event | DeadLetter | type[Event | DeadLetter], prefix: str = "") -> str:
    """The topic an event (or event type) is published to, e.g. ``asbuilt.v1.states``."""
    return topic_name(topic_kind_for(event), prefix)


def all_topics(prefix: str = "") -> tuple[str, ...]:
    """Every topic asbuilt uses, with ``prefix`` (to create them for a test or a deployment)."""
    return tuple(topic_name(kind, prefix) for kind in TOPIC_KINDS)


ALL_TOPICS: Final = all_topics()
"""Every topic asbuilt uses, without prefix."""
