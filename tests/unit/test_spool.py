"""The write-ahead spool: order, acknowledgements, crash safety, reopening, bad files."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from connectors.opcua.spool import Spool, SpoolError

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def _rows(n: int, start: int = 0, topic: str = "t") -> list[tuple[str, bytes | None, bytes]]:
    return [(topic, f"k{i % 3}".encode(), f"v{i}".encode()) for i in range(start, start + n)]


def test_records_come_back_in_append_order(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.sqlite3") as spool:
        assert spool.append_many(_rows(5)) == 5
        assert spool.append_many([("other", None, b"x")]) == 6
        records = spool.peek(0, 100)
        assert [r.seq for r in records] == [1, 2, 3, 4, 5, 6]
        assert [r.value for r in records] == [b"v0", b"v1", b"v2", b"v3", b"v4", b"x"]
        assert records[5].topic == "other"
        assert records[5].key is None
        assert [r.seq for r in spool.peek(2, 2)] == [3, 4]
        assert spool.peek(6) == []
        assert spool.depth() == 6


def test_an_empty_batch_writes_nothing(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.sqlite3") as spool:
        assert spool.append_many([]) == 0
        spool.append_many(_rows(2))
        assert spool.append_many([]) == 2
        assert spool.depth() == 2


def test_ack_removes_only_what_was_acknowledged(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.sqlite3") as spool:
        spool.append_many(_rows(10))
        assert spool.ack([2, 3, 4, 9, 4]) == 4  # duplicates and gaps are fine
        assert [r.seq for r in spool.peek()] == [1, 5, 6, 7, 8, 10]
        assert spool.ack([2, 3]) == 0  # already gone: idempotent
        assert spool.ack_through(6) == 3
        assert [r.seq for r in spool.peek()] == [7, 8, 10]
        assert spool.depth() == 3


def test_seq_never_goes_back_after_the_spool_empties(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with Spool(path) as spool:
        spool.append_many(_rows(3))
        spool.ack_through(3)
        assert spool.depth() == 0
    with Spool(path) as spool:
        assert spool.append_many(_rows(1)) == 4  # a cursor at 3 still sees the new record
        assert [r.seq for r in spool.peek(3)] == [4]


def test_reopening_keeps_what_was_not_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with Spool(path) as spool:
        spool.append_many(_rows(100))
        spool.ack_through(40)
    with Spool(path) as spool:
        assert spool.depth() == 60
        assert spool.peek(0, 1)[0].seq == 41
        assert spool.oldest_ts() is not None


def test_rejected_records_are_kept_with_their_reason(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.sqlite3") as spool:
        spool.append_many(_rows(3))
        assert spool.reject(2, "too large") is True
        assert spool.reject(2, "again") is False
        assert [r.seq for r in spool.peek()] == [1, 3]
        assert spool.depth() == 2
        assert spool.rejected_count() == 1
        (rejected,) = spool.rejected()
        assert rejected.record.value == b"v1"
        assert rejected.reason == "too large"


_CHILD = textwrap.dedent(
    """
    import os, sys
    from connectors.opcua.spool import Spool
    spool = Spool(sys.argv[1])
    n = 0
    while True:
        batch = [("t", b"k", b"v%d" % (n + i)) for i in range(50)]
        last = spool.append_many(batch)
        n += len(batch)
        os.write(1, b"%d\\n" % last)  # reported only after append_many returned
    """
)


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
def test_sigkill_after_append_loses_nothing(tmp_path: Path, synchronous: str) -> None:
    """A process killed at any moment keeps every batch whose append_many returned."""
    path = tmp_path / "s.sqlite3"
    child = _CHILD.replace("Spool(sys.argv[1])", f"Spool(sys.argv[1], synchronous={synchronous!r})")
    proc = subprocess.Popen(
        [sys.executable, "-c", child, str(path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    reported = 0
    for line in proc.stdout:
        reported = int(line)
        if reported >= 20_000:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rest = proc.stdout.read().split()
    if rest:
        reported = int(rest[-1])
    with Spool(path) as spool:
        records = spool.peek(0, 1_000_000)
    assert len(records) >= reported  # a batch may have committed without being reported
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    assert [r.value for r in records] == [b"v%d" % i for i in range(len(records))]


def test_a_second_opener_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with Spool(path), pytest.raises(SpoolError, match="in use by another process"):
        Spool(path)
    Spool(path).close()  # released on close


def test_a_file_that_is_not_sqlite_says_so_and_how_to_fix_it(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    path.write_bytes(b"this is not a database, just some bytes " * 200)
    with pytest.raises(SpoolError) as info:
        Spool(path)
    message = str(info.value)
    assert str(path) in message
    assert "mv " in message
    assert ".recover" in message


def test_a_damaged_spool_is_caught_on_open(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with Spool(path) as spool:
        spool.append_many(_rows(5_000))
    with sqlite3.connect(path) as conn:  # fold the WAL in, so the damage lands in the file
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    page = 4096
    data[3 * page : 3 * page + 64] = b"\xa5" * 64  # scribble over a b-tree page header
    path.write_bytes(bytes(data))
    with pytest.raises(SpoolError, match=str(path)):
        Spool(path)


def test_a_spool_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(SpoolError, match="newer asbuilt"):
        Spool(path)


def test_a_directory_is_not_a_spool(tmp_path: Path) -> None:
    with pytest.raises(SpoolError, match="is a directory"):
        Spool(tmp_path)


def test_a_path_below_a_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SpoolError, match="directory this user can write"):
        Spool(blocker / "s.sqlite3")


def test_a_closed_spool_refuses_work(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3")
    spool.close()
    spool.close()  # idempotent
    with pytest.raises(SpoolError, match="closed"):
        spool.append_many(_rows(1))
    with pytest.raises(SpoolError, match="closed"):
        spool.peek()
