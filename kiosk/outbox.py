"""The durable event outbox: SQLite (WAL) in the state directory.

An event is stored (with its per-kiosk sequence number) before anyone tries to publish it, and deleted only
when the broker acknowledged it with a success reason code. A commit survives `kill -9` at once; the link calls
`sync()` (fsync of the WAL, off the main thread) before it publishes, so nothing is ever published that a power
cut could take back, and the main loop never waits for the disk (slow on SD cards).
Over the cap, the oldest events of the lowest priority are dropped first (heartbeats and status before calls);
every drop is counted, persisted and reported. The table of recently seen command ids (replay protection)
lives here too, so it survives reconnects and restarts.

Thread-safe: the main loop appends, the link thread reads and deletes; one lock guards one connection.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kiosk.events import PRIORITY

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    priority INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL,
    ttl REAL
);
CREATE INDEX IF NOT EXISTS events_by_priority ON events (priority, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value);
CREATE TABLE IF NOT EXISTS drops_unreported (kind TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS seen_commands (id TEXT PRIMARY KEY, at REAL NOT NULL);
"""
SEEN_COMMANDS_KEPT = 10_000

log = logging.getLogger("kiosk.outbox")


@dataclass(frozen=True)
class Stored:
    """One stored event, ready to publish."""

    seq: int
    kind: str
    topic: str
    payload: bytes
    created: float  # wall clock, seconds
    ttl: float | None  # MQTT v5 message expiry, counted from `created`

    def expiry_left(self, now: float) -> int | None:
        """Seconds of message expiry left for a publish now (at least 1), None if it never expires."""
        if self.ttl is None:
            return None
        return max(1, int(self.created + self.ttl - now))


@dataclass(frozen=True)
class OutboxStats:
    backlog: int
    dropped: int
    refused: int
    last_error: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class OutboxError(Exception):
    """The outbox database cannot be opened or used; the message names the file."""


class OutboxUnreadable(OutboxError):
    """The file is there but is not a usable outbox database (see Outbox.open)."""


