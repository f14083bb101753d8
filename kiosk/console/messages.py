"""Turns raw MQTT messages into the inputs of `ConsoleState` (pure). Anything malformed becomes None.

The topic layout and payload shapes are the events contract (`kiosk.events`, docs/asyncapi.yaml); only the
fields the console shows are read, so a newer kiosk adding fields does not break an older console.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, WrapValidator

from kiosk import events, vocabulary

_ID = events.ID_PATTERN
_CODE = r"^[0-9]{3}$"  # the contract's three-digit code
_TEXT_ID = re.compile(r"[a-z0-9_]{1,64}")  # a staff text id: `reply.<detail_id>`, `reader.<cause>`
UNKNOWN_REASON = "unknown"  # a call reason this console does not know (a newer kiosk): shown, not counted


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Outbox(_Lenient):
    backlog: int = Field(ge=0)


def _none_if_invalid(value: Any, handler: Any) -> Any:
    try:
        return handler(value)
    except ValidationError:
        return None


class _Reader(_Lenient):
    available: bool
    cause: Any = None  # read by _text_id / _text_params: a malformed one is dropped, the state still counts
    params: Any = None


class _Outage(_Lenient):
    active: bool
    code: str | None = Field(default=None, pattern=_CODE)


class _StatusDetails(_Lenient):
    """A malformed kiosk-state field is read as absent: presence and the backlog still count."""

    outbox: _Outbox | None = None
    reader: Annotated[_Reader | None, WrapValidator(_none_if_invalid)] = None
    lamp: Annotated[Literal[vocabulary.LAMP_PATTERNS] | None,  # type: ignore[valid-type]
                    WrapValidator(_none_if_invalid)] = None
    outage: Annotated[_Outage | None, WrapValidator(_none_if_invalid)] = None


class _Status(_Lenient):
    state: Literal["online", "offline"]
    details: _StatusDetails = _StatusDetails()


def _zero_if_invalid(value: Any, handler: Any) -> Any:
    try:
        return handler(value)
    except ValidationError:
        return 0


class _Call(_Lenient):
    call_id: str = Field(pattern=_ID)
    reason: Annotated[Literal[vocabulary.CALL_REASONS] | None,  # type: ignore[valid-type]
                      WrapValidator(_none_if_invalid)]
    code: str | None = Field(default=None, pattern=_CODE)
    audience: str | None = Field(default=None, max_length=32)
    since: str | None = Field(default=None, max_length=64)
    acknowledged: bool = False
    escalation: Annotated[int, Field(ge=0, le=events.SENT_TO_DESK), WrapValidator(_zero_if_invalid)] = 0


class _EventData(_Lenient):
    code: str | None = Field(default=None, pattern=_CODE)
    reason: Annotated[Literal[vocabulary.CALL_REASONS] | None,  # type: ignore[valid-type]
                      WrapValidator(_none_if_invalid)] = None
    pattern: Annotated[Literal[vocabulary.LAMP_PATTERNS] | None,  # type: ignore[valid-type]
                       WrapValidator(_none_if_invalid)] = None
    available: bool | None = None
    cause: Any = None  # reader_status: the reader.<cause> staff text id and its params (_text_id, _text_params)
    params: Any = None
    outbox: _Outbox | None = None


class _Event(_Lenient):
    id: str = Field(max_length=64)
    kind: str = Field(pattern=_ID)  # any kind: one a newer kiosk sends keeps the kiosk seen (state.HISTORY_KINDS)
    time: str = Field(max_length=64)
    data: _EventData


@dataclass(frozen=True)
class StatusMessage:
    site: str
    kiosk: str
    status: dict | None  # {"online", "backlog", "reader_ok", "lamp", "outage", "outage_code"}; None = cleared
    # (each but "online" is None when the status did not say: an offline status, or an older kiosk)


@dataclass(frozen=True)
class CallMessage:
    site: str
    kiosk: str
    call: dict | None  # CallView fields, None = cleared


@dataclass(frozen=True)
class EventMessage:
    site: str
    kiosk: str
    event: dict  # {"id", "kind", "time", "data": {code, reason, pattern, available, backlog}}


@dataclass(frozen=True)
class ReplyMessage:
    """A kiosk's answer to a command: `detail_id` names its staff text (`reply.<detail_id>`, rendered with
    `params` in the viewer's language; "" from a kiosk that predates it), `detail` is one English line."""
    correlation: bytes
    ok: bool
    error: str | None
    detail: str
    detail_id: str = ""
    params: dict[str, str] = field(default_factory=dict)


