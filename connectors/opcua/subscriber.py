"""Subscribe to an OPC UA server and hand asbuilt events to a sink, reconnecting forever.

- Data changes of every mapped node (sampling interval 0: every change the server reports;
  server-side queues sized so bursts are kept) and events from the map's event notifiers.
- asyncua's iterator-mode queue is unbounded here: its default drops the oldest notification
  when full. Nothing is dropped; a queue that grows past ``lag_warn`` is reported (log, metric)
  so a slow downstream is visible.
- A lost connection or server restart: reconnect with exponential backoff (0.5 s → 30 s) and
  subscribe again. The server then re-sends current values; unchanged values carry their old
  source timestamps, so their event ids are the same and downstream deduplicates them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from asyncua import Client, ua
from asyncua.common.subscription import DataChangeEvent, OpcEvent, StatusChangeEvent, Subscription

from asbuilt import events as ev
from connectors.opcua.events import EVENT_TYPE_NAMES, TYPE_KINDS, translate_event
from connectors.opcua.nodemap import NodeMap, Signal, discover
from connectors.opcua.translate import (
    Notification,
    StateAssembler,
    TimestampPolicy,
    aware,
    event_time,
    translate,
)

logger = logging.getLogger(__name__)

Sink = Callable[[Sequence[ev.Event | ev.DeadLetter]], None]
MAX_BATCH = 5000
STATE_KINDS = frozenset({"state", "mode", "stop_reason", "blocked", "starved"})
SERVER_QUEUE = 1000
SUBSCRIBE_CHUNK = 1000  # monitored items created per request
REQUEST_TIMEOUT_S = 30.0
WATCHDOG_S = 10.0  # per monitored item: a burst of 1000 changes between two publishes is kept


@dataclass
class ConnectorStats:
    connected: bool = False
    endpoint: str = ""
    items: int = 0
    notifications: int = 0
    events_out: int = 0
    dead_letters: int = 0
    reconnects: int = 0
    queue_depth: int = 0
    last_error: str = ""
    rate: float = 0.0  # notifications/s over the last window
    _window: tuple[float, int] = field(default=(0.0, 0))

    def tick(self) -> None:
        now = time.monotonic()
        t0, n0 = self._window
        if now - t0 >= 1.0:
            self.rate = (self.notifications - n0) / (now - t0) if t0 else 0.0
            self._window = (now, self.notifications)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


class OpcUaConnector:
    def __init__(
        self,
        endpoint: str,
        sink: Sink,
        nodemap: NodeMap | None = None,
        *,
        partition: tuple[int, int] = (0, 1),
        policy: TimestampPolicy | None = None,
        publishing_interval_ms: float = 100.0,
        lag_warn: int = 100_000,
    ) -> None:
        self.endpoint = endpoint
        self.sink = sink
        self.nodemap = nodemap
        self.partition = partition
        self.policy = policy or TimestampPolicy()
        self.publishing_interval_ms = publishing_interval_ms
        self.lag_warn = lag_warn
        self.stats = ConnectorStats(endpoint=endpoint)
        self.assembler = StateAssembler()
        self._signals: dict[ua.NodeId, Signal] = {}
        self._sources: dict[ua.NodeId, str] = {}
        self._types: dict[ua.NodeId, str] = {}

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.5
        while not stop.is_set():
            try:
                # Generous timeouts: a server busy with tens of thousands of items answers the
                # 1 s default keep-alive probe too late, and the session would drop forever.
                async with Client(
                    self.endpoint, timeout=REQUEST_TIMEOUT_S, watchdog_intervall=WATCHDOG_S
                ) as client:
                    self.stats.connected = True
                    backoff = 0.5
                    await self._session(client, stop)
            except (OSError, TimeoutError, ConnectionError, ua.UaError) as exc:
                self.stats.last_error = (
                    f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} {type(exc).__name__}: {exc}"
                )
                logger.warning(
                    "opcua endpoint=%s: %s; retrying in %.1f s", self.endpoint, exc, backoff
                )
            finally:
                if self.stats.connected:
                    self.stats.reconnects += 1
                self.stats.connected = False
                self._emit(self.assembler.flush(time.monotonic(), force=True))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            backoff = min(backoff * 2, 30.0)
        self.stats.reconnects = max(0, self.stats.reconnects - 1)

    async def _session(self, client: Client, stop: asyncio.Event) -> None:
        nodemap = self.nodemap or await discover(client, self.endpoint)
        if self.partition != (0, 1):
            nodemap = nodemap.partition(*self.partition)
        sub = await client.create_subscription(self.publishing_interval_ms, queue_maxsize=0)
        try:
            await self._subscribe(client, sub, nodemap)
            await self._pump(client, sub, stop)
        finally:
            with contextlib.suppress(Exception):
                await sub.delete()

    async def _subscribe(self, client: Client, sub: Subscription, nodemap: NodeMap) -> None:
        received = datetime.now(UTC)
        nodes, signals, dead = [], [], []
        for signal in nodemap.signals:
            try:
                if signal.node is not None:
                    node = client.get_node(signal.node)
                else:
                    assert signal.browse_path is not None
                    node = await client.nodes.objects.get_child(signal.browse_path.split("/"))
            except (ua.UaError, ValueError) as exc:
                dead.append(_unmapped(signal, f"cannot resolve: {exc}", received))
                continue
            nodes.append(node)
            signals.append(signal)
        self._signals = {}
        parts: dict[str, set[str]] = {}
        for signal in signals:
            if signal.kind in STATE_KINDS:
                parts.setdefault(signal.asset, set()).add(signal.kind)
        self.assembler.required = {asset: frozenset(kinds) for asset, kinds in parts.items()}
        results: list[Any] = []
        for start in range(0, len(nodes), SUBSCRIBE_CHUNK):  # big requests time out on busy servers
            chunk = await sub.subscribe_data_change(
                nodes[start : start + SUBSCRIBE_CHUNK], queuesize=SERVER_QUEUE, sampling_interval=0
            )
            results += chunk if isinstance(chunk, list) else [chunk]
        for node, signal, handle in zip(nodes, signals, results, strict=True):
            if isinstance(handle, ua.StatusCode):
                dead.append(
                    _unmapped(signal, f"server refused the subscription: {handle.name}", received)
                )
            else:
                self._signals[node.nodeid] = signal
        self.stats.items = len(self._signals)
        types = await _event_types(client)
        self._types = {
            node.nodeid: TYPE_KINDS[(await node.read_browse_name()).Name]
            for node in types
            if node.nodeid.Identifier != ua.ObjectIds.BaseEventType
        }
        for notifier in nodemap.event_notifiers:
            try:
                await sub.subscribe_events(client.get_node(notifier), types, queuesize=SERVER_QUEUE)
            except ua.UaError as exc:
                logger.warning("cannot subscribe to events of %s: %s", notifier, exc)
        self._sources = {client.get_node(s.node).nodeid: s.asset for s in nodemap.signals if s.node}
        logger.info(
            "subscribed endpoint=%s items=%d unmapped=%d notifiers=%s",
            self.endpoint,
            len(self._signals),
            len(dead),
            nodemap.event_notifiers,
        )
        self._emit(dead)

    async def _pump(self, client: Client, sub: Subscription, stop: asyncio.Event) -> None:
        queue: asyncio.Queue[Any] = sub._event_queue  # type: ignore[assignment]  # unbounded
        last_check = time.monotonic()
        while not stop.is_set():
            try:
                first = await asyncio.wait_for(queue.get(), 0.2)
            except TimeoutError:
                first = ()
            batch = [first] if first != () else []
            while len(batch) < MAX_BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            if None in batch:
                msg = "subscription closed by the client library (connection lost)"
                raise ConnectionError(msg)
            self.stats.queue_depth = queue.qsize()
            if self.stats.queue_depth > self.lag_warn:
                logger.error(
                    "falling behind: %d notifications queued (endpoint=%s)",
                    self.stats.queue_depth,
                    self.endpoint,
                )
            self._handle(batch)
            now = time.monotonic()
            if now - last_check > 1.0:
                await client.check_connection()
                last_check = now

    def _handle(self, batch: list[Any]) -> None:
        now = time.monotonic()
        received = datetime.now(UTC)
        out: list[ev.Event | ev.DeadLetter] = []
        # A publish response groups notifications by monitored item, not by time: put the data
        # changes back in time order (the time each event will carry), so one asset's events go
        # out in the order they happened and the parts of one state change meet in the assembler.
        changes = sorted(
            (i for i in batch if isinstance(i, DataChangeEvent)),
            key=lambda item: self._event_time(item, received),
        )
        for change in changes:
            self.stats.notifications += 1
            out += self._datachange(change, received, now)
        for item in batch:
            if isinstance(item, OpcEvent):
                self.stats.notifications += 1
                out += self._event(item.event, received)
            elif isinstance(item, StatusChangeEvent):
                logger.warning("subscription status change: %s", item.notification.Status)
        out += self.assembler.flush(now)
        self._emit(out)
        self.stats.tick()

    def _event_time(self, item: DataChangeEvent, received: datetime) -> datetime:
        """The time the event will carry (the timestamp policy applied): the sort key."""
        dv = item.data.monitored_item.Value
        for ts in (dv.SourceTimestamp, dv.ServerTimestamp) if dv is not None else ():
            stamp = aware(ts)
            if self.policy.plausible(stamp, received):
                assert stamp is not None
                return stamp
        return received

    def _datachange(
        self, item: DataChangeEvent, received: datetime, now: float
    ) -> list[ev.Event | ev.DeadLetter]:
        signal = self._signals.get(item.node.nodeid)
        dv = item.data.monitored_item.Value
        if signal is None:
            return []
        n = Notification(
            signal=signal,
            value=item.value,
            status_code=int(dv.StatusCode.value)
            if dv is not None and dv.StatusCode is not None
            else 0,
            source_ts=aware(dv.SourceTimestamp) if dv is not None else None,
            server_ts=aware(dv.ServerTimestamp) if dv is not None else None,
            received=received,
        )
        try:
            event, part, dead = translate(n, self.policy)
        except Exception as exc:  # noqa: BLE001 - bad input is data: never let it stop the connector
            return [
                ev.new_dead_letter(
                    reason=f"{signal.asset}: cannot translate: {type(exc).__name__}: {exc}",
                    origin=f"opcua {signal.ref}",
                    payload=repr(n).encode(),
                    received_ts=received,
                )
            ]
        out: list[ev.Event | ev.DeadLetter] = list(dead)
        if event is not None:
            out.append(event)
        if part is not None:
            ts, _ = event_time(n, self.policy)
            out += self.assembler.add(signal.asset, part, ts, received, now)
        return out

    def _event(self, event: Any, received: datetime) -> list[ev.Event | ev.DeadLetter]:
        fields = {k: v.Value for k, v in event.get_event_props_as_fields_dict().items()}
        return translate_event(fields, self._sources, received, self.policy, self._types)

    def _emit(self, events: Sequence[ev.Event | ev.DeadLetter]) -> None:
        if not events:
            return
        self.stats.events_out += len(events)
        self.stats.dead_letters += sum(isinstance(e, ev.DeadLetter) for e in events)
        self.sink(events)


def _unmapped(signal: Signal, reason: str, received: datetime) -> ev.DeadLetter:
    return ev.new_dead_letter(
        reason=f"{signal.asset}: node {signal.ref} ({signal.kind} {signal.name}): {reason}",
        origin=f"opcua {signal.ref}",
        payload=signal.model_dump_json().encode(),
        received_ts=received,
    )


async def _event_types(client: Client) -> list[Any]:
    """The asbuilt event types the server defines (all of them in one filter), else base events."""
    base = client.get_node(ua.ObjectIds.BaseEventType)
    found = [
        child
        for child in await base.get_children(refs=ua.ObjectIds.HasSubtype)
        if (await child.read_browse_name()).Name in EVENT_TYPE_NAMES
    ]
    return found or [base]
