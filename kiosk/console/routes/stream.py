"""The live page (/) and its Server-Sent Events stream (/api/stream): a full snapshot first, then every
update from the Hub until the session expires (`expired`) or the browser falls too far behind.

A staff account's stream is a listener (kiosk.console.listeners): its snapshot carries the page's `listener` id,
with which the page says whether it is visible (POST /api/listening, routes/listening.py); it stops counting when
the stream ends."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from kiosk.console.auth import Session
from kiosk.console.routes.dependencies import LANGUAGES, Console, ConsoleDep, SessionLookup, SignedIn

KEEPALIVE_SECONDS = 15.0
MAX_BATCH = 1_000  # updates written at once when more are waiting (a flood): one write, each kiosk's row once
router = APIRouter()


@router.get("/", response_class=HTMLResponse)
async def console_page(request: Request, console: ConsoleDep, lookup: SessionLookup) -> Response:
    session, why = lookup
    if session is None:
        return RedirectResponse("/login?why=expired" if why == "session_expired" else "/login", 303)
    lang = console.lang_of(request)
    other = next(code for code in LANGUAGES if code != lang)
    call_settings = {"urgent_seconds": console.section.urgent_seconds,  # the wait shown on each open call
                     "realert_seconds": console.section.realert_seconds,
                     "beat_seconds": console.listeners.beat_seconds}  # a visible page says so this often
    return console.page(request, "console.html", session=session, strings=console.strings[lang],
                        other_lang=other, other_name=console.strings[other]["lang.name"],
                        call_settings=call_settings)


@router.get("/api/stream")
async def stream(console: ConsoleDep, session: SignedIn) -> Response:
    return StreamingResponse(_updates(console, session), media_type="text/event-stream",
                             headers={"X-Accel-Buffering": "no"})


async def _updates(console: Console, session: Session) -> AsyncIterator[str]:
    queue = console.hub.subscribe()
    listener = console.listeners.open(session.token) if session.account.can_command else None
    try:
        yield _sse({"type": "snapshot", **console.hub.snapshot(), "listener": listener})
        while True:
            if console.sessions.lookup(session.token)[0] is None:
                yield _sse({"type": "expired"})
                return
            timeout = min(KEEPALIVE_SECONDS, max(0.1, session.expires_at - console.clock()))
            try:
                update = await asyncio.wait_for(queue.get(), timeout)
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            if update is None:
                return
            batch, ended = [update], False
            while len(batch) < MAX_BATCH and not queue.empty():
                more = queue.get_nowait()
                if more is None:
                    ended = True
                    break
                batch.append(more)
            yield "".join(map(_sse, coalesced(batch)))
            if ended:
                return
    finally:
        console.hub.unsubscribe(queue)
        console.listeners.close(listener)


def coalesced(batch: list[dict]) -> list[dict]:
    """The updates of one write, in order, with each kiosk's `kiosk` updates folded into its first one (carrying
    the latest state: every `kiosk` update is the whole row); a `kiosk_removed` ends the fold for that kiosk. So a
    flood of events from a few kiosks costs the browser one row update per kiosk per write, not one per event."""
    out: list[dict] = []
    open_rows: dict[tuple[str, str], int] = {}  # kiosk -> index in `out` of its row update in this write
    for update in batch:
        if update["type"] == "kiosk":
            key = (update["kiosk"]["site"], update["kiosk"]["kiosk"])
            if key in open_rows:
                out[open_rows[key]] = update
                continue
            open_rows[key] = len(out)
        elif update["type"] == "kiosk_removed":
            open_rows.pop((update["site"], update["kiosk"]), None)
        out.append(update)
    return out


def _sse(update: dict) -> str:
    return f"data: {json.dumps(update, ensure_ascii=False, separators=(',', ':'))}\n\n"
