"""The node map: which OPC UA nodes carry which asbuilt signal of which asset.

Written by hand in YAML for any server (node ids, or browse paths from ``Objects``)::

    endpoint: opc.tcp://10.0.0.5:4840/
    event_notifiers: ["i=2253"]          # where to subscribe to batch/material/alarm events
    signals:
      - {node: "ns=2;s=Line1.Filler.State", asset: acme/basel/pack/line1/filler,
         kind: state, numbering: packtags}
      - {browse_path: "2:Line1/2:Filler/2:Good", asset: acme/basel/pack/line1/filler,
         kind: counter, name: good}
      - {node: "ns=2;i=1042", asset: acme/basel/pack/line1/filler, kind: process_value,
         name: seal_temperature, unit: degC}

or discovered by browsing a server that follows the asbuilt model (objects with an
``AssetPath`` property, as the simulator serves them). ``partition(i, n)`` splits a map by
asset so several connector processes share a plant.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from pathlib import Path
from typing import Literal

import yaml
from asyncua import Client, ua
from asyncua.common.node import Node
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from asbuilt.errors import ConfigError
from asbuilt.events import StateNumbering

logger = logging.getLogger(__name__)
# libyaml's safe loader when present (10× faster on a 20k-signal map), else the pure-Python one.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

SignalKind = Literal[
    "state", "mode", "stop_reason", "blocked", "starved", "counter", "process_value"
]
ASSET_PATTERN = r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){0,4}$"

# Browse names of the asbuilt model → (kind, signal name, resettable)
_BUILTIN: dict[str, tuple[SignalKind, str, bool]] = {
    "State": ("state", "", False),
    "UnitMode": ("mode", "", False),
    "StopReason": ("stop_reason", "", False),
    "Blocked": ("blocked", "", False),
    "Starved": ("starved", "", False),
    "ProcessedCount": ("counter", "processed", False),
    "DefectiveCount": ("counter", "defective", False),
    "ProcessedCountResettable": ("counter", "processed_resettable", True),
}


class Signal(BaseModel):
    """One mapped node."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    node: str | None = None  # a node id, e.g. "ns=2;s=Line1.Filler.State"
    browse_path: str | None = None  # e.g. "2:Line1/2:Filler/2:State", from Objects
    asset: str = Field(pattern=ASSET_PATTERN)
    kind: SignalKind
    name: str = Field(default="", max_length=256)  # counter or process value name
    unit: str = Field(default="", max_length=32)  # engineering unit of a process value
    numbering: StateNumbering = "opcua"  # how a state number is to be read
    resettable: bool = False  # counter that the device resets
    rollover: int | None = Field(default=None, gt=0)  # counter wrap-around limit

    @model_validator(mode="after")
    def _check(self) -> Signal:
        if (self.node is None) == (self.browse_path is None):
            msg = "give exactly one of `node` and `browse_path`"
            raise ValueError(msg)
        if self.kind in ("counter", "process_value") and not self.name:
            msg = f"a {self.kind} needs a `name`"
            raise ValueError(msg)
        if self.kind == "process_value" and not self.unit:
            msg = "a process_value needs its engineering `unit`"
            raise ValueError(msg)
        return self

    @property
    def ref(self) -> str:
        return self.node or f"browse:{self.browse_path}"


class NodeMap(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint: str
    event_notifiers: list[str] = Field(default_factory=lambda: ["i=2253"])
    signals: list[Signal] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> NodeMap:
        refs = [s.ref for s in self.signals]
        dupes = sorted(ref for ref, n in Counter(refs).items() if n > 1)
        if dupes:
            msg = f"nodes mapped twice: {dupes}"
            raise ValueError(msg)
        return self

    @property
    def assets(self) -> list[str]:
        return sorted({s.asset for s in self.signals})

    def partition(self, index: int, count: int) -> NodeMap:
        """The share of partition ``index`` of ``count``: whole assets, by a stable hash."""
        if not 0 <= index < count:
            msg = f"partition {index} of {count} does not exist (0 ≤ index < count)"
            raise ConfigError(msg)

        def owner(asset: str) -> int:
            return int(hashlib.sha256(asset.encode()).hexdigest(), 16) % count

        return self.model_copy(
            update={"signals": [s for s in self.signals if owner(s.asset) == index]}
        )

    @classmethod
    def load(cls, path: Path) -> NodeMap:
        try:
            data = yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506 - a safe loader
            return cls.model_validate(data)
        except OSError as exc:
            msg = f"cannot read the node map {path}: {exc}"
            raise ConfigError(msg) from exc
        except yaml.YAMLError as exc:
            msg = f"the node map {path} is not valid YAML: {exc}"
            raise ConfigError(msg) from exc
        except ValidationError as exc:
            msg = f"the node map {path} is invalid:\n{exc}"
            raise ConfigError(msg) from exc

    def dump(self, path: Path) -> None:
        path.write_text(yaml.safe_dump(self.model_dump(exclude_defaults=True), sort_keys=False))


async def _property(node: Node, name: str) -> object | None:
    for child in await node.get_properties():
        if (await child.read_browse_name()).Name == name:
            return await child.read_value()
    return None


async def discover(client: Client, endpoint: str) -> NodeMap:
    """Browse a server that follows the asbuilt model into a node map (no hand-written map)."""
    signals: list[Signal] = []
    notifiers: list[str] = []
    queue: list[Node] = [client.nodes.objects]
    seen: set[ua.NodeId] = set()
    while queue:
        node = queue.pop()
        for child in await node.get_children(
            refs=ua.ObjectIds.HierarchicalReferences, nodeclassmask=ua.NodeClass.Object
        ):
            if child.nodeid in seen or child.nodeid.NamespaceIndex == 0:
                continue
            seen.add(child.nodeid)
            asset = await _property(child, "AssetPath")
            if asset is None:
                if (await child.read_browse_name()).Name == "Plant":
                    notifiers.append(child.nodeid.to_string())
                queue.append(child)
                continue
            signals += await _asset_signals(child, str(asset))
    if not signals:
        msg = (
            f"found no asset (object with an AssetPath property) on {endpoint}: "
            "this server does not follow the asbuilt model; write a node map (see "
            "connectors/opcua/nodemap.py) and pass it with --node-map"
        )
        raise ConfigError(msg)
    return NodeMap(endpoint=endpoint, event_notifiers=notifiers or ["i=2253"], signals=signals)


async def _asset_signals(obj: Node, asset: str) -> list[Signal]:
    numbering = str(await _property(obj, "StateNumbering") or "opcua")
    out: list[Signal] = []
    for var in await obj.get_variables():
        name = (await var.read_browse_name()).Name
        nid = var.nodeid.to_string()
        if name in _BUILTIN:
            kind, signal_name, resettable = _BUILTIN[name]
            rollover = await _property(var, "Rollover") if resettable else None
            out.append(
                Signal(
                    node=nid,
                    asset=asset,
                    kind=kind,
                    name=signal_name,
                    numbering=numbering,  # type: ignore[arg-type]
                    resettable=resettable,
                    rollover=int(str(rollover)) if rollover else None,
                )
            )
            continue
        eu = await _property(var, "EngineeringUnits")
        if isinstance(eu, ua.EUInformation):
            out.append(
                Signal(
                    node=nid,
                    asset=asset,
                    kind="process_value",
                    name=name,
                    unit=eu.DisplayName.Text or "",
                )
            )
    return out
