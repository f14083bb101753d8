"""The durable event outbox: SQLite (WAL) in the state directory, written by its own thread.

`put()` never touches the disk: it numbers the event (per-kiosk `seq`), keeps it in a bounded memory queue and
wakes the outbox's writer thread, which commits it moments later. So the main loop never waits for the disk
(slow on SD cards, locked by another process, full, read-only). An event is deleted only when the broker
acknowledged it with a success reason code. The link calls `sync()` (off the main thread) before it publishes:
it waits for the writer and fsyncs the WAL, so nothing is published that a power cut could take back — unless
the storage is failing, then events are published from memory rather than held back.

Storage faults are the machine's, never a reason to stop serving or to crash-loop:
- the disk is full (SQLITE_FULL / ENOSPC), the state directory read-only, or another process holds the write
  lock: events stay in the memory queue (bounded: `memory_cap`; over it the oldest of the lowest priority go,
  counted like cap drops; calls are never dropped for a storage reason), `stats().storage` says `full`,
  `read_only`, `locked` or `unavailable`, and the writer retries until it can write them out;
- the file is damaged (`sqlite3.DatabaseError` SQLITE_CORRUPT / SQLITE_NOTADB, a failed integrity check at
  open) at ANY point — open, insert, drain, delete — or its files are not writable by this user while the
  directory is: the file (with its -wal and -shm) is set aside as `<name>.unreadable-<time>` (kept for
  inspection), the rows that can still be read are salvaged into a fresh outbox (a table scan that ignores
  the indexes, rowid ranges past torn pages, and as a last resort a scan of every page image in the file and
  its WAL), and a recovery report (`take_recovery_reports()`) says how many rows were salvaged and lost; the
  link publishes it as an `outbox_recovered` event.

Over the cap, the oldest events of the lowest priority are dropped first (heartbeats and status before calls);
every drop is counted, persisted and reported. The table of recently seen command ids (replay protection)
lives here too, so it survives reconnects and restarts.

Threads: the main loop calls `put()` and `stats()` (memory only); the link thread reads, deletes and syncs;
the writer thread owns every write. One lock guards the memory state, another the connection.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import sqlite3
import struct
import tempfile
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kiosk.events import CALL, PRIORITY

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
SEEN_COMMANDS_PRUNE_EVERY = 1_000  # the table is trimmed to SEEN_COMMANDS_KEPT after this many new ids
MEMORY_CAP = 2_000  # events held in memory while the storage cannot take them
BUSY_TIMEOUT = 0.25  # seconds SQLite waits for another process's lock before we call the storage "locked"
RETRY_SECONDS = 1.0  # the writer retries a failing storage this often
SYNC_WAIT = 2.0  # seconds sync() waits for the writer before publishing from memory
BATCH = 500  # rows per write transaction
PROTECTED_PRIORITY = PRIORITY[CALL]  # never dropped from memory for a storage reason

# Storage states (stats().storage, the status details, the staff screen).
OK, FULL, READ_ONLY, LOCKED, UNAVAILABLE = "ok", "full", "read_only", "locked", "unavailable"
STORAGE_STATES = (OK, FULL, READ_ONLY, LOCKED, UNAVAILABLE)
DAMAGED = "damaged"  # a classification, never a lasting state: damage is recovered at once

# SQLite primary result codes (https://sqlite.org/rescode.html)
_SQLITE_PERM, _SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY = 3, 5, 6, 8
_SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 10, 11, 13, 14, 26

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
    created_monotonic: float | None = None  # time.monotonic() at put(), for events of this process

    def expiry_left(self, now: float) -> int | None:
        """Seconds of message expiry left for a publish now (at least 1), None if it never expires.

        Events of this process age by the monotonic clock (a wall-clock jump neither expires nor prolongs
        them); events from before a restart by the wall clock, never younger than 0 s.
        """
        if self.ttl is None:
            return None
        if self.created_monotonic is not None:
            age = time.monotonic() - self.created_monotonic
        else:
            age = max(0.0, now - self.created)
        return max(1, int(self.ttl - age))


@dataclass(frozen=True)
class OutboxStats:
    backlog: int  # events not yet acknowledged by the broker (on disk and in memory)
    dropped: int
    refused: int
    last_error: str | None
    storage: str = OK  # one of STORAGE_STATES
    held: int = 0  # events only in memory (the storage could not take them yet)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Recovery:
    """A damaged outbox was set aside and its readable rows salvaged into a fresh one."""

    salvaged: int
    lost: int | None  # None: how many rows the damaged file held is itself unreadable
    cause: str  # "damaged" or "permission"
    kept_as: str  # file name the damaged outbox was renamed to (same directory)
    error: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class OutboxError(Exception):
    """The outbox cannot be used; the message names the file."""


@dataclass
class _Held:
    seq: int
    kind: str
    priority: int
    topic: str
    payload: bytes
    created: float
    ttl: float | None
    created_monotonic: float | None

    def stored(self) -> Stored:
        return Stored(self.seq, self.kind, self.topic, self.payload, self.created, self.ttl,
                      self.created_monotonic)

    def row(self) -> tuple:
        return (self.seq, self.kind, self.priority, self.topic, self.payload, self.created, self.ttl)


def classify(exc: BaseException) -> str:
    """What a storage exception means: DAMAGED, FULL, READ_ONLY, LOCKED or UNAVAILABLE."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is None:  # raised by this module or an old SQLite: a DatabaseError proper is damage
            return UNAVAILABLE if isinstance(exc, sqlite3.OperationalError) else DAMAGED
        code &= 0xFF
        if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
            return DAMAGED
        if code == _SQLITE_FULL:
            return FULL
        if code in (_SQLITE_READONLY, _SQLITE_PERM, _SQLITE_CANTOPEN):
            return READ_ONLY
        if code in (_SQLITE_BUSY, _SQLITE_LOCKED):
            return LOCKED
        return UNAVAILABLE
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return FULL
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return READ_ONLY
    return UNAVAILABLE


