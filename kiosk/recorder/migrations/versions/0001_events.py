"""events: one row per kiosk event, unique on the event id.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("row", RowId, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("kiosk", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("time", sa.String(40), nullable=False),
        sa.Column("received_ms", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.String(3), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=True),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("call_id", sa.String(64), nullable=True),
        sa.Column("available", sa.Boolean(), nullable=True),
        sa.Column("catalogue_version", sa.String(64), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
    )
    op.create_index("ix_events_ts", "events", ["ts_ms"])
    op.create_index("ix_events_site_ts", "events", ["site", "ts_ms"])
    op.create_index("ix_events_kiosk_ts", "events", ["site", "kiosk", "ts_ms"])


def downgrade() -> None:
    op.drop_table("events")