Decoded = StatusMessage | CallMessage | EventMessage | ReplyMessage


def decode(prefix: str, topic: str, payload: bytes, correlation: bytes | None, reply_topic: str) -> Decoded | None:
    """The console's view of one MQTT message, or None when it is not for the console or malformed."""
    if topic == reply_topic:
        return _reply(payload, correlation)
    parsed = events.parse_topic(prefix, topic)
    if parsed is None:
        return None
    site, kiosk, rest = parsed
    if kiosk == "reply" or not _valid_id(site) or not _valid_id(kiosk):
        return None
    if rest == "call":
        if payload == b"":
            return CallMessage(site, kiosk, None)
        call = _model(_Call, payload)
        if call is None:
            return None
        return CallMessage(site, kiosk, {**call.model_dump(), "reason": call.reason or UNKNOWN_REASON})
    if rest == "status":
        if payload == b"":  # someone cleared the retained status: the kiosk was taken out of service
            return StatusMessage(site, kiosk, None)
        status = _model(_Status, payload)
        if status is None:
            return None
        details = status.details
        return StatusMessage(site, kiosk, {
            "online": status.state == "online",
            "backlog": details.outbox.backlog if details.outbox else None,
            "reader_ok": details.reader.available if details.reader else None,
            "reader_cause": _text_id(details.reader.cause) if details.reader else None,
            "reader_params": _text_params(details.reader.params) if details.reader else {},
            "lamp": details.lamp,
            "outage": details.outage.active if details.outage else None,
            "outage_code": details.outage.code if details.outage else None,
        })
    if rest.startswith("event/"):
        event = _model(_Event, payload)
        if event is None or rest != f"event/{event.kind}":
            return None
        data = event.data.model_dump(exclude={"outbox"})
        data["cause"], data["params"] = _text_id(event.data.cause), _text_params(event.data.params)
        data["backlog"] = event.data.outbox.backlog if event.data.outbox else None
        return EventMessage(site, kiosk, {"id": event.id, "kind": event.kind, "time": event.time, "data": data})
    return None


class _Reply(_Lenient):
    ok: bool
    error: str | None = Field(default=None, max_length=64)
    detail: str = Field(default="", max_length=500)
    detail_id: Any = ""  # read by _reply: a malformed one is dropped, the answer still counts
    params: Any = None


def _reply(payload: bytes, correlation: bytes | None) -> ReplyMessage | None:
    reply = _model(_Reply, payload)
    if reply is None or not correlation:
        return None
    return ReplyMessage(correlation, reply.ok, reply.error, reply.detail, _text_id(reply.detail_id) or "",
                        _text_params(reply.params))


def _text_id(value: Any) -> str | None:
    """A staff text id a kiosk sent (a reply's detail_id, a reader cause), or None when it is not one."""
    return value if isinstance(value, str) and _TEXT_ID.fullmatch(value) else None


def _text_params(value: Any) -> dict[str, str]:
    """The placeholders of a staff text a kiosk sent: at most events.MAX_REPLY_PARAMS plain values, names up to
    64 and values up to 200 characters; anything else is dropped."""
    params = value if isinstance(value, dict) else {}
    return {str(name)[:64]: str(item)[:200] for name, item in list(params.items())[:events.MAX_REPLY_PARAMS]
            if isinstance(item, str | int | float) and not isinstance(item, bool)}


def _model(model: type[BaseModel], payload: bytes):
    """`payload` as `model`, or None: size and nesting are limited before parsing (events.load_payload)."""
    try:
        return model.model_validate(events.load_payload(payload))
    except (events.PayloadError, ValidationError):
        return None


def _valid_id(text: str) -> bool:
    return 0 < len(text) <= 64 and all(c.isascii() and (c.isalnum() or c in "_-") for c in text)
