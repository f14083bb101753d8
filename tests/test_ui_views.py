"""What each screen says and shows, without Kivy: kiosk.app.views + kiosk.app.texts + the shipped data."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.app.offscreen import SAMPLE_SCREENS
from kiosk.app.texts import UiTexts
from kiosk.app.views import BUILDERS, HINT_ILLUSTRATIONS, ILLUSTRATIONS, LANGUAGE_MENU, MAX_STEPS, Action, build_view
from kiosk.catalogue import load_catalogue
from kiosk.locales import LocaleError
from kiosk.paths import catalogue_root
from kiosk.precheck import DEFAULT_RULES, Outcome
from kiosk.vocabulary import CALL_OUTAGE, CALL_PATIENT, CALL_REPEATED_FAILURES, CALL_STAFF_CODE, OUTAGE_OPTIONS, SCREENS

ILLUSTRATION_DIR = Path(__file__).resolve().parent.parent / "kiosk" / "app" / "illustrations"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def texts() -> UiTexts:
    return UiTexts()


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def every_context():
    """A context for every screen, every outcome with every hint, every call reason and the outage options."""
    hints = tuple(dict.fromkeys(h for hs in DEFAULT_RULES.hints.values() for h in hs))
    for outcome in Outcome:
        yield "result", {"outcome": str(outcome), "code": "021", "hints": hints, "called": True, "failures": 2}
    for reason in (CALL_PATIENT, CALL_STAFF_CODE, CALL_OUTAGE, CALL_REPEATED_FAILURES):
        yield "calling", {"reason": reason, "code": "950"}
        yield "staff_coming", {"reason": reason, "code": None}
    for error in (None, "format", "unknown"):
        yield "lookup", {"error": error, "entered": "12", "nearest": ["120", "012"]}
    for error in (None, "wrong", "locked"):
        yield "staff_pin", {"error": error, "attempts_left": 2}
    yield "outage", {"code": "950", "options": OUTAGE_OPTIONS}
    for screen in SAMPLE_SCREENS:
        yield screen.name, screen.context


def test_the_sample_tour_covers_every_screen_the_flow_can_show():
    assert set(SCREENS) == set(BUILDERS) == {s.name for s in SAMPLE_SCREENS}


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_every_text_a_screen_needs_exists_and_fills_its_placeholders(lang, catalogue):
    texts = UiTexts()  # fresh: its report of missing ids starts empty
    for name, context in every_context():
        view = build_view(name, lang, context, texts, catalogue)
        assert all(isinstance(t, str) for t in view.texts())
    assert texts._reported == set(), f"missing or unfillable UI texts in {lang}: {sorted(texts._reported)}"


def test_japanese_and_english_have_the_same_ids(texts):
    assert set(texts.by_lang["ja"]) == set(texts.by_lang["en"])


def test_every_precheck_hint_has_a_text_in_japanese_and_english(texts):
    hints = {h for hs in DEFAULT_RULES.hints.values() for h in hs}
    for lang in ("ja", "en"):
        assert {h for h in hints if f"hint.{h}" not in texts.by_lang[lang]} == set()


def test_result_shows_hints_first_at_most_three_steps_and_existing_pictures(texts):
    view = build_view("result", "en", {"outcome": "smartphone_unreadable", "code": "021",
                                       "hints": ("out_of_case", "hold_slightly_away", "android_screen_sleep",
                                                 "restart_phone"), "called": False}, texts)
    assert view.steps == (texts.text("en", "hint.out_of_case"), texts.text("en", "hint.hold_slightly_away"),
                          texts.text("en", "hint.android_screen_sleep"))
    assert view.illustrations == ("card_out_of_case", "phone_nfc_spot")
    assert "021" in view.lines[0] and view.tone == "warn" and view.banner == ""
    good = build_view("result", "ja", {"outcome": "mynumber_card", "code": None, "hints": ()}, texts)
    assert good.tone == "ok" and good.lines == () and len(good.steps) == MAX_STEPS
    assert [a.target for a in good.actions] == ["done", "call"]


def test_a_result_after_repeated_failures_says_staff_were_called(texts):
    view = build_view("result", "ja", {"outcome": "unreadable_card", "code": "001", "hints": (), "called": True},
                      texts)
    assert view.banner == texts.text("ja", "call.called")


def test_lookup_result_uses_catalogue_guidance_and_offers_call_only_when_not_called(texts, catalogue):
    view = build_view("lookup_result", "en", {"code": "021", "audience": "patient", "outage": False,
                                              "call_staff": False, "called": False}, texts, catalogue)
    guidance = catalogue.guidance("021", "en")
    assert guidance.title in view.title and "021" in view.title
    assert view.steps == tuple(guidance.steps)[:MAX_STEPS]
    assert set(view.illustrations) <= set(guidance.illustrations)
    assert "call" in [a.target for a in view.actions]
    called = build_view("lookup_result", "en", {"code": "950", "audience": "staff", "outage": True,
                                                "call_staff": True, "called": True}, texts, catalogue)
    assert called.banner == texts.text("en", "call.called") and called.tone == "alert"
    assert "call" not in [a.target for a in called.actions]
    assert texts.text("en", "lookup_result.staff") in called.lines


def test_lookup_result_without_guidance_still_says_what_to_do(texts):
    class Broken:
        def guidance(self, code, lang):
            raise KeyError(code)

    view = build_view("lookup_result", "ja", {"code": "555"}, texts, Broken())
    assert view.lines == (texts.text("ja", "lookup_result.no_guidance"),)


def test_outage_lists_the_interim_options_in_plain_words(texts):
    view = build_view("outage", "ja", {"code": "950", "options": OUTAGE_OPTIONS}, texts)
    assert len(view.steps) == 3 and any("資格確認書" in s for s in view.steps)
    assert any("マイナポータル" in s for s in view.steps) and any("被保険者資格申立書" in s for s in view.steps)
    assert view.tone == "alert" and "950" in view.banner


def test_language_switch_offers_the_other_languages_but_not_on_staff_screens(texts):
    idle = build_view("idle", "ja", {}, texts, languages=("ja", "en"))
    assert [(a.target, a.text, a.lang) for a in idle.languages] == [("lang:en", "English", "en")]
    assert build_view("idle", "en", {}, texts, languages=("ja", "en")).languages[0].text == "日本語"
    assert build_view("staff_pin", "ja", {}, texts).languages == ()
    many = build_view("idle", "en", {}, texts, languages=("ja", "en", "vi", "th", "ko"))
    assert [a.target for a in many.languages] == ["lang:ja", LANGUAGE_MENU]
    assert [a.target for a in many.language_menu] == ["lang:ja", "lang:vi", "lang:th", "lang:ko"]


def test_staff_screen_shows_codes_and_status_but_no_language_switch(texts):
    staff = next(s for s in SAMPLE_SCREENS if s.name == "staff")
    view = build_view("staff", "en", staff.context, texts)
    assert any("021" in line for line in view.lines)
    assert [a.target for a in view.choices] == ["lamp_test", "clear_call", "outage_enter", "reload_catalogue",
                                                "voice_mute", "voice_volume", "default_lang:en"]
    assert texts.text("en", "staff.voice.on", volume=80) in view.lines
    assert view.choices[-2].text == texts.text("en", "staff.voice_volume", volume=80)
    assert (view.choices[-1].text, view.choices[-1].lang) == ("日本語", "ja")  # the current default, its own font
    assert view.languages == ()
    many = build_view("staff", "ja", {**staff.context, "languages": ("ja", "en", "th"), "default_language": "th"},
                      texts)
    assert [a.target for a in many.choices if a.target.startswith("default_lang:")] == ["default_lang:ja"]


def test_unknown_screen_falls_back_to_idle(texts):
    assert build_view("no_such_screen", "ja", {}, texts).screen == "idle"


contexts = st.dictionaries(
    st.sampled_from(["outcome", "code", "hints", "called", "error", "entered", "nearest", "reason", "options",
                     "audience", "outage", "attempts_left", "reader", "broker", "lamp", "last_events",
                     "open_call", "languages", "default_language"]),
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=12),
              st.lists(st.text(max_size=5), max_size=3), st.dictionaries(st.text(max_size=5), st.text(max_size=5))),
)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(SCREENS), lang=st.sampled_from(["ja", "en", "xx"]), context=contexts)
def test_odd_contexts_never_crash_a_screen(texts, name, lang, context):
    view = build_view(name, lang, context, texts)
    assert view.title


def test_every_illustration_is_a_clean_svg_without_text():
    assert {p.stem for p in ILLUSTRATION_DIR.glob("*.svg")} == set(ILLUSTRATIONS)
    for path in ILLUSTRATION_DIR.glob("*.svg"):
        root = ET.parse(path).getroot()
        assert root.tag == f"{SVG}svg" and root.get("viewBox"), path
        assert not list(root.iter(f"{SVG}text")), f"{path.name}: words belong in the locale data, not in pictures"


def test_every_illustration_the_data_names_is_shipped(catalogue):
    named = set(HINT_ILLUSTRATIONS.values())
    for code in catalogue.codes:
        named |= set(catalogue.guidance(code, "ja").illustrations)
    assert named <= set(ILLUSTRATIONS)


def test_a_broken_ui_file_is_named_in_the_error(tmp_path):
    root = tmp_path / "catalogue"
    shutil.copytree(catalogue_root() / "locales", root / "locales")
    (root / "locales" / "en" / "ui.json").write_text('{"button.call": 3}', encoding="utf-8")
    with pytest.raises(LocaleError, match=r"en/ui.json: \[button.call\] must be a string"):
        UiTexts(root)
    (root / "locales" / "en" / "ui.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(LocaleError, match=r"en/ui\.json: not valid JSON"):
        UiTexts(root)


def test_a_missing_text_falls_back_along_the_locale_chain_then_shows_its_id(tmp_path):
    root = tmp_path / "catalogue"
    shutil.copytree(catalogue_root() / "locales", root / "locales")
    en = json.loads((root / "locales" / "en" / "ui.json").read_text(encoding="utf-8"))
    del en["button.call"]
    (root / "locales" / "en" / "ui.json").write_text(json.dumps(en), encoding="utf-8")
    texts = UiTexts(root)
    assert texts.text("en", "button.call") == texts.text("ja", "button.call") == "スタッフを呼ぶ"
    assert texts.text("en", "no.such.id") == "no.such.id"
    assert texts.text("en", "outage.code") == texts.by_lang["en"]["outage.code"]  # placeholder missing: shown raw


def test_speaker_button_where_the_flow_shows_one_and_what_it_reads(texts):
    result = next(s for s in SAMPLE_SCREENS if s.name == "result" and s.context.get("called"))
    view = build_view("result", "ja", result.context, texts, speaker=True)
    assert view.actions[-1] == Action("speak", texts.text("ja", "button.speak"), "plain")
    title, sentences = view.spoken()
    assert title == view.title and sentences == [view.banner, *view.lines, *view.steps]
    assert "speak" not in [a.target for a in build_view("result", "ja", result.context, texts).actions]


def test_idle_offers_the_display_toggles_marked_when_on(texts):
    idle = build_view("idle", "en", {}, texts)
    assert [(a.target, a.style) for a in idle.choices] == [("display:large_text", "plain"),
                                                          ("display:high_contrast", "plain")]
    on = build_view("idle", "en", {}, texts, display={"large_text": True, "high_contrast": False})
    assert [a.style for a in on.choices] == ["primary", "plain"]
    assert build_view("result", "en", {"outcome": "mynumber_card"}, texts).choices == ()


def test_staff_screen_says_when_the_unit_has_no_voice(texts):
    staff = next(s for s in SAMPLE_SCREENS if s.name == "staff")
    view = build_view("staff", "en", {**staff.context, "voice": {"available": False}}, texts)
    assert texts.text("en", "staff.voice.none") in view.lines
    assert not {"voice_mute", "voice_volume"} & {a.target for a in view.choices}
    muted = build_view("staff", "en", {**staff.context, "voice": {"available": True, "muted": True, "volume": 1}},
                       texts)
    assert texts.text("en", "staff.voice.muted", volume=100) in muted.lines
    assert next(a.text for a in muted.choices if a.target == "voice_mute") == texts.text("en", "staff.voice_unmute")


def test_calling_says_plainly_when_nobody_hears_and_after_each_escalation():
    texts = UiTexts()
    """Issue 18: no console online, or the desk threshold passed → the patient is sent to the reception desk;
    the first escalation tells them staff were called once more; unknown consoles keep the usual text."""
    from kiosk.app.views import build_view

    def calling(lang, **ctx):
        return build_view("calling", lang, {"reason": "patient_request", "code": None, **ctx}, texts, None,
                          ("ja", "en"))

    usual = calling("ja", escalation=0, consoles_online=None)
    assert (usual.title, usual.banner) == (texts.text("ja", "calling.title"), texts.text("ja", "calling.body"))
    assert calling("ja", escalation=0, consoles_online=3) == usual
    unheard = calling("en", escalation=0, consoles_online=0)
    assert unheard.title == "Please go to the reception desk" and unheard.tone == "alert"
    assert unheard.banner == texts.text("en", "calling.desk.no_console")
    assert calling("ja", escalation=1, consoles_online=1).banner == texts.text("ja", "calling.escalated")
    desk = calling("vi", escalation=2, consoles_online=1)
    assert desk.title == texts.text("vi", "calling.desk.title")
    assert desk.banner == texts.text("vi", "calling.desk.waited")
    for malformed in ({"escalation": "2", "consoles_online": False}, {"escalation": True}, {}):
        assert calling("ja", **malformed).title == usual.title


# --- staff texts are ids rendered in the staff's language (issue 14) -----------------------------------------

def staff_flow(lang: str = "ja", timezone: str = "Asia/Tokyo", staff_lang: str = "ja"):
    """A real Flow over the shipped catalogue with a PIN, its wall clock at 01:42 UTC (10:42 in Tokyo), the kiosk
    shown in `lang`, after a pre-check, a patient's call, a reader fault (with its cause), lamp changes and an
    outage: everything the staff menu lists."""
    from datetime import UTC, datetime

    from kiosk.flow import Flow, FlowTimings
    from kiosk.messages import CardPresented, PinEntered, ReaderChanged, Tap, Tick
    from kiosk.precheck import Verdict
    from kiosk.runtime import CatalogueCodebook

    now = [0.0]
    flow = Flow(CatalogueCodebook(load_catalogue()), FlowTimings(checking_seconds=0.1), languages=("ja", "en", "th"),
                verify_pin=lambda pin: pin == "1234", clock=lambda: now[0], staff_lang=staff_lang, timezone=timezone,
                wall_clock=lambda: datetime(2026, 11, 30, 1, 42, 5, tzinfo=UTC))
    flow.start()
    flow.handle(CardPresented(Verdict(Outcome.SMARTPHONE_UNREADABLE, "021", ())))
    now[0] += 1
    flow.handle(Tick())
    flow.handle(Tap("done"))
    flow.handle(Tap("call"))
    flow.handle(ReaderChanged(False, "pcscd is not running", "service_down", {"path": "/run/pcscd/pcscd.comm"}))
    if lang != "ja":
        flow.handle(Tap(f"lang:{lang}"))
    flow.handle(Tap("staff_gesture"))
    flow.handle(PinEntered("1234"))
    effects = flow.handle(Tap("outage_enter"))
    return flow, effects[-1]


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_the_staff_menu_shows_no_raw_id_or_iso_timestamp(texts, lang):
    from tests.rigs.staff_text import raw_ids

    _, shown = staff_flow(lang)
    assert (shown.name, shown.lang) == ("staff", lang)
    view = build_view(shown.name, shown.lang, shown.context, texts)
    problems = {text: raw_ids(text, lang) for text in view.texts() if raw_ids(text, lang)}
    assert problems == {}
    lines = "\n".join(view.lines)
    assert texts.text(lang, "staff.lamp", pattern=texts.text(lang, "lamp.call")) in view.lines  # a call outranks outage
    assert texts.text(lang, "staff.outage.on") in view.lines
    assert texts.text(lang, "call.title.patient_request") in lines  # a call without a code, titled as what it is
    assert texts.text(lang, "reader.service_down", path="/run/pcscd/pcscd.comm") in lines  # cause, and its fix
    assert texts.text(lang, "reader.service_down.fix") in lines
    assert "10:42" in lines and "01:42" not in lines  # the facility's clock time (Asia/Tokyo), not UTC
    assert texts.text(lang, "event.with_detail", event=texts.text(lang, "event.precheck"),
                      detail=f"{texts.text(lang, 'outcome.smartphone_unreadable')} 021") in lines


def test_staff_times_follow_the_facility_time_zone(texts):
    _, shown = staff_flow("en", timezone="Europe/London")
    lines = "\n".join(build_view(shown.name, shown.lang, shown.context, texts).lines)
    assert "01:42" in lines and "10:42" not in lines


def test_the_staff_menu_is_in_the_kiosks_language_when_staff_texts_exist_else_the_staff_language(texts):
    """Staff texts exist in ja and en (staff.json): a kiosk showing Thai opens the staff menu in the staff
    language ([console] language, Japanese by default), and the patient's language is left as it was."""
    assert staff_flow("th")[1].lang == "ja"
    flow, shown = staff_flow("th", staff_lang="en")
    assert shown.lang == "en" and flow.lang == "th"
    assert staff_flow("en", staff_lang="ja")[1].lang == "en"
    # a staff menu asked for in a patient-only language (a preview, a stray effect) is drawn in Japanese
    assert build_view("staff", "th", {}, texts).lang == "ja"


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_every_staff_id_has_a_text_and_unknown_ids_never_show_raw(texts, lang):
    """Every lamp pattern, event kind, call reason, outcome and reader cause the kiosk can report has a staff
    text; an id from a newer kiosk is shown as `<family>.unknown`, never raw."""
    from hardware.readers.contract import Cause
    from kiosk import events
    from kiosk.vocabulary import CALL_REASONS, LAMP_PATTERNS
    from tests.rigs.staff_text import raw_ids

    for family, ids in (("lamp", LAMP_PATTERNS), ("event", events.EVENT_KINDS), ("call.title", CALL_REASONS),
                        ("call.reason", CALL_REASONS), ("outcome", [str(o) for o in Outcome]),
                        ("reader", [str(c) for c in Cause])):
        assert [i for i in ids if not texts.has(f"{family}.{i}")] == [], family
    context = {"lamp": "disco", "open_call": {"reason": "alien", "code": None, "since": "soon"},
               "reader": {"available": False, "cause": "gremlins"},
               "last_events": [{"kind": "teleport_started", "time": "2026-11-30T01:42:05+00:00",
                                "params": {"pattern": "disco_ball", "outcome": "mystery_card"}}]}
    view = build_view("staff", lang, context, texts)
    assert {t: raw_ids(t, lang) for t in view.texts() if raw_ids(t, lang)} == {}
    assert texts.text(lang, "staff.lamp", pattern=texts.text(lang, "lamp.unknown")) in view.lines
    # a cause whose params the back-end left out: "–" where they go, never "{reader}"
    quiet = build_view("staff", lang, {"reader": {"available": False, "cause": "reader_unplugged"},
                                       "last_events": [{"kind": "reader_status", "time": "2026-11-30T01:42:05Z",
                                                        "params": {"cause": "reader_busy"}}]}, texts)
    assert not [line for line in quiet.lines if "{" in line]
    assert texts.text(lang, "reader.reader_unplugged", reader="–") in "\n".join(quiet.lines)


def test_the_raw_id_check_finds_what_it_should():
    from tests.rigs.staff_text import raw_ids

    assert raw_ids("最終: 2026-11-30T03:55:13+00:00", "ja") == ["2026-11-30T03:55"]
    assert raw_ids("ランプ: off", "ja") == ["off"]
    assert raw_ids("Recent events  lamp_status  outage_entered", "en") == ["lamp_status", "outage_entered"]
    assert raw_ids("呼び出し中: patient_request", "ja") == ["patient_request"]
    assert raw_ids("Outage mode: off", "en") == []  # an English word, not an id
    assert raw_ids("[reader] nfc_path を usb にしてください", "ja") == []  # a config key named on purpose


def test_a_staff_text_id_lives_in_one_file(tmp_path):
    root = tmp_path / "catalogue"
    shutil.copytree(catalogue_root() / "locales", root / "locales")
    ui = json.loads((root / "locales" / "en" / "ui.json").read_text(encoding="utf-8"))
    (root / "locales" / "en" / "ui.json").write_text(json.dumps({**ui, "lamp.call": "x"}), encoding="utf-8")
    with pytest.raises(LocaleError, match=r"en/staff.json: \[lamp.call\] is also in ui.json"):
        UiTexts(root)
