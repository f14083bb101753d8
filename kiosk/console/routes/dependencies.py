"""What every console router shares: the `Console` context and the session / CSRF / role checks as FastAPI
dependencies.

A route states what it needs in its signature and gets it checked before it runs:

    @router.post("/api/thing")
    async def thing(request: Request, console: ConsoleDep, session: StaffSession) -> JSONResponse: ...

`SignedIn` (a live session, else 401 login_required / session_expired), `CsrfChecked` (also the session's
token in the X-CSRF-Token header, else 403 csrf), `StaffSession` (also an account that may command, else 403
display_only). A failed check raises `Refused`, which the app answers as JSON `{error, message}` with the
message in the browser's language (kiosk/console/locales/<lang>.json, key `error.<error>`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from kiosk.config import ConsoleSection
from kiosk.console.auth import Account, LoginThrottle, Session, SessionStore
from kiosk.console.hub import Hub
from kiosk.console.listeners import Listeners
from kiosk.vocabulary import STAFF_LANGUAGES

log = logging.getLogger(__name__)

HERE = Path(str(files("kiosk.console")))
LANGUAGES = STAFF_LANGUAGES  # the console's: the staff texts' (strings, staff.json)
SESSION_COOKIE = "console_session"
LOGIN_CSRF_COOKIE = "console_login_csrf"
LANG_COOKIE = "console_lang"
CSRF_HEADER = "x-csrf-token"
MAX_CONCURRENT_HASHES = 2  # password checks (scrypt, 16 MB each) running at once


@dataclass(frozen=True)
class Console:
    """Everything the routes share; built once by `create_app`, kept on `app.state.console`."""

    section: ConsoleSection
    accounts: dict[str, Account]
    strings: dict[str, dict[str, str]]  # language → string id → text
    sessions: SessionStore
    throttle: LoginThrottle
    hub: Hub
    listeners: Listeners  # its staff pages that can hear a call now (the presence's `listeners`)
    templates: Jinja2Templates
    clock: Callable[[], float]
    hash_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_CONCURRENT_HASHES))

    def lang_of(self, request: Request) -> str:
        """The browser's language: `?lang=`, else its cookie, else `[console] language`."""
        wanted = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE)
        return wanted if wanted in LANGUAGES else self.section.language

    def text(self, lang: str, key: str, **params: str) -> str:
        return self.strings[lang][key].format(**params)

    def page(self, request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        """A template rendered in the browser's language (`t(key, **params)` in the template); remembers a
        language chosen with `?lang=`."""
        lang = self.lang_of(request)
        response = self.templates.TemplateResponse(
            request, template, {"lang": lang, "t": lambda key, **p: self.text(lang, key, **p), **context},
            status_code=status)
        if request.query_params.get("lang") == lang:
            response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="strict")
        return response

    def refusal(self, request: Request, error: str, status: int, **params: str) -> JSONResponse:
        return JSONResponse({"error": error, "message": self.text(self.lang_of(request), f"error.{error}", **params)},
                            status)

    def look_up(self, request: Request) -> tuple[Session | None, str | None]:
        """(session, None) or (None, why not): login_required / session_expired."""
        session, expired = self.sessions.lookup(request.cookies.get(SESSION_COOKIE))
        if session is not None:
            return session, None
        return None, "session_expired" if expired else "login_required"


class Refused(Exception):
    """A request the console will not serve: answered as JSON `{error, message}` with HTTP status `http`;
    `params` fill the message's placeholders. Same shape as the Hub's `CommandRefused`, answered alike."""

    def __init__(self, error: str, http: int, **params: str):
        super().__init__(error)
        self.error, self.http, self.params = error, http, params


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


ConsoleDep = Annotated[Console, Depends(console_of)]


def session_lookup(request: Request, console: ConsoleDep) -> tuple[Session | None, str | None]:
    return console.look_up(request)


SessionLookup = Annotated[tuple[Session | None, str | None], Depends(session_lookup)]


def signed_in(lookup: SessionLookup) -> Session:
    session, why = lookup
    if session is None:
        raise Refused(why or "login_required", 401)
    return session


SignedIn = Annotated[Session, Depends(signed_in)]


def csrf_checked(request: Request, session: SignedIn) -> Session:
    if request.headers.get(CSRF_HEADER) != session.csrf_token:
        log.warning("command refused: missing or wrong CSRF token (user %s)", session.account.name)
        raise Refused("csrf", 403)
    return session


CsrfChecked = Annotated[Session, Depends(csrf_checked)]


def staff_only(session: CsrfChecked) -> Session:
    if not session.account.can_command:
        raise Refused("display_only", 403)
    return session


StaffSession = Annotated[Session, Depends(staff_only)]


BodyT = TypeVar("BodyT", bound=BaseModel)


async def json_body(request: Request, model: type[BodyT]) -> BodyT:
    """The request's JSON body as `model`; anything else (not JSON, a field missing, wrong or extra) is refused
    400 `bad_command`."""
    try:
        return model.model_validate_json(await request.body())
    except ValueError:
        raise Refused("bad_command", 400) from None


def new_token() -> str:
    return secrets.token_urlsafe(32)
