"""The write-ahead spool: every event is on disk before anything tries to send it to Kafka.

One SQLite file in WAL mode, one table ``spool(seq, topic, key, value, enqueued_ts)``. ``seq``
is ``INTEGER PRIMARY KEY AUTOINCREMENT``: it only ever grows, also after the table was emptied,
so "everything after seq N" is always well defined and the forwarder can keep a cursor.

- :meth:`Spool.append_many` writes a batch in one transaction and returns when it is committed:
  with ``synchronous=FULL`` (the default) the WAL is fsynced before the commit returns, so a
  killed process *and* a power loss keep it; ``NORMAL`` survives a killed process but may lose
  the last transactions on a power loss or kernel crash (measured in ``bench/bench_publisher.py``:
  see the module docstring of :mod:`connectors.opcua.publisher` for the figures).
- :meth:`Spool.peek` reads records in ``seq`` order; nothing is removed until
  :meth:`Spool.ack` (or :meth:`Spool.ack_through`) says Kafka has it. Acknowledgements are
  committed with ``synchronous=NORMAL`` whatever the setting: an acknowledgement lost to a power
  cut only means the record is sent again, with the same event id, and deduplicated downstream.
- :meth:`Spool.reject` moves a record that Kafka refuses for good (e.g. too large) to the
  ``rejected`` table with the reason: kept, counted, visible, never silently dropped.
- One process at a time: the spool takes an exclusive ``flock`` on ``<path>.lock`` and a second
  opener gets :class:`SpoolError` naming the holder's file.

The class is thread-safe (one connection behind a lock): the connector appends from its event
loop thread while the publisher's thread peeks and acknowledges.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Literal, TypeAlias

from asbuilt.errors import AsbuiltError

__all__ = ["FORMAT_VERSION", "Record", "Rejected", "Spool", "SpoolError", "SpoolRow", "Synchronous"]

logger = logging.getLogger(__name__)

FORMAT_VERSION: Final = 1
"""``PRAGMA user_version`` of a spool file written by this code."""

Synchronous: TypeAlias = Literal["FULL", "NORMAL"]
SpoolRow: TypeAlias = tuple[str, bytes | None, bytes]
"""What :meth:`Spool.append_many` takes: ``(topic, key, value)``."""

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    key BLOB,
    value BLOB NOT NULL,
    enqueued_ts REAL NOT NULL  -- unix seconds (UTC) when the record was appended
);
CREATE TABLE IF NOT EXISTS rejected (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    key BLOB,
    value BLOB NOT NULL,
    enqueued_ts REAL NOT NULL,
    rejected_ts REAL NOT NULL,
    reason TEXT NOT NULL
);
"""


class SpoolError(AsbuiltError):
    """The spool file cannot be opened or written; the message names the file and the fix."""


@dataclass(frozen=True, slots=True)
class Record:
    """One spooled Kafka record; ``enqueued_ts`` is unix seconds (UTC) of the append."""

    seq: int
    topic: str
    key: bytes | None
    value: bytes
    enqueued_ts: float


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record Kafka refused for good, kept with the reason (see :meth:`Spool.reject`)."""

    record: Record
    rejected_ts: float
    reason: str


def _ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted, merged ``(first, last)`` runs of consecutive numbers: 1,2,3,7 → (1,3),(7,7)."""
    out: list[tuple[int, int]] = []
    for s in sorted(set(seqs)):
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


