"""The event recorder: every kiosk event stored exactly once, for history and reports (docs/history.md).

- `kiosk.recorder.models`: the schema (SQLAlchemy 2); `migrations/`: its Alembic migrations, applied on open.
- `kiosk.recorder.store`: `open_store(url) -> Store` (SQLite by default, PostgreSQL by URL); queries for the
  console's history and for `kiosk.reports`.
- `kiosk.recorder.ingest`: `Recorder`, the persistent MQTT v5 session feeding the store.

Runs inside `kiosk console` (`[recorder] in_console`, default on) or alone as `kiosk recorder`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from kiosk.config import Config


def database_url(config: Config, environ: Mapping[str, str]) -> str:
    """`[recorder] database`, or the default SQLite file in the state directory: systemd's
    `$STATE_DIRECTORY` (the console's /var/lib/kiosk-console, the recorder's /var/lib/kiosk-recorder) when
    set, else `[kiosk] state_dir` (or --state-dir)."""
    from kiosk.recorder.store import default_url

    if config.recorder.database:
        return config.recorder.database
    state = environ.get("STATE_DIRECTORY", "").split(":")[0]
    return default_url(Path(state) if state else config.kiosk.state_dir)


def recorded_sites(config: Config) -> list[str]:
    """`[recorder] sites`, else the console's sites, else `[kiosk] site`; "+" means every site."""
    return config.recorder.sites or config.console.sites or [config.kiosk.site]
