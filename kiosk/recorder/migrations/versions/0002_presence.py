"""presence spans instead of every heartbeat; a covering index for reports.

- `presence` (kiosk.recorder.presence): built here from the events already stored, so offline time stays
  right for them once old heartbeat rows are pruned (`[recorder] heartbeat_retention_days`).
- `ix_events_report` (kind, ts_ms, site, kiosk, code, outcome, reason, available, call_id): a report's
  counts are read from the index alone, kind by kind, never stepping over heartbeat rows.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import itertools
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
REPORT_COLUMNS = ["kind", "ts_ms", "site", "kiosk", "code", "outcome", "reason", "available", "call_id"]


def upgrade() -> None:
    from kiosk.recorder.presence import merge, slot_of

    presence = op.create_table(
        "presence",
        sa.Column("row", RowId, primary_key=True, autoincrement=True),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("kiosk", sa.String(64), nullable=False),
        sa.Column("first_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_ms", sa.BigInteger(), nullable=False),
        sa.Column("heartbeats", sa.Integer(), nullable=False),
    )
    op.create_index("ix_presence_kiosk", "presence", ["site", "kiosk", "first_ms", "last_ms", "heartbeats"])
    op.create_index("ix_presence_time", "presence", ["first_ms", "site", "kiosk", "last_ms", "heartbeats"])
    op.create_index("ix_events_report", "events", REPORT_COLUMNS)

    connection = op.get_bind()
    kiosks = connection.execute(sa.text("SELECT DISTINCT site, kiosk FROM events")).all()
    for site, kiosk in kiosks:  # one kiosk at a time: memory bounded by one kiosk's history
        rows: Any = connection.execute(sa.text(
            "SELECT ts_ms, kind = 'heartbeat' FROM events WHERE site = :site AND kiosk = :kiosk ORDER BY ts_ms"),
            {"site": site, "kiosk": kiosk}).all()
        batch = [{"site": site, "kiosk": kiosk, **span._asdict()}
                 for _slot, group in itertools.groupby(rows, key=lambda r: slot_of(r[0]))
                 for span in merge([], [(ts, int(bool(beat))) for ts, beat in group])]
        for at in range(0, len(batch), 10_000):
            op.bulk_insert(presence, batch[at:at + 10_000])


def downgrade() -> None:
    op.drop_index("ix_events_report", "events")
    op.drop_table("presence")
