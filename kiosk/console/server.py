"""The staff console web app (FastAPI): assembles the routers of `kiosk.console.routes`, the security headers,
the static files and the connection to the broker.

A thin adapter: who may do what is decided by `kiosk.console.auth`, what the kiosks are doing by the Hub
(which owns the state on this server's asyncio loop), and every text shown comes from
kiosk/console/locales/<lang>.json. A new concern (reports, history …) is a new router module listed in
`ROUTER_MODULES` (recipe in docs/design.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import RootModel

from kiosk.config import Config
from kiosk.console.auth import Account, LoginThrottle, SessionStore
from kiosk.console.hub import CommandRefused, Hub
from kiosk.console.listeners import Listeners
from kiosk.console.mqtt import ConsoleLink
from kiosk.console.routes import auth, calls, listening, reports, stream
from kiosk.console.routes.dependencies import HERE, LANGUAGES, Console, Refused
from kiosk.jsondata import load_json
from kiosk.locales import locales_dir
from kiosk.recorder.store import Store

# Each has `router = APIRouter()`; add new concerns here (recipe "add a console page/router" in docs/design.md).
ROUTER_MODULES = (auth, stream, calls, listening, reports)
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
HSTS_SECONDS = 31_536_000  # a year
# Request bodies are read (and refused with 413 when too large) before any route parses them.
BODY_LIMITS = {"/login": 4 * 1024, "/logout": 4 * 1024, "/api/command": 1024, "/api/listening": 1024}
BODY_LIMIT_DEFAULT = 16 * 1024
StringsFile = RootModel[dict[str, str]]  # kiosk/console/locales/<lang>.json: string id → text
STAFF_TEXTS = "staff.json"  # catalogue/locales/<lang>/staff.json: the staff texts kiosk and console share


def load_strings() -> dict[str, dict[str, str]]:
    """UI strings per language: the console's own (kiosk/console/locales/<lang>.json) and the staff texts it
    shares with the kiosk's staff screen (catalogue/locales/<lang>/staff.json: lamp.<pattern>, event.<kind>,
    call.title.<reason>, reply.<id>, reader.<cause> ...: one text per id, whoever shows it). Every language must
    have exactly the keys of Japanese, and an id may live in one of the two files only. ValueError names the
    file, the string id and the value."""
    strings = {lang: load_json(HERE / "locales" / f"{lang}.json", StringsFile, ValueError, "console strings").root
               for lang in LANGUAGES}
    for lang, table in strings.items():
        staff_file = locales_dir() / lang / STAFF_TEXTS
        staff = load_json(staff_file, StringsFile, ValueError, "staff texts").root
        both = sorted(set(staff) & set(table))
        if both:
            raise ValueError(f"{staff_file}: {both} also in the console strings {lang}.json (one text per id)")
        table.update(staff)
    for lang, table in strings.items():
        missing, extra = set(strings["ja"]) - set(table), set(table) - set(strings["ja"])
        if missing or extra:
            raise ValueError(f"console locale {lang}: missing {sorted(missing)}, extra {sorted(extra)}")
    return strings


def create_app(config: Config, accounts: dict[str, Account], *, code_info: Callable[[str], dict],
               clock: Callable[[], float] = time.monotonic, history: Store | None = None) -> FastAPI:
    """The console app; its lifespan connects to the broker and disconnects on shutdown. `history`: the event
    store for reports and history (kiosk.recorder); with `[recorder] in_console` the lifespan also runs the
    recorder feeding it."""
    section = config.console
    sites = section.sites or [config.kiosk.site]
    link: ConsoleLink | None = None

    def publish_command(site: str, kiosk: str, payload: dict) -> bool:
        return link is not None and link.publish_command(site, kiosk, payload)

    hub = Hub(sites=sites, code_info=code_info, command_timeout=section.command_timeout_seconds,
              publish_command=publish_command, max_kiosks=section.max_kiosks, timezone=config.facility.timezone)

    def listeners_changed(count: int) -> None:  # on the loop: the presence says it, every page shows it
        if link is not None:
            link.set_listeners(count)
        hub.listeners_changed(count)

    listeners = Listeners(section.listener_expiry_seconds, listeners_changed, clock)

    async def expire_listeners() -> None:
        while True:
            await asyncio.sleep(1.0)
            listeners.expire()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal link
        hub.bind(asyncio.get_running_loop())
        link = ConsoleLink(config.mqtt, sites, hub.post)
        link.start()
        expiry = asyncio.create_task(expire_listeners())
        recorder = None
        if history is not None and config.recorder.in_console:
            from kiosk.recorder import recorded_sites, session_client_id
            from kiosk.recorder.ingest import Recorder

            recorder = Recorder(config.mqtt, history, sites=recorded_sites(config),
                                client_id=session_client_id(config, str(history.engine.url)),
                                session_expiry_hours=config.recorder.session_expiry_hours,
                                retention_days=config.recorder.retention_days,
                                heartbeat_retention_days=config.recorder.heartbeat_retention_days)
            recorder.start()
        if history is not None:
            await _restore_today(hub, history)
        try:
            yield
        finally:
            expiry.cancel()
            link.stop()
            if recorder is not None:
                recorder.stop()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = console = Console(
        section=section, accounts=accounts, strings=load_strings(),
        sessions=SessionStore(section.session_minutes * 60.0, section.display_session_minutes * 60.0, clock),
        throttle=LoginThrottle(section.max_failed_logins, section.lockout_minutes * 60.0, clock),
        hub=hub, listeners=listeners, templates=Jinja2Templates(directory=HERE / "templates"), clock=clock)

    app.state.history = history
    app.state.history_settings = {"timezone": config.facility.timezone,
                                  "offline_after_seconds": config.recorder.offline_after_seconds}

    async def refused(request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, Refused | CommandRefused):
            raise exc
        return console.refusal(request, exc.error, exc.http, **exc.params)

    app.add_exception_handler(Refused, refused)
    app.add_exception_handler(CommandRefused, refused)
    app.add_middleware(SecurityHeaders, hsts=section.tls_cert_file is not None)
    app.add_middleware(BodyLimit)  # added last: runs first, before anything parses a body
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for module in ROUTER_MODULES:
        app.include_router(module.router)
    return app


async def _restore_today(hub: Hub, store: Store) -> None:
    """The live page's "Today" (history lines, lookups and calls per code) from the event store, before the
    first page is served: a restarted console still shows the whole day (docs/history.md)."""
    from sqlalchemy.exc import SQLAlchemyError

    from kiosk.console.state import HISTORY_KINDS

    sites = None if "+" in hub.sites else hub.sites
    try:
        await hub.restore_today(lambda start, end: store.day_events(start, end, HISTORY_KINDS, sites))
    except SQLAlchemyError as exc:
        logging.getLogger(__name__).warning("today's history could not be read from the event store (%s); the "
                                            "page counts what arrives from now on",
                                            str(getattr(exc, "orig", exc))[:200])


class SecurityHeaders:
    """Adds the security headers (and no-store outside /static) to every response; pure ASGI, so the
    live stream passes straight through."""

    def __init__(self, app, hsts: bool = False):
        self.app, self.hsts = app, hsts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        extra = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
        if self.hsts:  # served over TLS by this process: browsers must not fall back to plain HTTP
            extra.append((b"strict-transport-security", f"max-age={HSTS_SECONDS}".encode()))
        if not scope["path"].startswith("/static/"):
            extra.append((b"cache-control", b"no-store"))

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """Pure ASGI: a request body over its path's limit (BODY_LIMITS, else BODY_LIMIT_DEFAULT bytes) is
    answered 413 before any route reads or parses it — by its Content-Length, or while it streams in."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        limit = BODY_LIMITS.get(scope["path"], BODY_LIMIT_DEFAULT)
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > limit:
            return await _too_large(send, limit)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            if size > limit:
                return await _too_large(send, limit)
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _too_large(send, limit: int) -> None:
    body = f'{{"error":"too_large","message":"request body over {limit} bytes"}}'.encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
