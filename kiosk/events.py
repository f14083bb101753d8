"""The MQTT event contract in code: topic names, the event envelope, retained payloads, commands. Pure.

docs/asyncapi.yaml is the published form of the same contract; tests validate every payload built here
against it. Events carry codes, never people: no builder here takes an identifier.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import accumulate
from typing import Any, Final, Literal, NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hardware.signals import LAMP_TEST_SECONDS as LAMP_TEST_SECONDS  # the lamp_test command's default

SCHEMA_VERSION: Final = 1

PRECHECK, LOOKUP, CALL, CALL_ACKNOWLEDGED, CALL_RESOLVED = (
    "precheck", "lookup", "call", "call_acknowledged", "call_resolved")
OUTAGE_ENTERED, OUTAGE_LEFT, READER_STATUS, LAMP_STATUS, HEARTBEAT, OUTBOX_DROPPED = (
    "outage_entered", "outage_left", "reader_status", "lamp_status", "heartbeat", "outbox_dropped")
OUTBOX_RECOVERED = "outbox_recovered"  # a damaged outbox file was set aside and its readable rows salvaged
CALL_ESCALATED = "call_escalated"  # an open call went unacknowledged past `[calls] escalate_seconds` / `desk_seconds`
EVENT_KINDS = (PRECHECK, LOOKUP, CALL, CALL_ACKNOWLEDGED, CALL_RESOLVED, OUTAGE_ENTERED, OUTAGE_LEFT,
               READER_STATUS, LAMP_STATUS, HEARTBEAT, OUTBOX_DROPPED, OUTBOX_RECOVERED, CALL_ESCALATED)

# When the outbox is full, the lowest priority goes first (oldest first within a priority); calls go last.
PRIORITY = {HEARTBEAT: 0, READER_STATUS: 1, LAMP_STATUS: 1, LOOKUP: 2, PRECHECK: 2, OUTBOX_DROPPED: 3,
            OUTBOX_RECOVERED: 3, OUTAGE_ENTERED: 3, OUTAGE_LEFT: 3, CALL: 4, CALL_ACKNOWLEDGED: 4, CALL_RESOLVED: 4,
            CALL_ESCALATED: 4}

# How far an unacknowledged call has been escalated (`call_escalated` data.level, the retained call's `escalation`).
# ESCALATED: staff called once more ([calls] escalate_seconds); SENT_TO_DESK: the patient too (desk_seconds).
ESCALATED, SENT_TO_DESK = 1, 2

# The open call in one word, in the online status (`details.call`): a retained "no call" cannot be read by a late
# subscriber (an empty retained payload deletes the retained `call`), so dashboards such as Home Assistant read it
# there. "open": not acknowledged yet.
NO_CALL, OPEN_CALL, ACKNOWLEDGED_CALL = "none", "open", "acknowledged"
CALL_STATES = (NO_CALL, OPEN_CALL, ACKNOWLEDGED_CALL)

ACKNOWLEDGE, RESOLVE, LAMP_TEST, RELOAD_CATALOGUE, OUTAGE_ENTER, OUTAGE_LEAVE = (
    "acknowledge", "resolve", "lamp_test", "reload_catalogue", "outage_enter", "outage_leave")
# resend_events: a recorder asks for the events the broker acknowledged after `after_seq` again (the kiosk's link
# answers it from memory, the flow never sees it); see EventLink and docs/history.md.
RESEND_EVENTS = "resend_events"
COMMAND_NAMES = (ACKNOWLEDGE, RESOLVE, LAMP_TEST, RELOAD_CATALOGUE, OUTAGE_ENTER, OUTAGE_LEAVE, RESEND_EVENTS)
MAX_COMMAND_BYTES = 4096
MAX_PAYLOAD_BYTES = 64 * 1024  # a status, call, event or command response a subscriber will decode
MAX_CORRELATION_BYTES = 256  # MQTT v5 correlation data a kiosk echoes back
MAX_REPLY_PARAMS = 8  # placeholders of a response's detail_id text (names up to 64, values up to 200 chars)
MAX_RESENT_BYTES = 48 * 1024  # events in one resend_events response, so the whole stays under MAX_PAYLOAD_BYTES
MAX_JSON_DEPTH = 16  # nesting of arrays/objects in any inbound payload (the contract's payloads need 4)

# Error codes in a command response (`error` field); `rejected` means the kiosk itself said no.
TOO_LARGE, NOT_JSON, INVALID, UNKNOWN_COMMAND, WRONG_KIOSK, REPLAYED, REJECTED, TIMEOUT = (
    "too_large", "not_json", "invalid", "unknown_command", "wrong_kiosk", "replayed", "rejected", "timeout")
RETAINED = "retained"  # a command published with the retain flag: refused, never executed

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

# Words of the topic tree that are not kiosks: `{prefix}/{site}/reply/...` (command responses) and
# `{prefix}/{site}/console/{id}/status` (console presence). No kiosk may be named so; parse_topic skips them.
REPLY, CONSOLE = "reply", "console"
RESERVED_KIOSK_IDS = (REPLY, CONSOLE)
ANY_SITE = "+"  # in a presence's `sites`: a console (`kiosk watch` with no --site) listening to every site
PRESENCE_EXPIRY_SECONDS = 86_400  # an "offline" presence is retained this long (MQTT v5 message expiry), then gone
MAX_PRESENCE_BYTES = 4096  # a presence payload larger than this is not read


@dataclass(frozen=True)
class Topics:
    """Topic names of one kiosk: everything lives under `{prefix}/{site}/{kiosk}/`."""

    prefix: str
    site: str
    kiosk: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.site}/{self.kiosk}"

    def event(self, kind: str) -> str:
        return f"{self.base}/event/{kind}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def call(self) -> str:
        return f"{self.base}/call"

    @property
    def cmd(self) -> str:
        return f"{self.base}/cmd"

    @property
    def reply_root(self) -> str:
        """Command responses may only go one level below this (the broker ACL lets kiosks write there)."""
        return reply_root(self.prefix, self.site)

    def valid_response_topic(self, topic: str | None) -> bool:
        """True for `{prefix}/{site}/reply/to/<client>` of this kiosk's own prefix and site, `<client>` one
        level of ID_PATTERN: no wildcard, no other site or prefix, nothing a status/event filter matches."""
        root = self.reply_root + "/"
        return topic is not None and topic.startswith(root) and _ID.fullmatch(topic[len(root):]) is not None


def reply_root(prefix: str, site: str) -> str:
    """`{prefix}/{site}/reply/to`: five levels with a fixed fourth, so no `{prefix}/+/+/status`, `…/call`,
    `…/cmd` or `…/event/#` subscription ever matches a command response."""
    return f"{prefix}/{site}/reply/to"


def reply_topic(prefix: str, site: str, client: str) -> str:
    """Where a console or tool named `client` (ID_PATTERN) asks kiosks of `site` to send command responses."""
    return f"{reply_root(prefix, site)}/{client}"


def subscription(prefix: str, site: str = "+", kiosk: str = "+", what: str = "#") -> str:
    """A topic filter, e.g. every event of a site: subscription("kiosk", "site-1", what="event/#")."""
    return f"{prefix}/{site}/{kiosk}/{what}"


def parse_topic(prefix: str, topic: str) -> tuple[str, str, str] | None:
    """`(site, kiosk, rest)` of a kiosk topic, None if the topic is not one (including the reserved words of
    RESERVED_KIOSK_IDS in the kiosk's place: command responses, console presence)."""
    if not topic.startswith(prefix + "/"):
        return None
    parts = topic[len(prefix) + 1:].split("/", 2)
    if len(parts) != 3 or parts[1] == "" or parts[0] == "" or parts[1] in RESERVED_KIOSK_IDS:
        return None
    return parts[0], parts[1], parts[2]


# --- console presence: who is listening ------------------------------------------------------------------

def presence_topic(prefix: str, site: str, console: str) -> str:
    """Where console (or `kiosk watch`) `console` announces itself: retained, "offline" as its Last Will.
    A console watching several sites announces once, under its first site, and lists them all in `sites`."""
    return f"{prefix}/{site}/{CONSOLE}/{console}/status"


def presence_subscription(prefix: str) -> str:
    """Every console's presence, of every site (a kiosk counts those whose `sites` name its own)."""
    return f"{prefix}/+/{CONSOLE}/+/status"


def parse_presence_topic(prefix: str, topic: str) -> tuple[str, str] | None:
    """`(site, console)` of a presence topic, None if the topic is not one."""
    parts = topic.split("/")
    head = prefix.split("/")
    if len(parts) != len(head) + 4 or parts[:len(head)] != head:
        return None
    site, word, console, last = parts[len(head):]
    if word != CONSOLE or last != "status" or not site or not console:
        return None
    return site, console


def presence_payload(online: bool, *, console: str, sites: list[str], role: str, listeners: int = 0,
                     time: str | None = None) -> dict[str, Any]:
    """A console's retained presence; `role`: "console" (`kiosk console`) or "watch" (`kiosk watch`);
    `listeners`: the people who can hear a call there now (a console: its staff pages open, awake and visible;
    `kiosk watch`: 1 on a terminal, 0 when its output is not one). Always 0 when offline."""
    return {"state": "online" if online else "offline", "console": console, "role": role, "sites": list(sites),
            "listeners": max(0, listeners) if online else 0, "time": time or timestamp(),
            "schema_version": SCHEMA_VERSION}


class PresenceState(NamedTuple):
    """What a presence says: `online`, the `sites` it hears (may hold ANY_SITE: see `listens_to`) and how many
    `listeners` can hear a call there now."""

    online: bool
    sites: tuple[str, ...]
    listeners: int

    @property
    def listening(self) -> bool:
        """Online with at least one listener: what a kiosk counts in `consoles_online`."""
        return self.online and self.listeners > 0


def presence_of(payload: bytes, topic_site: str) -> PresenceState | None:
    """What a presence payload says (empty = cleared: offline), None if it is malformed. A presence without
    `listeners` (a client that does not count them) is taken as one listener while online."""
    if not payload:
        return PresenceState(False, (topic_site,), 0)
    try:
        doc = load_payload(payload, MAX_PRESENCE_BYTES)
    except PayloadError:
        return None
    if not isinstance(doc, dict) or doc.get("state") not in ("online", "offline"):
        return None
    sites = doc.get("sites")
    if not isinstance(sites, list) or not all(isinstance(s, str) for s in sites):
        sites = [topic_site]
    online = doc["state"] == "online"
    listeners = doc.get("listeners", 1)
    if not isinstance(listeners, int) or isinstance(listeners, bool) or listeners < 0:
        return None
    return PresenceState(online, tuple(sites[:64]), listeners if online else 0)


def listens_to(sites: tuple[str, ...], site: str) -> bool:
    """Whether a console whose presence lists `sites` hears the kiosks of `site`."""
    return site in sites or ANY_SITE in sites


def timestamp(now: datetime | None = None) -> str:
    """ISO 8601 with the local zone, milliseconds."""
    return (now or datetime.now().astimezone()).astimezone().isoformat(timespec="milliseconds")


def new_id() -> str:
    return str(uuid.uuid4())


def envelope(kind: str, data: Mapping[str, Any], *, kiosk: str, site: str, seq: int, catalogue_version: str,
             event_id: str | None = None, time: str | None = None) -> dict[str, Any]:
    """One event as published on `event/<kind>`."""
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown event kind {kind!r}")
    return {"id": event_id or new_id(), "kind": kind, "kiosk": kiosk, "site": site, "seq": seq,
            "time": time or timestamp(), "schema_version": SCHEMA_VERSION,
            "catalogue_version": catalogue_version, "data": dict(data)}


def status_payload(online: bool, *, kiosk: str, site: str, catalogue_version: str,
                   details: Mapping[str, Any] | None = None, time: str | None = None) -> dict[str, Any]:
    """The retained `status` payload; the Last Will is the same with online False."""
    return {"state": "online" if online else "offline", "kiosk": kiosk, "site": site,
            "time": time or timestamp(), "schema_version": SCHEMA_VERSION,
            "catalogue_version": catalogue_version, "details": dict(details or {})}


def kiosk_state(*, reader_available: bool, reader_detail: str, lamp: str, outage: bool,
                outage_code: str | None, consoles_online: int | None = None, reader_cause: str = "",
                reader_params: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What an online `status` carries about the kiosk itself (`details.reader`, `.lamp`, `.outage`,
    `.consoles_online`: consoles of its site that are up, absent while not known yet), so a subscriber that
    connects later knows it without waiting for the next reader/lamp/outage event."""
    reader: dict[str, Any] = {"available": reader_available, "detail": reader_detail}
    if reader_cause:  # why, as the staff text id reader.<cause> (a console shows it in its viewer's language)
        reader.update(cause=reader_cause, params=dict(reader_params or {}))
    state: dict[str, Any] = {"reader": reader,
                             "lamp": lamp, "outage": {"active": outage, "code": outage_code if outage else None}}
    if consoles_online is not None:
        state["consoles_online"] = consoles_online
    return state


class CallLike(Protocol):
    """What call_payload needs of a call (kiosk.effects.Call)."""

    def as_dict(self) -> dict[str, Any]: ...


def call_state(retained_call: bytes) -> str:
    """`details.call` of the online status (one of CALL_STATES) from the retained `call` payload the kiosk
    publishes (b"" when there is no open call)."""
    if not retained_call:
        return NO_CALL
    return ACKNOWLEDGED_CALL if json.loads(retained_call).get("acknowledged") else OPEN_CALL


def call_payload(call: CallLike | Mapping[str, Any], *, kiosk: str, site: str,
                 time: str | None = None) -> dict[str, Any]:
    """The retained `call` payload from a kiosk.effects.Call (or its as_dict() mapping)."""
    fields = dict(call) if isinstance(call, Mapping) else call.as_dict()
    return {**fields, "kiosk": kiosk, "site": site, "time": time or timestamp(),
            "schema_version": SCHEMA_VERSION}


_ID = re.compile(ID_PATTERN)
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)  # a JSON string with its escapes
_BRACKETS = bytes(range(256)).translate(None, b"[]{}")  # every byte but the brackets (to delete)
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class PayloadError(ValueError):
    """An inbound payload refused before it is parsed into anything: `code` is TOO_LARGE, NOT_JSON or INVALID
    (nested too deeply)."""

    def __init__(self, code: str, detail: str):
        super().__init__(f"{code}: {detail}")
        self.code, self.detail = code, detail


def json_depth(raw: bytes) -> int:
    """How deeply arrays/objects nest in `raw` (brackets inside strings do not count); linear, no recursion."""
    skeleton = _STRING.sub(b"", raw).translate(None, _BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, skeleton)), default=0)


def load_payload(raw: bytes, max_bytes: int = MAX_PAYLOAD_BYTES, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The JSON document of an inbound MQTT payload, with a size limit (bytes) and a nesting limit checked
    before the parser runs, so no payload can make it recurse (RecursionError never escapes). Raises
    PayloadError."""
    if len(raw) > max_bytes:
        raise PayloadError(TOO_LARGE, f"{len(raw)} bytes, at most {max_bytes}")
    if json_depth(raw) > max_depth:
        raise PayloadError(INVALID, f"nested more than {max_depth} levels deep")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise PayloadError(NOT_JSON, f"not JSON: {exc.__class__.__name__}") from None


def encode(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


# --- commands --------------------------------------------------------------------------------------------

class CommandArgs(BaseModel):
    """The arguments of one command (strict: no extra fields, no type coercion). The validators are built at
    the first command (defer_build), not when the kiosk starts (bench/bench_ui.py: start-up)."""
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)


class CallArgs(CommandArgs):
    call_id: str = Field(pattern=ID_PATTERN, description="the id of the kiosk's open call")


class LampTestArgs(CommandArgs):
    seconds: int = Field(default=LAMP_TEST_SECONDS, ge=1, le=30, description="a whole number from 1 to 30")


class OutageArgs(CommandArgs):
    code: str | None = Field(default=None, pattern=r"^[0-9]{3}$", description="a 3-digit string")


class NoArgs(CommandArgs):
    pass


class ResendArgs(CommandArgs):
    after_seq: int = Field(ge=0, description="a whole number, 0 or more (the highest `seq` the caller holds)")


# The arguments of each command (docs/asyncapi.yaml, Command): the link checks what comes in over MQTT, the
# flow checks what any caller hands it.
COMMAND_ARGS: dict[str, type[CommandArgs]] = {
    ACKNOWLEDGE: CallArgs, RESOLVE: CallArgs, LAMP_TEST: LampTestArgs, RELOAD_CATALOGUE: NoArgs,
    OUTAGE_ENTER: OutageArgs, OUTAGE_LEAVE: NoArgs, RESEND_EVENTS: ResendArgs}


def command_args(name: str, args: Mapping[str, Any], root: str = "") -> CommandArgs:
    """`args` of command `name` checked against COMMAND_ARGS, defaults filled in. Raises CommandError:
    `unknown_command` for a name not in the contract, `invalid` naming the field and what it must be (`root`
    prefixes the field, e.g. "args")."""
    model = COMMAND_ARGS.get(name)
    if model is None:
        raise CommandError(UNKNOWN_COMMAND, f"unknown command {name!r}")
    try:
        return model.model_validate(dict(args))
    except ValidationError as exc:
        raise CommandError(INVALID, _args_problem(model, exc, root)) from None


class _CommandEnvelope(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)
    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(max_length=64)
    kiosk: str = Field(pattern=ID_PATTERN)
    args: dict[str, Any] = Field(default_factory=dict)
    time: str | None = Field(default=None, max_length=64)
    schema_version: Literal[1] = SCHEMA_VERSION


@dataclass(frozen=True)
class ParsedCommand:
    id: str
    name: str
    args: dict[str, Any]


class CommandError(Exception):
    """A command refused before it reaches the kiosk; `code` is one of the error codes above."""

    def __init__(self, code: str, detail: str, command_id: str | None = None):
        super().__init__(f"{code}: {detail}")
        self.code, self.detail, self.command_id = code, detail, command_id


def command_payload(name: str, args: Mapping[str, Any] | None = None, *, kiosk: str,
                    command_id: str | None = None, time: str | None = None) -> dict[str, Any]:
    """What a console publishes on a kiosk's `cmd` topic (with a v5 response topic + correlation data)."""
    return {"id": command_id or new_id(), "name": name, "kiosk": kiosk, "args": dict(args or {}),
            "time": time or timestamp(), "schema_version": SCHEMA_VERSION}


def parse_command(raw: bytes, kiosk: str) -> ParsedCommand:
    """Validate a command payload addressed to `kiosk`; raises CommandError (replays are the link's check)."""
    try:
        doc = load_payload(raw, MAX_COMMAND_BYTES)
    except PayloadError as exc:
        raise CommandError(exc.code, exc.detail) from None
    command_id = doc.get("id") if isinstance(doc, dict) and isinstance(doc.get("id"), str) else None
    try:
        command = _CommandEnvelope.model_validate(doc)
    except ValidationError as exc:
        raise CommandError(INVALID, _first_problem(exc), command_id) from None
    if command.name not in COMMAND_ARGS:
        raise CommandError(UNKNOWN_COMMAND, f"unknown command {command.name!r}", command.id)
    if command.kiosk != kiosk:
        raise CommandError(WRONG_KIOSK, f"addressed to {command.kiosk!r}, this is {kiosk!r}", command.id)
    try:
        args = command_args(command.name, command.args, "args")
    except CommandError as err:
        raise CommandError(err.code, err.detail, command.id) from None
    return ParsedCommand(command.id, command.name, args.model_dump())


def response_payload(command_id: str | None, ok: bool, detail: str, *, kiosk: str,
                     error: str | None = None, time: str | None = None, detail_id: str | None = None,
                     params: Mapping[str, str] | None = None, resent: list[dict[str, Any]] | None = None,
                     more: bool = False) -> dict[str, Any]:
    """The answer sent to the command's v5 response topic, with its correlation data. `detail_id` names the
    staff text that says it (`reply.<detail_id>` in catalogue/locales/<ja|en>/staff.json; the error code when
    not given) and `params` fill its placeholders, so a console shows it in its viewer's language; `detail`
    stays one English line for logs and older consoles. `resent` (resend_events only): the event envelopes
    sent again, oldest first, as `events`; `more`: further ones did not fit (ask again after the last seq)."""
    error = None if ok else (error or REJECTED)
    placeholders = {str(k)[:64]: str(v)[:200] for k, v in list(dict(params or {}).items())[:MAX_REPLY_PARAMS]}
    payload: dict[str, Any] = {"id": command_id, "kiosk": kiosk, "ok": ok, "error": error, "detail": detail[:500],
                               "detail_id": detail_id or error, "params": placeholders,
                               "time": time or timestamp(), "schema_version": SCHEMA_VERSION}
    if resent is not None:
        payload.update(events=resent, more=more)
    return payload


def _first_problem(exc: ValidationError, root: str = "") -> str:
    err = exc.errors()[0]
    where = ".".join([root] + [str(p) for p in err["loc"]] if root else [str(p) for p in err["loc"]])
    return f"{where or 'payload'}: {err['msg']}"


def _args_problem(model: type[CommandArgs], exc: ValidationError, root: str) -> str:
    """"<field> must be <what the contract allows>" for a field the model describes, else pydantic's words."""
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    field = model.model_fields.get(loc[0]) if len(loc) == 1 else None
    if field is None or field.description is None:
        return _first_problem(exc, root)
    return f"{'.'.join([root, *loc] if root else loc)} must be {field.description}"
