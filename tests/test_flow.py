"""The patient-flow state machine, driven with an injected clock (no Kivy, no hardware)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from kiosk.effects import (
    Call,
    Chirp,
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
from kiosk.flow import CodeFacts, Flow, FlowTimings
from kiosk.messages import (
    CallButton,
    CardPresented,
    CardRemoved,
    Command,
    ConsolesChanged,
    LinkChanged,
    LookupEntered,
    PinEntered,
    ReaderChanged,
    ResetButton,
    Tap,
    Tick,
)
from kiosk.precheck import Outcome, Verdict
from kiosk.vocabulary import (
    CALLING,
    CHECKING,
    IDLE,
    LOOKUP,
    OUTAGE,
    OUTAGE_OPTIONS,
    RESULT,
    STAFF,
    STAFF_COMING,
    STAFF_PIN,
    VOLUME_LEVELS,
)

OK = Verdict(Outcome.MYNUMBER_CARD, None)
NOT_MYNA = Verdict(Outcome.NOT_MYNUMBER, "002", ("one_card_only",))
UNREADABLE = Verdict(Outcome.UNREADABLE_CARD, "001", ("card_flat",))

CODES = {
    "001": CodeFacts("001", "patient", False, False),
    "013": CodeFacts("013", "staff", False, True),
    "101": CodeFacts("101", "patient", False, True),
    "950": CodeFacts("950", "staff", True, True),
}


class Book:
    def facts(self, code):
        return CODES.get(code)

    def nearest(self, code):
        return ["001", "013"]


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def cmd(name: str, args: dict[str, Any] | None = None) -> Command:
    """A staff command as the demo panel or the link posts it (the flow's replies are effects, not calls)."""
    return Command(f"cmd-{name}", name, dict(args or {}), reply=lambda answer: None)


class Harness:
    def __init__(self, pin_ok: str | None = "2468", voice: dict[str, Any] | None = None, **timings):
        self.clock = Clock()
        ids = iter(f"call-{i}" for i in range(100))
        verify = None if pin_ok is None else (lambda pin: pin == pin_ok)
        self.flow = Flow(Book(), FlowTimings(**timings), languages=("ja", "en"), default_lang="ja",
                           verify_pin=verify, clock=self.clock,
                           wall_clock=lambda: datetime(2026, 11, 25, 10, 0, tzinfo=UTC),
                           new_id=lambda: next(ids), **(voice or {}))
        self.effects = self.flow.start()

    def send(self, message) -> list:
        self.effects = self.flow.handle(message)
        return self.effects

    def advance(self, seconds: float) -> list:
        self.clock.now += seconds
        return self.send(Tick())

    def screens(self):
        return [e for e in self.effects if isinstance(e, ShowScreen)]

    def last_screen(self) -> ShowScreen:
        return self.screens()[-1]

    def emitted(self, kind=None):
        return [e for e in self.effects if isinstance(e, Emit) and (kind is None or e.kind == kind)]

    def lamps(self):
        return [e.pattern for e in self.effects if isinstance(e, SetLamp)]

    def replies(self):
        return [(e.ok, e.detail) for e in self.effects if isinstance(e, Reply)]

    def present(self, verdict, then_wait=True):
        self.send(CardPresented(verdict))
        assert self.flow.screen == CHECKING
        if then_wait:
            return self.advance(1.0)
        return self.effects


def test_start_shows_idle_and_lamp_off():
    h = Harness()
    assert h.last_screen() == ShowScreen(IDLE, "ja", {})
    assert h.lamps() == ["off"]
    assert h.emitted("lamp_status")[0].data == {"pattern": "off"}


def test_presentation_goes_checking_then_result_then_idle_on_removal():
    h = Harness()
    h.send(CardPresented(OK))
    assert h.last_screen().name == CHECKING
    assert h.flow.next_deadline() == pytest.approx(1000.8)
    assert h.advance(0.5) == []  # not yet
    h.advance(0.5)
    shown = h.last_screen()
    assert shown.name == RESULT
    assert shown.context["outcome"] == "mynumber_card" and shown.context["code"] is None
    assert h.emitted("precheck")[0].data == {"outcome": "mynumber_card", "code": None, "hints": []}
    assert h.send(CardRemoved()) == []  # the result lingers after removal
    h.advance(4.9)
    assert h.flow.screen == RESULT
    h.advance(0.2)
    assert h.last_screen().name == IDLE


def test_result_times_out_with_card_still_there():
    h = Harness()
    h.present(NOT_MYNA)
    assert h.last_screen().context == {"outcome": "not_mynumber", "code": "002", "hints": ("one_card_only",),
                                       "called": False, "failures": 1}
    h.advance(29)
    assert h.flow.screen == RESULT
    h.advance(2)
    assert h.flow.screen == IDLE


def test_removal_during_checking_still_shows_result_briefly():
    h = Harness()
    h.present(UNREADABLE, then_wait=False)
    h.send(CardRemoved())
    h.advance(1)
    assert h.flow.screen == RESULT
    h.advance(5.1)
    assert h.flow.screen == IDLE


def test_flapping_during_checking_keeps_the_newest_verdict():
    h = Harness()
    h.present(OK, then_wait=False)
    assert h.send(CardPresented(NOT_MYNA)) == []
    h.advance(1)
    assert h.last_screen().context["outcome"] == "not_mynumber"
    assert len(h.emitted("precheck")) == 1


def test_nothing_outcome_is_ignored():
    h = Harness()
    assert h.send(CardPresented(Verdict(Outcome.NOTHING, None))) == []
    assert h.flow.screen == IDLE


def test_done_tap_returns_home():
    h = Harness()
    h.present(OK)
    h.send(Tap("done"))
    assert h.last_screen().name == IDLE


def test_repeated_failures_call_staff_by_themselves():
    h = Harness(failures_before_call=3)
    for expected in (1, 2):
        h.present(UNREADABLE)
        assert h.last_screen().context["failures"] == expected
        assert not h.emitted("call")
        h.send(CardRemoved())
        h.advance(6)
        assert h.flow.screen == IDLE
    h.present(UNREADABLE)
    call = h.emitted("call")[0].data
    assert call == {"call_id": "call-0", "reason": "repeated_failures", "code": "001", "audience": "patient",
                    "consoles_online": None}
    assert h.last_screen().context["called"] is True
    assert "call" in h.lamps() and any(isinstance(e, Chirp) for e in h.effects)
    h.send(CardRemoved())
    h.advance(6)
    assert h.last_screen().name == CALLING  # home is now the waiting screen


def test_a_good_card_resets_the_failure_streak():
    h = Harness(failures_before_call=2)
    h.present(UNREADABLE)
    h.present(OK)
    h.present(UNREADABLE)
    assert h.last_screen().context["failures"] == 1
    assert h.flow.call is None


def test_failure_streak_is_forgotten_after_a_quiet_idle():
    h = Harness(failures_before_call=2, idle_timeout_seconds=60)
    h.present(UNREADABLE)
    h.send(CardRemoved())
    h.advance(6)
    assert h.flow.screen == IDLE and h.flow.failures == 1
    h.advance(61)
    assert h.flow.failures == 0
    h.present(UNREADABLE)
    assert h.flow.call is None


def test_lookup_of_a_patient_code_shows_guidance_without_calling():
    h = Harness()
    h.send(Tap("lookup"))
    assert h.last_screen() == ShowScreen(LOOKUP, "ja", {"error": None, "entered": "", "nearest": []})
    h.send(LookupEntered("001"))
    assert h.last_screen().context == {"code": "001", "audience": "patient", "outage": False,
                                       "call_staff": False, "called": False}
    assert h.emitted("lookup")[0].data == {"code": "001", "known": True, "audience": "patient", "outage": False}
    assert not h.emitted("call")


@pytest.mark.parametrize("code, reason", [("013", "staff_code"), ("101", "staff_code")])
def test_lookup_of_a_staff_code_calls_staff(code, reason):
    h = Harness()
    h.send(Tap("lookup"))
    h.send(LookupEntered(code))
    assert h.emitted("call")[0].data["reason"] == reason
    assert h.emitted("call")[0].data["code"] == code
    assert h.last_screen().context["called"] is True
    assert h.lamps() == ["call"]
    assert isinstance(next(e for e in h.effects if isinstance(e, SetCall)).call, Call)


def test_lookup_of_an_outage_code_enters_outage_and_calls_staff():
    h = Harness()
    h.send(Tap("lookup"))
    h.send(LookupEntered("950"))
    assert h.emitted("outage_entered")[0].data == {"code": "950", "source": "code"}
    assert h.emitted("call")[0].data["reason"] == "outage"
    assert h.flow.in_outage
    h.send(Tap("home"))
    assert h.last_screen().name == CALLING
    h.send(cmd("resolve"))
    assert h.last_screen() == ShowScreen(OUTAGE, "ja", {"code": "950", "options": OUTAGE_OPTIONS})
    assert h.lamps() == ["outage"]


@pytest.mark.parametrize("entry", ["", "12", "1234", "abc", "１２", "12a", "٠١٢"])
def test_lookup_rejects_malformed_entries(entry):
    h = Harness()
    h.send(Tap("lookup"))
    h.send(LookupEntered(entry))
    assert h.last_screen().name == LOOKUP and h.last_screen().context["error"] == "format"
    assert not h.emitted()


def test_lookup_accepts_full_width_digits():
    h = Harness()
    h.send(Tap("lookup"))
    h.send(LookupEntered("０１３"))  # what a Japanese IME types
    assert h.last_screen().name != LOOKUP
    assert h.emitted("lookup")[0].data["code"] == "013"


def test_lookup_of_an_unknown_code_offers_the_nearest():
    h = Harness()
    h.send(Tap("lookup"))
    h.send(LookupEntered("999"))
    assert h.last_screen().context == {"error": "unknown", "entered": "999", "nearest": ["001", "013"]}
    assert h.emitted("lookup")[0].data["known"] is False


def test_lookup_times_out_to_idle():
    h = Harness(idle_timeout_seconds=60)
    h.send(Tap("lookup"))
    h.advance(59)
    assert h.flow.screen == LOOKUP
    h.advance(2)
    assert h.flow.screen == IDLE


def test_lookup_entry_outside_the_lookup_screen_is_ignored():
    h = Harness()
    assert h.send(LookupEntered("013")) == []


def test_call_button_acknowledge_resolve():
    h = Harness()
    h.send(CallButton())
    assert h.last_screen() == ShowScreen(CALLING, "ja", {"reason": "patient_request", "code": None,
                                                         "escalation": 0, "consoles_online": None})
    assert h.lamps() == ["call"]
    assert [type(e) for e in h.effects if isinstance(e, (SetCall, Chirp))] == [SetCall, Chirp]
    [opened] = h.emitted("call")
    since = next(e for e in h.effects if isinstance(e, SetCall)).call.since
    assert opened.time == since  # the call event's envelope time is the retained call's `since`, to the ms
    assert datetime.fromisoformat(since) == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert h.emitted("lamp_status")[0].time is None  # other events are stamped when stored
    h.send(cmd("acknowledge", {"call_id": "call-0"}))
    assert h.replies() == [(True, "acknowledged")]
    assert h.last_screen().name == STAFF_COMING
    assert h.lamps() == ["acknowledged"]
    assert h.emitted("call_acknowledged")[0].data["call_id"] == "call-0"
    set_call = next(e for e in h.effects if isinstance(e, SetCall))
    assert set_call.call.acknowledged
    h.send(cmd("resolve"))
    assert h.replies() == [(True, "resolved")]
    assert h.emitted("call_resolved")[0].data == {"call_id": "call-0", "reason": "patient_request", "code": None,
                                                  "audience": "patient", "by": "command"}
    assert [e for e in h.effects if isinstance(e, SetCall)] == [SetCall(None)]
    assert h.lamps() == ["off"]
    assert h.last_screen().name == IDLE


def test_screen_call_tap_and_a_second_press_does_not_open_a_second_call():
    h = Harness()
    h.send(Tap("call"))
    h.send(CallButton())
    assert not h.emitted("call")
    assert h.last_screen().name == CALLING


def test_reset_button_resolves_the_open_call():
    h = Harness()
    h.send(CallButton())
    h.send(ResetButton())
    assert h.emitted("call_resolved")[0].data["by"] == "reset_button"
    assert h.last_screen().name == IDLE
    assert h.send(ResetButton()) == []


@pytest.mark.parametrize("command, detail", [
    (cmd("acknowledge"), "no open call"),
    (cmd("resolve"), "no open call"),
    (cmd("reboot"), "unknown command 'reboot'"),
    (cmd("outage_enter", {"code": "95"}), "code must be a 3-digit string"),
    (cmd("resend_events", {"after_seq": 0}), "resend_events is answered by the MQTT link"),  # it holds the events
])
def test_bad_commands_are_refused_without_state_change(command, detail):
    h = Harness()
    h.send(command)
    assert h.replies() == [(False, detail)]
    assert h.flow.call is None and not h.flow.in_outage and h.flow.screen == IDLE


def test_acknowledge_with_a_stale_call_id_is_refused():
    h = Harness()
    h.send(CallButton())
    h.send(cmd("acknowledge", {"call_id": "old"}))
    assert h.replies() == [(False, "call_id is not the open call")]
    assert not h.flow.call.acknowledged


def test_outage_commands():
    h = Harness()
    h.send(cmd("outage_enter", {"code": "952"}))
    assert h.replies() == [(True, "outage mode entered")]
    assert h.emitted("outage_entered")[0].data == {"code": "952", "source": "command"}
    assert h.last_screen().name == OUTAGE and h.lamps() == ["outage"]
    assert not h.emitted("call")
    h.send(cmd("outage_enter"))
    assert h.replies() == [(True, "already in outage mode")] and not h.emitted()
    h.send(cmd("outage_leave"))
    assert h.emitted("outage_left")[0].data == {"source": "command"}
    assert h.last_screen().name == IDLE and h.lamps() == ["off"]


def test_lamp_test_and_reload_commands():
    h = Harness()
    h.send(cmd("lamp_test", {"seconds": 9}))
    assert LampTest(9.0) in h.effects and h.replies() == [(True, "lamp test started")]
    h.send(cmd("lamp_test"))
    assert LampTest(5.0) in h.effects
    for bad in (0, 31, "5", True, 2.5):  # whole seconds, as docs/asyncapi.yaml says
        h.send(cmd("lamp_test", {"seconds": bad}))
        assert h.replies() == [(False, "seconds must be a whole number from 1 to 30")] and len(h.effects) == 1
    command = cmd("reload_catalogue")
    assert h.send(command) == [ReloadCatalogue(command)]


def test_reader_loss_sets_the_fault_lamp_and_is_reported():
    h = Harness()
    h.send(ReaderChanged(False, "no reader"))
    assert h.emitted("reader_status")[0].data == {"available": False, "detail": "no reader", "cause": "", "params": {}}
    assert h.lamps() == ["reader_fault"]
    assert h.send(ReaderChanged(False, "no reader")) == []
    h.send(CallButton())
    assert h.lamps() == ["call"]  # a call outranks the fault
    h.send(ReaderChanged(True, ""))
    assert h.lamps() == []
    h.send(cmd("resolve"))
    assert h.lamps() == ["off"]


def test_language_switch_falls_back_to_default_at_idle_and_nothing_personal_is_kept():
    h = Harness()
    h.send(Tap("lang:en"))
    assert h.last_screen() == ShowScreen(IDLE, "en", {})
    h.present(NOT_MYNA)
    assert h.last_screen().lang == "en"
    h.send(Tap("lookup"))
    h.send(LookupEntered("001"))
    assert h.last_screen().lang == "en"
    h.send(Tap("home"))
    assert h.last_screen() == ShowScreen(IDLE, "ja", {})
    assert h.flow.context == {} and h.flow._pending_verdict is None
    # What the kiosk keeps (lamp, reader, link, recent event codes) holds nothing of this patient's session.
    kept = repr({k: v for k, v in vars(h.flow).items() if k not in ("last_events", "codebook", "timings", "languages")})
    for trace in ("002", "001", "not_mynumber", "one_card_only", "en"):
        assert f"'{trace}'" not in kept


def test_unknown_language_is_ignored():
    h = Harness()
    assert h.send(Tap("lang:xx")) == []


def test_staff_mode_needs_the_pin():
    h = Harness(pin_ok="2468")
    h.send(Tap("staff_gesture"))
    assert h.last_screen() == ShowScreen(STAFF_PIN, "ja", {"error": None, "attempts_left": 5})
    h.send(PinEntered("0000"))
    assert h.last_screen().context == {"error": "wrong", "attempts_left": 4}
    h.send(PinEntered("2468"))
    staff = h.last_screen()
    assert staff.name == STAFF
    assert set(staff.context) == {"reader", "broker", "consoles_online", "lamp", "last_events", "default_language",
                                  "languages", "open_call", "outage", "voice", "timezone"}
    assert all(set(e) == {"kind", "code", "time", "params"} for e in staff.context["last_events"])


def test_staff_pin_lockout():
    h = Harness(pin_ok="2468", pin_attempts=3, pin_lockout_seconds=300)
    h.send(Tap("staff_gesture"))
    for _ in range(3):
        h.send(PinEntered("1111"))
    assert h.last_screen().context["error"] == "locked"
    h.send(PinEntered("2468"))
    assert h.last_screen().name == STAFF_PIN and h.last_screen().context["error"] == "locked"
    h.clock.now += 301
    h.send(PinEntered("2468"))
    assert h.last_screen().name == STAFF


def test_staff_mode_is_disabled_without_a_pin_hash():
    h = Harness(pin_ok=None)
    assert h.send(Tap("staff_gesture")) == []


def test_staff_screen_actions():
    h = Harness()
    h.send(CallButton())
    h.send(Tap("staff_gesture"))
    h.send(PinEntered("2468"))
    assert h.last_screen().context["open_call"]["call_id"] == "call-0"
    assert [e["kind"] for e in h.last_screen().context["last_events"]] == ["lamp_status", "call", "lamp_status"]
    h.send(Tap("clear_call"))
    assert h.emitted("call_resolved")[0].data["by"] == "staff_screen"
    assert h.last_screen().name == STAFF and h.last_screen().context["open_call"] is None
    h.send(Tap("lamp_test"))
    assert LampTest() in h.effects
    h.send(Tap("default_lang:en"))
    assert SetDefaultLanguage("en") in h.effects and h.last_screen().context["default_language"] == "en"
    h.send(Tap("outage_enter"))
    assert h.emitted("outage_entered")[0].data["source"] == "staff_screen"
    h.send(Tap("outage_leave"))
    h.send(LinkChanged(True, 7))
    assert h.last_screen().context["broker"] == {"connected": True, "pending": 7}
    h.send(Tap("home"))
    assert h.last_screen() == ShowScreen(IDLE, "en", {})  # the new default language


def test_staff_mode_times_out_and_ignores_cards():
    h = Harness(idle_timeout_seconds=60)
    h.send(Tap("staff_gesture"))
    h.send(PinEntered("2468"))
    assert h.send(CardPresented(OK)) == []
    h.advance(61)
    assert h.flow.screen == IDLE


def test_acknowledge_while_patient_is_elsewhere_does_not_yank_the_screen():
    h = Harness()
    h.send(CallButton())
    h.send(Tap("lookup"))
    h.send(cmd("acknowledge"))
    assert not h.screens()
    h.send(Tap("home"))
    assert h.last_screen().name == STAFF_COMING


def test_reader_loss_while_checking_returns_home():
    h = Harness()
    h.present(OK, then_wait=False)
    h.send(ReaderChanged(False, "unplugged"))
    assert h.last_screen().name == IDLE
    assert h.advance(5) == []  # the pending verdict is gone, no result appears


def test_idempotent_and_out_of_place_inputs_change_nothing():
    h = Harness()
    assert h.send(object()) == []  # not a message
    assert h.send(PinEntered("2468")) == []  # not on the PIN screen
    h.send(cmd("outage_leave"))
    assert h.replies() == [(True, "not in outage mode")] and not h.emitted()
    h.send(CallButton())
    h.send(cmd("acknowledge"))
    h.send(cmd("acknowledge"))
    assert h.replies() == [(True, "already acknowledged")] and not h.emitted()


def test_staff_screen_ignores_language_and_unknown_taps_and_repeats():
    h = Harness()
    h.send(Tap("staff_gesture"))
    h.send(PinEntered("2468"))
    assert h.send(Tap("lang:en")) == []
    assert h.send(Tap("self_destruct")) == []
    assert h.send(Tap("default_lang:xx")) == []
    h.send(Tap("outage_leave"))
    assert not h.emitted()
    h.send(Tap("outage_enter"))
    h.send(Tap("outage_enter"))
    assert not h.emitted()
    h.send(Tap("reload_catalogue"))
    assert ReloadCatalogue() in h.effects and h.last_screen().name == STAFF


# --- voice guidance and the display modes --------------------------------------------------------------------

VOICED = {"voice_languages": frozenset({"ja"}), "voice_muted": False, "voice_volume": 0.8}


def staff_screen(h: Harness) -> None:
    h.send(Tap("staff_gesture"))
    h.send(PinEntered("2468"))
    assert h.flow.screen == STAFF


def test_display_toggles_reshow_the_screen_and_reset_when_the_patient_leaves():
    h = Harness()
    h.send(Tap("display:large_text"))
    assert h.last_screen() == ShowScreen(IDLE, "ja", {}, large_text=True)
    h.send(Tap("display:high_contrast"))
    assert h.last_screen() == ShowScreen(IDLE, "ja", {}, large_text=True, high_contrast=True)
    h.present(NOT_MYNA)  # the patient's choice carries over to their result
    assert h.last_screen().name == RESULT and h.last_screen().large_text and h.last_screen().high_contrast
    h.send(Tap("done"))
    assert h.last_screen() == ShowScreen(IDLE, "ja", {})
    assert h.send(Tap("display:sparkles")) == []


def test_a_changed_idle_screen_returns_to_the_defaults_after_the_idle_timeout():
    h = Harness(idle_timeout_seconds=60)
    h.send(Tap("display:high_contrast"))
    h.send(Tap("lang:en"))
    assert h.advance(59) == []
    h.advance(2)
    assert h.last_screen() == ShowScreen(IDLE, "ja", {})
    h.send(Tap("display:high_contrast"))
    h.send(Tap("display:high_contrast"))  # toggled back: nothing left to reset, no deadline
    assert h.flow.next_deadline() == h.flow._forget_failures_at


def test_display_toggles_are_ignored_in_staff_mode():
    h = Harness()
    staff_screen(h)
    assert h.send(Tap("display:large_text")) == []
    assert h.flow.display == {"large_text": False, "high_contrast": False}


def test_speaker_button_only_on_guidance_screens_in_a_voiced_language():
    h = Harness(voice=VOICED)
    assert not h.last_screen().speaker  # idle
    h.present(NOT_MYNA)
    assert h.last_screen().name == RESULT and h.last_screen().speaker
    assert h.send(Tap("speak")) == [Speak("ja")]
    h.send(Tap("lang:en"))  # no English voice on this kiosk
    assert not h.last_screen().speaker
    assert h.send(Tap("speak")) == []
    h.send(Tap("call"))
    h.send(Tap("lang:ja"))
    assert h.last_screen().name == CALLING and h.last_screen().speaker


def test_no_speaker_and_no_speech_without_a_voice_or_when_muted():
    assert Harness().send(Tap("call")) and Harness().send(Tap("speak")) == []
    h = Harness(voice={**VOICED, "voice_muted": True})
    h.send(Tap("call"))
    assert not h.last_screen().speaker
    assert h.send(Tap("speak")) == []


def test_staff_mute_and_volume_are_honoured_at_once():
    h = Harness(voice=VOICED)
    staff_screen(h)
    assert h.last_screen().context["voice"] == {"available": True, "muted": False, "volume": 0.8}
    h.send(Tap("voice_mute"))
    assert SetVoice(True, 0.8) in h.effects
    assert h.last_screen().context["voice"]["muted"]
    h.send(Tap("voice_volume"))
    assert SetVoice(True, 1.0) in h.effects
    h.send(Tap("voice_volume"))  # round to the quietest level, never 0: silence is the mute toggle's job
    assert SetVoice(True, VOLUME_LEVELS[0]) in h.effects
    h.send(Tap("done"))
    h.send(Tap("call"))
    assert not h.last_screen().speaker and h.send(Tap("speak")) == []  # muted: nothing plays
    staff_screen(h)
    h.send(Tap("voice_mute"))
    assert SetVoice(False, VOLUME_LEVELS[0]) in h.effects
    h.send(Tap("done"))
    assert h.last_screen().name == CALLING and h.last_screen().speaker
    assert h.send(Tap("speak")) == [Speak("ja")]


# --- who is listening, and escalation (issue 18) -------------------------------------------------------------

def test_a_call_with_no_console_online_says_so_on_screen_lamp_and_event():
    h = Harness()
    assert h.send(ConsolesChanged(0)) and h.lamps() == ["no_console"]  # staff see it on the lamp even when idle
    assert h.emitted("lamp_status")[0].data == {"pattern": "no_console"}
    h.send(CallButton())
    assert h.emitted("call")[0].data["consoles_online"] == 0
    assert h.last_screen().context["consoles_online"] == 0
    assert h.flow.lamp == "no_console"
    h.send(Tap("lang:en"))
    h.send(ConsolesChanged(2))  # a console came up: the calling screen follows, in the patient's language
    assert h.last_screen() == ShowScreen(CALLING, "en", {"reason": "patient_request", "code": None,
                                                         "escalation": 0, "consoles_online": 2})
    assert h.lamps() == ["call"]
    assert h.send(ConsolesChanged(2)) == []  # nothing changed
    h.send(cmd("acknowledge", {"call_id": "call-0"}))
    h.send(ConsolesChanged(0))
    assert h.flow.lamp == "acknowledged" and h.flow.screen == STAFF_COMING and not h.screens()


def test_an_unacknowledged_call_escalates_once_per_threshold_on_the_injected_clock():
    h = Harness(escalate_seconds=60, desk_seconds=180)
    h.send(ConsolesChanged(1))
    h.send(CallButton())
    h.send(Tap("lang:en"))
    assert h.flow.next_deadline() == 1000 + 60
    assert h.advance(59.5) == []
    h.advance(0.5)
    [escalated] = h.emitted("call_escalated")
    assert escalated.data == {"call_id": "call-0", "reason": "patient_request", "code": None, "audience": "patient",
                              "level": 1, "waited_seconds": 60, "consoles_online": 1}
    assert h.lamps() == ["escalated"] and any(isinstance(e, Chirp) for e in h.effects)
    assert [e.call.escalation for e in h.effects if isinstance(e, SetCall)] == [1]
    assert h.last_screen() == ShowScreen(CALLING, "en", {"reason": "patient_request", "code": None,
                                                         "escalation": 1, "consoles_online": 1})
    assert h.advance(60) == []  # once per threshold
    h.advance(60)
    assert [e.data["level"] for e in h.emitted("call_escalated")] == [2]
    assert h.last_screen().context["escalation"] == 2
    h.advance(3600)
    assert not h.emitted("call_escalated")
    h.send(cmd("acknowledge", {"call_id": "call-0"}))
    assert h.lamps() == ["acknowledged"] and h.flow.screen == STAFF_COMING


def test_both_thresholds_passed_at_once_emit_both_levels_in_order():
    h = Harness(escalate_seconds=60, desk_seconds=180)
    h.send(CallButton())
    h.advance(500)
    assert [e.data["level"] for e in h.emitted("call_escalated")] == [1, 2]


def test_an_acknowledged_call_never_escalates_and_a_resolved_one_never_reopens():
    h = Harness(escalate_seconds=60, desk_seconds=180)
    h.send(CallButton())
    h.advance(30)
    h.send(cmd("acknowledge", {"call_id": "call-0"}))
    for _ in range(5):
        h.advance(100)
        assert not h.emitted("call_escalated") and h.flow.call.escalation == 0
    h.send(cmd("resolve"))
    assert h.flow.call is None
    h.advance(1000)
    assert not h.emitted() and h.flow.call is None and h.flow.screen == IDLE
    assert h.send(cmd("acknowledge", {"call_id": "call-0"})) and h.replies() == [(False, "no open call")]
    # a second call counts from its own start
    h.send(CallButton())
    assert h.emitted("call")[0].data["call_id"] == "call-1"
    assert h.advance(59) == []
    h.advance(1)
    assert [e.data["call_id"] for e in h.emitted("call_escalated")] == ["call-1"]


def test_escalation_of_a_call_away_from_the_calling_screen_keeps_the_screen():
    h = Harness(escalate_seconds=60, desk_seconds=180)
    h.send(CallButton())
    h.send(Tap("lookup"))  # the patient looks up a code meanwhile
    h.advance(30)
    h.send(LookupEntered("001"))
    h.advance(31)
    assert h.emitted("call_escalated") and h.flow.screen != CALLING and not h.screens()
    assert h.flow.lamp == "escalated"
