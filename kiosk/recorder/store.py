"""The history store: SQLAlchemy 2 over SQLite (one facility, the default) or PostgreSQL (a group of sites).

`open_store(url)` connects and brings the schema up to date with the Alembic migrations shipped in this
package. A SQLite file is created with mode 0600, runs in WAL mode with `synchronous=FULL` (a commit survives
a power cut: the recorder acknowledges an MQTT message only after its commit), and a busy timeout so the
console can read while the recorder writes.

Writes are idempotent on the event id (`INSERT … ON CONFLICT (event_id) DO NOTHING`), so a QoS 1 redelivery or
an outbox replay is absorbed. Queries return plain rows for the pure report code (`kiosk.reports`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, delete, event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from kiosk.recorder.models import Event
from kiosk.reports import Gap, ReportEvent

log = logging.getLogger(__name__)
logging.getLogger("alembic").setLevel(logging.WARNING)  # its INFO lines on every start say nothing to staff

DATABASE_FILE = "history.sqlite3"
HISTORY_LIMIT = 1000  # rows per history page at most
# Kinds a report reads row by row; heartbeats and lamp patterns only matter for offline time (see gaps()).
REPORT_KINDS = ("precheck", "lookup", "call", "call_acknowledged", "call_resolved", "outage_entered",
                "outage_left", "reader_status", "outbox_dropped")


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

    def insert(self, records: Sequence[dict[str, Any]]) -> int:
        """Store event records (`kiosk.recorder.ingest.record_of`) in one transaction; an id already stored
        is skipped. Returns how many rows were new. Raises SQLAlchemyError (the caller retries)."""
        if not records:
            return 0
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        statement = insert(Event).on_conflict_do_nothing(index_elements=["event_id"])
        with self.engine.begin() as connection:
            before = self._count(connection)
            connection.execute(statement, list(records))
            return self._count(connection) - before

    def prune(self, before_ms: int) -> int:
        """Delete events older than `before_ms` (Unix ms); returns how many."""
        with self.engine.begin() as connection:
            return connection.execute(delete(Event).where(Event.ts_ms < before_ms)).rowcount or 0

    # --- reads --------------------------------------------------------------------------------------------

    def count(self) -> int:
        with self.engine.connect() as connection:
            return self._count(connection)

    @staticmethod
    def _count(connection: Any) -> int:
        return int(connection.execute(select(func.count()).select_from(Event)).scalar_one())

    def sites(self) -> list[str]:
        with self.engine.connect() as connection:
            return list(connection.execute(select(Event.site).distinct().order_by(Event.site)).scalars())

    def kind_counts(self, start_ms: int, end_ms: int, sites: Iterable[str] | None = None,
                    kinds: Sequence[str] | None = None) -> dict[str, int]:
        """Events per kind in [start_ms, end_ms), counted in the database."""
        query = select(Event.kind, func.count()).where(Event.ts_ms >= start_ms, Event.ts_ms < end_ms)
        if sites is not None:
            query = query.where(Event.site.in_(list(sites)))
        if kinds is not None:
            query = query.where(Event.kind.in_(list(kinds)))
        with self.engine.connect() as connection:
            return {kind: int(n) for kind, n in connection.execute(query.group_by(Event.kind))}

    def report_events(self, start_ms: int, end_ms: int, sites: Iterable[str] | None = None,
                      kinds: Sequence[str] = REPORT_KINDS) -> list[ReportEvent]:
        """Events of `kinds` with start_ms <= time < end_ms (Unix ms), oldest first; `sites` None = all."""
        query = (select(Event.ts_ms, Event.site, Event.kiosk, Event.kind, Event.code, Event.outcome,
                        Event.reason, Event.call_id, Event.available)
                 .where(Event.ts_ms >= start_ms, Event.ts_ms < end_ms, Event.kind.in_(kinds))
                 .order_by(Event.ts_ms))
        if sites is not None:
            query = query.where(Event.site.in_(list(sites)))
        with self.engine.connect() as connection:
            return [ReportEvent(*row) for row in connection.execute(query)]

    def gaps(self, start_ms: int, end_ms: int, threshold_ms: int, sites: Iterable[str] | None = None,
             now_ms: int | None = None) -> list[Gap]:
        """Silences longer than `threshold_ms` between consecutive events of each kiosk (any kind: a running
        kiosk sends a heartbeat every minute, even with the broker down, since its outbox keeps them), that
        overlap [start_ms, end_ms). A kiosk silent since its last event counts as offline until
        min(end_ms, now_ms). The silence is computed in the database (LAG window), so heartbeats never leave it.
        """
        lookback = start_ms - 86_400_000  # a silence that began up to a day before the range still counts
        previous = func.lag(Event.ts_ms).over(partition_by=(Event.site, Event.kiosk), order_by=Event.ts_ms)
        inner = select(Event.site, Event.kiosk, Event.ts_ms, previous.label("prev")).where(
            Event.ts_ms >= lookback, Event.ts_ms < end_ms)
        last = select(Event.site, Event.kiosk, func.max(Event.ts_ms)).where(
            Event.ts_ms >= lookback, Event.ts_ms < end_ms).group_by(Event.site, Event.kiosk)
        if sites is not None:
            inner = inner.where(Event.site.in_(list(sites)))
            last = last.where(Event.site.in_(list(sites)))
        window = inner.subquery()
        query = select(window.c.site, window.c.kiosk, window.c.prev, window.c.ts_ms).where(
            window.c.prev.is_not(None), window.c.ts_ms - window.c.prev > threshold_ms, window.c.ts_ms > start_ms)
        until = min(end_ms, now_ms) if now_ms is not None else end_ms
        with self.engine.connect() as connection:
            found = [Gap(site, kiosk, prev, ts) for site, kiosk, prev, ts in connection.execute(query)]
            for site, kiosk, newest in connection.execute(last):
                if until - newest > threshold_ms:
                    found.append(Gap(site, kiosk, newest, until))
        return sorted(found)

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

