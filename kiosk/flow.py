"""The patient-flow state machine: messages in, effects out, nothing else.

Pure: no Kivy, paho, pyscard or gpiozero. The runtime feeds it messages from one thread and carries out the
effects it returns (screen, lamp, buzzer, events, the retained call, command replies). Time comes from an
injected clock; `Tick()` asks it to act on deadlines. Nothing about a patient outlives a return to idle.
"""

from __future__ import annotations

import time
import unicodedata
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from kiosk import events
from kiosk.effects import (
    Call,
    Chirp,
    Effect,
    Emit,
    LampTest,
    ReloadCatalogue,
    Reply,
    SetCall,
    SetDefaultLanguage,
    SetLamp,
    SetVoice,
    ShowScreen,
    Speak,
)
from kiosk.messages import (
    CallButton,
    CardPresented,
    CardRemoved,
    Command,
    ConsolesChanged,
    LinkChanged,
    LookupEntered,
    Message,
    PinEntered,
    ReaderChanged,
    ResetButton,
    Tap,
    Tick,
)
from kiosk.precheck import Outcome, Verdict
from kiosk.vocabulary import (
    CALL_OUTAGE,
    CALL_PATIENT,
    CALL_REPEATED_FAILURES,
    CALL_STAFF_CODE,
    CALLING,
    CHECKING,
    DEFAULT_TIMEZONE,
    DISPLAY_MODES,
    GOOD_OUTCOMES,
    HIGH_CONTRAST,
    HOME_SCREENS,
    IDLE,
    LAMP_ACKNOWLEDGED,
    LAMP_CALL,
    LAMP_ESCALATED,
    LAMP_NO_CONSOLE,
    LAMP_OFF,
    LAMP_OUTAGE,
    LAMP_READER_FAULT,
    LARGE_TEXT,
    LOOKUP,
    LOOKUP_RESULT,
    OUTAGE,
    OUTAGE_OPTIONS,
    RESULT,
    SPEAKABLE_SCREENS,
    STAFF,
    STAFF_COMING,
    STAFF_LANGUAGES,
    STAFF_PIN,
    VOLUME_LEVELS,
)

# --- what the flow needs to know about a code --------------------------------------------------------------

@dataclass(frozen=True)
class CodeFacts:
    """What the flow needs from the catalogue about one code."""
    code: str
    audience: str  # "patient" | "staff"
    outage: bool
    call_staff: bool


class Codebook(Protocol):
    """The flow's view of the catalogue (kiosk.runtime.CatalogueCodebook adapts a kiosk.catalogue.Catalogue)."""

    def facts(self, code: str) -> CodeFacts | None: ...
    def nearest(self, code: str) -> list[str]: ...


# --- the state machine -------------------------------------------------------------------------------------

LAST_EVENTS_KEPT = 10
# What the staff screen's recent events show of an event's data besides its kind and code: ids its texts render
# (lamp.<pattern>, outcome.<outcome>, call.title.<reason>, reader.<cause>) and the reader cause's params.
EVENT_PARAMS = ("pattern", "outcome", "reason", "cause")


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
    escalate_seconds: float = 60.0  # an unacknowledged call: call_escalated, urgent lamp, "called once more"
    desk_seconds: float = 180.0  # ... and then the patient is sent to the reception desk


