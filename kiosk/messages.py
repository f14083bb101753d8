"""The flow's inputs: what the runtime hands `kiosk.flow.Flow.handle`, one frozen dataclass per message.

Pure. Reader threads, buttons, the screen and the MQTT link produce these (the runtime translates reader
events); nothing here carries a patient identifier.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # an annotation only: importing the messages loads no pydantic model
    from kiosk.precheck import Verdict


@dataclass(frozen=True)
class CardPresented:
    """Something was presented and classified."""
    verdict: Verdict


@dataclass(frozen=True)
class CardRemoved:
    """What was presented left the reader."""


@dataclass(frozen=True)
class ReaderChanged:
    """The reader came or went; `detail` says why in one English line (logs), `cause` is the id staff texts
    are rendered from (`hardware.readers.Cause` values; "" = not said) with `params` for their placeholders."""
    available: bool
    detail: str = ""
    cause: str = ""
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LinkChanged:
    """Broker connection and outbox backlog, for the staff screen (the link posts it)."""
    connected: bool
    pending: int = 0


@dataclass(frozen=True)
class ConsolesChanged:
    """How many staff consoles of the kiosk's site are up (`kiosk console`, `kiosk watch`: their retained
    presence); the link posts it after connecting and on every change, and 0 while it has no broker."""
    online: int


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
    """The staff PIN keyed on the PIN pad."""
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


@dataclass(frozen=True)
class Answer:
    """What the kiosk answers to a command: `ok`; `text`, the id of the staff text that says it
    (`reply.<text>` in catalogue/locales/<ja|en>/staff.json) with `params` for its placeholders, rendered in the
    reader's language (the console's viewer); `detail`, one English line for logs and consoles that predate
    `text` (the response payload's `detail`, docs/asyncapi.yaml)."""
    ok: bool
    text: str
    detail: str
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Command:
    """A staff command (`name` in kiosk.events.COMMAND_NAMES, `args` as in kiosk.events.COMMAND_ARGS), from the
    MQTT link (already checked against the contract) or the demo; answer exactly once with `reply(Answer)`."""
    id: str
    name: str
    args: dict[str, Any]
    reply: Callable[[Answer], None] = field(repr=False, compare=False)


Message = (CardPresented | CardRemoved | ReaderChanged | LinkChanged | ConsolesChanged | Tap | LookupEntered
           | PinEntered | CallButton | ResetButton | Tick | Command)
