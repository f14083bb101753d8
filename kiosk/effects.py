"""The flow's outputs: what `kiosk.flow.Flow.handle` asks the runtime to do, one frozen dataclass per effect.

Pure. The runtime carries them out on its one thread (screen, lamp, buzzer, events, the retained call, command
replies, settings).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hardware.signals import LAMP_TEST_SECONDS

if TYPE_CHECKING:  # annotations only: importing the effects (kiosk.app.offscreen does) loads no pydantic model
    from kiosk.messages import Command


@dataclass(frozen=True)
class ShowScreen:
    """Show screen `name` (kiosk.vocabulary.SCREENS) in `lang` with `context` (keys per screen: docs/design.md
    "Flow"); `speaker`: show the speaker button; `large_text` / `high_contrast`: the patient's display modes."""
    name: str
    lang: str
    context: Mapping[str, Any] = field(default_factory=dict)
    speaker: bool = False
    large_text: bool = False
    high_contrast: bool = False


@dataclass(frozen=True)
class SetLamp:
    """Show lamp `pattern` (kiosk.vocabulary.LAMP_PATTERNS)."""
    pattern: str


@dataclass(frozen=True)
class LampTest:
    """Run the lamp through its patterns for `seconds`, then back to the current one."""
    seconds: float = LAMP_TEST_SECONDS


@dataclass(frozen=True)
class Chirp:
    """A short buzzer chirp (a new call)."""


@dataclass(frozen=True)
class Emit:
    """Publish event `kind` (kiosk.events.EVENT_KINDS) with `data` (its payload in docs/asyncapi.yaml); `time`
    (ISO 8601 with zone, milliseconds), the envelope's time when the flow fixed it — a `call` event's is the
    open call's `since`, so both say the same moment — else None (stamped when stored)."""
    kind: str
    data: Mapping[str, Any]
    time: str | None = None


@dataclass(frozen=True)
class Call:
    """The open staff call, as retained on the `call` topic; `reason` is one of kiosk.vocabulary.CALL_REASONS."""
    id: str
    reason: str
    code: str | None
    audience: str
    since: str  # ISO 8601 with zone
    acknowledged: bool = False
    escalation: int = 0  # 0, or kiosk.events.ESCALATED / SENT_TO_DESK once those thresholds passed unacknowledged

    def as_dict(self) -> dict[str, Any]:
        return {"call_id": self.id, "reason": self.reason, "code": self.code, "audience": self.audience,
                "since": self.since, "acknowledged": self.acknowledged, "escalation": self.escalation}


@dataclass(frozen=True)
class SetCall:
    """Retain the open call, or clear it with None."""
    call: Call | None


@dataclass(frozen=True)
class Reply:
    """Answer `command` with `Answer(ok, text, detail, params)` (kiosk.messages.Answer: the staff text id
    `reply.<text>` and its params, and one English line)."""
    command: Command
    ok: bool
    text: str
    detail: str
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReloadCatalogue:
    """Reload the catalogue (IO is the runtime's); the runtime replies to `command` if there is one."""
    command: Command | None = None


@dataclass(frozen=True)
class SetDefaultLanguage:
    """Staff chose a new default language; the runtime keeps it across restarts."""
    lang: str


@dataclass(frozen=True)
class Speak:
    """Read the current screen's guidance aloud in `lang` (the runtime asks the screen for its text)."""
    lang: str


@dataclass(frozen=True)
class SetVoice:
    """Staff changed mute or volume: honour it now and keep it across restarts."""
    muted: bool
    volume: float


Effect = (ShowScreen | SetLamp | LampTest | Chirp | Emit | SetCall | Reply | ReloadCatalogue | SetDefaultLanguage
          | Speak | SetVoice)
