"""The history store: SQLAlchemy 2 over SQLite (one facility, the default) or PostgreSQL (a group of sites).

`open_store(url)` connects and brings the schema up to date with the Alembic migrations shipped in this
package. A SQLite file is created with mode 0600, runs in WAL mode with `synchronous=FULL` (a commit survives
a power cut: the recorder acknowledges an MQTT message only after its commit), and a busy timeout so the
console can read while the recorder writes.

Writes are idempotent on the event id (`INSERT … ON CONFLICT (event_id) DO NOTHING`), so a QoS 1 redelivery or
an outbox replay is absorbed; each write also merges the events into the kiosks' presence spans
(`kiosk.recorder.presence`) in the same transaction. Reports are aggregated in SQL (`report_inputs`, `gaps`)
and assembled by the pure `kiosk.reports.assemble`; nothing reads a month row by row.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from importlib.resources import files
from itertools import groupby
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, create_engine, delete, event, func, insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from kiosk import events
from kiosk.recorder.models import Event, Presence
from kiosk.recorder.presence import JOIN_MS, SLOT_MS, Span, merge, slot_of
from kiosk.reports import (
    ANSWER_WINDOW_MS,
    OFFLINE_LOOKBACK_MS,
    CallTimes,
    Gap,
    KioskTally,
    Tally,
    call_times,
    range_ms,
    slot_ms,
)

log = logging.getLogger(__name__)
logging.getLogger("alembic").setLevel(logging.WARNING)  # its INFO lines on every start say nothing to staff

DATABASE_FILE = "history.sqlite3"
HISTORY_LIMIT = 1000  # rows per history page at most
TODAY_LIMIT = 20_000  # events of one day the console's "Today" is rebuilt from at most
# Kinds counted row by row (ix_events_report, kind first); heartbeats are counted from the presence spans.
COUNTED_KINDS = tuple(sorted(set(events.EVENT_KINDS) - {"heartbeat"}))


class StoreError(Exception):
    """The history store cannot be opened or used; the message says which database and why."""


def default_url(state_dir: Path) -> str:
    """The embedded default: a SQLite file in `state_dir`."""
    return f"sqlite:///{Path(state_dir).resolve() / DATABASE_FILE}"


def describe(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unreadable database URL>"


def open_store(url: str, *, migrate: bool = True, must_exist: bool = False) -> Store:
    """Connect to `url` (sqlite:///PATH or postgresql+psycopg://…) and apply pending migrations.

    Raises StoreError for a malformed URL, an unreachable server, a directory that cannot be created, a
    failed migration, or (`must_exist`, for readers such as `kiosk report`) a SQLite file that is not there.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"[recorder] database {url!r}: not a database URL (sqlite:///PATH or "
                         "postgresql+psycopg://USER@HOST/DB)") from None
    where = describe(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            if must_exist and not Path(parsed.database or "").is_file():
                raise StoreError(f"no event history at {parsed.database}: is the recorder running "
                                 "(kiosk console, or kiosk recorder)? See docs/history.md")
            engine = _sqlite_engine(parsed.database or "")
        elif parsed.get_backend_name() == "postgresql":
            if parsed.drivername == "postgresql":
                parsed = parsed.set(drivername="postgresql+psycopg")
            engine = create_engine(parsed, pool_pre_ping=True)
        else:
            raise StoreError(f"[recorder] database {where}: only SQLite and PostgreSQL are supported")
        store = Store(engine)
        if migrate:
            store.migrate()
        return store
    except OSError as exc:
        raise StoreError(f"history store {where}: {exc}") from None
    except SQLAlchemyError as exc:
        raise StoreError(f"history store {where}: {_first_line(exc)}") from None


def _sqlite_engine(database: str) -> Engine:
    if not database or database == ":memory:":
        raise StoreError("[recorder] database: a SQLite store needs a file (sqlite:///PATH)")
    path = Path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # SQLite gives -wal/-shm the same mode
    os.close(fd)
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine


def _first_line(exc: Exception) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else exc.__class__.__name__


@dataclass(frozen=True)
class ReportInputs:
    """What `kiosk.reports.assemble` needs besides the gaps, aggregated in the database."""

    tallies: list[Tally]
    kiosk_tallies: list[KioskTally]
    calls: list[CallTimes]


@dataclass(frozen=True)
class DayEvent:
    """An event of the console's "Today" (`kiosk.console.state.ConsoleState.restore`)."""

    event_id: str
    time: str
    kind: str
    code: str | None
    reason: str | None
    site: str
    kiosk: str


@dataclass(frozen=True)
class HistoryRow:
    """One event as the console's history shows it: codes, kinds, times and kiosk ids only."""

    time: str
    kind: str
    code: str | None
    outcome: str | None
    reason: str | None
    site: str
    kiosk: str


class Store:
    """One database. Thread-safe (a connection per call from SQLAlchemy's pool)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.dialect = engine.dialect.name

    def migrate(self) -> None:
        """Upgrade the schema to the newest migration shipped in kiosk/recorder/migrations."""
        from alembic import command
        from alembic.config import Config as AlembicConfig

        config = AlembicConfig()
        config.set_main_option("script_location", str(files("kiosk.recorder") / "migrations"))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def close(self) -> None:
        self.engine.dispose()

    # --- writes -------------------------------------------------------------------------------------------

    def insert(self, records: Sequence[dict[str, Any]], *, heartbeat_rows_after_ms: int | None = None) -> int:
        """Store event records (`kiosk.recorder.ingest.record_of`) in one transaction and merge them into the
        kiosks' presence spans; an id already stored is skipped (ON CONFLICT DO NOTHING … RETURNING says which
        rows are new, so a heartbeat is counted once even with two recorders on one store). A heartbeat older
        than `heartbeat_rows_after_ms` (Unix ms; its row would already have been pruned) only marks presence:
        not stored, not counted, so a late redelivery can never count twice. Returns how many events were
        stored, plus such old heartbeats. Raises SQLAlchemyError (the caller retries)."""
        if not records:
            return 0
        unique = list({r["event_id"]: r for r in reversed(records)}.values())[::-1]
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as upsert
        else:
            from sqlalchemy.dialects.sqlite import insert as upsert  # type: ignore[assignment]

        def old(record: dict[str, Any]) -> bool:
            return record["kind"] == "heartbeat" and heartbeat_rows_after_ms is not None \
                and record["ts_ms"] < heartbeat_rows_after_ms

        stored = [r for r in unique if not old(r)]
        with self.engine.begin() as connection:
            new: set[str] = set()
            if stored:
                new = set(connection.execute(upsert(Event).on_conflict_do_nothing(index_elements=["event_id"])
                                             .returning(Event.event_id), stored).scalars())
            self._mark_presence(connection, [(r["site"], r["kiosk"], r["ts_ms"],
                                              int(r["kind"] == "heartbeat" and r["event_id"] in new)) for r in unique])
            return len(new) + len(unique) - len(stored)

    @staticmethod
    def _mark_presence(connection: Any, points: list[tuple[str, str, int, int]]) -> None:
        """Merge (site, kiosk, ts_ms, new heartbeats) into the presence spans: per kiosk, one read of the
        spans of the slots touched, then only the spans that changed are written."""
        points.sort()
        for (site, kiosk), group in groupby(points, key=lambda p: (p[0], p[1])):
            mine = [(ts, n) for _site, _kiosk, ts, n in group]
            low, high = slot_of(mine[0][0]) * SLOT_MS, (slot_of(mine[-1][0]) + 1) * SLOT_MS
            existing: dict[int, list[tuple[int, Span]]] = {}
            for row, first, last, beats in connection.execute(
                    select(Presence.row, Presence.first_ms, Presence.last_ms, Presence.heartbeats).where(
                        Presence.site == site, Presence.kiosk == kiosk, Presence.first_ms >= low,
                        Presence.first_ms < high)):
                existing.setdefault(slot_of(first), []).append((row, Span(first, last, beats)))
            for slot, in_slot in groupby(mine, key=lambda p: slot_of(p[0])):
                old = sorted(existing.get(slot, []), key=lambda item: item[1])
                new = merge([span for _row, span in old], in_slot)
                if new == [span for _row, span in old]:
                    continue
                for (row, _span), span in zip(old, new, strict=False):
                    connection.execute(update(Presence).where(Presence.row == row).values(**span._asdict()))
                if len(old) > len(new):
                    connection.execute(delete(Presence).where(Presence.row.in_([row for row, _ in old[len(new):]])))
                if len(new) > len(old):
                    connection.execute(insert(Presence), [{"site": site, "kiosk": kiosk, **span._asdict()}
                                                          for span in new[len(old):]])

    def prune(self, before_ms: int, heartbeats_before_ms: int | None = None) -> int:
        """Delete events and presence spans older than `before_ms` (Unix ms), and heartbeat rows older than
        `heartbeats_before_ms` (their presence stays); returns how many events."""
        with self.engine.begin() as connection:
            removed = connection.execute(delete(Event).where(Event.ts_ms < before_ms)).rowcount or 0
            if heartbeats_before_ms is not None:
                removed += connection.execute(delete(Event).where(
                    Event.ts_ms < heartbeats_before_ms, Event.kind == "heartbeat")).rowcount or 0
            connection.execute(delete(Presence).where(Presence.first_ms < before_ms))
            return removed

    # --- reads --------------------------------------------------------------------------------------------

    def count(self) -> int:
        with self.engine.connect() as connection:
            return self._count(connection)

    @staticmethod
    def _count(connection: Any) -> int:
        return int(connection.execute(select(func.count()).select_from(Event)).scalar_one())

    def last_seq(self, site: str, kiosk: str, recent: int = 1000) -> int:
        """The highest `seq` among the `recent` newest events stored for one kiosk (0: none), read through
        ix_events_kiosk_ts; the recorder's starting point for gaps in that kiosk's numbering."""
        newest = select(Event.seq).where(Event.site == site, Event.kiosk == kiosk) \
            .order_by(Event.ts_ms.desc()).limit(recent).subquery()
        with self.engine.connect() as connection:
            return int(connection.execute(select(func.coalesce(func.max(newest.c.seq), 0))).scalar_one())

    def sites(self) -> list[str]:
        with self.engine.connect() as connection:
            return list(connection.execute(select(Event.site).distinct().order_by(Event.site)).scalars())

    def report_inputs(self, first: date, last: date, tz: ZoneInfo,
                      sites: Iterable[str] | None = None) -> ReportInputs:
        """The counts and call times of the local days first … last, aggregated in SQL: events per
        `kiosk.reports.slot_ms` slot and per kiosk (heartbeats from the presence spans), and one row per
        call raised in the range with its first answers. Reads only `ix_events_report` and `ix_presence_time`.
        """
        start_ms, end_ms = range_ms(first, last, tz)
        slot = slot_ms(first, last, tz)
        chosen = list(sites) if sites is not None else None

        def where(query: Any, column: Any, low: int, high: int) -> Any:
            query = query.where(column >= low, column < high)
            return query if chosen is None else query.where(column.table.c.site.in_(chosen))

        columns = (Event.kind, Event.code, Event.outcome, Event.reason, Event.available)
        position = ((Event.ts_ms - start_ms) // slot).label("slot")
        per_slot = where(select(position, *columns, func.count()), Event.ts_ms, start_ms, end_ms).where(
            Event.kind.in_(COUNTED_KINDS)).group_by(position, *columns)
        # grouped by coalesce(…): the rows come from the covering index, not from the (site, kiosk, ts) index
        # that SQLite's planner would otherwise walk whole for its order
        site, kiosk = func.coalesce(Event.site, ""), func.coalesce(Event.kiosk, "")
        per_kiosk = where(select(site, kiosk, *columns, func.count()), Event.ts_ms, start_ms,
                          end_ms).where(Event.kind.in_(COUNTED_KINDS)).group_by(site, kiosk, *columns)
        beats_at = ((Presence.first_ms - start_ms) // slot).label("slot")
        beats = where(select(beats_at, func.sum(Presence.heartbeats)), Presence.first_ms, start_ms, end_ms).where(
            Presence.heartbeats > 0).group_by(beats_at)
        kiosk_beats = where(select(Presence.site, Presence.kiosk, func.sum(Presence.heartbeats)), Presence.first_ms,
                            start_ms, end_ms).where(Presence.heartbeats > 0).group_by(Presence.site, Presence.kiosk)
        raised = where(select(Event.site, Event.kiosk, Event.call_id, func.min(Event.ts_ms)), Event.ts_ms, start_ms,
                       end_ms).where(Event.kind == "call", Event.call_id.is_not(None)).group_by(
            Event.site, Event.kiosk, Event.call_id)
        answers = where(select(Event.site, Event.kiosk, Event.call_id, Event.kind, Event.ts_ms), Event.ts_ms, start_ms,
                        end_ms + ANSWER_WINDOW_MS).where(Event.kind.in_(("call_acknowledged", "call_resolved")),
                                                         Event.call_id.is_not(None))
        # the two big groupings in parallel, each on its own connection (SQLite WAL readers and PostgreSQL
        # backends run side by side; the driver releases the GIL while the database works)
        with ThreadPoolExecutor(max_workers=3) as pool:
            slots, kiosks, small = (pool.submit(self._fetch, *queries) for queries in
                                    ((per_slot,), (per_kiosk,), (beats, kiosk_beats, raised, answers)))
            (slot_rows,), (kiosk_rows,), (beat_rows, kiosk_beat_rows, raised_rows, answer_rows) = (
                slots.result(), kiosks.result(), small.result())
        tallies = [Tally(start_ms + n * slot, kind, code, outcome, reason, available, count)
                   for n, kind, code, outcome, reason, available, count in slot_rows]
        tallies += [Tally(start_ms + n * slot, "heartbeat", None, None, None, None, int(k)) for n, k in beat_rows]
        kiosk_tallies = [KioskTally(*row) for row in kiosk_rows]
        kiosk_tallies += [KioskTally(site, kiosk, "heartbeat", None, None, None, None, int(k))
                          for site, kiosk, k in kiosk_beat_rows]
        calls = call_times({(site, kiosk, call_id): when for site, kiosk, call_id, when in raised_rows},
                           answer_rows, end_ms)
        return ReportInputs(tallies, kiosk_tallies, calls)

    def _fetch(self, *queries: Any) -> list[list[Any]]:
        """The rows of each query, read on one connection of the pool."""
        with self.engine.connect() as connection:
            return [list(connection.execute(query)) for query in queries]

    def gaps(self, start_ms: int, end_ms: int, threshold_ms: int, sites: Iterable[str] | None = None,
             now_ms: int | None = None) -> list[Gap]:
        """`kiosk.reports.silences` of the stored events, found between consecutive presence spans in SQL
        (a running window maximum, so even overlapping spans written by two recorders at once are right).
        `threshold_ms` must be at least `kiosk.recorder.presence.JOIN_MS` (ValueError otherwise): a shorter
        silence may lie inside a span."""
        if threshold_ms < JOIN_MS:
            raise ValueError(f"an offline threshold under {JOIN_MS / 1000:g} s cannot be told from presence spans")
        lookback = start_ms - OFFLINE_LOOKBACK_MS
        window = [Presence.first_ms >= lookback - SLOT_MS, Presence.last_ms >= lookback, Presence.first_ms < end_ms]
        if sites is not None:
            window.append(Presence.site.in_(list(sites)))
        previous = func.max(Presence.last_ms).over(partition_by=(Presence.site, Presence.kiosk),
                                                   order_by=Presence.first_ms, rows=(None, -1))
        spans = select(Presence.site, Presence.kiosk, Presence.first_ms, previous.label("prev")).where(
            *window).subquery()
        query = select(spans.c.site, spans.c.kiosk, spans.c.prev, spans.c.first_ms).where(
            spans.c.prev.is_not(None), spans.c.first_ms - spans.c.prev > threshold_ms, spans.c.first_ms > start_ms)
        last = select(Presence.site, Presence.kiosk, func.max(Presence.last_ms)).where(*window).group_by(
            Presence.site, Presence.kiosk)
        until = min(end_ms, now_ms) if now_ms is not None else end_ms
        with self.engine.connect() as connection:
            between: list[Any] = list(connection.execute(query))
            newest: list[Any] = list(connection.execute(last))
        found = [Gap(site, kiosk, prev, ts) for site, kiosk, prev, ts in between]
        found += [Gap(site, kiosk, last_ms, until) for site, kiosk, last_ms in newest if until - last_ms > threshold_ms]
        return sorted(found)

    def day_events(self, start_ms: int, end_ms: int, kinds: Sequence[str],
                   sites: Iterable[str] | None = None) -> list[DayEvent]:
        """Events of `kinds` in [start_ms, end_ms), oldest first, at most TODAY_LIMIT (the newest)."""
        query = select(Event.event_id, Event.time, Event.kind, Event.code, Event.reason, Event.site,
                       Event.kiosk).where(Event.ts_ms >= start_ms, Event.ts_ms < end_ms, Event.kind.in_(kinds))
        if sites is not None:
            query = query.where(Event.site.in_(list(sites)))
        with self.engine.connect() as connection:
            rows = [DayEvent(*row) for row in connection.execute(
                query.order_by(Event.ts_ms.desc(), Event.row.desc()).limit(TODAY_LIMIT))]
        return rows[::-1]

    def history(self, start_ms: int, end_ms: int, *, sites: Iterable[str] | None = None,
                kiosk: str | None = None, kind: str | None = None, code: str | None = None,
                limit: int = HISTORY_LIMIT, newest_first: bool = True) -> list[HistoryRow]:
        """Events in [start_ms, end_ms) filtered by site(s), kiosk, kind and code; heartbeats are left out."""
        query = select(Event.time, Event.kind, Event.code, Event.outcome, Event.reason, Event.site,
                       Event.kiosk).where(Event.ts_ms >= start_ms, Event.ts_ms < end_ms, Event.kind != "heartbeat")
        if sites is not None:
            query = query.where(Event.site.in_(list(sites)))
        for column, value in ((Event.kiosk, kiosk), (Event.kind, kind), (Event.code, code)):
            if value:
                query = query.where(column == value)
        query = query.order_by(Event.ts_ms.desc() if newest_first else Event.ts_ms).limit(min(limit, HISTORY_LIMIT))
        with self.engine.connect() as connection:
            return [HistoryRow(*row) for row in connection.execute(query)]

