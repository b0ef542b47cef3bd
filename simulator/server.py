"""The simulated plant as a real OPC UA server (asyncua, TCP, loopback by default).

The address space follows the plant model's ISA-95 hierarchy under ``Objects/Plant``; every asset
is an object with an ``AssetPath`` property and one variable per signal (string node ids
``ns=<sim>;s=<asset path>.<Variable>``), so a client can find everything by browsing:

- ``State`` (Int32, PackML state number in the numbering the model exposes, property
  ``StateNumbering``), ``UnitMode`` (Int32), ``StopReason`` (String), ``Blocked``, ``Starved``;
- ``ProcessedCount``, ``DefectiveCount`` (UInt32, non-resetting accumulators) and
  ``ProcessedCountResettable`` (UInt32, resets per shift, rolls over at property ``Rollover``);
- ``MachDesignSpeed``, ``CurMachSpeed`` and one Double per process value, each with the
  standard ``EngineeringUnits`` property.

Batch, material and alarm occurrences are OPC UA events of custom types (``BatchEventType``,
``MaterialEventType``, ``PlantAlarmEventType``) emitted through the ``Plant`` object (an event
notifier) with ``SourceNode`` = the asset and ``Time`` = the simulated source time.

Time runs at ``speed`` × real time from ``start`` (source timestamps are simulated time);
``backfill`` first plays that much history as fast as the server can publish it, then goes live.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from asyncua import Server, ua
from asyncua.common.node import Node
from asyncua.server.event_generator import EventGenerator

from asbuilt import events as ev
from asbuilt.plant import PlantModel
from simulator.engine import Occurrence, Plant, Write

logger = logging.getLogger(__name__)

NAMESPACE = "urn:asbuilt:simulator"
TICK_S = 0.1  # wall seconds between two advances of the simulated plant
BACKFILL_STEP = timedelta(seconds=10)  # simulated time per step while back-filling
CLOCK_JUMP_TO = datetime(2000, 1, 1, tzinfo=UTC)  # where a faulty device clock jumps to
_FAULTABLE = frozenset({"ProcessedCount", "DefectiveCount", "State"})

_STATUS = {
    "good": ua.StatusCodes.Good,
    "uncertain": ua.StatusCodes.UncertainLastUsableValue,
    "bad": ua.StatusCodes.BadSensorFailure,
}
_MODE_NUMBER = {ev.MODE_PRODUCE: 1, ev.MODE_MAINTENANCE: 2, ev.MODE_MANUAL: 3}
_ZERO: dict[ua.VariantType, object] = {
    ua.VariantType.Int32: 0,
    ua.VariantType.UInt32: 0,
    ua.VariantType.String: "",
    ua.VariantType.Boolean: False,
    ua.VariantType.Double: 0.0,
}
# The engine gives names; like a PLC, the server exposes PackML state and unit mode as numbers.
_TYPES: dict[str, ua.VariantType] = {
    "State": ua.VariantType.Int32,
    "UnitMode": ua.VariantType.Int32,
}
EVENT_FIELDS: dict[str, list[tuple[str, ua.VariantType]]] = {
    "batch": [
        ("AssetPath", ua.VariantType.String),
        ("BatchId", ua.VariantType.String),
        ("RecipeId", ua.VariantType.String),
        ("RecipeVersion", ua.VariantType.String),
        ("Procedure", ua.VariantType.String),
        ("UnitProcedure", ua.VariantType.String),
        ("Operation", ua.VariantType.String),
        ("Phase", ua.VariantType.String),
        ("Transition", ua.VariantType.String),
        ("Parameters", ua.VariantType.String),  # JSON object of the phase parameters
    ],
    "material": [
        ("AssetPath", ua.VariantType.String),
        ("Direction", ua.VariantType.String),
        ("Lot", ua.VariantType.String),
        ("Material", ua.VariantType.String),
        ("Quantity", ua.VariantType.Double),
        ("Unit", ua.VariantType.String),
        ("BatchId", ua.VariantType.String),
    ],
    "alarm": [
        ("AssetPath", ua.VariantType.String),
        ("Alarm", ua.VariantType.String),
        ("Active", ua.VariantType.Boolean),
        ("Acked", ua.VariantType.Boolean),
    ],
}
EVENT_TYPE_NAMES = {
    "batch": "BatchEventType",
    "material": "MaterialEventType",
    "alarm": "PlantAlarmEventType",
}
_CAMEL = {  # engine field name -> OPC UA event field name
    "batch_id": "BatchId",
    "recipe_id": "RecipeId",
    "recipe_version": "RecipeVersion",
    "procedure": "Procedure",
    "unit_procedure": "UnitProcedure",
    "operation": "Operation",
    "phase": "Phase",
    "transition": "Transition",
    "direction": "Direction",
    "lot": "Lot",
    "material": "Material",
    "quantity": "Quantity",
    "unit": "Unit",
    "alarm": "Alarm",
    "active": "Active",
    "acked": "Acked",
}


def node_id(ns: int, asset: str, variable: str | None = None) -> ua.NodeId:
    return ua.NodeId(asset if variable is None else f"{asset}.{variable}", ns)


@dataclass
class _Asset:
    node: Node
    numbering: ev.StateNumbering


class PlantServer:
    """Serve a :class:`~simulator.engine.Plant` over OPC UA and keep it moving in time."""

    def __init__(
        self,
        model: PlantModel,
        *,
        host: str = "127.0.0.1",
        port: int = 4840,
        start: datetime | None = None,
        speed: float = 1.0,
        backfill: timedelta = timedelta(0),
        truth_path: Path | None = None,
        until: datetime | None = None,
        hold_until_subscribed: bool = False,
        faults: Sequence[Fault] = (),
    ) -> None:
        self.model = model
        self.endpoint = f"opc.tcp://{host}:{port}/asbuilt/"
        self.start = start or datetime.now(UTC).replace(microsecond=0) - backfill
        self.speed = speed
        self.backfill = backfill
        self.truth_path = truth_path
        self.until = until  # stop advancing here (keep serving): a run with a known end
        # The test bench: keep time still until a client subscribed, so it sees every change.
        self.hold_until_subscribed = hold_until_subscribed
        self.faults = list(faults)
        self._last: dict[ua.NodeId, ua.DataValue] = {}  # what a restarted server serves again
        self.plant = Plant(model, self.start)
        self.server = Server()
        self.ns = 0
        self._assets: dict[str, _Asset] = {}
        self._vtypes: dict[tuple[str, str], ua.VariantType] = {}
        self._events: dict[str, EventGenerator] = {}
        self.sim_now = self.start

    # -- address space -----------------------------------------------------------------------

    async def build(self) -> None:
        await self.server.init()
        self.server.set_endpoint(self.endpoint)
        self.server.set_server_name("asbuilt simulated plant")
        self.server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        self.ns = await self.server.register_namespace(NAMESPACE)
        objects = self.server.nodes.objects
        plant = await objects.add_object(
            ua.NodeId("Plant", self.ns), ua.QualifiedName("Plant", self.ns)
        )
        await plant.add_property(self.ns, "StateNumbering", self.model.state_numbering)
        folders: dict[str, Node] = {"": plant}
        for path in self.plant.assets():
            parent = folders[""]
            parts = path.split("/")
            for depth in range(1, len(parts)):
                prefix = "/".join(parts[:depth])
                if prefix not in folders:
                    folders[prefix] = await parent.add_folder(
                        node_id(self.ns, prefix), ua.QualifiedName(parts[depth - 1], self.ns)
                    )
                parent = folders[prefix]
            await self._add_asset(parent, path)
        for kind, fields in EVENT_FIELDS.items():
            etype = await self.server.create_custom_event_type(
                self.ns, EVENT_TYPE_NAMES[kind], ua.ObjectIds.BaseEventType, fields
            )
            self._events[kind] = await self.server.get_event_generator(etype, plant)

    async def _add_asset(self, parent: Node, path: str) -> None:
        numbering = self.model.numbering(path)
        asset = self.model.assets[path]
        obj = await parent.add_object(
            node_id(self.ns, path), ua.QualifiedName(path.split("/")[-1], self.ns)
        )
        await obj.add_property(self.ns, "AssetPath", path)
        await obj.add_property(self.ns, "StateNumbering", numbering)
        await obj.add_property(self.ns, "IdealCycleTime", float(asset.ideal_cycle_s))
        for spec in self.plant.variables(path):
            vtype = _TYPES.get(spec.name) or getattr(ua.VariantType, spec.data_type)
            var = await obj.add_variable(
                node_id(self.ns, path, spec.name),
                ua.QualifiedName(spec.name, self.ns),
                ua.Variant(_ZERO[vtype], vtype),  # the engine's initial values follow at once
            )
            if spec.name == "ProcessedCountResettable":
                await var.add_property(self.ns, "Rollover", int(self.model.rollover(path)))
            if spec.data_type == "Double":
                unit = spec.unit or "1/min"  # the speeds: count units per minute
                await var.add_property(
                    0,
                    "EngineeringUnits",
                    ua.EUInformation(
                        DisplayName=ua.LocalizedText(unit), Description=ua.LocalizedText(unit)
                    ),
                )
        self._assets[path] = _Asset(obj, numbering)
        self._vtypes.update(
            {
                (path, spec.name): _TYPES.get(spec.name) or getattr(ua.VariantType, spec.data_type)
                for spec in self.plant.variables(path)
            }
        )

    # -- time --------------------------------------------------------------------------------

    def _variant(self, write: Write) -> ua.Variant:
        value: Any = write.value
        vtype = self._vtypes[(write.asset, write.variable)]
        if write.variable == "State":
            value = ev.packml_state_number(value, self._assets[write.asset].numbering)
        elif write.variable == "UnitMode":
            value = _MODE_NUMBER.get(str(value)) or int(str(value).removeprefix("User"))
        elif vtype == ua.VariantType.Double:
            value = float(value)
        return ua.Variant(value, vtype)

    async def apply(self, changes: list[Write | Occurrence]) -> None:
        """Publish what the plant did: variable writes and events, in source-time order."""
        for change in changes:
            if isinstance(change, Write):
                dv = ua.DataValue(
                    self._variant(change),
                    StatusCode=ua.StatusCode(self._status(change)),
                    SourceTimestamp=self._device_time(change.ts),
                    ServerTimestamp=change.ts,  # the server's clock runs in simulated time too
                )
                nid = node_id(self.ns, change.asset, change.variable)
                await self.server.write_attribute_value(nid, dv)
                self._last[nid] = dv
            else:
                await self._fire(change)

    def _device_time(self, ts: datetime) -> datetime:
        for fault in self.faults:
            if fault.kind == "clock-jump" and fault.active(ts):
                return CLOCK_JUMP_TO + (ts - fault.at)
        return ts

    def _status(self, write: Write) -> int:
        for fault in self.faults:
            if (
                fault.kind == "bad-status"
                and fault.asset == write.asset
                and write.variable in _FAULTABLE
                and fault.active(write.ts)
            ):
                return int(ua.StatusCodes.BadSensorFailure)
        return int(_STATUS[write.quality])

    async def _fire(self, occurrence: Occurrence) -> None:
        gen = self._events[occurrence.type]
        fields: Mapping[str, object] = occurrence.fields
        for key, value in fields.items():
            name = _CAMEL.get(key)
            if name is None:
                continue
            setattr(gen.event, name, "" if value is None else value)
        if occurrence.type == "batch":
            gen.event.Parameters = json.dumps(fields.get("parameters") or {}, sort_keys=True)
        if occurrence.type == "alarm":
            gen.event.Severity = int(str(fields.get("severity", 500)))
        gen.event.AssetPath = occurrence.asset
        gen.event.SourceNode = self._assets[occurrence.asset].node.nodeid
        gen.event.SourceName = occurrence.asset
        await gen.trigger(time_attr=occurrence.ts, message=str(fields.get("message") or ""))

    async def _wait_for_subscriber(self, stop: asyncio.Event) -> None:
        service = self.server.iserver.subscription_service
        logger.info("holding time until a client subscribes")
        while not stop.is_set():
            items = sum(
                len(sub.monitored_item_srv._monitored_items)
                for sub in service.subscriptions.values()
            )
            if items >= len(self._vtypes):  # every variable is monitored (events come first)
                await asyncio.sleep(0.5)  # let the initial values go out
                logger.info("a client subscribed %d items: time runs", items)
                return
            await asyncio.sleep(0.05)

    async def _open(self) -> None:
        """Build the address space and serve it; after a restart, with the values it had."""
        self.server = Server()
        self._events.clear()
        await self.build()
        await self.server.start()
        if self._last:
            for nid, dv in self._last.items():
                await self.server.write_attribute_value(nid, dv)
        else:
            await self.apply(list(self.plant.initial()))
        logger.info("serving %d assets at %s", len(self._assets), self.endpoint)

    async def _advance(self, target: datetime) -> None:
        """Move simulated time to ``target``, triggering the faults on the way."""
        for fault in self.faults:
            end = fault.at + timedelta(seconds=fault.seconds)
            for when in (fault.at, end) if fault.kind == "bad-status" else (fault.at,):
                if fault.kind == "clock-jump" or not self.sim_now < when <= target:
                    continue
                await self.apply(self.plant.advance(when))
                self.sim_now = when
                if fault.kind == "restart":
                    await self._restart(fault)
                elif fault.kind == "burst":
                    await self._burst(fault)
                else:  # a sensor fails (or recovers): its status changes at once
                    await self._restamp(fault, bad=when == fault.at)
        if target > self.sim_now:
            await self.apply(self.plant.advance(target))
            self.sim_now = target

    async def _restart(self, fault: Fault) -> None:
        logger.warning("fault: server restart at %s (down %.1f s)", fault.at, fault.seconds)
        await self.server.stop()
        await asyncio.sleep(fault.seconds)
        await self._open()

    async def _restamp(self, fault: Fault, *, bad: bool) -> None:
        assert fault.asset is not None
        when = fault.at if bad else fault.at + timedelta(seconds=fault.seconds)
        logger.warning(
            "fault: %s of %s %s", "bad status" if bad else "good again", fault.asset, when
        )
        status = ua.StatusCodes.BadSensorFailure if bad else ua.StatusCodes.Good
        for variable in sorted(_FAULTABLE):
            nid = node_id(self.ns, fault.asset, variable)
            old = self._last[nid]
            dv = ua.DataValue(
                old.Value,
                StatusCode=ua.StatusCode(status),
                SourceTimestamp=when,
                ServerTimestamp=when,
            )
            await self.server.write_attribute_value(nid, dv)
            self._last[nid] = dv

    async def _burst(self, fault: Fault) -> None:
        """A burst: one process value of ``fault.asset`` changes ``fault.count`` times at once."""
        assert fault.asset is not None
        signal = self.model.assets[fault.asset].signals[0]
        logger.warning("fault: burst of %d changes of %s.%s", fault.count, fault.asset, signal.name)
        for i in range(fault.count):
            dv = ua.DataValue(
                ua.Variant(float(i), ua.VariantType.Double),
                StatusCode=ua.StatusCode(ua.StatusCodes.Good),
                SourceTimestamp=fault.at + timedelta(microseconds=i + 1),
                ServerTimestamp=fault.at + timedelta(microseconds=i + 1),
            )
            await self.server.write_attribute_value(node_id(self.ns, fault.asset, signal.name), dv)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Serve until ``stop`` is set: back-fill first, then advance with the (scaled) clock."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        await self._open()
        try:
            if self.hold_until_subscribed:
                await self._wait_for_subscriber(stop)
            live_from = self.start + self.backfill
            while self.sim_now < live_from and not stop.is_set():
                # Back-fill in small steps, yielding so subscriptions publish between them.
                await self._advance(min(self.sim_now + BACKFILL_STEP, live_from))
                await asyncio.sleep(0)
            if self.backfill:
                logger.info("back-filled %s of history; live from %s", self.backfill, live_from)
            wall0, sim0 = loop.time(), self.sim_now
            while not stop.is_set():
                target = sim0 + timedelta(seconds=(loop.time() - wall0) * self.speed)
                if self.until is not None and target >= self.until:
                    if self.sim_now < self.until:
                        await self._advance(self.until)
                        logger.info("holding at %s (--until); still serving", self.until)
                    target = self.until
                await self._advance(target)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), TICK_S)
        finally:
            await self.server.stop()
            if self.truth_path is not None:
                self.plant.truth.write_jsonl(self.truth_path)


@dataclass(frozen=True)
class Fault:
    """A fault on demand (the test bench), at simulated time ``at``.

    - ``restart``: the server stops, stays down ``seconds`` (wall), and comes back with the
      values it had (sessions and subscriptions are gone: clients must reconnect).
    - ``clock-jump``: for ``seconds`` (simulated) the device clock reads 2000-01-01: source
      timestamps are wrong, the server's own timestamps are right.
    - ``bad-status``: for ``seconds`` the counters and state of ``asset`` read BadSensorFailure.
    - ``burst``: one process value of ``asset`` changes ``count`` times at once.
    """

    kind: Literal["restart", "clock-jump", "bad-status", "burst"]
    at: datetime
    seconds: float = 0.0
    asset: str | None = None
    count: int = 500

    def active(self, ts: datetime) -> bool:
        return self.at <= ts < self.at + timedelta(seconds=self.seconds)

    def __post_init__(self) -> None:
        if self.kind in ("bad-status", "burst") and not self.asset:
            msg = f"a {self.kind} fault needs asset=PATH"
            raise ValueError(msg)

    @classmethod
    def parse(cls, text: str) -> Fault:
        """``kind,at=ISO[,seconds=S][,asset=PATH][,count=N]``."""
        kind, *pairs = text.split(",")
        values = dict(pair.split("=", 1) for pair in pairs)
        return cls(
            kind=kind,  # type: ignore[arg-type]
            at=datetime.fromisoformat(values["at"]),
            seconds=float(values.get("seconds", 0)),
            asset=values.get("asset"),
            count=int(values.get("count", 500)),
        )
