"""`kiosk recorder`: record every kiosk event into the history store, alone (a central site; its own
systemd unit) — `kiosk console` records too unless `[recorder] in_console = false`. See docs/history.md."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading

from kiosk.cli import add_network_options, config_from_args
from kiosk.config import ConfigError

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "recorder", help="store every kiosk event once in the history database (SQLite or PostgreSQL)",
        description="Subscribe with a persistent MQTT v5 session and store each event exactly once; "
                    "see docs/history.md.")
    add_network_options(parser)
    parser.add_argument("--database", metavar="URL",
                        help="SQLAlchemy URL (default [recorder] database, else SQLite in the state directory)")
    parser.add_argument("--site", action="append", metavar="SITE",
                        help="record this site (repeatable; '+' = every site; default [recorder] sites)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from kiosk.recorder import database_url, recorded_sites, session_client_id
    from kiosk.recorder.ingest import Recorder
    from kiosk.recorder.store import StoreError, describe, open_store
    from kiosk.sdnotify import Notifier

    config = config_from_args(args)
    if args.database:
        config.recorder.database = args.database
    if args.site:
        config.recorder.sites = args.site
    url = database_url(config, os.environ)
    try:
        store = open_store(url)
    except StoreError as exc:
        raise ConfigError(str(exc)) from None
    section = config.recorder
    recorder = Recorder(config.mqtt, store, sites=recorded_sites(config),
                        client_id=session_client_id(config, str(store.engine.url)),
                        session_expiry_hours=section.session_expiry_hours, retention_days=section.retention_days,
                        heartbeat_retention_days=section.heartbeat_retention_days)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    recorder.start()
    log.info("recording events into %s", describe(url))
    notifier = Notifier.from_environ()
    notifier.ready(f"recording into {describe(url)}")
    while not stop.wait(60):
        stats = recorder.stats()
        notifier.status(f"{'connected' if stats.connected else 'broker unreachable'}; stored {stats.stored}, "
                        f"duplicates {stats.duplicates}, rejected {stats.rejected}"
                        + (f"; {stats.last_error}" if stats.last_error else ""))
    notifier.stopping()
    recorder.stop()
    store.close()
    return 0
