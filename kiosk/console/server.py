"""The staff console web app (FastAPI): login, the live page, Server-Sent Events, staff commands.

A thin adapter: who may do what is decided by `kiosk.console.auth`, what the kiosks are doing by the Hub
(which owns the state on this server's asyncio loop), and every text shown comes from
kiosk/console/locales/<lang>.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from kiosk.config import Config
from kiosk.console.auth import Account, LoginThrottle, Session, SessionStore, authenticate
from kiosk.console.hub import CommandRefused, Hub
from kiosk.console.mqtt import ConsoleLink

log = logging.getLogger(__name__)

HERE = Path(str(files("kiosk.console")))
LANGUAGES = ("ja", "en")
SESSION_COOKIE = "console_session"
LOGIN_CSRF_COOKIE = "console_login_csrf"
LANG_COOKIE = "console_lang"
CSRF_HEADER = "x-csrf-token"
KEEPALIVE_SECONDS = 15.0
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def load_strings() -> dict[str, dict[str, str]]:
    """UI strings per language; every language must have exactly the keys of Japanese."""
    strings = {lang: json.loads((HERE / "locales" / f"{lang}.json").read_text(encoding="utf-8")) for lang in LANGUAGES}
    for lang, table in strings.items():
        missing, extra = set(strings["ja"]) - set(table), set(table) - set(strings["ja"])
        if missing or extra:
            raise ValueError(f"console locale {lang}: missing {sorted(missing)}, extra {sorted(extra)}")
    return strings


class CommandRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    site: str = Field(max_length=64)
    kiosk: str = Field(max_length=64)
    name: str = Field(max_length=64)
    call_id: str = Field(max_length=64)


def create_app(config: Config, accounts: dict[str, Account], *, code_info: Callable[[str], dict],
               clock: Callable[[], float] = time.monotonic) -> FastAPI:
    """The console app; its lifespan connects to the broker and disconnects on shutdown."""
    section = config.console
    sites = section.sites or [config.kiosk.site]
    strings = load_strings()
    sessions = SessionStore(section.session_minutes * 60.0, section.display_session_minutes * 60.0, clock)
    throttle = LoginThrottle(section.max_failed_logins, section.lockout_minutes * 60.0, clock)
    link: ConsoleLink | None = None

    def publish_command(site: str, kiosk: str, payload: dict) -> bool:
        return link is not None and link.publish_command(site, kiosk, payload)

    hub = Hub(sites=sites, code_info=code_info, command_timeout=section.command_timeout_seconds,
              publish_command=publish_command)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal link
        hub.bind(asyncio.get_running_loop())
        link = ConsoleLink(config.mqtt, sites, hub.post)
        link.start()
        try:
            yield
        finally:
            link.stop()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")

    def lang_of(request: Request) -> str:
        wanted = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE)
        return wanted if wanted in LANGUAGES else section.language

    def text(lang: str, key: str, **params: str) -> str:
        return strings[lang][key].format(**params)

    def page(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
        lang = lang_of(request)
        response = templates.TemplateResponse(
            request, template, {"lang": lang, "t": lambda key, **p: text(lang, key, **p), **context},
            status_code=status)
        if request.query_params.get("lang") == lang:
            response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="strict")
        return response

    def refuse(request: Request, error: str, status: int, **params: str) -> JSONResponse:
        return JSONResponse({"error": error, "message": text(lang_of(request), f"error.{error}", **params)}, status)

    def current(request: Request) -> tuple[Session | None, str | None]:
        """(session, None) or (None, why not): login_required / session_expired."""
        session, expired = sessions.lookup(request.cookies.get(SESSION_COOKIE))
        if session is not None:
            return session, None
        return None, "session_expired" if expired else "login_required"

    @app.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request) -> HTMLResponse:
        notice = {"expired": "error.session_expired", "out": "login.logged_out"}.get(
            request.query_params.get("why", ""))
        return _login_page(request, None, 200, notice)

    def _login_page(request: Request, error: str | None, status: int, notice: str | None = None,
                    **params: str) -> HTMLResponse:
        lang = lang_of(request)
        token = request.cookies.get(LOGIN_CSRF_COOKIE) or _new_token()
        response = page(request, "login.html", status, csrf=token,
                        error=text(lang, f"error.{error}", **params) if error else None,
                        notice=text(lang, notice) if notice else None, languages=LANGUAGES,
                        names={code: strings[code]["lang.name"] for code in LANGUAGES})
        response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        return response

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        name, password = str(form.get("name", ""))[:64], str(form.get("password", ""))[:256]
        expected = request.cookies.get(LOGIN_CSRF_COOKIE)
        if not expected or form.get("csrf") != expected:
            return _login_page(request, "csrf", 403)
        keys = (f"account:{name}", f"address:{request.client.host if request.client else '?'}")
        wait = throttle.retry_after(*keys)
        if wait > 0:
            log.warning("login refused: too many failures (account or address throttled)")
            return _login_page(request, "locked", 429, minutes=str(max(1, round(wait / 60))))
        account = await run_in_threadpool(authenticate, accounts, name, password)
        if account is None:
            throttle.failed(*keys)
            log.warning("failed console login")
            return _login_page(request, "bad_login", 401)
        throttle.succeeded(*keys)
        session = sessions.create(account)
        log.info("console login: %s (%s)", account.name, account.role)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(SESSION_COOKIE, session.token, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", max_age=round(session.expires_at - clock()))
        response.delete_cookie(LOGIN_CSRF_COOKIE)
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        session, _ = current(request)
        form = await request.form()
        if session is not None and form.get("csrf") == session.csrf_token:
            sessions.end(session.token)
        elif session is not None:
            return refuse(request, "csrf", 403)
        response = RedirectResponse("/login?why=out", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    @app.get("/", response_class=HTMLResponse)
    async def console_page(request: Request) -> Response:
        session, why = current(request)
        if session is None:
            return RedirectResponse("/login?why=expired" if why == "session_expired" else "/login", 303)
        lang = lang_of(request)
        return page(request, "console.html", session=session, strings=strings[lang],
                    other_lang=next(code for code in LANGUAGES if code != lang),
                    other_name=strings[next(code for code in LANGUAGES if code != lang)]["lang.name"])

    @app.get("/api/session")
    async def session_info(request: Request) -> JSONResponse:
        session, why = current(request)
        if session is None:
            return refuse(request, why, 401)
        return JSONResponse({"name": session.account.name, "role": session.account.role,
                             "expires_in": round(session.expires_at - clock())})

    @app.get("/api/stream")
    async def stream(request: Request) -> Response:
        session, why = current(request)
        if session is None:
            return refuse(request, why, 401)
        return StreamingResponse(_updates(session), media_type="text/event-stream",
                                 headers={"X-Accel-Buffering": "no"})

    async def _updates(session: Session) -> AsyncIterator[str]:
        queue = hub.subscribe()
        try:
            yield _sse({"type": "snapshot", **hub.snapshot()})
            while True:
                if sessions.lookup(session.token)[0] is None:
                    yield _sse({"type": "expired"})
                    return
                timeout = min(KEEPALIVE_SECONDS, max(0.1, session.expires_at - clock()))
                try:
                    update = await asyncio.wait_for(queue.get(), timeout)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                if update is None:
                    return
                yield _sse(update)
        finally:
            hub.unsubscribe(queue)

    @app.post("/api/command")
    async def command(request: Request) -> JSONResponse:
        session, why = current(request)
        if session is None:
            return refuse(request, why, 401)
        if request.headers.get(CSRF_HEADER) != session.csrf_token:
            log.warning("command refused: missing or wrong CSRF token (user %s)", session.account.name)
            return refuse(request, "csrf", 403)
        if not session.account.can_command:
            return refuse(request, "display_only", 403)
        try:
            body = CommandRequest.model_validate_json(await request.body())
        except ValueError:
            return refuse(request, "bad_command", 400)
        try:
            answer = await hub.command(body.site, body.kiosk, body.name, body.call_id)
        except CommandRefused as refused:
            log.warning("command %s for %s/%s refused: %s", body.name, body.site, body.kiosk, refused.error)
            return refuse(request, refused.error, refused.http, **refused.params)
        log.info("%s sent %s to %s/%s: ok=%s", session.account.name, body.name, body.site, body.kiosk, answer.ok)
        return JSONResponse({"ok": answer.ok, "error": answer.error, "detail": answer.detail})

    return app


class SecurityHeaders:
    """Adds the security headers (and no-store outside /static) to every response; pure ASGI, so the
    live stream passes straight through."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        extra = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
        if not scope["path"].startswith("/static/"):
            extra.append((b"cache-control", b"no-store"))

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _sse(update: dict) -> str:
    return f"data: {json.dumps(update, ensure_ascii=False, separators=(',', ':'))}\n\n"


def _new_token() -> str:
    return secrets.token_urlsafe(32)
