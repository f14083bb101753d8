"""The patient-flow state machine: messages in, effects out, nothing else.

Pure: no Kivy, paho, pyscard or gpiozero. The runtime feeds it messages from one thread and carries out the
effects it returns (screen, lamp, buzzer, events, the retained call, command replies). Time comes from an
injected clock; `Tick()` asks it to act on deadlines. Nothing about a patient outlives a return to idle.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
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

# Screens whose guidance the speaker button reads out (when the language has a voice and it is not muted).
SPEAKABLE_SCREENS = frozenset({RESULT, LOOKUP_RESULT, CALLING, STAFF_COMING, OUTAGE})
# The patient's display toggles (tap `display:<mode>` on the idle screen; both reset at idle).
DISPLAY_MODES = ("large_text", "high_contrast")
VOLUME_LEVELS = (0.2, 0.4, 0.6, 0.8, 1.0)  # staff mode's volume button steps through these (mute is its own toggle)

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
    """`speaker`: show the speaker button; `large_text` / `high_contrast`: the patient's display modes."""
    name: str
    lang: str
    context: Mapping[str, Any] = field(default_factory=dict)
    speaker: bool = False
    large_text: bool = False
    high_contrast: bool = False


@dataclass(frozen=True)
class SetLamp:
    pattern: str


@dataclass(frozen=True)
class LampTest:
    """Run the lamp through its patterns for `seconds`, then back to the current one."""
    seconds: float = 5.0


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


@dataclass(frozen=True)
class Speak:
    """Read the current screen's guidance aloud in `lang` (the runtime asks the screen for its text)."""
    lang: str


@dataclass(frozen=True)
class SetVoice:
    """Staff changed mute or volume: honour it now and keep it across restarts."""
    muted: bool
    volume: float


Message = (CardPresented | CardRemoved | ReaderChanged | LinkChanged | Tap | LookupEntered | PinEntered
           | CallButton | ResetButton | Tick | CommandLike)
Effect = (ShowScreen | SetLamp | LampTest | Chirp | Emit | SetCall | Reply | ReloadCatalogue | SetDefaultLanguage
          | Speak | SetVoice)


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


# --- the state machine -------------------------------------------------------------------------------------

HOME_SCREENS = frozenset({IDLE, CALLING, STAFF_COMING, OUTAGE})
LAST_EVENTS_KEPT = 10
_COMMANDS = ("acknowledge", "resolve", "lamp_test", "reload_catalogue", "outage_enter", "outage_leave")


