"""Connector throughput and latency: OPC UA notifications/s one process carries into Kafka.

Setup per case: a load server (``bench/load_server.py``, its own process) with N Double tags,
each changing every ``period`` s with SourceTimestamp = now (offered = N / period per s); the
real connector (``python -m connectors.opcua``, its own process) with a generated node map
(every tag a ``process_value``, assets ``bench/plant/area/line/cell<k>`` of 100 tags), its
durable spool and idempotent producer to the bench broker. The server holds its writes until the
connector monitors every tag, so the count is exact: after the run the server stops writing
(SIGUSR1), the connector drains, and the process-value topic must hold exactly
``tags + writes`` records (each tag's initial value + every write). Anything else is loss (or a
duplicate) and is reported.

Measured in the steady window (after a warm-up), from the connector's metrics file (1 s):
delivered/s (``publisher.delivered_total``), the backlog (``connector.queue_depth`` +
``publisher.spool_depth``) and its trend (least-squares slope, records/s), the server's achieved
write rate, and CPU seconds of the server and connector processes (``/proc/<pid>/stat``) against
the whole machine (``/proc/stat``). Latency: a consumer in this process (assigned partitions,
``fetch.wait.max.ms=50``) reads the topic during the steady window; latency = wall time the
consumer got the record − the event's ``ts`` (the source timestamp the server stamped), same
machine clock. It includes the 100 ms publishing interval, the connector, the spool's fsync, the
produce (``linger.ms=5``), the broker's ack and the consumer's fetch.

The machine has 2 cores: the load server, the connector, the broker and this consumer share them,
so "what limited the rate" is in each figure's note.

Run alone with ``python -m bench.bench_connector [--quick]`` (starts a private broker), or through
``python -m bench --only connector``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import yaml
from confluent_kafka import Consumer, TopicPartition

from asbuilt import events as ev
from asbuilt import kafka, topics
from bench.harness import Context, Figure

ROOT = Path(__file__).resolve().parent.parent
REPEATS = 1  # each case runs ~20 s in steady state and takes minutes in all: once per `make bench`
TAGS_PER_ASSET = 100
PARTITIONS = 4
CLK_TCK = os.sysconf("SC_CLK_TCK")
ANCHORS = (
    "anchors: asyncua published ~3k tags at 1 s fine, 6k lagging on 4 vCPU, ~13k notifications/s "
    "per core in the handler path; open-source anchor sizing ~900 tags/s per instance; target "
    "≥ 10k/s per connector process"
)


# -- processes -----------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, timeout: float = 15.0) -> None:
        if not self.alive():
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)


def _spawn(name: str, argv: list[str], workdir: Path, env: dict[str, str]) -> Proc:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [sys.executable, *argv], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    return Proc(name, popen, log)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def _wait(what: str, check: Any, timeout: float, procs: list[Proc]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        for p in procs:
            if not p.alive():
                raise RuntimeError(f"{p.name} exited while waiting for {what}:\n{p.tail()}")
        time.sleep(0.1)
    tails = "\n".join(f"--- {p.name}\n{p.tail()}" for p in procs)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}\n{tails}")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _machine_busy_s() -> float:
    """CPU seconds the whole machine was busy (all cores), from /proc/stat."""
    parts = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = parts[3] + parts[4]
    return (sum(parts[:8]) - idle) / CLK_TCK


@dataclass
class Server:
    proc: Proc
    endpoint: str
    stats: Path
    first: int
    tags: int


@contextlib.contextmanager
def _servers(
    workdir: Path, tags: int, period: float, count: int, wait_items: list[int], env: dict[str, str]
) -> Iterator[list[Server]]:
    """``count`` load servers sharing ``tags`` (tag ranges back to back), started in parallel."""
    share = tags // count
    started: list[tuple[Proc, Path, Path, int, int]] = []
    try:
        for i in range(count):
            first, n = i * share, (share if i < count - 1 else tags - i * share)
            ready, stats = workdir / f"server{i}.ready.json", workdir / f"server{i}.stats.json"
            argv = ["-m", "bench.load_server", "--tags", str(n), "--first", str(first)]
            argv += ["--period", str(period), "--ready", str(ready), "--stats", str(stats)]
            argv += ["--wait-items", str(wait_items[i])]
            started.append((_spawn(f"server{i}", argv, workdir, env), ready, stats, first, n))
        servers = []
        for proc, ready, stats, first, n in started:
            info = _wait(f"{proc.name} ready", lambda r=ready: _read_json(r), 60, [proc])
            servers.append(Server(proc, str(info["endpoint"]), stats, first, n))
        yield servers
    finally:
        for proc, *_ in started:
            proc.stop()


def _nodemap(path: Path, endpoint: str, first: int, count: int) -> None:
    signals = [
        {
            "node": f"ns=2;s=tag{i}",
            "asset": f"bench/plant/area/line/cell{i // TAGS_PER_ASSET}",
            "kind": "process_value",
            "name": f"tag{i}",
            "unit": "1",
        }
        for i in range(first, first + count)
    ]
    path.write_text(yaml.safe_dump({"endpoint": endpoint, "signals": signals}, sort_keys=False))


def _connector(
    name: str,
    workdir: Path,
    endpoint: str,
    nodemap: Path,
    partition: str,
    prefix: str,
    env: dict[str, str],
) -> tuple[Proc, Path]:
    metrics = workdir / f"{name}.metrics.json"
    args = ["--endpoint", endpoint, "--node-map", str(nodemap)]
    args += ["--partition", partition, "--topic-prefix", prefix, "--metrics", str(metrics)]
    args += ["--spool", str(workdir / f"{name}.spool.sqlite3"), "--max-future-s", "1e9"]
    argv = ["-m", "connectors.opcua", *args]
    return _spawn(name, argv, workdir, env), metrics


# -- latency consumer ----------------------------------------------------------------------------


class _Ts(msgspec.Struct):
    ts: datetime


@dataclass
class LatencyProbe:
    """Consume the topic from its current end; record (receive wall time − event ts) in ms."""

    bootstrap: str
    topic: str
    latencies: list[float] = field(default_factory=list)
    received: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _recording: bool = False

    def start(self) -> LatencyProbe:
        self._thread = threading.Thread(target=self._run, name="latency-probe", daemon=True)
        self._thread.start()
        return self

    def record(self, on: bool) -> None:
        self._recording = on

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        consumer = Consumer(
            kafka.consumer_config(
                self.bootstrap,
                f"bench-latency-{uuid.uuid4().hex[:8]}",
                **{"fetch.wait.max.ms": 50, "enable.partition.eof": False},
            )
        )
        consumer.assign([TopicPartition(self.topic, p) for p in range(PARTITIONS)])
        decoder = msgspec.json.Decoder(_Ts)
        try:
            while not self._stop.is_set():
                batch = consumer.consume(2000, 0.2)
                now = datetime.now(UTC).timestamp()
                if not self._recording:
                    continue
                for msg in batch:
                    if msg.error() is not None:
                        continue
                    self.received += 1
                    ts = decoder.decode(msg.value() or b"").ts.timestamp()
                    self.latencies.append((now - ts) * 1000.0)
        finally:
            consumer.close()


class _Id(msgspec.Struct):
    event_id: str


def _topic_count(
    bootstrap: str, topic: str, expected: int, timeout: float = 30.0
) -> tuple[int, int]:
    """(records, distinct event ids) in the topic, read from the start.

    Read, not taken from the high watermarks: the embedded broker's watermarks were seen to lag
    behind what a consumer reads. Stops at ``expected`` records, after 2 s without a new record,
    or at ``timeout``.
    """
    consumer = Consumer(kafka.consumer_config(bootstrap, f"bench-count-{uuid.uuid4().hex[:8]}"))
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    decoder = msgspec.json.Decoder(_Id)
    ids: set[str] = set()
    records = 0
    deadline = time.monotonic() + timeout
    idle_since = time.monotonic()
    try:
        while time.monotonic() < deadline and time.monotonic() - idle_since < 2.0:
            batch = consumer.consume(5000, 0.5)
            for msg in batch:
                if msg.error() is None:
                    records += 1
                    ids.add(decoder.decode(msg.value() or b"").event_id)
            if batch:
                idle_since = time.monotonic()
            if records >= expected:
                time.sleep(0.5)  # anything beyond the expected count is a duplicate: look for it
                for msg in consumer.consume(5000, 0.5):
                    if msg.error() is None:
                        records += 1
                        ids.add(decoder.decode(msg.value() or b"").event_id)
                break
    finally:
        consumer.close()
    return records, len(ids)


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t, y) points (y per second)."""
    if len(points) < 2:
        return 0.0
    mt = statistics.fmean(t for t, _ in points)
    my = statistics.fmean(y for _, y in points)
    den = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (y - my) for t, y in points) / den if den else 0.0


