"""The historian flow over the real broker and database: every event of every kind stored
exactly once; bad messages become dead letters (table and topic) with their Kafka origin."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from confluent_kafka import Consumer, TopicPartition

from asbuilt import events as ev
from asbuilt import kafka, topics
from pipelines.historian import rows
from tests.conftest import Stack
from tests.flowkit import FlowProcess, count_rows, flow_settings, produce, table_rows, wait_until

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
ASSET = "acme/basel/osd/line1/press"


def every_kind(n: int, start: datetime = T0) -> list[ev.Event]:
    """``n`` events of each kind, optional fields both set and unset."""
    out: list[ev.Event] = []
    for i in range(n):
        ts = start + timedelta(seconds=i)
        asset = f"{ASSET}{i % 3}"
        out += [
            ev.new_state_change(
                asset=asset, ts=ts, state="Execute" if i % 2 else "Held", mode="Produce",
                stop_reason=None if i % 2 else "100.20", blocked=i % 5 == 0,
            ),
            ev.new_counter_sample(
                asset=asset, ts=ts, counter="processed", value=i * 10, resettable=True,
                rollover=None if i % 2 else 65_536,
            ),
            ev.new_process_value(
                asset=asset, ts=ts, signal="compression_force", value=12.5 + i, unit="kN",
                status_code=0 if i % 3 else 0x4000_0000,
            ),
            ev.new_alarm(
                asset=asset, ts=ts, alarm="door_open", severity=500, message=f"door {i} «open»",
                active=i % 2 == 0, acked=False,
            ),
            ev.new_batch_event(
                asset=asset, ts=ts, batch_id=f"B{i}", recipe_id="R1", recipe_version="3",
                procedure="tablet", unit_procedure="compress" if i % 2 else None,
                transition="started", parameters={"speed": 1.5, "tool": "T7"} if i % 2 else None,
            ),
            ev.new_material_movement(
                asset=asset, ts=ts, direction="consumed", lot=f"L{i}", material="API",
                quantity=2.5, unit="kg", batch_id=None if i % 2 else f"B{i}",
            ),
        ]  # fmt: skip
    return out


def expected_rows(events: list[ev.Event]) -> dict[str, list[tuple[Any, ...]]]:
    """What each raw table must hold: the rows of distinct events, sorted."""
    out: dict[str, set[tuple[Any, ...]]] = {table: set() for table in rows.COLUMNS}
    for event in events:
        table, row = rows.table_row(event)
        out[table].add(_normal(row))
    return {table: sorted(found, key=repr) for table, found in out.items()}


def _normal(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """Comparable values: uuids as strings, times in UTC, jsonb dicts as sorted items."""
    return tuple(
        str(v)
        if isinstance(v, uuid.UUID)
        else v.astimezone(UTC)
        if isinstance(v, datetime)
        else tuple(sorted(v.items()))
        if isinstance(v, dict)
        else v
        for v in row
    )


def stored_rows(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    return {
        table: sorted((_normal(r) for r in table_rows(dsn, table, rows.KEY, columns)), key=repr)
        for table, columns in rows.COLUMNS.items()
    }


def total_rows(dsn: str) -> int:
    return sum(count_rows(dsn, table) for table in rows.COLUMNS)


def test_every_event_of_every_kind_is_stored_exactly_once(
    local_stack: Stack, db_dsn: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = flow_settings(local_stack, db_dsn, topic_prefix, tmp_path)
    events = every_kind(40)
    produce(settings, events + events)  # every event delivered twice
    with FlowProcess("historian", settings) as flow:
        wait_until(
            lambda: flow.metrics().get("items_in", 0) >= 2 * len(events),
            120,
            "the historian to read every message",
            [flow],
        )
        wait_until(lambda: total_rows(db_dsn) >= len(events), 120, "every event stored", [flow])
        # later duplicates (a producer retry after the first copies were stored) change nothing
        produce(settings, events[:50])
        wait_until(
            lambda: (
                flow.metrics().get("items_in", 0) >= 2 * len(events) + 50
                and flow.metrics().get("rows_out", 0) >= 2 * len(events) + 50
            ),
            120,
            "the late duplicates to be written",
            [flow],
        )
        metrics = flow.metrics()
    assert stored_rows(db_dsn) == expected_rows(events)
    assert metrics["dead_letters"] == 0
    assert metrics["recovery_store"] == str(settings.recovery_dir("historian"))
    assert flow.proc is not None
    assert flow.proc.returncode == 0, flow.output()


BAD: list[tuple[str, bytes | None]] = [
    ("invalid JSON", b'{"kind": "state", '),
    ("does not match the event contract", b'{"kind": "alarm", "asset": "a/b"}'),
    ("empty message", b""),
    ("empty message", None),  # a tombstone
    ("not valid UTF-8", b'{"kind": "state", "asset": "\xff\xfe"}'),
    ("newer than the newest", None),  # filled in below: a valid event from the future
    ("invalid JSON", b"\x00\x01 binary with a NUL"),
]


def _future_event() -> bytes:
    event = ev.new_alarm(
        asset=ASSET, ts=T0, alarm="a", severity=1, message="m", active=True, acked=False
    )
    data = msgspec.json.decode(ev.encode(event))
    data["schema_version"] = ev.SCHEMA_VERSION + 1
    return msgspec.json.encode(data)


def test_bad_messages_become_dead_letters_with_their_origin_and_the_flow_goes_on(
    local_stack: Stack, db_dsn: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = flow_settings(local_stack, db_dsn, topic_prefix, tmp_path)
    bad = [
        (reason, _future_event() if reason.startswith("newer") else value) for reason, value in BAD
    ]
    good = every_kind(2)
    later = every_kind(1, start=T0 + timedelta(hours=1))
    produce(settings, good[:6])
    produce(settings, [("alarms", value) for _, value in bad])  # offsets 0..n-1 of alarms
    produce(settings, good[6:])
    with FlowProcess("historian", settings) as flow:
        wait_until(
            lambda: (
                count_rows(db_dsn, "dead_letters") == len(bad) and total_rows(db_dsn) == len(good)
            ),
            120,
            f"{len(bad)} dead letters and {len(good)} events stored",
            [flow],
        )
        produce(settings, later)  # the flow still runs
        wait_until(lambda: total_rows(db_dsn) == len(good) + 6, 120, "later events", [flow])
        assert flow.metrics()["dead_letters"] == len(bad)
    letters = table_rows(
        db_dsn, "dead_letters", "offset", ["reason", "topic", "partition", "offset", "origin"]
    )
    alarms = topics.topic_name("alarms", topic_prefix)
    # good[:6] holds one alarm, so the bad messages are at offsets 1..n of the alarms topic
    assert [(t, p, o, origin) for _, t, p, o, origin in letters] == [
        (alarms, 0, i + 1, f"{alarms}[0]@{i + 1}") for i in range(len(bad))
    ]
    for (expected, _), (reason, *_rest) in zip(bad, letters, strict=True):
        assert expected in reason, reason
    assert stored_rows(db_dsn) == expected_rows(good + later)

    published = _consume(local_stack.bootstrap, topics.topic_name("dead_letters", topic_prefix))
    decoded = [msgspec.json.decode(v, type=ev.DeadLetter) for v in published]
    assert sorted(d.origin for d in decoded) == sorted(origin for *_, origin in letters)


def _consume(bootstrap: str, topic: str) -> list[bytes]:
    consumer = Consumer(kafka.consumer_config(bootstrap, f"test-{uuid.uuid4().hex}"))
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        out: list[bytes] = []
        idle = 0
        while idle < 4:
            batch = consumer.consume(1000, 0.5)
            idle = 0 if batch else idle + 1
            out += [m.value() or b"" for m in batch if m.error() is None]
        return out
    finally:
        consumer.close()


def test_dead_letters_the_connectors_published_are_stored_too(
    local_stack: Stack, db_dsn: str, topic_prefix: str, tmp_path: Path
) -> None:
    """The connector dead-letters what it cannot translate onto the dead-letter topic; the
    historian stores those (no Kafka position: they never were an event message), and a
    message on that topic that is not even a dead letter is kept as one, with its position."""
    settings = flow_settings(local_stack, db_dsn, topic_prefix, tmp_path)
    letter = ev.new_dead_letter(
        reason="bad status code 0x80000000", origin="ns=2;s=Press1.Force", payload=b"\x01",
        received_ts=T0,
    )  # fmt: skip
    produce(settings, [letter, letter, ("dead_letters", b"not a dead letter")])
    produce(settings, [("states", b"{")])  # one of the historian's own, published by it
    with FlowProcess("historian", settings) as flow:
        wait_until(lambda: count_rows(db_dsn, "dead_letters") == 3, 120, "3 dead letters", [flow])
        wait_until(
            lambda: flow.metrics().get("dead_letters", 0) >= 4,  # 2 copies + odd + own
            60,
            "the flow to have read everything",
            [flow],
        )
    stored = table_rows(
        db_dsn, "dead_letters", "origin", ["origin", "reason", "topic", "partition", "offset"]
    )
    letters_topic = topics.topic_name("dead_letters", topic_prefix)
    states_topic = topics.topic_name("states", topic_prefix)
    assert [(o, t, p, off) for o, _, t, p, off in stored] == sorted(
        [
            ("ns=2;s=Press1.Force", None, None, None),
            (f"{letters_topic}[0]@2", letters_topic, 0, 2),
            (f"{states_topic}[0]@0", states_topic, 0, 0),
        ]
    )
    reasons = {o: r for o, r, *_ in stored}
    assert reasons["ns=2;s=Press1.Force"] == "bad status code 0x80000000"
    assert reasons[f"{letters_topic}[0]@2"].startswith("not a dead letter of the contract")