class Outbox:
    def __init__(self, path: Path, cap: int, clock: Callable[[], float] = time.time,
                 memory_cap: int = MEMORY_CAP):
        """Open (or create) the outbox at `path`; never raises for a storage fault (see the module doc).

        Integrity is checked here; a damaged file is set aside and salvaged before this returns.
        """
        self.path, self.cap, self.memory_cap, self._clock = Path(path), cap, memory_cap, clock
        self._wal = self.path.with_name(self.path.name + "-wal")
        self._db_lock = threading.RLock()  # the connection and the files; held by the writer and the link
        self._mem = threading.Condition(threading.Lock())  # memory state; never held around disk I/O
        self._wake = threading.Event()
        self._db: sqlite3.Connection | None = None
        self._loaded = False  # counters of the file merged into memory once
        self._recovering = False
        # memory state (under self._mem)
        self._queue: OrderedDict[int, _Held] = OrderedDict()
        self._writing: set[int] = set()
        self._forget: set[int] = set()  # acknowledged while being written
        self._next_seq = 1
        self._backlog_db = 0
        self._dropped = self._refused = 0
        self._last_error: str | None = None
        self._drops_unreported: Counter[str] = Counter()
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._seen_unsaved: list[tuple[str, float]] = []
        self._born: dict[int, float] = {}  # seq -> time.monotonic() at put(), for events of this process
        self._seen_since_prune = SEEN_COMMANDS_PRUNE_EVERY  # the first save trims what an older kiosk left
        self._meta_dirty = False
        self._attempts = 0  # write attempts finished by the writer thread
        self._overflowing = False  # the memory bound was hit during this storage fault (logged once)
        self._storage, self._storage_error = OK, ""
        self._recoveries: list[Recovery] = []
        self._closing = False
        with self._db_lock:
            if not self._connect():
                self._next_seq = int(time.time() * 1000)  # unknown: stay above anything the file published
        self._writer = threading.Thread(target=self._write_loop, name="outbox-writer", daemon=True)
        self._writer.start()

    @classmethod
    def open(cls, path: Path, cap: int) -> Outbox:
        """The outbox at `path` (the constructor; kept for callers that say what they mean)."""
        return cls(path, cap)

    # --- the main loop's side: memory only ------------------------------------------------------------

    def put(self, kind: str, topic: str, build: Callable[[int], bytes], ttl: float | None = None) -> int:
        """Queue one event for storing; `build(seq)` makes its payload. Returns the sequence number.

        Never waits for the disk. Over `memory_cap` unwritten events, the oldest of the lowest priority are
        dropped (counted and reported); calls never are.
        """
        with self._mem:
            seq = self._next_seq
            self._next_seq += 1
            born = self._born[seq] = time.monotonic()
            self._queue[seq] = _Held(seq, kind, PRIORITY[kind], topic, build(seq), self._clock(), ttl, born)
            self._meta_dirty = True  # the sequence number moved on, even if the event is acknowledged first
            self._trim_memory()
        self._wake.set()
        return seq

    def stats(self) -> OutboxStats:
        with self._mem:
            held = len(self._queue)
            return OutboxStats(backlog=self._backlog_db + held, dropped=self._dropped, refused=self._refused,
                               last_error=self._last_error, storage=self._storage, held=held)

    # --- the link's side -------------------------------------------------------------------------------

    def pending(self, after_seq: int = 0, limit: int = 100) -> list[Stored]:
        """Events with seq > after_seq, oldest first: stored ones, then those still in memory."""
        rows: list[Stored] = []
        with self._db_lock:
            for _attempt in range(2):  # damage met: recovered at once, then the salvaged rows are read
                if self._db is None:
                    break
                try:
                    rows = [Stored(seq, kind, topic, payload, created, ttl, self._born.get(seq))
                            for seq, kind, topic, payload, created, ttl in self._db.execute(
                                "SELECT seq, kind, topic, payload, created, ttl FROM events WHERE seq > ?"
                                " ORDER BY seq LIMIT ?", (after_seq, limit))]
                    break
                except sqlite3.Error as exc:
                    self._fault(exc)
            held = self._held(after_seq, limit)
        merged = {row.seq: row for row in rows}
        merged.update((row.seq, row) for row in held)
        return [merged[seq] for seq in sorted(merged)][:limit]

    def sync(self) -> None:
        """Make everything handed out so far survive a power cut: wait (at most SYNC_WAIT) for the writer,
        then fsync the WAL (checkpoints sync themselves). Returns at once while the storage is failing."""
        self.flush(SYNC_WAIT)
        with self._db_lock:
            try:
                fd = os.open(self._wal, os.O_RDONLY)
            except OSError:
                return
            try:
                os.fsync(fd)
            except OSError as exc:
                log.warning("%s: fsync failed: %s", self._wal, exc)
            finally:
                os.close(fd)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued event is written (True), the storage is failing or `timeout` passed."""
        with self._mem:
            start = self._attempts
            self._wake.set()
            return self._mem.wait_for(
                lambda: not self._queue or (self._attempts > start and self._storage != OK), timeout) \
                and not self._queue

    def delete(self, seqs: Iterable[int]) -> None:
        """The broker took these (success PUBACK): forget them."""
        seqs = list(seqs)
        if not seqs:
            return
        with self._mem:
            for seq in seqs:
                self._born.pop(seq, None)
                if seq in self._writing:
                    self._forget.add(seq)
                elif self._queue.pop(seq, None) is not None:
                    self._mem.notify_all()
        self._delete_stored(seqs)

    def refused(self, count: int, error: str) -> None:
        """The broker refused publishes (e.g. 0x87 not authorised): count them and keep the error."""
        with self._mem:
            self._refused += count
            self._last_error = error
            self._meta_dirty = True
        self._wake.set()

    def note_error(self, error: str | None) -> None:
        """Remember the latest link problem (None clears it), shown in stats."""
        with self._mem:
            if self._last_error != error:
                self._last_error, self._meta_dirty = error, True
        self._wake.set()

    def take_drop_report(self) -> dict[str, int]:
        """Drops not yet reported, by kind (then forgotten: the caller reports them)."""
        with self._mem:
            report, self._drops_unreported = dict(self._drops_unreported), Counter()
            self._meta_dirty = self._meta_dirty or bool(report)
        return report

    def take_recovery_reports(self) -> list[Recovery]:
        """Recoveries not yet reported (then forgotten: the caller reports them as `outbox_recovered`)."""
        with self._mem:
            reports, self._recoveries = self._recoveries, []
        return reports

    def remember_command(self, command_id: str) -> bool:
        """True the first time a command id is seen, False for a replay."""
        with self._mem:
            if command_id in self._seen:
                return False
            now = self._clock()
            self._seen[command_id] = now
            self._seen_unsaved.append((command_id, now))
            while len(self._seen) > SEEN_COMMANDS_KEPT:
                self._seen.popitem(last=False)
        self._wake.set()
        return True

    def close(self, timeout: float = 2.0) -> None:
        """Write out what is queued (waiting at most `timeout`), stop the writer, close the file."""
        self.flush(timeout)
        self._closing = True
        self._wake.set()
        self._writer.join(timeout)
        with self._db_lock:
            if self._db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._db.close()
                self._db = None

    # --- memory ----------------------------------------------------------------------------------------

    def _held(self, after_seq: int, limit: int) -> list[Stored]:
        with self._mem:
            return [held.stored() for seq, held in self._queue.items() if seq > after_seq][:limit]

    def _trim_memory(self) -> None:
        """Over memory_cap while the storage fails (or far over it while the writer lags): drop the oldest of
        the lowest priority below calls (under self._mem)."""
        limit = self.memory_cap if self._storage != OK else 4 * self.memory_cap
        excess = len(self._queue) - limit
        if excess <= 0:
            return
        victims = sorted((h for h in self._queue.values()
                          if h.priority < PROTECTED_PRIORITY and h.seq not in self._writing),
                         key=lambda h: (h.priority, h.seq))[:excess]
        for held in victims:
            del self._queue[held.seq]
            self._born.pop(held.seq, None)
            self._drops_unreported[held.kind] += 1
        self._dropped += len(victims)
        self._meta_dirty = self._meta_dirty or bool(victims)
        if victims and not self._overflowing:
            self._overflowing = True
            log.warning("storage %s: more than %d events held in memory; dropping the oldest of the lowest"
                        " priority (calls are kept)", self._storage, self.memory_cap)

    # --- the writer thread ---------------------------------------------------------------------------

    def _write_loop(self) -> None:
        while not self._closing:
            self._wake.wait(RETRY_SECONDS)
            self._wake.clear()
            try:
                while self._write_batch():
                    pass
            except Exception:  # never let the writer die: the events stay in memory
                log.exception("outbox writer failed; retrying")
            with self._mem:
                self._attempts += 1
                self._mem.notify_all()

    def _write_batch(self) -> bool:
        """Write one batch of queued events (and dirty counters); True when more are waiting."""
        with self._db_lock:
            if self._db is None and not self._connect():
                return False
            with self._mem:
                batch = list(self._queue.values())[:BATCH]
                if not batch and not self._meta_dirty and not self._seen_unsaved:
                    return False
                self._writing = {held.seq for held in batch}
                meta = {"seq": self._next_seq - 1, "dropped": self._dropped, "refused": self._refused,
                        "last_error": self._last_error}
                drops, seen = dict(self._drops_unreported), list(self._seen_unsaved)
                self._meta_dirty = False
            try:
                victims = self._commit(batch, meta, drops, seen)
            except sqlite3.Error as exc:
                with self._mem:
                    self._writing = set()
                    self._meta_dirty = True
                self._fault(exc)
                return False
            with self._mem:
                for held in batch:
                    self._queue.pop(held.seq, None)
                forget, self._forget = self._forget & self._writing, self._forget - self._writing
                self._writing = set()
                del self._seen_unsaved[:len(seen)]
                for seq, _ in victims:
                    self._born.pop(seq, None)
                if victims:
                    self._dropped += len(victims)
                    self._drops_unreported.update(kind for _, kind in victims)
                    self._meta_dirty = True
                self._set_storage(OK, "")
                more = bool(self._queue)
                self._mem.notify_all()
            if forget:
                self._delete_stored(list(forget))
            return more

    def _commit(self, batch: list[_Held], meta: dict[str, Any], drops: dict[str, int],
                seen: list[tuple[str, float]]) -> list[tuple[int, str]]:
        """One transaction: the rows, the counters, the cap. Returns the rows the cap dropped."""
        assert self._db is not None
        db = self._db
        with self._transaction():
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", [h.row() for h in batch])
            backlog = self._backlog_db + db.total_changes - before
            victims = self._drop(backlog - self.cap) if backlog > self.cap else []
            backlog -= len(victims)
            db.execute("DELETE FROM drops_unreported")
            db.executemany("INSERT INTO drops_unreported VALUES (?, ?)", list(drops.items()))
            for kind in (k for _, k in victims):
                db.execute("INSERT INTO drops_unreported VALUES (?, 1) ON CONFLICT (kind) DO UPDATE SET n = n + 1",
                           (kind,))
            if seen:
                db.executemany("INSERT OR IGNORE INTO seen_commands VALUES (?, ?)", seen)
                self._seen_since_prune += len(seen)
                if self._seen_since_prune >= SEEN_COMMANDS_PRUNE_EVERY:  # amortised: not on every insert
                    self._seen_since_prune = 0
                    db.execute("DELETE FROM seen_commands WHERE id IN (SELECT id FROM seen_commands"
                               " ORDER BY at DESC LIMIT -1 OFFSET ?)", (SEEN_COMMANDS_KEPT,))
            for key, value in {**meta, "dropped": meta["dropped"] + len(victims), "count": backlog}.items():
                self._set_meta(key, value)
        self._backlog_db = backlog
        return victims

    def _delete_stored(self, seqs: list[int], retry: bool = True) -> None:
        with self._db_lock:
            if self._db is None:
                return
            try:
                with self._transaction():
                    before = self._db.total_changes
                    self._db.executemany("DELETE FROM events WHERE seq = ?", [(s,) for s in seqs])
                    removed = self._db.total_changes - before
                    self._set_meta("count", self._backlog_db - removed)
                self._backlog_db -= removed
            except sqlite3.Error as exc:
                self._fault(exc)
                if retry and self._db is not None and self._storage == OK:
                    self._delete_stored(seqs, retry=False)  # recovered: the salvaged rows may hold them

    # --- connection, faults, recovery -----------------------------------------------------------------

    def _connect(self) -> bool:
        """Open the file, check its integrity, load its counters (under self._db_lock). False on a fault."""
        db = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))  # -wal, -shm get the same mode
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # durable against crashes; sync() for power loss
            check = db.execute("PRAGMA integrity_check(1)").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {check}")
            db.executescript(SCHEMA)
            if not os.access(self.path, os.W_OK) or (self._wal.exists() and not os.access(self._wal, os.W_OK)):
                raise OSError(errno.EACCES, "the outbox file is not writable by this user")
            self._db = db
            self._load()
        except (OSError, sqlite3.Error) as exc:
            self._db = None
            if db is not None:
                with contextlib.suppress(sqlite3.Error):
                    db.close()
            self._fault(exc)
            return self._db is not None
        return True

    def _load(self) -> None:
        """Merge the file's counters into memory (once), or write memory's into a fresh file."""
        assert self._db is not None
        db = self._db
        backlog = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        with self._mem:
            self._backlog_db = backlog
            if self._loaded:
                self._meta_dirty = True  # a fresh file after a recovery: write memory's counters into it
                return
            self._loaded = True
            self._next_seq = max(self._next_seq, int(self._meta("seq", 0)) + 1)
            self._dropped += int(self._meta("dropped", 0))
            self._refused += int(self._meta("refused", 0))
            self._last_error = self._last_error or self._meta("last_error", None)
            self._drops_unreported.update(dict(db.execute("SELECT kind, n FROM drops_unreported").fetchall()))
            for command_id, at in db.execute("SELECT id, at FROM seen_commands ORDER BY at"):
                self._seen[command_id] = at

    def _fault(self, exc: BaseException) -> None:
        """React to a storage exception (under self._db_lock): recover damage, else note the state."""
        kind = classify(exc)
        if kind == READ_ONLY and self._recoverable_permission():
            kind, cause = DAMAGED, "permission"
        else:
            cause = "damaged"
        if kind == DAMAGED and not self._recovering:
            self._recover(exc, cause)
            return
        if kind == DAMAGED:
            kind = UNAVAILABLE
        if kind != LOCKED and self._db is not None:  # reconnect on retry (e.g. after a remount)
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        with self._mem:
            self._set_storage(kind, f"{self.path}: {exc}")
            self._trim_memory()
            self._mem.notify_all()

    def _recoverable_permission(self) -> bool:
        """The directory is writable but an outbox file is not (mode 0400, a -wal of another user)."""
        if not os.access(self.path.parent, os.W_OK | os.X_OK):
            return False
        return any(p.exists() and not os.access(p, os.R_OK | os.W_OK)
                   for p in (self.path, self._wal, self.path.with_name(self.path.name + "-shm")))

    def _set_storage(self, state: str, error: str) -> None:
        """(under self._mem)"""
        if state != self._storage:
            if state == OK:
                log.warning("outbox storage usable again (was %s); writing out %d held events",
                            self._storage, len(self._queue))
            else:
                log.error("outbox storage %s: %s; events are held in memory (at most %d)",
                          state, error, self.memory_cap)
        self._storage, self._storage_error = state, error
        if state == OK:
            self._overflowing = False

    def _recover(self, exc: BaseException, cause: str) -> None:
        """Set the damaged file aside, salvage its rows into a fresh outbox (under self._db_lock)."""
        self._recovering = True
        try:
            if self._db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._db.close()
                self._db = None
            with self._mem:
                loaded_before = self._loaded
                expected_now = self._backlog_db if loaded_before else None
            aside = self._aside_name()
            try:
                for suffix in ("", "-wal", "-shm"):
                    source = Path(f"{self.path}{suffix}")
                    if source.exists():
                        source.rename(f"{aside}{suffix}")
            except OSError as err:
                with self._mem:
                    self._set_storage(classify(err), f"{self.path}: damaged ({exc}) and cannot be set aside: {err}")
                return
            rows, expected, old_seq = salvage(aside)
            expected = expected_now if expected_now is not None else expected
            with self._mem:
                if old_seq is None and not loaded_before:  # stay above anything the old file published
                    self._next_seq = max(self._next_seq, int(time.time() * 1000))
                if rows:
                    self._next_seq = max(self._next_seq, max(r[0] for r in rows) + 1)
                if old_seq is not None:
                    self._next_seq = max(self._next_seq, old_seq + 1)
                self._meta_dirty = True
            written = False
            if self._connect():
                assert self._db is not None
                try:
                    with self._transaction():
                        before = self._db.total_changes
                        self._db.executemany("INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
                        inserted = self._db.total_changes - before
                        self._set_meta("seq", self._next_seq - 1)
                        self._set_meta("count", self._backlog_db + inserted)
                    self._backlog_db += inserted
                    written = True
                except sqlite3.Error as err:
                    with self._mem:
                        self._set_storage(classify(err), f"{self.path}: {err}")
            if not written:  # no fresh file possible now: hold the salvaged rows in memory
                with self._mem:
                    for row in rows:
                        seq, kind, priority, topic, payload, created, ttl = row
                        self._queue[seq] = _Held(seq, kind, priority, topic, payload, created, ttl, None)
                    self._queue = OrderedDict(sorted(self._queue.items()))
            lost = None if expected is None else max(0, expected - len(rows))
            report = Recovery(salvaged=len(rows), lost=lost, cause=cause, kept_as=aside.name, error=str(exc)[:200])
            log.error("outbox %s unusable (%s): moved it to %s and started a new outbox; salvaged %d rows, "
                      "lost %s", self.path, exc, aside, len(rows), "unknown" if lost is None else lost)
            with self._mem:
                self._recoveries.append(report)
                if written:
                    self._set_storage(OK, "")
                self._mem.notify_all()
        finally:
            self._recovering = False

    def _aside_name(self) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        aside, n = self.path.with_name(f"{self.path.name}.unreadable-{stamp}"), 1
        while any(Path(f"{aside}{s}").exists() for s in ("", "-wal", "-shm")):
            n += 1
            aside = self.path.with_name(f"{self.path.name}.unreadable-{stamp}-{n}")
        return aside

    # --- inside ----------------------------------------------------------------------------------------

    def _drop(self, excess: int) -> list[tuple[int, str]]:
        """Delete the `excess` oldest rows of the lowest priorities (in the writer's transaction)."""
        assert self._db is not None
        dropped: list[tuple[int, str]] = []
        while excess > 0:
            priority = self._db.execute("SELECT MIN(priority) FROM events").fetchone()[0]
            if priority is None:
                break
            victims = self._db.execute("SELECT seq, kind FROM events WHERE priority = ? ORDER BY seq LIMIT ?",
                                       (priority, excess)).fetchall()
            self._db.executemany("DELETE FROM events WHERE seq = ?", [(seq,) for seq, _ in victims])
            dropped += victims
            excess -= len(victims)
        return dropped

    def _meta(self, key: str, default: Any) -> Any:
        assert self._db is not None
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    def _set_meta(self, key: str, value: Any) -> None:
        assert self._db is not None
        self._db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                         (key, value))

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on any error."""
        assert self._db is not None
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


# --- salvage ------------------------------------------------------------------------------------------------

EVENT_COLUMNS = "seq, kind, priority, topic, payload, created, ttl"


def salvage(path: Path) -> tuple[list[tuple], int | None, int | None]:
    """Read what can still be read of a damaged outbox: `(rows, expected_rows, last_seq)`.

    Works on a private copy (the kept file is never modified). Rows are tuples in the events table's column
    order. First a table scan that uses no index (`NOT INDEXED`), resumed past torn pages by rowid ranges;
    if that met damage, every page image of the file and its WAL is scanned for event records as well.
    `expected_rows` / `last_seq` come from the file's own meta table when readable, else None.
    """
    with tempfile.TemporaryDirectory(prefix="outbox-salvage-") as tmp:
        copy = Path(tmp) / "copy.sqlite3"
        try:
            shutil.copyfile(path, copy)
        except OSError as exc:
            log.error("salvage: cannot read %s: %s", path, exc)
            return [], None, None
        with contextlib.suppress(OSError):
            shutil.copyfile(f"{path}-wal", f"{copy}-wal")
        found: dict[int, tuple] = {}
        damaged = False
        expected = last_seq = None
        try:
            db = sqlite3.connect(copy, isolation_level=None)
        except sqlite3.Error:
            db, damaged = None, True
        if db is not None:
            with contextlib.closing(db):
                with contextlib.suppress(sqlite3.Error):
                    meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('count', 'seq')"))
                    expected = int(meta["count"]) if "count" in meta else None
                    last_seq = int(meta["seq"]) if "seq" in meta else None
                damaged = _scan_table(db, found)
        if damaged:
            for row in _scan_pages(copy):
                found.setdefault(row[0], row)
        rows = [found[seq] for seq in sorted(found) if _is_event_row(found[seq])]
        return rows, expected, last_seq


def _is_event_row(row: tuple) -> bool:
    seq, kind, priority, topic, payload, created, ttl = row
    return (isinstance(seq, int) and kind in PRIORITY and isinstance(priority, int) and isinstance(topic, str)
            and isinstance(payload, bytes) and isinstance(created, int | float)
            and (ttl is None or isinstance(ttl, int | float)))


def _scan_table(db: sqlite3.Connection, found: dict[int, tuple]) -> bool:
    """Rows of the events table in rowid order, skipping unreadable ranges; True if any damage was met."""
    damaged, after = False, None
    while True:
        try:
            query = f"SELECT {EVENT_COLUMNS} FROM events NOT INDEXED"
            cursor = db.execute(query + " ORDER BY seq" if after is None else query + " WHERE seq > ? ORDER BY seq",
                                () if after is None else (after,))
            for row in cursor:
                found[row[0]] = row
                after = row[0]
            return damaged
        except sqlite3.DatabaseError:
            damaged = True
            start = 0 if after is None else after + 1
            resume = _next_readable(db, start)
            if resume is None:
                return True
            after = resume - 1


def _next_readable(db: sqlite3.Connection, start: int) -> int | None:
    """The smallest rowid >= start from which a seek reads without error (exponential probe, then bisect)."""
    def readable(at: int) -> bool:
        try:
            db.execute("SELECT seq FROM events NOT INDEXED WHERE seq >= ? ORDER BY seq LIMIT 1", (at,)).fetchall()
            return True
        except sqlite3.DatabaseError:
            return False

    step, high = 1, None
    while start + step < 2**62:
        if readable(start + step):
            high = start + step
            break
        step *= 2
    if high is None:
        return None
    low = start + step // 2 if step > 1 else start  # unreadable (or start itself)
    while high - low > 1:
        middle = (low + high) // 2
        if readable(middle):
            high = middle
        else:
            low = middle
    return high


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """SQLite's big-endian varint at `at`: (value, next offset)."""
    value = 0
    for i in range(8):
        byte = data[at + i]
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, at + i + 1
    return (value << 8) | data[at + 8], at + 9


