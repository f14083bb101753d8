"""Wires `kiosk console`: checks the setup, loads catalogue and accounts, serves with uvicorn."""

from __future__ import annotations

import logging

from kiosk.config import Config

log = logging.getLogger(__name__)


class ConsoleSetupError(Exception):
    """The console cannot start; the message says what to fix."""


def build_app(config: Config):
    """The FastAPI app for `config`, or ConsoleSetupError naming what is missing or wrong."""
    from kiosk.broker import new_client
    from kiosk.catalogue import CatalogueError, load_catalogue
    from kiosk.console.auth import AccountsError, load_accounts
    from kiosk.console.codes import code_info_for
    from kiosk.console.server import create_app

    section = config.console
    if (section.tls_cert_file is None) != (section.tls_key_file is None):
        raise ConsoleSetupError("[console] tls_cert_file and tls_key_file go together: set both or neither")
    for path in (section.tls_cert_file, section.tls_key_file):
        if path is not None and not path.is_file():
            raise ConsoleSetupError(f"[console] TLS file not found: {path}")
    if section.accounts_file is None:
        raise ConsoleSetupError("[console] accounts_file is not set: nobody could log in "
                                "(see systemd/console-accounts.example.toml and docs/console.md)")
    new_client(config.mqtt, "check")  # broker URL, password file and TLS files fail here as ConfigError
    try:
        accounts = load_accounts(section.accounts_file)
        catalogue = load_catalogue()
    except (AccountsError, CatalogueError) as exc:
        raise ConsoleSetupError(str(exc)) from None
    return create_app(config, accounts, code_info=code_info_for(catalogue, config.facility),
                      history=_history_store(config))


def _history_store(config: Config):
    """The event store for reports (docs/history.md): opened when this console records
    (`[recorder] in_console`) or reads a store another recorder fills (`[recorder] database`); else None."""
    import os

    from kiosk.recorder import database_url
    from kiosk.recorder.store import StoreError, open_store

    if not (config.recorder.in_console or config.recorder.database):
        return None
    try:
        return open_store(database_url(config, os.environ))
    except StoreError as exc:
        raise ConsoleSetupError(str(exc)) from None


def serve(config: Config) -> int:
    """Run the console until interrupted."""
    import uvicorn

    app = build_app(config)
    host, _, port = config.console.listen.rpartition(":")
    section = config.console
    server = uvicorn.Server(uvicorn.Config(
        app, host=host.strip("[]"), port=int(port), log_config=None, access_log=False,
        proxy_headers=True, forwarded_allow_ips="127.0.0.1",
        timeout_graceful_shutdown=2,  # live streams never end by themselves: don't wait for them on stop
        ssl_certfile=section.tls_cert_file and str(section.tls_cert_file),
        ssl_keyfile=section.tls_key_file and str(section.tls_key_file)))
    scheme = "https" if section.tls_cert_file else "http"
    log.info("staff console on %s://%s (sites: %s)", scheme, section.listen,
             ", ".join(section.sites or [config.kiosk.site]))
    server.run()
    return 0
