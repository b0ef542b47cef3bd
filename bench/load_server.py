"""A load-generating OPC UA server for the connector benchmark (asyncua, its own process).

    python -m bench.load_server --tags 5000 [--first 0] --period 0.5 --port 0 \\
        --ready FILE [--stats FILE]

Serves ``--tags`` Double variables with node ids ``ns=2;s=tag<i>`` (``i`` from ``--first``) under
``Objects/Bench``. Every tag changes once per ``--period`` seconds with ``SourceTimestamp`` = the
wall clock at the write, so the offered rate is ``tags / period`` notifications/s. The writes are
spread evenly over the period in 10 ms slices (a steady stream, not one burst per period), each
value is new (a per-tag counter), and ``server.write_attribute_value`` with a ready DataValue is
used (the fast path: no per-write read-back and checks).

The loop keeps a schedule: when a slice is late it writes everything that is due, so ``writes``
in the stats file tells what the server actually offered; ``behind`` counts writes that were due
but not yet done (a growing ``behind`` means this server, not the client, is the limit).

``--ready`` receives ``{"endpoint": ..., "pid": ...}`` once the server listens; ``--stats``
receives ``{"writes": n, "due": n, "behind": n, "rate": per-s over the last second}`` every
second. ``--wait-items N`` holds the writes until clients monitor N items. SIGUSR1 stops the
writes (the server keeps serving; the stats file then says ``"paused": true`` with the final
``writes``), so a client can drain and the count can be checked exactly. SIGTERM/SIGINT stop it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

from asyncua import Server, ua

NAMESPACE = "urn:asbuilt:bench:load"
SLICE_S = 0.01
GROUP = 100  # tags per folder


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def node_id(i: int) -> str:
    return f"ns=2;s=tag{i}"


async def _add_tags(server: Server, ns: int, first: int, count: int) -> list[ua.NodeId]:
    """All variables in one AddNodes call, GROUP per folder (asyncua checks a parent's references
    linearly: 20k children of one folder take minutes, in folders of 100 they take seconds)."""
    root = await server.nodes.objects.add_folder(ns, "Bench")
    items, ids = [], []
    folder = root
    for i in range(first, first + count):
        if i == first or i % GROUP == 0:
            folder = await root.add_folder(ns, f"group{i // GROUP}")
        nid = ua.NodeId(f"tag{i}", ns)
        attrs = ua.VariableAttributes()
        attrs.DisplayName = ua.LocalizedText(f"tag{i}")
        attrs.Description = ua.LocalizedText(f"tag{i}")
        attrs.DataType = ua.NodeId(ua.ObjectIds.Double)
        attrs.Value = ua.Variant(0.0, ua.VariantType.Double)
        attrs.ValueRank = ua.ValueRank.Scalar
        attrs.ArrayDimensions = None
        attrs.WriteMask = 0
        attrs.UserWriteMask = 0
        attrs.Historizing = False
        attrs.AccessLevel = ua.AccessLevel.CurrentRead.mask
        attrs.UserAccessLevel = ua.AccessLevel.CurrentRead.mask
        item = ua.AddNodesItem()
        item.RequestedNewNodeId = nid
        item.BrowseName = ua.QualifiedName(f"tag{i}", ns)
        item.NodeClass = ua.NodeClass.Variable
        item.ParentNodeId = folder.nodeid
        item.ReferenceTypeId = ua.NodeId(ua.ObjectIds.HasComponent)
        item.TypeDefinition = ua.NodeId(ua.ObjectIds.BaseDataVariableType)
        item.NodeAttributes = attrs
        items.append(item)
        ids.append(nid)
    results = await server.iserver.isession.add_nodes(items)
    for r in results:
        r.StatusCode.check()
    return ids


async def serve(args: argparse.Namespace) -> None:
    port = args.port or free_port(args.host)
    endpoint = f"opc.tcp://{args.host}:{port}/bench/"
    server = Server()
    await server.init()
    server.set_endpoint(endpoint)
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    ns = await server.register_namespace(NAMESPACE)
    if ns != 2:
        raise RuntimeError(f"expected namespace index 2, got {ns}")
    ids = await _add_tags(server, ns, args.first, args.tags)
    start = datetime.now(UTC)
    for nid in ids:  # initial values with timestamps (the first notification of each item)
        await server.write_attribute_value(
            nid, ua.DataValue(ua.Variant(-1.0, ua.VariantType.Double), SourceTimestamp=start)
        )
    stop, pause = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, pause.set)
    async with server:
        ready = {"endpoint": endpoint, "pid": os.getpid(), "tags": len(ids)}
        tmp = args.ready.with_suffix(".tmp")
        tmp.write_text(json.dumps(ready))
        tmp.replace(args.ready)
        await _wait_for_items(server, args.wait_items, stop)
        await _drive(server, ids, args, stop, pause)


def _monitored_items(server: Server) -> int:
    service = server.iserver.subscription_service
    return sum(len(s.monitored_item_srv._monitored_items) for s in service.subscriptions.values())


async def _wait_for_items(server: Server, count: int, stop: asyncio.Event) -> None:
    """Hold the writes until clients monitor ``count`` items (so every write is notified)."""
    while count and not stop.is_set() and _monitored_items(server) < count:
        await asyncio.sleep(0.05)


def _write_stats(path: Path | None, report: dict[str, float]) -> None:
    if path is None:
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report))
    tmp.replace(path)


async def _drive(
    server: Server,
    ids: list[ua.NodeId],
    args: argparse.Namespace,
    stop: asyncio.Event,
    pause: asyncio.Event,
) -> None:
    """Write every tag once per period, spread over the period; keep to the schedule."""
    n = len(ids)
    rate = n / args.period
    iserver = server.iserver
    double = ua.VariantType.Double
    writes = 0
    counter = 0  # value generation: every write of a tag carries a new value
    started = time.monotonic()
    last_report, last_writes = started, 0
    cursor = 0
    chunk = max(1, int(rate * 0.05))
    while not stop.is_set():
        now = time.monotonic()
        if pause.is_set():  # SIGUSR1: no more writes, report the final count, keep serving
            _write_stats(args.stats, {"writes": writes, "paused": True, "offered": rate})
            await stop.wait()
            break
        due = int((now - started) * rate)
        todo = min(due - writes, chunk)  # a bounded burst: the publish task must run too
        if todo > 0:
            stamp = datetime.now(UTC)
            for _ in range(todo):
                dv = ua.DataValue(
                    ua.Variant(float(counter), double),
                    SourceTimestamp=stamp,
                    ServerTimestamp=stamp,
                )
                await iserver.write_attribute_value(ids[cursor], dv)
                cursor += 1
                if cursor == n:
                    cursor = 0
                    counter += 1
            writes += todo
        if now - last_report >= 1.0:
            current = (writes - last_writes) / (now - last_report)
            due = int((time.monotonic() - started) * rate)
            _write_stats(
                args.stats,
                {
                    "paused": False,
                    "writes": writes,
                    "due": due,
                    "behind": due - writes,
                    "rate": current,
                    "offered": rate,
                    "elapsed": now - started,
                },
            )
            last_report, last_writes = now, writes
        # Sleep until the next slice; if the writes took the whole slice, just yield.
        spent = time.monotonic() - now
        await asyncio.sleep(max(SLICE_S - spent, 0.0))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load_server", description=__doc__)
    parser.add_argument("--tags", type=int, required=True)
    parser.add_argument("--first", type=int, default=0, help="index of the first tag")
    parser.add_argument("--period", type=float, required=True, help="seconds between changes")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--ready", type=Path, required=True)
    parser.add_argument("--stats", type=Path)
    parser.add_argument(
        "--wait-items", type=int, default=0, help="start writing once this many items are monitored"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