@dataclass(frozen=True)
class FlowTimings:
    """The flow's time and threshold settings (UiSection and StaffSection carry them in the config)."""
    checking_seconds: float = 0.8
    result_timeout_seconds: float = 30.0
    linger_after_removal_seconds: float = 5.0
    idle_timeout_seconds: float = 60.0
    failures_before_call: int = 3
    pin_attempts: int = 5
    pin_lockout_seconds: float = 300.0


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Flow:
    """The patient flow. Not thread-safe by design: one thread (the runtime's main loop) owns it."""

    def __init__(
        self,
        codebook: Codebook,
        timings: FlowTimings = FlowTimings(),
        languages: tuple[str, ...] = ("ja", "en"),
        default_lang: str = "ja",
        verify_pin: Callable[[str], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = _utc_now,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
        voice_languages: frozenset[str] = frozenset(),
        voice_muted: bool = False,
        voice_volume: float = 0.8,
    ) -> None:
        self.codebook = codebook
        self.timings = timings
        self.languages = languages
        self.default_lang = default_lang if default_lang in languages else languages[0]
        self._verify_pin = verify_pin
        self._clock = clock
        self._wall = wall_clock
        self._new_id = new_id
        # kiosk state (survives idle; carries no patient data)
        self.call: Call | None = None
        self.outage_code: str | None = None
        self.in_outage = False
        self.reader = {"available": True, "detail": ""}
        self.link = {"connected": False, "pending": 0}
        self.lamp = ""
        self.last_events: list[dict[str, Any]] = []
        self.voice_languages = frozenset(voice_languages)  # languages the kiosk has a voice for
        self.voice_muted = voice_muted
        self.voice_volume = min(1.0, max(0.0, voice_volume))
        self.failures = 0
        self._forget_failures_at: float | None = None
        self._pin_failures = 0
        self._pin_locked_until = 0.0
        # the current screen and the patient's session (cleared at idle)
        self.screen = ""
        self.lang = self.default_lang
        self.context: dict[str, Any] = {}
        self.display = dict.fromkeys(DISPLAY_MODES, False)
        self._deadline: float | None = None
        self._pending_verdict: Any = None
        self._card_present = False

    # --- public --------------------------------------------------------------------------------------------

    def start(self) -> list[Effect]:
        """The first effects: lamp state and the home screen."""
        return self._lamp() + self._go_home()

    def next_deadline(self) -> float | None:
        """When a `Tick()` is next due (clock time), or None when nothing is waiting."""
        times = [t for t in (self._deadline, self._forget_failures_at) if t is not None]
        return min(times) if times else None

    def handle(self, message: Any) -> list[Effect]:
        match message:
            case CardPresented(verdict):
                return self._presented(verdict)
            case CardRemoved():
                return self._removed()
            case ReaderChanged(available, detail):
                return self._reader_changed(available, detail)
            case LinkChanged(connected, pending):
                self.link = {"connected": connected, "pending": pending}
                return self._refresh_staff()
            case Tap(target):
                return self._tap(target)
            case LookupEntered(code):
                return self._lookup(code)
            case PinEntered(pin):
                return self._pin(pin)
            case CallButton():
                return self._patient_call()
            case ResetButton():
                return self._resolve("reset_button")
            case Tick():
                return self._tick()
            case CommandLike():
                return self._command(message)
        return []

    # --- screens -------------------------------------------------------------------------------------------

    def _home(self) -> str:
        if self.call is not None:
            return STAFF_COMING if self.call.acknowledged else CALLING
        return OUTAGE if self.in_outage else IDLE

    def _home_context(self, home: str) -> dict[str, Any]:
        if home in (CALLING, STAFF_COMING) and self.call is not None:
            return {"reason": self.call.reason, "code": self.call.code}
        if home == OUTAGE:
            return {"code": self.outage_code, "options": OUTAGE_OPTIONS}
        return {}

    def _show(self, screen: str, context: dict[str, Any] | None = None, timeout: float | None = None
              ) -> list[Effect]:
        self.screen = screen
        self.context = dict(context or {})
        self._deadline = None if timeout is None else self._clock() + timeout
        return [self._screen_effect()]

    def _screen_effect(self) -> ShowScreen:
        return ShowScreen(self.screen, self.lang, dict(self.context), speaker=self._speaker(),
                          large_text=self.display["large_text"], high_contrast=self.display["high_contrast"])

    def _speaker(self) -> bool:
        """Whether the current screen gets a speaker button: guidance, a voice for the language, not silenced."""
        audible = not self.voice_muted and self.voice_volume > 0
        return audible and self.screen in SPEAKABLE_SCREENS and self.lang in self.voice_languages

    def _reshow(self) -> list[Effect]:
        """The same screen again after a patient's choice (language, display); a changed idle screen returns
        to the defaults after the idle timeout."""
        if self.screen == IDLE:
            changed = self.lang != self.default_lang or any(self.display.values())
            self._deadline = self._clock() + self.timings.idle_timeout_seconds if changed else None
        return [self._screen_effect()]

    def _go_home(self) -> list[Effect]:
        home = self._home()
        if home == IDLE:  # forget the patient
            self.lang = self.default_lang
            self.display = dict.fromkeys(DISPLAY_MODES, False)
            self._pending_verdict = None
            self._forget_failures_at = self._clock() + self.timings.idle_timeout_seconds
        return self._show(home, self._home_context(home))

    def _follow_home(self) -> list[Effect]:
        """On a home screen, move to the home screen the kiosk state now calls for."""
        if self.screen in HOME_SCREENS and self.screen != self._home():
            return self._go_home()
        return []

    def _refresh_staff(self) -> list[Effect]:
        return self._show_staff() if self.screen == STAFF else []

    def _show_staff(self) -> list[Effect]:
        return self._show(STAFF, {
            "reader": dict(self.reader),
            "broker": dict(self.link),
            "lamp": self.lamp,
            "last_events": [dict(e) for e in self.last_events],
            "default_language": self.default_lang,
            "languages": self.languages,
            "open_call": self.call.as_dict() if self.call else None,
            "outage": self.in_outage,
            "voice": {"available": bool(self.voice_languages), "muted": self.voice_muted,
                      "volume": self.voice_volume},
        }, self.timings.idle_timeout_seconds)

    # --- lamp and events -----------------------------------------------------------------------------------

    def _lamp(self) -> list[Effect]:
        if self.call is not None:
            pattern = LAMP_ACKNOWLEDGED if self.call.acknowledged else LAMP_CALL
        elif self.in_outage:
            pattern = LAMP_OUTAGE
        elif not self.reader["available"]:
            pattern = LAMP_READER_FAULT
        else:
            pattern = LAMP_OFF
        if pattern == self.lamp:
            return []
        self.lamp = pattern
        return [SetLamp(pattern), self._emit("lamp_status", {"pattern": pattern})]

    def _emit(self, kind: str, data: dict[str, Any]) -> Emit:
        self.last_events = (self.last_events + [
            {"kind": kind, "code": data.get("code"), "time": self._wall().isoformat(timespec="seconds")}
        ])[-LAST_EVENTS_KEPT:]
        return Emit(kind, data)

    # --- the card ------------------------------------------------------------------------------------------

    def _presented(self, verdict: Any) -> list[Effect]:
        self._card_present = True
        if str(verdict.outcome) == "nothing" or self.screen in (STAFF, STAFF_PIN):
            return []
        self._pending_verdict = verdict
        self._forget_failures_at = None
        if self.screen == CHECKING:
            return []  # a flap: the newest verdict wins when checking ends
        return self._show(CHECKING, {}, self.timings.checking_seconds)

    def _removed(self) -> list[Effect]:
        self._card_present = False
        if self.screen == RESULT:
            linger = self._clock() + self.timings.linger_after_removal_seconds
            self._deadline = linger if self._deadline is None else min(self._deadline, linger)
            return self._tick()
        return []

    def _show_result(self) -> list[Effect]:
        verdict, self._pending_verdict = self._pending_verdict, None
        outcome = str(verdict.outcome)
        code = verdict.code
        effects: list[Effect] = [self._emit("precheck", {"outcome": outcome, "code": code,
                                                        "hints": list(verdict.hints)})]
        called = False
        if outcome in GOOD_OUTCOMES:
            self.failures = 0
        else:
            self.failures += 1
            if self.failures >= self.timings.failures_before_call:
                self.failures = 0
                called = self.call is None
                effects += self._open_call(CALL_REPEATED_FAILURES, code, "patient")
        timeout = self.timings.result_timeout_seconds
        if not self._card_present:
            timeout = min(timeout, self.timings.linger_after_removal_seconds)
        effects += self._show(RESULT, {"outcome": outcome, "code": code, "hints": tuple(verdict.hints),
                                       "called": called, "failures": self.failures}, timeout)
        return effects

    def _reader_changed(self, available: bool, detail: str) -> list[Effect]:
        if self.reader == {"available": available, "detail": detail}:
            return []
        self.reader = {"available": available, "detail": detail}
        effects: list[Effect] = [self._emit("reader_status", {"available": available, "detail": detail})]
        effects += self._lamp()
        if not available and self.screen == CHECKING:
            effects += self._go_home()
        return effects + self._refresh_staff()

    # --- timers --------------------------------------------------------------------------------------------

    def _tick(self) -> list[Effect]:
        now = self._clock()
        effects: list[Effect] = []
        if self._forget_failures_at is not None and now >= self._forget_failures_at:
            self._forget_failures_at = None
            self.failures = 0
        if self._deadline is not None and now >= self._deadline:
            self._deadline = None
            effects += self._show_result() if self.screen == CHECKING else self._go_home()
        return effects

    # --- taps ----------------------------------------------------------------------------------------------

    def _tap(self, target: str) -> list[Effect]:
        if target.startswith("lang:"):
            lang = target.removeprefix("lang:")
            if lang not in self.languages or self.screen in (STAFF, STAFF_PIN):
                return []
            self.lang = lang
            return self._reshow()
        if self.screen == STAFF:
            return self._staff_tap(target)
        if target.startswith("display:"):
            mode = target.removeprefix("display:")
            if mode not in DISPLAY_MODES or self.screen in (STAFF_PIN, CHECKING):
                return []
            self.display[mode] = not self.display[mode]
            return self._reshow()
        match target:
            case "speak":
                return [Speak(self.lang)] if self._speaker() else []
            case "call":
                return self._patient_call()
            case "lookup" if self.screen not in (CHECKING, STAFF_PIN):
                return self._show(LOOKUP, {"error": None, "entered": "", "nearest": []},
                                  self.timings.idle_timeout_seconds)
            case "home" | "done":
                return self._go_home()
            case "staff_gesture" if self._verify_pin is not None:
                return self._show_pin("locked" if self._clock() < self._pin_locked_until else None)
        return []

    def _patient_call(self) -> list[Effect]:
        if self.screen in (STAFF, STAFF_PIN):
            return []
        effects = self._open_call(CALL_PATIENT, None, "patient")
        return effects + self._go_home()

    # --- lookup --------------------------------------------------------------------------------------------

    def _lookup(self, entered: str) -> list[Effect]:
        if self.screen != LOOKUP:
            return []
        code = entered.strip()
        if not (len(code) == 3 and code.isascii() and code.isdigit()):
            return self._show(LOOKUP, {"error": "format", "entered": code[:8], "nearest": []},
                              self.timings.idle_timeout_seconds)
        facts = self.codebook.facts(code)
        if facts is None:
            return [self._emit("lookup", {"code": code, "known": False, "audience": None, "outage": False})
                    ] + self._show(LOOKUP, {"error": "unknown", "entered": code,
                                            "nearest": list(self.codebook.nearest(code))},
                                   self.timings.idle_timeout_seconds)
        effects: list[Effect] = [self._emit("lookup", {"code": code, "known": True, "audience": facts.audience,
                                                       "outage": facts.outage})]
        had_call = self.call is not None
        if facts.outage:
            effects += self._enter_outage(code, "code")
            effects += self._open_call(CALL_OUTAGE, code, facts.audience)
        elif facts.audience == "staff" or facts.call_staff:
            effects += self._open_call(CALL_STAFF_CODE, code, facts.audience)
        called = not had_call and self.call is not None
        return effects + self._show(LOOKUP_RESULT, {
            "code": code, "audience": facts.audience, "outage": facts.outage, "call_staff": facts.call_staff,
            "called": called}, self.timings.idle_timeout_seconds)

    # --- calls ---------------------------------------------------------------------------------------------

    def _open_call(self, reason: str, code: str | None, audience: str) -> list[Effect]:
        if self.call is not None:
            return []
        self.call = Call(id=self._new_id(), reason=reason, code=code, audience=audience,
                         since=self._wall().isoformat(timespec="seconds"))
        return [self._emit("call", self._call_data()), SetCall(self.call), Chirp()] + self._lamp()

    def _call_data(self) -> dict[str, Any]:
        assert self.call is not None
        return {"call_id": self.call.id, "reason": self.call.reason, "code": self.call.code,
                "audience": self.call.audience}

    def _acknowledge(self) -> list[Effect]:
        assert self.call is not None
        self.call = replace(self.call, acknowledged=True)
        effects = [self._emit("call_acknowledged", self._call_data()), SetCall(self.call)] + self._lamp()
        return effects + self._follow_home() + self._refresh_staff()

    def _resolve(self, by: str) -> list[Effect]:
        if self.call is None:
            return []
        effects: list[Effect] = [self._emit("call_resolved", {**self._call_data(), "by": by})]
        self.call = None
        effects += [SetCall(None)] + self._lamp()
        return effects + self._follow_home() + self._refresh_staff()

    # --- outage --------------------------------------------------------------------------------------------

    def _enter_outage(self, code: str | None, source: str) -> list[Effect]:
        if self.in_outage:
            return []
        self.in_outage, self.outage_code = True, code
        return [self._emit("outage_entered", {"code": code, "source": source})] + self._lamp()

    def _leave_outage(self, source: str) -> list[Effect]:
        if not self.in_outage:
            return []
        self.in_outage, self.outage_code = False, None
        return [self._emit("outage_left", {"source": source})] + self._lamp()

    # --- staff mode ----------------------------------------------------------------------------------------

    def _show_pin(self, error: str | None) -> list[Effect]:
        left = max(0, self.timings.pin_attempts - self._pin_failures)
        return self._show(STAFF_PIN, {"error": error, "attempts_left": left}, self.timings.idle_timeout_seconds)

    def _pin(self, pin: str) -> list[Effect]:
        if self.screen != STAFF_PIN or self._verify_pin is None:
            return []
        now = self._clock()
        if now < self._pin_locked_until:
            return self._show_pin("locked")
        if self._verify_pin(pin):
            self._pin_failures = 0
            return self._show_staff()
        self._pin_failures += 1
        if self._pin_failures >= self.timings.pin_attempts:
            self._pin_failures = 0
            self._pin_locked_until = now + self.timings.pin_lockout_seconds
            return self._show_pin("locked")
        return self._show_pin("wrong")

    def _staff_tap(self, target: str) -> list[Effect]:
        effects: list[Effect]
        match target:
            case "home" | "done":
                return self._go_home()
            case "lamp_test":
                effects = [LampTest()]
            case "clear_call":
                effects = self._resolve("staff_screen")
            case "outage_enter":
                effects = self._enter_outage(None, "staff_screen")
            case "outage_leave":
                effects = self._leave_outage("staff_screen")
            case "reload_catalogue":
                effects = [ReloadCatalogue()]
            case "voice_mute":
                self.voice_muted = not self.voice_muted
                effects = [SetVoice(self.voice_muted, self.voice_volume)]
            case "voice_volume":
                louder = [level for level in VOLUME_LEVELS if level > self.voice_volume + 1e-6]
                self.voice_volume = louder[0] if louder else VOLUME_LEVELS[0]
                effects = [SetVoice(self.voice_muted, self.voice_volume)]
            case _ if target.startswith("default_lang:") and target[13:] in self.languages:
                self.default_lang = target[13:]
                effects = [SetDefaultLanguage(self.default_lang)]
            case _:
                return []
        return effects + self._show_staff()

    # --- commands ------------------------------------------------------------------------------------------

    def _command(self, command: CommandLike) -> list[Effect]:
        name, args = command.name, command.args or {}
        if name not in _COMMANDS:
            return [Reply(command, False, f"unknown command {name!r}")]
        if name in ("acknowledge", "resolve"):
            if self.call is None:
                return [Reply(command, False, "no open call")]
            wanted = args.get("call_id")
            if wanted is not None and wanted != self.call.id:
                return [Reply(command, False, "call_id is not the open call")]
            if name == "acknowledge":
                if self.call.acknowledged:
                    return [Reply(command, True, "already acknowledged")]
                return self._acknowledge() + [Reply(command, True, "acknowledged")]
            return self._resolve("command") + [Reply(command, True, "resolved")]
        if name == "lamp_test":
            seconds = args.get("seconds", LampTest.seconds)
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 1 <= seconds <= 30:
                return [Reply(command, False, "seconds must be a number from 1 to 30")]
            return [LampTest(float(seconds)), Reply(command, True, "lamp test started")]
        if name == "reload_catalogue":
            return [ReloadCatalogue(command)]
        if name == "outage_enter":
            code = args.get("code")
            if code is not None and not (isinstance(code, str) and len(code) == 3 and code.isdigit()):
                return [Reply(command, False, "code must be a 3-digit string")]
            if self.in_outage:
                return [Reply(command, True, "already in outage mode")]
            return (self._enter_outage(code, "command") + self._follow_home() + self._refresh_staff()
                    + [Reply(command, True, "outage mode entered")])
        if not self.in_outage:
            return [Reply(command, True, "not in outage mode")]
        return (self._leave_outage("command") + self._follow_home() + self._refresh_staff()
                + [Reply(command, True, "outage mode left")])