# -- one case ------------------------------------------------------------------------------------


@dataclass
class Result:
    tags: int
    period: float
    connectors: int
    servers: int
    offered: float  # tags / period
    written: float  # the servers' achieved write rate in the window, per s
    received: float  # connector notifications/s in the window (all processes)
    delivered: float  # acknowledged by Kafka per s in the window (all processes)
    backlog_start: int
    backlog_end: int
    backlog_slope: float  # records/s; > 0: growing lag
    cpu: dict[str, float]  # process name → cores used in the window; "machine" = all
    expected: int = 0  # records the topic must hold after the drain
    in_topic: int = 0
    distinct: int = 0  # distinct event ids in the topic
    drained: bool = False
    latency_ms: list[float] = field(default_factory=list)

    @property
    def sustained(self) -> bool:
        keeps_up = self.delivered >= 0.95 * self.written and self.written >= 0.95 * self.offered
        return keeps_up and self.backlog_slope < 0.02 * self.offered and self.lossless

    @property
    def lossless(self) -> bool:
        return self.in_topic == self.distinct == self.expected

    def limit(self) -> str:
        """What limited this case, in words (for the figure's note)."""
        busy = self.cpu.get("machine", 0.0)
        server = sum(v for k, v in self.cpu.items() if k.startswith("server"))
        conn = sum(v for k, v in self.cpu.items() if k.startswith("connector"))
        split = (
            f"CPU cores used: connector {conn:.2f}, load server {server:.2f}, rest (broker, "
            f"bench consumer, anything else on the machine) {busy - conn - server:.2f}; machine "
            f"{busy:.2f} of {os.cpu_count()}"
        )
        if self.sustained:
            return f"kept up with the offered rate (not saturated); {split}"
        if self.written < 0.95 * self.offered:
            who = "the load server's update loop could not write the offered rate"
        elif busy > 0.9 * (os.cpu_count() or 1):
            who = "the machine's CPUs are saturated (server + connector + broker)"
        else:
            who = "the connector fell behind"
        return f"{who}; {split}"

    def describe(self) -> str:
        loss = (
            "no loss"
            if self.lossless
            else f"topic holds {self.in_topic:,} records ({self.distinct:,} distinct) of "
            f"{self.expected:,} expected" + ("" if self.drained else " (not drained in 20 s)")
        )
        return (
            f"{self.tags:,} tags every {self.period:g} s ({self.servers} server process(es), "
            f"{self.connectors} connector process(es)): offered {self.offered:,.0f}/s, "
            f"server wrote {self.written:,.0f}/s, connector received {self.received:,.0f}/s, "
            f"Kafka acked {self.delivered:,.0f}/s; "
            f"backlog {self.backlog_start:,} → {self.backlog_end:,} "
            f"(trend {self.backlog_slope:+,.0f}/s); {loss}"
        )