class Outbox:
    def __init__(self, path: Path, cap: int, clock: Callable[[], float] = time.time):
        self.path, self.cap, self._clock = Path(path), cap, clock
        self._wal = self.path.with_name(self.path.name + "-wal")
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch(mode=0o600)  # SQLite gives -wal and -shm the same mode
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise OutboxError(f"{self.path}: cannot open the event outbox: {exc}") from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # durable against crashes; sync() for power loss
            self._db.executescript(SCHEMA)
            self._backlog = self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        except sqlite3.Error as exc:
            self._db.close()
            raise OutboxUnreadable(f"{self.path}: not a usable event outbox: {exc}") from None

    @classmethod
    def open(cls, path: Path, cap: int) -> Outbox:
        """Open the outbox; an unreadable file is set aside (kept for inspection) and a new one started.

        The new outbox's sequence numbers continue from the current time in milliseconds, so they stay above
        anything the old one published.
        """
        try:
            return cls(path, cap)
        except OutboxUnreadable as exc:
            aside = Path(f"{path}.unreadable-{time.strftime('%Y%m%dT%H%M%S')}")
            log.error("%s; moved it to %s and started a new outbox", exc, aside)
            for suffix in ("", "-wal", "-shm"):
                if Path(f"{path}{suffix}").exists():
                    Path(f"{path}{suffix}").rename(f"{aside}{suffix}")
        box = cls(path, cap)
        with box._lock, box._transaction():
            box._set_meta("seq", int(time.time() * 1000))
        return box

    # --- the main loop's side --------------------------------------------------------------------------

    def put(self, kind: str, topic: str, build: Callable[[int], bytes], ttl: float | None = None) -> int:
        """Store one event; `build(seq)` makes its payload. Returns the sequence number."""
        with self._lock, self._transaction():
            seq = int(self._meta("seq", 0)) + 1
            self._set_meta("seq", seq)
            self._db.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (seq, kind, PRIORITY[kind], topic, build(seq), self._clock(), ttl))
            self._backlog += 1
            if self._backlog > self.cap:
                self._drop(self._backlog - self.cap)
            return seq

    # --- the link's side -------------------------------------------------------------------------------

    def pending(self, after_seq: int = 0, limit: int = 100) -> list[Stored]:
        """Stored events with seq > after_seq, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT seq, kind, topic, payload, created, ttl FROM events WHERE seq > ?"
                                    " ORDER BY seq LIMIT ?", (after_seq, limit)).fetchall()
        return [Stored(*row) for row in rows]

    def sync(self) -> None:
        """Make everything committed so far survive a power cut (fsync the WAL; checkpoints sync themselves)."""
        try:
            fd = os.open(self._wal, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def delete(self, seqs: Iterable[int]) -> None:
        """The broker took these (success PUBACK): forget them."""
        seqs = [(s,) for s in seqs]
        if not seqs:
            return
        with self._lock, self._transaction():
            before = self._db.total_changes
            self._db.executemany("DELETE FROM events WHERE seq = ?", seqs)
            self._backlog -= self._db.total_changes - before

    def refused(self, count: int, error: str) -> None:
        """The broker refused publishes (e.g. 0x87 not authorised): count them and keep the error."""
        with self._lock, self._transaction():
            self._set_meta("refused", int(self._meta("refused", 0)) + count)
            self._set_meta("last_error", error)

    def note_error(self, error: str | None) -> None:
        """Remember the latest link problem (None clears it), shown in stats."""
        with self._lock, self._transaction():
            self._set_meta("last_error", error)

    def take_drop_report(self) -> dict[str, int]:
        """Drops not yet reported, by kind (then forgotten: the caller reports them)."""
        with self._lock, self._transaction():
            report = dict(self._db.execute("SELECT kind, n FROM drops_unreported").fetchall())
            self._db.execute("DELETE FROM drops_unreported")
        return report

    def remember_command(self, command_id: str) -> bool:
        """True the first time a command id is seen, False for a replay."""
        with self._lock, self._transaction():
            cursor = self._db.execute("INSERT OR IGNORE INTO seen_commands VALUES (?, ?)",
                                      (command_id, self._clock()))
            if cursor.rowcount:
                self._db.execute("DELETE FROM seen_commands WHERE id IN (SELECT id FROM seen_commands"
                                 " ORDER BY at DESC LIMIT -1 OFFSET ?)", (SEEN_COMMANDS_KEPT,))
            return bool(cursor.rowcount)

    def stats(self) -> OutboxStats:
        with self._lock:
            return OutboxStats(backlog=self._backlog, dropped=int(self._meta("dropped", 0)),
                               refused=int(self._meta("refused", 0)), last_error=self._meta("last_error", None))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- inside ----------------------------------------------------------------------------------------

    def _drop(self, excess: int) -> None:
        while excess > 0:
            priority = self._db.execute("SELECT MIN(priority) FROM events").fetchone()[0]
            victims = self._db.execute("SELECT seq, kind FROM events WHERE priority = ? ORDER BY seq LIMIT ?",
                                       (priority, excess)).fetchall()
            self._db.executemany("DELETE FROM events WHERE seq = ?", [(seq,) for seq, _ in victims])
            for _, kind in victims:
                self._db.execute("INSERT INTO drops_unreported VALUES (?, 1)"
                                 " ON CONFLICT (kind) DO UPDATE SET n = n + 1", (kind,))
            self._set_meta("dropped", int(self._meta("dropped", 0)) + len(victims))
            self._backlog -= len(victims)
            excess -= len(victims)

    def _meta(self, key: str, default: Any) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    def _set_meta(self, key: str, value: Any) -> None:
        self._db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                         (key, value))

    @contextlib.contextmanager
    def _transaction(self):
        """BEGIN IMMEDIATE … COMMIT, rolled back on any error."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
