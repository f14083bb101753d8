"""The patient-flow state machine: messages in, effects out, nothing else.

Pure: no Kivy, paho, pyscard or gpiozero. The runtime feeds it messages from one thread and carries out the
effects it returns (screen, lamp, buzzer, events, the retained call, command replies). Time comes from an
injected clock; `Tick()` asks it to act on deadlines. Nothing about a patient outlives a return to idle.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol, runtime_checkable

# --- screens -----------------------------------------------------------------------------------------------

IDLE = "idle"
CHECKING = "checking"
RESULT = "result"
LOOKUP = "lookup"
LOOKUP_RESULT = "lookup_result"
CALLING = "calling"
STAFF_COMING = "staff_coming"
OUTAGE = "outage"
STAFF_PIN = "staff_pin"
STAFF = "staff"
SCREENS = (IDLE, CHECKING, RESULT, LOOKUP, LOOKUP_RESULT, CALLING, STAFF_COMING, OUTAGE, STAFF_PIN, STAFF)

# Interim-operation options shown in outage mode (texts: catalogue/locales/<lang>/ui.json).
OUTAGE_OPTIONS = ("shikaku_kakuninsho", "mynaportal_screen", "moushitatesho")

# Lamp patterns (hardware.signals.Lamp.show).
LAMP_OFF, LAMP_CALL, LAMP_ACKNOWLEDGED, LAMP_OUTAGE, LAMP_READER_FAULT = (
    "off", "call", "acknowledged", "outage", "reader_fault")

# Pre-check outcomes (kiosk.precheck.Outcome values) that mean "this will work on the official reader".
GOOD_OUTCOMES = frozenset({"mynumber_card", "smartphone_android", "smartphone_iphone"})

# Why a call was opened.
CALL_PATIENT, CALL_STAFF_CODE, CALL_OUTAGE, CALL_REPEATED_FAILURES = (
    "patient_request", "staff_code", "outage", "repeated_failures")


# --- messages (inputs) -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CardPresented:
    """Something was presented and classified; `verdict` is a kiosk.precheck.Verdict."""
    verdict: Any


@dataclass(frozen=True)
class CardRemoved:
    pass


@dataclass(frozen=True)
class ReaderChanged:
    available: bool
    detail: str = ""


@dataclass(frozen=True)
class LinkChanged:
    """Broker connection and outbox backlog, for the staff screen."""
    connected: bool
    pending: int = 0


@dataclass(frozen=True)
class Tap:
    """A screen button. Targets: see docs/design.md "Flow"."""
    target: str


@dataclass(frozen=True)
class LookupEntered:
    """The digits the patient keyed on the lookup keypad."""
    code: str


@dataclass(frozen=True)
class PinEntered:
    pin: str


@dataclass(frozen=True)
class CallButton:
    """The physical call button."""


@dataclass(frozen=True)
class ResetButton:
    """The physical staff reset button: resolves the open call."""


@dataclass(frozen=True)
class Tick:
    """Act on any deadline that has passed (the clock is injected into Flow)."""


@runtime_checkable
class CommandLike(Protocol):
    """A staff command (kiosk.link.Command): the flow reads `name` and `args`; the runtime replies."""
    name: str
    args: Mapping[str, Any]


# --- effects (outputs) -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ShowScreen:
    name: str
    lang: str
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SetLamp:
    pattern: str


@dataclass(frozen=True)
class LampTest:
    """Run the lamp through its patterns once, then back to the current one."""


@dataclass(frozen=True)
class Chirp:
    """A short buzzer chirp (a new call)."""


@dataclass(frozen=True)
class Emit:
    kind: str
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Call:
    """The open staff call, as retained on the `call` topic."""
    id: str
    reason: str
    code: str | None
    audience: str
    since: str  # ISO 8601 with zone
    acknowledged: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"call_id": self.id, "reason": self.reason, "code": self.code, "audience": self.audience,
                "since": self.since, "acknowledged": self.acknowledged}


@dataclass(frozen=True)
class SetCall:
    call: Call | None


@dataclass(frozen=True)
class Reply:
    command: Any
    ok: bool
    detail: str


@dataclass(frozen=True)
class ReloadCatalogue:
    """Reload the catalogue (IO is the runtime's); the runtime replies to `command` if there is one."""
    command: Any = None


@dataclass(frozen=True)
class SetDefaultLanguage:
    """Staff chose a new default language; the runtime keeps it across restarts."""
    lang: str


Message = (CardPresented | CardRemoved | ReaderChanged | LinkChanged | Tap | LookupEntered | PinEntered
           | CallButton | ResetButton | Tick | CommandLike)
Effect = ShowScreen | SetLamp | LampTest | Chirp | Emit | SetCall | Reply | ReloadCatalogue | SetDefaultLanguage


# --- what the flow needs to know about a code --------------------------------------------------------------

@dataclass(frozen=True)
class CodeFacts:
    """What the flow needs from the catalogue about one code."""
    code: str
    audience: str  # "patient" | "staff"
    outage: bool
    call_staff: bool


class Codebook(Protocol):
    def facts(self, code: str) -> CodeFacts | None: ...
    def nearest(self, code: str) -> list[str]: ...
