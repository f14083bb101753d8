"""The history store's schema (SQLAlchemy 2 declarative). Changed only through Alembic migrations
(kiosk/recorder/migrations/versions/); `tests/test_recorder.py` checks the migrations build exactly this.

- `events`: one row per kiosk event, unique on the event's `id` (the contract's de-duplication key). The
  columns a report filters or groups on are copied out of the payload and covered by `ix_events_report`
  (kind first: reports aggregate from the index alone and never step over heartbeat rows); `data` keeps the
  kind-specific payload as published. Heartbeat rows are kept only `[recorder] heartbeat_retention_days`
  (they de-duplicate redeliveries meanwhile).
- `presence`: when each kiosk was heard from, as spans (`kiosk.recorder.presence`): offline time and
  heartbeat counts for the whole retention period in ~1/15 of the rows of the heartbeats themselves.

Events carry codes, never people, and the store adds nothing about anyone.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# BIGINT on PostgreSQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
RowId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class Event(Base):
    """One event envelope (docs/asyncapi.yaml `Envelope`) as received."""

    __tablename__ = "events"

    row: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)  # envelope `id`
    site: Mapped[str] = mapped_column(String(64))
    kiosk: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))
    ts_ms: Mapped[int] = mapped_column(BigInteger)  # envelope `time` as Unix milliseconds (UTC)
    time: Mapped[str] = mapped_column(String(40))  # envelope `time` as published (ISO 8601, kiosk's zone)
    received_ms: Mapped[int] = mapped_column(BigInteger)  # when the recorder stored it (Unix ms)
    code: Mapped[str | None] = mapped_column(String(3))  # data.code: an official 3-digit code
    outcome: Mapped[str | None] = mapped_column(String(32))  # precheck data.outcome
    reason: Mapped[str | None] = mapped_column(String(32))  # call* data.reason
    call_id: Mapped[str | None] = mapped_column(String(64))  # call* data.call_id
    available: Mapped[bool | None] = mapped_column()  # reader_status data.available
    catalogue_version: Mapped[str] = mapped_column(String(64))
    data: Mapped[str] = mapped_column(Text)  # envelope `data`, JSON

    __table_args__ = (
        Index("ix_events_ts", "ts_ms"),
        Index("ix_events_report", "kind", "ts_ms", "site", "kiosk", "code", "outcome", "reason", "available",
              "call_id"),
        Index("ix_events_site_ts", "site", "ts_ms"),
        Index("ix_events_kiosk_ts", "site", "kiosk", "ts_ms"),
    )


class Presence(Base):
    """A run of one kiosk's events within one 15-minute UTC slot, consecutive events <= JOIN_MS apart."""

    __tablename__ = "presence"

    row: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(String(64))
    kiosk: Mapped[str] = mapped_column(String(64))
    first_ms: Mapped[int] = mapped_column(BigInteger)  # Unix ms of its first event
    last_ms: Mapped[int] = mapped_column(BigInteger)  # … and of its last (same 15-minute slot)
    heartbeats: Mapped[int] = mapped_column(Integer)  # heartbeat events in it, each counted once

    __table_args__ = (
        Index("ix_presence_kiosk", "site", "kiosk", "first_ms", "last_ms", "heartbeats"),
        Index("ix_presence_time", "first_ms", "site", "kiosk", "last_ms", "heartbeats"),
    )
