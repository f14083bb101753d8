"""Login and logout: /login (form with a CSRF cookie, POST), /logout, /api/session.

Who may log in is decided by `kiosk.console.auth` (accounts, scrypt hashes, the failed-login throttle);
this router only speaks HTTP.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from kiosk.console.auth import authenticate
from kiosk.console.routes.dependencies import (
    LANGUAGES,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Console,
    ConsoleDep,
    Refused,
    SessionLookup,
    SignedIn,
    new_token,
)
from kiosk.ratelog import RateLimitedLog

log = logging.getLogger(__name__)
_refusals = RateLimitedLog(log)
router = APIRouter()
MAX_WAITING_LOGINS = 32  # logins queued for a password check; more are answered "busy" at once
_waiting = [0]  # logins now waiting for or running a password check (on the server's one event loop)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, console: ConsoleDep) -> HTMLResponse:
    notice = {"expired": "error.session_expired", "out": "login.logged_out"}.get(request.query_params.get("why", ""))
    return _login_page(console, request, None, 200, notice)


@router.post("/login")
async def login(request: Request, console: ConsoleDep) -> Response:
    form = await request.form()
    name, password = str(form.get("name", ""))[:64], str(form.get("password", ""))[:256]
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not expected or form.get("csrf") != expected:
        return _login_page(console, request, "csrf", 403)
    address = request.client.host if request.client else "?"
    if _waiting[0] >= MAX_WAITING_LOGINS:  # before the reservation: "busy" must not count as a failed login
        _refusals.warning("busy", "login refused: %d logins already waiting for a password check", _waiting[0])
        return _login_page(console, request, "busy", 503)
    wait = console.throttle.reserve(name, address)  # counted before the hash runs: parallel tries cannot race it
    if wait > 0:
        _refusals.warning("locked", "login refused: too many failures (account or address throttled)")
        return _login_page(console, request, "locked", 429, minutes=str(max(1, round(wait / 60))))
    _waiting[0] += 1
    try:
        async with console.hash_slots:  # each scrypt check takes 16 MB: only a few at a time
            account = await run_in_threadpool(authenticate, console.accounts, name, password)
    finally:
        _waiting[0] -= 1
    if account is None:
        _refusals.warning("failed", "failed console login")
        return _login_page(console, request, "bad_login", 401)
    console.throttle.succeeded(name, address)
    session = console.sessions.create(account)
    log.info("console login: %s (%s)", account.name, account.role)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(SESSION_COOKIE, session.token, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", max_age=round(session.expires_at - console.clock()))
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout")
async def logout(request: Request, console: ConsoleDep, lookup: SessionLookup) -> Response:
    session, _ = lookup
    form = await request.form()
    if session is not None and form.get("csrf") == session.csrf_token:
        console.sessions.end(session.token)
    elif session is not None:
        raise Refused("csrf", 403)
    response = RedirectResponse("/login?why=out", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/api/session")
async def session_info(console: ConsoleDep, session: SignedIn) -> JSONResponse:
    return JSONResponse({"name": session.account.name, "role": session.account.role,
                         "expires_in": round(session.expires_at - console.clock())})


def _login_page(console: Console, request: Request, error: str | None, status: int, notice: str | None = None,
                **params: str) -> HTMLResponse:
    lang = console.lang_of(request)
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or new_token()
    response = console.page(request, "login.html", status, csrf=token,
                            error=console.text(lang, f"error.{error}", **params) if error else None,
                            notice=console.text(lang, notice) if notice else None, languages=LANGUAGES,
                            names={code: console.strings[code]["lang.name"] for code in LANGUAGES})
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response
