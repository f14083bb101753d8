"""The event recorder: every kiosk event stored exactly once, for history and reports (docs/history.md).

- `kiosk.recorder.models`: the schema (SQLAlchemy 2); `migrations/`: its Alembic migrations, applied on open.
- `kiosk.recorder.store`: `open_store(url) -> Store` (SQLite by default, PostgreSQL by URL); queries for the
  console's history and for `kiosk.reports`.
- `kiosk.recorder.ingest`: `Recorder`, the persistent MQTT v5 session feeding the store.

Runs inside `kiosk console` (`[recorder] in_console`, default on) or alone as `kiosk recorder`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from kiosk.config import Config

if TYPE_CHECKING:
    from kiosk.recorder.store import Store


def database_url(config: Config, environ: Mapping[str, str]) -> str:
    """`[recorder] database`, or the default SQLite file in the state directory: systemd's
    `$STATE_DIRECTORY` (the console's /var/lib/kiosk-console, the recorder's /var/lib/kiosk-recorder) when
    set, else `[kiosk] state_dir` (or --state-dir)."""
    from kiosk.recorder.store import default_url

    if config.recorder.database:
        return config.recorder.database
    state = environ.get("STATE_DIRECTORY", "").split(":")[0]
    return default_url(Path(state) if state else config.kiosk.state_dir)


def session_client_id(config: Config, url: str) -> str:
    """`[recorder] client_id`, else `recorder-<hash of the store URL>`: one persistent session per store, so
    two consoles on one broker with stores of their own never take over each other's session."""
    import hashlib

    return config.recorder.client_id or "recorder-" + hashlib.sha256(url.encode()).hexdigest()[:12]


def recorded_sites(config: Config) -> list[str]:
    """`[recorder] sites`, else the console's sites, else `[kiosk] site`; "+" means every site."""
    return config.recorder.sites or config.console.sites or [config.kiosk.site]


def report_from_store(store: Store, first: date, last: date, tz: ZoneInfo, sites: list[str] | None,
                      offline_after_seconds: float, now_ms: int | None = None) -> dict[str, Any]:
    """The report (`kiosk.reports.Report.as_dict()`) of the local days first … last read from `store`:
    counts and call times aggregated in SQL (`Store.report_inputs`), the silences longer than
    `offline_after_seconds` up to `now_ms` (default: now) from the presence spans (`Store.gaps`). The same
    numbers as `kiosk.reports.build_report` over every event (tests/test_recorder.py checks it)."""
    from kiosk.reports import assemble, range_ms

    start_ms, end_ms = range_ms(first, last, tz)
    now_ms = round(time.time() * 1000) if now_ms is None else now_ms
    with ThreadPoolExecutor(max_workers=1) as pool:  # the silences while the counts are read
        silences = pool.submit(store.gaps, start_ms, end_ms, round(offline_after_seconds * 1000), sites, now_ms)
        inputs = store.report_inputs(first, last, tz, sites)
        gaps = silences.result()
    return assemble(inputs.tallies, inputs.kiosk_tallies, inputs.calls, gaps, first, last, tz,
                    sites=sites).as_dict()