def _record(payload: bytes) -> list[Any]:
    """Decode one record (https://sqlite.org/fileformat2.html#record_format); raises on malformed input."""
    header_size, at = _varint(payload, 0)
    types = []
    while at < header_size:
        serial, at = _varint(payload, at)
        types.append(serial)
    values: list[Any] = []
    body = header_size
    for serial in types:
        if serial == 0:
            values.append(None)
        elif serial in (1, 2, 3, 4, 5, 6):
            size = (1, 2, 3, 4, 6, 8)[serial - 1]
            values.append(int.from_bytes(payload[body:body + size], "big", signed=True))
            body += size
        elif serial == 7:
            values.append(struct.unpack(">d", payload[body:body + 8])[0])
            body += 8
        elif serial in (8, 9):
            values.append(serial - 8)
        elif serial >= 12:
            size = (serial - 12) // 2
            chunk = payload[body:body + size]
            values.append(chunk.decode() if serial % 2 else bytes(chunk))
            body += size
        else:
            raise ValueError("reserved serial type")
        if body > len(payload):
            raise ValueError("record runs past its payload")
    return values


def _scan_pages(path: Path) -> Iterator[tuple]:
    """Event rows found in any table-leaf page image of the file and its WAL (latest image of each page wins;
    free pages skipped when the header says which). Payloads spilling to overflow pages are followed."""
    try:
        data = path.read_bytes()
    except OSError:
        return
    wal = b""
    with contextlib.suppress(OSError):
        wal = Path(f"{path}-wal").read_bytes()
    page_size = int.from_bytes(data[16:18], "big") if len(data) >= 100 else 0
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        page_size = int.from_bytes(wal[8:12], "big") if len(wal) >= 32 else 4096
        page_size = page_size if 512 <= page_size <= 65536 and not page_size & (page_size - 1) else 4096
    reserved = data[20] if len(data) >= 100 else 0
    pages = {n + 1: data[n * page_size:(n + 1) * page_size] for n in range(len(data) // page_size)}
    if len(wal) >= 32 and int.from_bytes(wal[8:12], "big") == page_size:
        salt = wal[16:24]
        for at in range(32, len(wal) - 24 - page_size + 1, 24 + page_size):
            if wal[at + 8:at + 16] == salt:
                pages[int.from_bytes(wal[at:at + 4], "big")] = wal[at + 24:at + 24 + page_size]
    free = _free_pages(pages, page_size)
    usable = page_size - reserved
    for number, page in pages.items():
        if number in free or len(page) != page_size:
            continue
        yield from _leaf_rows(pages, page, 100 if number == 1 else 0, usable)


def _free_pages(pages: dict[int, bytes], page_size: int) -> set[int]:
    first = pages.get(1, b"")
    if len(first) < 100 or not first.startswith(b"SQLite format 3\x00"):
        return set()
    free, trunk, seen = set(), int.from_bytes(first[32:36], "big"), set()
    while trunk and trunk in pages and trunk not in seen:
        seen.add(trunk)
        page = pages[trunk]
        free.add(trunk)
        count = min(int.from_bytes(page[4:8], "big"), (page_size - 8) // 4)
        free.update(int.from_bytes(page[8 + 4 * i:12 + 4 * i], "big") for i in range(count))
        trunk = int.from_bytes(page[0:4], "big")
    return free


def _leaf_rows(pages: dict[int, bytes], page: bytes, header: int, usable: int) -> Iterator[tuple]:
    if page[header] != 0x0D:  # table b-tree leaf
        return
    cells = int.from_bytes(page[header + 3:header + 5], "big")
    max_local = usable - 35
    min_local = (usable - 12) * 32 // 255 - 23
    for i in range(cells):
        try:
            at = int.from_bytes(page[header + 8 + 2 * i:header + 10 + 2 * i], "big")
            size, at = _varint(page, at)
            rowid, at = _varint(page, at)
            if size <= max_local:
                payload = page[at:at + size]
            else:
                local = min_local + (size - min_local) % (usable - 4)
                local = local if local <= max_local else min_local
                payload, overflow = page[at:at + local], int.from_bytes(page[at + local:at + local + 4], "big")
                while len(payload) < size and overflow in pages:
                    chunk = pages[overflow]
                    payload += chunk[4:usable][:size - len(payload)]
                    overflow = int.from_bytes(chunk[0:4], "big")
            if len(payload) != size:
                continue
            values = _record(payload)
            if len(values) == 7 and values[0] is None:
                row = (rowid, *values[1:])
                if _is_event_row(row):
                    yield row
        except (IndexError, ValueError, UnicodeDecodeError, struct.error):
            continue
