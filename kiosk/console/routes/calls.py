"""Staff commands on a kiosk's open call: POST /api/command (`acknowledge` / `resolve`).

Only a staff session with the CSRF header gets here (`StaffSession`); which kiosk and call may be commanded,
and the kiosk's answer or timeout, are the Hub's (`kiosk.console.hub`).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from kiosk.console.hub import CommandRefused
from kiosk.console.routes.dependencies import ConsoleDep, StaffSession, json_body

log = logging.getLogger(__name__)
router = APIRouter()


class CommandRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    site: str = Field(max_length=64)
    kiosk: str = Field(max_length=64)
    name: str = Field(max_length=64)
    call_id: str = Field(max_length=64)


@router.post("/api/command")
async def command(request: Request, console: ConsoleDep, session: StaffSession) -> JSONResponse:
    body = await json_body(request, CommandRequest)
    try:
        answer = await console.hub.command(body.site, body.kiosk, body.name, body.call_id)
    except CommandRefused as refused:
        log.warning("command %s for %s/%s refused: %s", body.name, body.site, body.kiosk, refused.error)
        raise  # answered like Refused
    log.info("%s sent %s to %s/%s: ok=%s", session.account.name, body.name, body.site, body.kiosk, answer.ok)
    return JSONResponse({"ok": answer.ok, "error": answer.error, "detail": answer.detail,
                         "detail_id": answer.detail_id, "params": answer.params})