def _utc_now() -> datetime:
    return datetime.now(UTC)


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
        staff_lang: str = "ja",
        timezone: str = DEFAULT_TIMEZONE,
    ) -> None:
        """`staff_lang`: the staff screen's language when the kiosk shows a language staff texts do not exist
        in (`[console] language`); `timezone`: the facility's IANA zone (`[facility] timezone`) the staff screen
        shows times in."""
        self.codebook = codebook
        self.timings = timings
        self.languages = languages
        self.default_lang = default_lang if default_lang in languages else languages[0]
        self.staff_lang = staff_lang if staff_lang in STAFF_LANGUAGES else STAFF_LANGUAGES[0]
        self.timezone = timezone
        self._verify_pin = verify_pin
        self._clock = clock
        self._wall = wall_clock
        self._new_id = new_id
        # kiosk state (survives idle; carries no patient data)
        self.call: Call | None = None
        self.outage_code: str | None = None
        self.in_outage = False
        # available: bool, detail: str, cause: a hardware.readers.Cause value ("" = not said), params: its texts
        self.reader: dict[str, Any] = {"available": True, "detail": "", "cause": "", "params": {}}
        self.link: dict[str, Any] = {"connected": False, "pending": 0}  # connected: bool, pending: int
        self.consoles_online: int | None = None  # staff consoles of the site that are up; None = not known
        self._call_opened_at = 0.0  # clock time the open call was raised (escalation counts from it)
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
        self.display: dict[str, bool] = dict.fromkeys(DISPLAY_MODES, False)
        self._deadline: float | None = None
        self._pending_verdict: Verdict | None = None
        self._card_present = False

    # --- public --------------------------------------------------------------------------------------------

    def start(self) -> list[Effect]:
        """The first effects: lamp state and the home screen."""
        return self._lamp() + self._go_home()

    def next_deadline(self) -> float | None:
        """When a `Tick()` is next due (clock time), or None when nothing is waiting."""
        times = [t for t in (self._deadline, self._forget_failures_at, self._escalation_due()) if t is not None]
        return min(times) if times else None

    def handle(self, message: Message) -> list[Effect]:
        """The effects of one message, in order (the runtime carries them out)."""
        match message:
            case CardPresented(verdict):
                return self._presented(verdict)
            case CardRemoved():
                return self._removed()
            case ReaderChanged(available, detail, cause, params):
                return self._reader_changed(available, detail, cause, params)
            case LinkChanged(connected, pending):
                self.link = {"connected": connected, "pending": pending}
                return self._refresh_staff()
            case ConsolesChanged(online):
                return self._consoles_changed(online)
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
            case Command():
                return self._command(message)
        return []

    # --- screens -------------------------------------------------------------------------------------------

    def _home(self) -> str:
        if self.call is not None:
            return STAFF_COMING if self.call.acknowledged else CALLING
        return OUTAGE if self.in_outage else IDLE

    def _home_context(self, home: str) -> dict[str, Any]:
        if home == CALLING and self.call is not None:
            return {"reason": self.call.reason, "code": self.call.code, "escalation": self.call.escalation,
                    "consoles_online": self.consoles_online}
        if home == STAFF_COMING and self.call is not None:
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
        return ShowScreen(self.screen, self._shown_lang(), dict(self.context), speaker=self._speaker(),
                          large_text=self.display[LARGE_TEXT], high_contrast=self.display[HIGH_CONTRAST])

    def _shown_lang(self) -> str:
        """The patient's language; on the staff screen the same when staff texts exist in it (ja, en), else the
        staff language. A patient's choice of language is never changed by it."""
        if self.screen == STAFF and self.lang not in STAFF_LANGUAGES:
            return self.staff_lang
        return self.lang

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
            "consoles_online": self.consoles_online,
            "lamp": self.lamp,
            "last_events": [dict(e) for e in self.last_events],
            "default_language": self.default_lang,
            "languages": self.languages,
            "open_call": self.call.as_dict() if self.call else None,
            "outage": self.in_outage,
            "voice": {"available": bool(self.voice_languages), "muted": self.voice_muted,
                      "volume": self.voice_volume},
            "timezone": self.timezone,
        }, self.timings.idle_timeout_seconds)

    # --- lamp and events -----------------------------------------------------------------------------------

    def _lamp(self) -> list[Effect]:
        unheard = self.consoles_online == 0
        if self.call is not None and self.call.acknowledged:
            pattern = LAMP_ACKNOWLEDGED
        elif self.call is not None:
            pattern = LAMP_ESCALATED if self.call.escalation else LAMP_NO_CONSOLE if unheard else LAMP_CALL
        elif self.in_outage:
            pattern = LAMP_OUTAGE
        elif not self.reader["available"]:
            pattern = LAMP_READER_FAULT
        else:
            pattern = LAMP_NO_CONSOLE if unheard else LAMP_OFF
        if pattern == self.lamp:
            return []
        self.lamp = pattern
        return [SetLamp(pattern), self._emit(events.LAMP_STATUS, {"pattern": pattern})]

    def _emit(self, kind: str, data: dict[str, Any], at: str | None = None) -> Emit:
        params = {key: str(data[key]) for key in EVENT_PARAMS if data.get(key) not in (None, "")}
        if kind == events.READER_STATUS:
            params.update({str(k): str(v) for k, v in dict(data.get("params") or {}).items()})
        seen = {"kind": kind, "code": data.get("code"), "time": self._wall().isoformat(timespec="seconds"),
                "params": params}
        self.last_events = [*self.last_events, seen][-LAST_EVENTS_KEPT:]
        return Emit(kind, data, at)

    # --- the card ------------------------------------------------------------------------------------------

    def _presented(self, verdict: Verdict) -> list[Effect]:
        self._card_present = True
        if verdict.outcome == Outcome.NOTHING or self.screen in (STAFF, STAFF_PIN):
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
        assert verdict is not None  # checking is only ever shown with a pending verdict
        outcome = str(verdict.outcome)
        code = verdict.code
        effects: list[Effect] = [self._emit(events.PRECHECK, {"outcome": outcome, "code": code,
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

    def _reader_changed(self, available: bool, detail: str, cause: str = "",
                        params: Mapping[str, str] | None = None) -> list[Effect]:
        """A reader fault is the reader's: lamp and staff only, never a patient outcome or a failure counted."""
        reader = {"available": available, "detail": detail, "cause": cause, "params": dict(params or {})}
        if self.reader == reader:
            return []
        self.reader = reader
        effects: list[Effect] = [self._emit(events.READER_STATUS, {"available": available, "detail": detail,
                                                                   "cause": cause, "params": dict(params or {})})]
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
        due = self._escalation_due()
        while due is not None and now >= due:
            effects += self._escalate()
            due = self._escalation_due()
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
        code = unicodedata.normalize("NFKC", entered).strip()  # full-width digits from an IME or keyboard
        if not (len(code) == 3 and code.isascii() and code.isdigit()):
            return self._show(LOOKUP, {"error": "format", "entered": code[:8], "nearest": []},
                              self.timings.idle_timeout_seconds)
        facts = self.codebook.facts(code)
        if facts is None:
            unknown = self._emit(events.LOOKUP, {"code": code, "known": False, "audience": None, "outage": False})
            return [unknown, *self._show(LOOKUP, {"error": "unknown", "entered": code,
                                                  "nearest": list(self.codebook.nearest(code))},
                                         self.timings.idle_timeout_seconds)]
        effects: list[Effect] = [self._emit(events.LOOKUP, {"code": code, "known": True, "audience": facts.audience,
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
        since = events.timestamp(self._wall())  # the `call` event's time too: reports and console agree
        self.call = Call(id=self._new_id(), reason=reason, code=code, audience=audience, since=since)
        self._call_opened_at = self._clock()
        data = {**self._call_data(), "consoles_online": self.consoles_online}
        effects: list[Effect] = [self._emit(events.CALL, data, since), SetCall(self.call), Chirp()]
        return effects + self._lamp()

    def _call_data(self) -> dict[str, Any]:
        assert self.call is not None
        return {"call_id": self.call.id, "reason": self.call.reason, "code": self.call.code,
                "audience": self.call.audience}

    def _escalation_due(self) -> float | None:
        """Clock time of the open call's next escalation: None once acknowledged, resolved or sent to the desk."""
        call = self.call
        if call is None or call.acknowledged or call.escalation >= events.SENT_TO_DESK:
            return None
        after = self.timings.escalate_seconds if call.escalation < events.ESCALATED else self.timings.desk_seconds
        return self._call_opened_at + after

    def _escalate(self) -> list[Effect]:
        """The open call waited past the next threshold unacknowledged: call_escalated (once per level), the
        urgent lamp and, on the calling screen, the patient told again (level 1) or sent to the desk (level 2)."""
        assert self.call is not None
        self.call = replace(self.call, escalation=self.call.escalation + 1)
        waited = round(self._clock() - self._call_opened_at)
        effects: list[Effect] = [
            self._emit(events.CALL_ESCALATED, {**self._call_data(), "level": self.call.escalation,
                                               "waited_seconds": waited, "consoles_online": self.consoles_online}),
            SetCall(self.call), Chirp(), *self._lamp()]
        return effects + self._refresh_calling() + self._refresh_staff()

    def _consoles_changed(self, online: int) -> list[Effect]:
        online = max(0, online)
        if online == self.consoles_online:
            return []
        self.consoles_online = online
        return self._lamp() + self._refresh_calling() + self._refresh_staff()

    def _refresh_calling(self) -> list[Effect]:
        """The calling screen again with what changed (escalation, consoles), keeping the patient's language."""
        if self.screen != CALLING or self.call is None or self.call.acknowledged:
            return []
        self.context = self._home_context(CALLING)
        return [self._screen_effect()]

    def _acknowledge(self) -> list[Effect]:
        assert self.call is not None
        self.call = replace(self.call, acknowledged=True)
        effects: list[Effect] = [self._emit(events.CALL_ACKNOWLEDGED, self._call_data()), SetCall(self.call)]
        effects += self._lamp()
        return effects + self._follow_home() + self._refresh_staff()

    def _resolve(self, by: str) -> list[Effect]:
        if self.call is None:
            return []
        effects: list[Effect] = [self._emit(events.CALL_RESOLVED, {**self._call_data(), "by": by})]
        self.call = None
        effects += [SetCall(None), *self._lamp()]
        return effects + self._follow_home() + self._refresh_staff()

    # --- outage --------------------------------------------------------------------------------------------

    def _enter_outage(self, code: str | None, source: str) -> list[Effect]:
        if self.in_outage:
            return []
        self.in_outage, self.outage_code = True, code
        return [self._emit(events.OUTAGE_ENTERED, {"code": code, "source": source}), *self._lamp()]

    def _leave_outage(self, source: str) -> list[Effect]:
        if not self.in_outage:
            return []
        self.in_outage, self.outage_code = False, None
        return [self._emit(events.OUTAGE_LEFT, {"source": source}), *self._lamp()]

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
                effects = [LampTest(events.LAMP_TEST_SECONDS)]
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

    def _command(self, command: Command) -> list[Effect]:
        """A staff command's effects and its Reply: a text id of staff.json (`reply.<id>`) and one English line."""
        name = command.name
        args: dict[str, Any] = dict(command.args or {})
        if name not in events.COMMAND_ARGS:
            return [Reply(command, False, events.UNKNOWN_COMMAND, f"unknown command {name!r}", {"name": name[:64]})]
        if name == events.RESEND_EVENTS:  # answered by the MQTT link, which holds the events (kiosk.link)
            return [Reply(command, False, events.REJECTED, "resend_events is answered by the MQTT link")]
        if name in (events.ACKNOWLEDGE, events.RESOLVE):
            if self.call is None:
                return [Reply(command, False, "no_open_call", "no open call")]
            args.setdefault("call_id", self.call.id)  # the demo's own commands name no call: the open one
        try:
            checked = events.command_args(name, args)
        except events.CommandError as err:
            return [Reply(command, False, err.code, err.detail)]
        if isinstance(checked, events.CallArgs):
            assert self.call is not None
            if checked.call_id != self.call.id:
                return [Reply(command, False, "not_open_call", "call_id is not the open call")]
            if name == events.ACKNOWLEDGE:
                if self.call.acknowledged:
                    return [Reply(command, True, "already_acknowledged", "already acknowledged")]
                return [*self._acknowledge(), Reply(command, True, "acknowledged", "acknowledged")]
            return [*self._resolve("command"), Reply(command, True, "resolved", "resolved")]
        if isinstance(checked, events.LampTestArgs):
            return [LampTest(checked.seconds), Reply(command, True, "lamp_test_started", "lamp test started")]
        if name == events.RELOAD_CATALOGUE:
            return [ReloadCatalogue(command)]
        if isinstance(checked, events.OutageArgs):
            if self.in_outage:
                return [Reply(command, True, "already_in_outage", "already in outage mode")]
            return (self._enter_outage(checked.code, "command") + self._follow_home() + self._refresh_staff()
                    + [Reply(command, True, "outage_entered", "outage mode entered")])
        if not self.in_outage:
            return [Reply(command, True, "not_in_outage", "not in outage mode")]
        return (self._leave_outage("command") + self._follow_home() + self._refresh_staff()
                + [Reply(command, True, "outage_left", "outage mode left")])