def run_case(
    bootstrap: str,
    workdir: Path,
    tags: int,
    period: float,
    *,
    connectors: int = 1,
    servers: int = 1,
    warmup_s: float = 4.0,
    window_s: float = 15.0,
    latency: bool = False,
) -> Result:
    """One measurement: start servers and connectors, wait for the steady state, sample."""
    workdir.mkdir(parents=True, exist_ok=True)
    prefix = f"bench{uuid.uuid4().hex[:8]}_"
    topic = topics.topic_for(ev.ProcessValue, prefix)
    kafka.ensure_topics(bootstrap, topics.all_topics(prefix), partitions=PARTITIONS)
    env = dict(os.environ)
    env.update(
        ASBUILT_KAFKA_BOOTSTRAP=bootstrap,
        ASBUILT_HOME=str(workdir / "home"),
        ASBUILT_LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    if servers not in (1, connectors):
        raise ValueError("one server for all connectors, or one server per connector")
    share = tags // servers
    wait_items = [share if i < servers - 1 else tags - share * i for i in range(servers)]
    with _servers(workdir, tags, period, servers, wait_items, env) as srv:
        conns: list[tuple[Proc, Path]] = []
        probe = LatencyProbe(bootstrap, topic).start() if latency else None
        try:
            for i in range(connectors):
                if servers == 1:  # n processes share one server's map: --partition i/n
                    s, part = srv[0], f"{i}/{connectors}"
                else:  # one server per process, its whole map
                    s, part = srv[i], "0/1"
                nodemap = workdir / f"map{i}.yaml"
                _nodemap(nodemap, s.endpoint, s.first, s.tags)
                conns.append(
                    _connector(
                        f"connector{i}",
                        workdir,
                        s.endpoint,
                        nodemap,
                        part,
                        prefix,
                        env,
                    )
                )
            procs = [c for c, _ in conns] + [s.proc for s in srv]

            def metrics() -> list[dict[str, Any]] | None:
                reports = [_read_json(m) for _, m in conns]
                return None if any(r is None for r in reports) else reports  # type: ignore[return-value]

            def subscribed() -> bool:
                reports = metrics() or []
                return bool(reports) and sum(r["connector"]["items"] for r in reports) >= tags

            _wait("the connectors to subscribe", subscribed, 90, procs)
            time.sleep(warmup_s)
            if probe is not None:
                probe.record(True)
            result = _window(srv, conns, metrics, tags, period, window_s)
            if probe is not None:
                probe.record(False)
                result.latency_ms = probe.latencies
            # Exact count: stop the writes, let the connectors drain, count the topic.
            for s in srv:
                s.proc.popen.send_signal(signal.SIGUSR1)
            finals = [
                _wait(f"{s.proc.name} to pause", lambda p=s.stats: _paused(p), 10, procs)
                for s in srv
            ]
            writes = sum(int(f["writes"]) for f in finals)
            result.expected = tags + writes
            result.drained = _drain(metrics, result.expected, timeout=20)
            result.in_topic, result.distinct = _topic_count(bootstrap, topic, result.expected)
            return result
        finally:
            if probe is not None:
                probe.stop()
            for proc, _ in conns:
                proc.stop()


def _paused(path: Path) -> dict[str, Any] | None:
    stats = _read_json(path)
    return stats if stats and stats.get("paused") else None


def _drain(metrics: Any, expected: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reports = metrics() or []
        delivered = sum(r["publisher"]["delivered_total"] for r in reports)
        backlog = sum(
            r["connector"]["queue_depth"] + r["publisher"]["spool_depth"] for r in reports
        )
        if delivered >= expected and backlog == 0:
            return True
        time.sleep(0.25)
    return False


def _window(
    srv: list[Server],
    conns: list[tuple[Proc, Path]],
    metrics: Any,
    tags: int,
    period: float,
    window_s: float,
) -> Result:
    def snapshot() -> tuple[float, int, int, int, int, dict[str, float]]:
        reports = metrics() or []
        written = sum(int((_read_json(s.stats) or {}).get("writes", 0)) for s in srv)
        cpu = {s.proc.name: _cpu_s(s.proc.pid) for s in srv}
        cpu |= {p.name: _cpu_s(p.pid) for p, _ in conns}
        cpu["machine"] = _machine_busy_s()
        return (
            time.monotonic(),
            written,
            sum(r["connector"]["notifications"] for r in reports),
            sum(r["publisher"]["delivered_total"] for r in reports),
            sum(r["connector"]["queue_depth"] + r["publisher"]["spool_depth"] for r in reports),
            cpu,
        )

    first = snapshot()
    snaps = [first]
    end = first[0] + window_s
    while time.monotonic() < end:
        time.sleep(0.5)
        for p, _ in conns:
            if not p.alive():
                raise RuntimeError(f"{p.name} exited during the run:\n{p.tail()}")
        snaps.append(snapshot())
    last = snaps[-1]
    dt = last[0] - first[0]

    def rate(i: int) -> float:
        """Least-squares slope of a cumulative count (the files are written once a second)."""
        return _slope([(s[0], float(s[i])) for s in snaps])  # type: ignore[arg-type]

    return Result(
        tags=tags,
        period=period,
        connectors=len(conns),
        servers=len(srv),
        offered=tags / period,
        written=rate(1),
        received=rate(2),
        delivered=rate(3),
        backlog_start=first[4],
        backlog_end=last[4],
        backlog_slope=rate(4),
        cpu={k: (last[5][k] - first[5][k]) / dt for k in first[5]},
    )


# -- the figures ---------------------------------------------------------------------------------

# (tags, period): the offered rate is tags / period; 10k/s is the target per connector process.
CASES = [(1_000, 0.1), (5_000, 0.5), (20_000, 2.0)]
QUICK_CASES = [(1_000, 0.1), (5_000, 0.5)]
LATENCY_NOTE = (
    "latency = wall time a consumer in the bench process received the record − the event's ts "
    "(the source timestamp the load server stamped), same clock; it includes the 100 ms "
    "publishing interval (~50 ms on average), the connector, the spool's fsync, produce "
    "(linger 5 ms), the broker's ack and the consumer's fetch (fetch.wait.max.ms 50), all on a "
    "2-core machine shared with the load server and the broker"
)


def _conn_cpu(r: Result) -> float:
    return sum(v for k, v in r.cpu.items() if k.startswith("connector"))


def _single(r: Result) -> list[Figure]:
    tags = r.tags
    figures = [
        Figure(
            bench="OPC UA connector",
            metric=f"notifications/s into Kafka, 1 connector process, {tags:,} tags "
            f"(offered {r.offered:,.0f}/s)",
            unit="/s",
            ours_name="connectors.opcua" + ("" if r.sustained else " — NOT sustained"),
            ours=r.delivered,
            peer_name="open-source anchor sizing guide (per instance)",
            peer=900.0,
            note=f"{r.describe()}; {r.limit()}. {ANCHORS}",
        )
    ]
    if r.received > 0:
        figures.append(
            Figure(
                bench="OPC UA connector",
                metric=f"connector CPU per notification, {tags:,} tags at {r.offered:,.0f}/s "
                "(OPC UA decode → event → spool → produce)",
                unit="µs",
                ours_name="connectors.opcua (one process, all threads)",
                ours=_conn_cpu(r) / r.received * 1e6,
                peer_name="asyncua published handler path (~13k/s per core)",
                peer=76.0,
                higher_is_better=False,
                note="CPU µs per notification: 1e6 ÷ this = notifications/s one core could carry "
                "if the connector had it to itself",
            )
        )
    if r.latency_ms:
        for q, label in ((0.5, "p50"), (0.99, "p99")):
            figures.append(
                Figure(
                    bench="OPC UA connector",
                    metric=f"latency source timestamp → consumer received, {label}, {tags:,} tags "
                    f"at {r.offered:,.0f}/s offered",
                    unit="ms",
                    ours_name="connectors.opcua",
                    ours=_quantile(r.latency_ms, q),
                    higher_is_better=False,
                    note=LATENCY_NOTE,
                )
            )
    return figures


def measure(ctx: Context) -> list[Figure]:
    bootstrap = str(ctx.extra["bootstrap"])
    window = 6.0 if ctx.quick else 15.0
    warmup = 3.0 if ctx.quick else 4.0
    base = Path(ctx.scratch) / f"connector-{uuid.uuid4().hex[:6]}"
    figures: list[Figure] = []
    one: list[Result] = []
    for tags, period in QUICK_CASES if ctx.quick else CASES:
        r = run_case(
            bootstrap,
            base / f"one-{tags}",
            tags,
            period,
            warmup_s=warmup,
            window_s=window,
            latency=True,
        )
        one.append(r)
        print(f"[bench] connector: {r.describe()}; {r.limit()}", file=sys.stderr)
        figures += _single(r)
    # A second process: two connector processes, each with its own load server offering 10k/s
    # (the target per process), 20k/s in all; against the best single process above.
    tags = 2_000 if ctx.quick else 10_000
    per_process = tags // 2
    two = run_case(
        bootstrap,
        base / f"two-{tags}",
        tags,
        per_process / 10_000,
        connectors=2,
        servers=2,
        warmup_s=warmup,
        window_s=window,
    )
    print(f"[bench] connector: {two.describe()}; {two.limit()}", file=sys.stderr)
    best = max(one, key=lambda r: r.delivered)
    figures.append(
        Figure(
            bench="OPC UA connector",
            metric=f"notifications/s into Kafka, 2 connector processes, {tags:,} tags "
            f"(offered {two.offered:,.0f}/s, 10k/s each)",
            unit="/s",
            ours_name="2 connector processes, one load server each"
            + ("" if two.sustained else " — NOT sustained"),
            ours=two.delivered,
            peer_name=f"1 process (best above: {best.tags:,} tags)",
            peer=best.delivered,
            note=(
                f"{two.describe()}; {two.limit()}; connector CPU per notification "
                f"{_conn_cpu(two) / max(two.received, 1) * 1e6:.0f} µs with 2 processes against "
                f"{_conn_cpu(best) / max(best.received, 1) * 1e6:.0f} µs with 1. Target: the "
                "second process adds ≥ 70 % (ratio ≥ 1.7×). Two processes and two load servers "
                "need ~3 cores at 20k/s; this machine has 2, shared with the broker, so here the "
                "ratio measures the machine, not the connector"
            ),
        )
    )
    return figures


if __name__ == "__main__":
    from asbuilt.services import stack
    from asbuilt.services.supervisor import Supervisor

    quick = "--quick" in sys.argv
    with tempfile.TemporaryDirectory() as scratch:
        settings = stack.private_settings(Path(scratch) / ".asbuilt")
        supervisor = Supervisor(settings, [stack.build(settings)[1]])
        supervisor.start_all(progress=print)
        try:
            ctx = Context(dsn="", scratch=scratch, quick=quick)
            ctx.extra["bootstrap"] = settings.bootstrap
            for fig in measure(ctx):
                print(f"{fig.bench}: {fig.metric}: {fig.ours:,.1f} {fig.unit}  [{fig.ours_name}]")
                print(f"    {fig.note}")
        finally:
            supervisor.stop_all()
