"""Alembic environment for the history store: run by `kiosk.recorder.store.migrate` with a live connection
(`config.attributes["connection"]`); never reads alembic.ini or the environment."""

from __future__ import annotations

from alembic import context

from kiosk.recorder.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
