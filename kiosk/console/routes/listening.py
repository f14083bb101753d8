"""Whether a staff page can hear a call: POST /api/listening `{"listener": <id>, "visible": <bool>}`.

The page sends it when its stream's snapshot arrives, whenever its visibility changes (Page Visibility API) and
every `beat_seconds` while visible; the id is the one its stream's snapshot gave (kiosk.console.listeners).
Answer `{"known": bool}`: false when that stream has ended (the page's EventSource opens a new one and gets a
new id). A hidden page counts until `[console] listener_expiry_seconds` after it was last visible. A staff
session with the CSRF header only: display pages never count.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from kiosk.console.routes.dependencies import ConsoleDep, StaffSession, json_body

router = APIRouter()


class Beat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    listener: str = Field(max_length=64)
    visible: bool


@router.post("/api/listening")
async def listening(request: Request, console: ConsoleDep, session: StaffSession) -> JSONResponse:
    beat = await json_body(request, Beat)
    known = console.listeners.beat(beat.listener, session.token, beat.visible)
    return JSONResponse({"known": known})