class Spool:
    """A durable FIFO of Kafka records in one SQLite file (see the module docstring).

    Raises :class:`SpoolError` if ``path`` cannot be opened as a spool (a directory, an
    unwritable place, a file that is not SQLite or is damaged, a newer format, or a spool
    another process has open).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, synchronous: Synchronous = "FULL", check: bool = True
    ) -> None:
        self.path = Path(path)
        self.synchronous: Synchronous = synchronous
        self._lock = threading.Lock()
        self._lock_fd = self._take_file_lock()
        try:
            self._conn = self._open(check)
            self._depth: int = self._conn.execute("SELECT count(*) FROM spool").fetchone()[0]
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._closed = False
        logger.info("spool=%s opened depth=%d synchronous=%s", self.path, self._depth, synchronous)

    # -- opening ---------------------------------------------------------------------------------

    def _msg(self, what: str, fix: str, exc: BaseException | None = None) -> str:
        detail = f" ({exc})" if exc is not None else ""
        return f"spool {self.path}: {what}{detail}. {fix}"

    def _take_file_lock(self) -> int:
        if self.path.is_dir():
            msg = self._msg(
                "is a directory", "Point the spool path at a file, e.g. <dir>/spool.sqlite3."
            )
            raise SpoolError(msg)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            msg = self._msg(
                "cannot create the spool's directory or lock file",
                "Choose a spool path in a directory this user can write.",
                exc,
            )
            raise SpoolError(msg) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            msg = self._msg(
                f"is in use by another process (lock {self.path}.lock is held)",
                "Stop the other connector, or give each connector a spool of its own.",
            )
            raise SpoolError(msg) from None
        return fd

    def _open(self, check: bool) -> sqlite3.Connection:
        unreadable = (
            f"Move it aside with its -wal and -shm files (`for f in {self.path}*; do mv $f "
            f"$f.broken; done`) and restart to begin a new spool; what it holds can often be "
            f"salvaged with `sqlite3 {self.path}.broken .recover`."
        )
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            msg = self._msg("cannot be opened", unreadable, exc)
            raise SpoolError(msg) from exc
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > FORMAT_VERSION:
                msg = self._msg(
                    f"was written by a newer asbuilt (spool format {version}, this one reads "
                    f"{FORMAT_VERSION})",
                    "Run the newer connector until the spool is empty, or upgrade this one.",
                )
                raise SpoolError(msg)
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                msg = self._msg(
                    f"cannot use WAL journaling (got {mode})",
                    "Put the spool on a local file system (WAL needs shared memory and locks).",
                )
                raise SpoolError(msg)
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            if check:
                problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
                if problems != ["ok"]:
                    msg = self._msg(
                        "is damaged (quick_check: " + "; ".join(problems[:3]) + ")", unreadable
                    )
                    raise SpoolError(msg)
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA user_version={FORMAT_VERSION}")
        except SpoolError:
            conn.close()
            raise
        except sqlite3.DatabaseError as exc:
            conn.close()
            msg = self._msg("is not a readable SQLite spool", unreadable, exc)
            raise SpoolError(msg) from exc
        return conn

    # -- writing ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        if self._closed:
            msg = self._msg("is closed", "Open a new Spool on the file.")
            raise SpoolError(msg)
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            msg = self._msg(
                f"{what} failed",
                "Check free disk space and the file's permissions; nothing of this batch was "
                "written.",
                exc,
            )
            raise SpoolError(msg) from exc

    def append_many(self, rows: Iterable[SpoolRow]) -> int:
        """Append ``(topic, key, value)`` rows in one transaction; the last ``seq`` written.

        Durable when it returns (see ``synchronous``). An empty batch writes nothing and returns
        the last ``seq`` ever assigned (0 for a new spool).
        """
        now = time.time()
        batch = [(topic, key, value, now) for topic, key, value in rows]
        with self._lock:
            if not batch:
                return self._last_seq()
            with self._transaction("append") as conn:
                conn.executemany(
                    "INSERT INTO spool (topic, key, value, enqueued_ts) VALUES (?, ?, ?, ?)", batch
                )
                last = self._last_seq()
            self._depth += len(batch)
            return last

    def _last_seq(self) -> int:
        row = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'spool'").fetchone()
        return 0 if row is None else int(row[0])

    def _delete(self, ranges: Sequence[tuple[int, int]]) -> int:
        if not ranges:
            return 0
        with self._lock:
            if self._closed:
                msg = self._msg("is closed", "Open a new Spool on the file.")
                raise SpoolError(msg)
            # An acknowledgement lost to a power cut only means a resend (same event id), so it
            # does not need to wait for an fsync of its own.
            if self.synchronous != "NORMAL":
                self._conn.execute("PRAGMA synchronous=NORMAL")
            try:
                with self._transaction("acknowledge") as conn:
                    before = conn.total_changes
                    conn.executemany("DELETE FROM spool WHERE seq BETWEEN ? AND ?", ranges)
                    deleted = conn.total_changes - before
            finally:
                if self.synchronous != "NORMAL" and not self._closed:
                    self._conn.execute(f"PRAGMA synchronous={self.synchronous}")
            self._depth -= deleted
            return deleted

    def ack(self, seqs: Iterable[int]) -> int:
        """Remove the records ``seqs`` (Kafka has them); the number removed."""
        return self._delete(_ranges(seqs))

    def ack_through(self, seq: int) -> int:
        """Remove every record up to and including ``seq``; the number removed."""
        return self._delete([(0, seq)])

    def reject(self, seq: int, reason: str) -> bool:
        """Move record ``seq`` to the ``rejected`` table with ``reason``; False if it is gone."""
        with self._lock, self._transaction("reject") as conn:
            moved = conn.execute(
                "INSERT INTO rejected (seq, topic, key, value, enqueued_ts, rejected_ts, reason) "
                "SELECT seq, topic, key, value, enqueued_ts, ?, ? FROM spool WHERE seq = ?",
                (time.time(), reason, seq),
            ).rowcount
            conn.execute("DELETE FROM spool WHERE seq = ?", (seq,))
            self._depth -= moved
        return moved == 1

    # -- reading ---------------------------------------------------------------------------------

    def peek(self, after_seq: int = 0, limit: int = 1000) -> list[Record]:
        """Up to ``limit`` records with ``seq > after_seq``, in ``seq`` order; none removed."""
        with self._lock:
            if self._closed:
                msg = self._msg("is closed", "Open a new Spool on the file.")
                raise SpoolError(msg)
            try:
                rows = self._conn.execute(
                    "SELECT seq, topic, key, value, enqueued_ts FROM spool "
                    "WHERE seq > ? ORDER BY seq LIMIT ?",
                    (after_seq, limit),
                ).fetchall()
            except sqlite3.DatabaseError as exc:
                msg = self._msg(
                    "cannot be read",
                    "Stop the connector and check the file (PRAGMA integrity_check).",
                    exc,
                )
                raise SpoolError(msg) from exc
        return [Record(*row) for row in rows]

    def depth(self) -> int:
        """Records waiting to be acknowledged (not counting rejected ones)."""
        return self._depth

    def oldest_ts(self) -> float | None:
        """``enqueued_ts`` of the oldest waiting record (unix seconds), None if empty."""
        with self._lock:
            row = self._conn.execute(
                "SELECT enqueued_ts FROM spool ORDER BY seq LIMIT 1"
            ).fetchone()
        return None if row is None else float(row[0])

    def rejected(self, limit: int = 100) -> list[Rejected]:
        """The most recently rejected records, newest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, topic, key, value, enqueued_ts, rejected_ts, reason FROM rejected "
                "ORDER BY rejected_ts DESC, seq DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [Rejected(Record(*row[:5]), row[5], row[6]) for row in rows]

    def rejected_count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM rejected").fetchone()[0])

    # -- closing ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the file (idempotent). What is still spooled stays for the next opener."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._conn.close()
            finally:
                os.close(self._lock_fd)
        logger.info("spool=%s closed depth=%d", self.path, self._depth)

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
