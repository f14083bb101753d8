"""The Kivy UI rendered offscreen (real GL): every screen in every language at every layout, taps through Kivy's
input pipeline into the real runtime and flow, the glyph ("no tofu") and overflow checks and their negatives."""

from __future__ import annotations

import pytest

from kiosk.app.offscreen import LAYOUTS, SAMPLE_SCREENS
from kiosk.app.texts import UiTexts
from kiosk.effects import ShowScreen
from kiosk.messages import Command
from kiosk.vocabulary import SPEAKABLE_SCREENS
from tests.rigs.kivy import STAFF_PIN, missing_glyphs, screen_problems

pytestmark = pytest.mark.ui

NOTO_CJK = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
MM_PER_INCH = 25.4
# The displays each layout stands for and the lowest pixel density assumed for it (see kiosk/app/widgets.py).
DISPLAY_DPI = {"800x480": 133, "1280x720": 100, "720x1280": 210}
MIN_TAP_MM = 9.0
SCREENS_AND_OUTCOMES = SAMPLE_SCREENS + tuple(
    ShowScreen("result", "ja", {"outcome": o, "code": "001", "hints": (), "called": False})
    for o in ("nothing", "smartphone_android", "unreadable_card", "smartphone_mismatch"))


def png_is_a_picture(path) -> bool:
    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


@pytest.mark.slow
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_every_screen_in_every_language_has_every_glyph_and_fits(kiosk_ui, layout, tmp_path):
    """Each screen, language and layout: a screenshot, no tofu, no text overflowing its box or the window."""
    kiosk_ui.offscreen.resize(LAYOUTS[layout])
    window = kiosk_ui.offscreen.window
    problems = []
    for lang in UiTexts().languages:
        for n, screen in enumerate(SCREENS_AND_OUTCOMES):
            kiosk_ui.app.show(ShowScreen(screen.name, lang, screen.context))
            kiosk_ui.settle()
            where = f"{layout} {lang} {screen.name}#{n}"
            problems += [f"{where}: {p}" for p in screen_problems(window)]
            if lang in ("ja", "en"):
                shot = kiosk_ui.offscreen.shoot(tmp_path / f"{n:02d}-{lang}-{screen.name}.png")
                assert png_is_a_picture(shot), where
    assert not problems, "\n".join(problems)


DISPLAY_MODES = {"contrast": {"high_contrast": True}, "large+contrast": {"large_text": True, "high_contrast": True}}


@pytest.mark.slow
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_every_screen_fits_in_large_text_and_high_contrast(kiosk_ui, layout, tmp_path, request):
    """Every screen (with its speaker button where the flow shows one) in each display mode: no tofu, no
    overflow, in the mode's palette. Large text (the layout that can overflow) in every language; high contrast
    alone changes only colours, so ja and en."""
    kiosk_ui.offscreen.resize(LAYOUTS[layout])
    window = kiosk_ui.offscreen.window
    problems = []
    for mode, flags in DISPLAY_MODES.items():
        for lang in UiTexts().languages if flags.get("large_text") else ("ja", "en"):
            for n, screen in enumerate(SCREENS_AND_OUTCOMES):
                kiosk_ui.app.show(ShowScreen(screen.name, lang, screen.context,
                                               speaker=screen.name in SPEAKABLE_SCREENS, **flags))
                kiosk_ui.settle()
                problems += [f"{layout} {mode} {lang} {screen.name}#{n}: {p}" for p in screen_problems(window)]
                look = kiosk_ui.app.display_modes.look(**flags)
                assert kiosk_ui.app.kiosk.tone_color == list(look.rgba(f"tone.{kiosk_ui.app.view.tone}"))
                if lang == "ja":
                    kiosk_ui.offscreen.shoot(tmp_path / f"{mode}-{n:02d}-{screen.name}.png")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_every_tap_target_is_at_least_9_mm(kiosk_ui, layout):
    kiosk_ui.offscreen.resize(LAYOUTS[layout])
    min_px = MIN_TAP_MM / MM_PER_INCH * DISPLAY_DPI[layout]
    small = []
    for flags in ({}, DISPLAY_MODES["large+contrast"]):
        for screen in SAMPLE_SCREENS:
            kiosk_ui.app.show(ShowScreen(screen.name, "ja", screen.context,
                                           speaker=screen.name in SPEAKABLE_SCREENS, **flags))
            kiosk_ui.settle()
            buttons = kiosk_ui.buttons()
            assert buttons, screen.name
            small += [f"{screen.name} {flags} {b.text!r}: {b.width:.0f}x{b.height:.0f} px" for b in buttons
                      if min(b.width, b.height) < min_px]
    assert small == [], f"smaller than {MIN_TAP_MM} mm ({min_px:.0f} px at {DISPLAY_DPI[layout]} dpi)"


def test_the_glyph_check_knows_a_font_without_japanese():
    assert missing_glyphs("Roboto", "日本語 OK") == {"日", "本", "語"}
    assert missing_glyphs(NOTO_CJK, "日本語 OK「021」") == set()


def test_the_glyph_check_catches_tofu_on_a_real_screen(kiosk_ui):
    """Negative: Japanese rendered with Kivy's bundled Latin font must be reported."""
    kiosk_ui.app.fonts["ja"] = "Roboto"
    kiosk_ui.app.show(ShowScreen("idle", "ja", {}))
    kiosk_ui.settle()
    window = kiosk_ui.offscreen.window
    problems = screen_problems(window)
    assert any("no glyph in Roboto" in p and "マ" in p for p in problems), problems


def test_the_overflow_check_catches_text_too_big_for_its_box(kiosk_ui):
    """Negative: more text than fits even at the smallest font size must be reported."""
    kiosk_ui.app.show(ShowScreen("idle", "en", {}))
    kiosk_ui.settle()
    kiosk_ui.app.kiosk.ids.title.text = "Welcome to the clinic " * 40
    kiosk_ui.settle()
    window = kiosk_ui.offscreen.window
    assert any("overflows its box" in p for p in screen_problems(window))


def test_taps_look_up_a_code_on_the_keypad_and_come_back(kiosk_ui):
    kiosk_ui.tap_target("lookup")
    kiosk_ui.wait_screen("lookup")
    for digit in "021":
        kiosk_ui.tap_target(digit)
    kiosk_ui.tap_target("keypad:submit")
    kiosk_ui.wait_screen("lookup_result")
    assert "021" in kiosk_ui.app.kiosk.ids.title.text
    assert kiosk_ui.app.kiosk.ids.aside.children, "the guidance for 021 comes with pictures"
    kiosk_ui.tap_target("done")
    kiosk_ui.wait_screen("idle")


def test_a_wrong_code_shows_nearest_codes_that_can_be_tapped(kiosk_ui):
    kiosk_ui.tap_target("lookup")
    kiosk_ui.wait_screen("lookup")
    for digit in "02":
        kiosk_ui.tap_target(digit)
    kiosk_ui.tap_target("keypad:delete")  # its text is data: found by its target
    kiosk_ui.tap_target("keypad:submit")
    kiosk_ui.offscreen.wait_for(lambda: bool(kiosk_ui.app.kiosk.ids.banner.text), 5)
    assert kiosk_ui.app.view.banner == UiTexts().text("ja", "lookup.error.format", entered="0")
    kiosk_ui.app.show(ShowScreen("lookup", "ja", {"error": "unknown", "entered": "022", "nearest": ["021"]}))
    kiosk_ui.runtime.flow.screen = "lookup"  # as the flow would be after that entry
    kiosk_ui.settle()
    kiosk_ui.tap_target("code:021")
    kiosk_ui.wait_screen("lookup_result")


def test_the_language_switch_changes_the_texts_and_idle_returns_to_japanese(kiosk_ui):
    texts = UiTexts()
    kiosk_ui.tap_target("lang:en")
    assert kiosk_ui.offscreen.wait_for(lambda: kiosk_ui.app.lang == "en", 5)
    assert kiosk_ui.app.kiosk.ids.title.text == texts.text("en", "idle.title")
    kiosk_ui.tap_target("lookup")
    kiosk_ui.wait_screen("lookup")
    assert kiosk_ui.app.lang == "en"
    kiosk_ui.tap_target("home")
    kiosk_ui.wait_screen("idle")
    assert kiosk_ui.app.lang == "ja" and kiosk_ui.app.kiosk.ids.title.text == texts.text("ja", "idle.title")


def test_the_language_picker_lists_every_language_in_its_own_font(kiosk_ui):
    kiosk_ui.app.languages = ("ja", "en", "zh-Hans", "ko")
    kiosk_ui.runtime.flow.languages = kiosk_ui.app.languages
    kiosk_ui.app.show(ShowScreen("idle", "ja", {}))
    kiosk_ui.settle()
    kiosk_ui.tap_target("menu:languages")
    assert kiosk_ui.app.menu is not None
    korean = kiosk_ui.buttons("lang:ko")[0]
    assert korean.font_name == kiosk_ui.app.fonts["ko"]
    kiosk_ui.tap(korean)
    assert kiosk_ui.offscreen.wait_for(lambda: kiosk_ui.app.lang == "ko", 5)
    assert kiosk_ui.app.menu is None


def test_a_card_on_the_reader_shows_its_result_with_pictures(kiosk_ui):
    kiosk_ui.reader.present("transit_card")
    kiosk_ui.wait_screen("result")
    assert kiosk_ui.app.view.title == UiTexts().text("ja", "result.not_mynumber.title")
    assert [w.name for w in reversed(kiosk_ui.app.kiosk.ids.aside.children)] == list(kiosk_ui.app.view.illustrations)
    kiosk_ui.reader.remove()
    kiosk_ui.tap_target("done")
    kiosk_ui.wait_screen("idle")


def test_call_staff_blinks_the_lamp_and_an_acknowledge_shows_staff_on_the_way(kiosk_ui):
    lamp = kiosk_ui.pins.pin(kiosk_ui.runtime.config.gpio.lamp)
    kiosk_ui.tap_target("call")
    kiosk_ui.wait_screen("calling")
    assert kiosk_ui.offscreen.wait_for(lambda: len({s for _, s in lamp.states}) == 2 and len(lamp.states) >= 4, 5)
    kiosk_ui.runtime.post(Command(id="c1", name="acknowledge", args={}, reply=lambda answer: None))
    kiosk_ui.wait_screen("staff_coming")
    assert kiosk_ui.app.kiosk.ids.title.text == UiTexts().text("ja", "staff_coming.title")
    assert kiosk_ui.runtime.lamp.pattern == "acknowledged"
    kiosk_ui.settle()
    assert lamp.state == 1


def test_hidden_gesture_and_pin_open_the_staff_screen(kiosk_ui):
    corner = kiosk_ui.app.kiosk.ids.corner
    for _ in range(corner.TAPS_NEEDED):
        kiosk_ui.tap(corner)
    kiosk_ui.wait_screen("staff_pin")
    for digit in "1111":
        kiosk_ui.tap_target(digit)
    kiosk_ui.tap_target("keypad:submit")
    assert kiosk_ui.offscreen.wait_for(lambda: bool(kiosk_ui.app.view.banner), 5)  # wrong PIN
    for digit in STAFF_PIN:
        kiosk_ui.tap_target(digit)
    kiosk_ui.tap_target("keypad:submit")
    kiosk_ui.wait_screen("staff")
    assert [b.target for b in kiosk_ui.buttons("lamp_test")]
    kiosk_ui.tap_target("done")
    kiosk_ui.wait_screen("idle")


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_the_staff_menu_shows_no_raw_id_or_iso_timestamp(kiosk_ui, lang):
    """After a patient's call and the reader's cable pulled, the staff menu as Kivy draws it (every label on the
    window) names the lamp pattern, the reader's cause, the call and each event in `lang`, and shows times as the
    facility's clock time: no raw id, no ISO 8601 timestamp."""
    from kivy.uix.label import Label

    from tests.rigs.kivy import _shown, on_window
    from tests.rigs.staff_text import raw_ids

    texts = UiTexts()
    if lang != "ja":
        kiosk_ui.tap_target(f"lang:{lang}")
    kiosk_ui.tap_target("call")
    kiosk_ui.wait_screen("calling")
    kiosk_ui.reader.unplug()
    assert kiosk_ui.offscreen.wait_for(lambda: kiosk_ui.runtime.flow.lamp == "call"
                                       and not kiosk_ui.runtime.flow.reader["available"], 5)
    corner = kiosk_ui.app.kiosk.ids.corner
    for _ in range(corner.TAPS_NEEDED):
        kiosk_ui.tap(corner)
    kiosk_ui.wait_screen("staff_pin")
    for digit in STAFF_PIN:
        kiosk_ui.tap_target(digit)
    kiosk_ui.tap_target("keypad:submit")
    kiosk_ui.wait_screen("staff")
    kiosk_ui.settle()
    shown = [w.text for w in on_window(kiosk_ui.offscreen.window)
             if isinstance(w, Label) and w.text and _shown(w)]
    assert {text: raw_ids(text, lang) for text in shown if raw_ids(text, lang)} == {}
    everything = "\n".join(shown)
    assert texts.text(lang, "staff.title") in everything
    assert texts.text(lang, "lamp.call") in everything
    assert texts.text(lang, "call.title.patient_request") in everything
    assert texts.text(lang, "reader.simulated_unplug") in everything
    assert texts.text(lang, "event.reader_status") in everything
    assert screen_problems(kiosk_ui.offscreen.window) == []


def test_a_few_taps_on_the_corner_do_nothing(kiosk_ui):
    corner = kiosk_ui.app.kiosk.ids.corner
    for _ in range(corner.TAPS_NEEDED - 1):
        kiosk_ui.tap(corner)
    kiosk_ui.settle(5)
    assert kiosk_ui.screen == "idle"


def test_the_demo_panel_presents_cards_and_draws_the_lamp(kivy_window, tmp_path):
    from hardware.readers.sim import SimReader
    from kiosk.app.kioskapp import DEMO_ACTIONS, KioskApp
    from kiosk.app.offscreen import OffscreenKiosk
    from kiosk.catalogue import load_catalogue
    from kiosk.config import Config
    from kiosk.runtime import Runtime

    config = Config.model_validate({"kiosk": {"state_dir": str(tmp_path)}, "ui": {"checking_seconds": 0.1}})
    reader = SimReader()
    runtime = Runtime(config, reader=reader, catalogue_loader=load_catalogue)
    app = KioskApp(runtime, demo_reader=reader)
    offscreen = OffscreenKiosk(app, (1040, 480))
    try:
        from tests.rigs.kivy import KioskUi

        ui = KioskUi(app, runtime, reader, offscreen, None)
        ui.wait_screen("idle")
        assert [b.target for b in app.demo.ids.buttons.children[::-1]] == list(DEMO_ACTIONS)
        ui.tap_target("present_iphone")
        ui.wait_screen("result")
        assert app.view.title == UiTexts().text("ja", "result.smartphone_iphone.title")
        ui.tap_target("call_button")
        ui.wait_screen("calling")
        lamp = app.demo.ids.lamp
        assert lamp.pattern == "call"
        assert offscreen.wait_for(lambda: lamp.lit, 2) and offscreen.wait_for(lambda: not lamp.lit, 2)
    finally:
        offscreen.close()  # on_stop: the runtime shuts down


SHAPED_LOCALES = ("ne", "my")  # Devanagari and Myanmar: drawn wrongly unless HarfBuzz is told the script


def rendered(label) -> tuple[tuple[int, int], bytes]:
    return tuple(label.texture_size), bytes(label.texture.pixels)


@pytest.mark.parametrize("lang", SHAPED_LOCALES)
def test_complex_scripts_are_drawn_shaped_on_every_label(kiosk_ui, lang):
    """Every label of a Nepali / Burmese screen carries the locale's script, and what is on screen is the shaped
    rendering (rendering it again gives the same pixels; without the script they differ)."""
    script = UiTexts().locales[lang].script
    kiosk_ui.app.show(ShowScreen("idle", lang, {}))
    kiosk_ui.settle()
    labels = [w for w in kiosk_ui.app.kiosk.walk(restrict=True) if hasattr(w, "font_script_name") and w.text]
    assert labels
    assert {(w.font_script_name, w.font_direction) for w in labels if w.font_name == kiosk_ui.app.fonts[lang]} == {
        (script, "ltr")}
    title = kiosk_ui.app.kiosk.ids.title
    shown = rendered(title)
    title.texture_update()
    assert rendered(title) == shown
    title.font_script_name = "Zyyy"
    title.texture_update()
    title.texture_update()
    assert rendered(title) != shown, "the unshaped rendering must look different"
    kiosk_ui.app.show(ShowScreen("idle", "ja", {}))
    kiosk_ui.settle()
    assert title.font_script_name == kiosk_ui.app.scripts["ja"], "the script follows the language"



@pytest.mark.parametrize("lang", SHAPED_LOCALES)
def test_fitting_measures_the_shaped_text_on_a_fonts_first_render(kiosk_ui, lang):
    """Kivy measures with the script of the font's last drawing: leave the font unshaped at the size, then fit
    a label; what it shows must be what a shaped measurement gives (measuring and drawing again changes nothing)."""
    from kivy.core.text import Label as CoreLabel

    from kiosk.app.widgets import FitLabel
    from tests.test_locales_render import NEEDS_SHAPING

    kiosk_ui.app.show(ShowScreen("idle", lang, {}))  # kiosk.kv: labels take the app's font and script
    kiosk_ui.settle()
    font, size, text = kiosk_ui.app.fonts[lang], 40, NEEDS_SHAPING[lang]
    unshaped = CoreLabel(text=text, font_name=font, font_size=size, font_script_name="Zyyy", font_direction="ltr")
    unshaped.refresh()
    unshaped.texture.bind()  # drawn: the font object at this size is now in the unshaped state
    label = FitLabel(text=text, halign="center", max_font_size=size, size_hint=(None, None), size=(700, 400))
    assert (label.font_name, label.font_script_name) == (font, UiTexts().locales[lang].script)
    label.fit()
    assert label.font_size == size
    fitted = rendered(label)
    label.texture_update()
    assert rendered(label) == fitted


def test_labels_break_by_phrase_and_kivy_draws_exactly_those_lines(kiosk_ui):
    """FitLabel hands Kivy the text broken by phrase (kiosk.typeset) and Kivy re-wraps none of it; the label's
    text stays what the screen says (the voice reads it unbroken)."""
    from kiosk.app.widgets import FitLabel
    from kiosk.typeset import NO_START, typeset

    text = "本体の動作中は、カードを動かさないでください。受付のカードリーダーでは「021」のエラーが出ることがあります。"
    label = FitLabel(text=text, lang="ja", max_font_size=40, size_hint=(None, None), size=(420, 300))
    label.fit()
    assert label.text == text and label.typeset is not None and len(label.typeset.lines) > 2
    assert label.typeset == typeset(text, "ja", label.line_width(), label.measure)
    assert len(label._label._cached_lines) == len(label.typeset.lines)  # Kivy added no break of its own
    assert not any(line[:1] in NO_START for line in label.typeset.lines[1:])
    assert any("「021」" in line for line in label.typeset.lines)
    small = FitLabel(text=text, lang="ja", max_font_size=40, size_hint=(None, None), size=(420, 120))
    small.fit()
    assert small.font_size < label.font_size and small.texture_size[1] <= 121  # the ladder still fits the box


def test_the_line_breaking_check_catches_a_break_against_kinsoku_on_a_real_screen(kiosk_ui):
    """Negative: lines shown with 。 at a line start must be reported."""
    from kiosk.typeset import Typeset

    kiosk_ui.app.show(ShowScreen("checking", "ja", {}))
    kiosk_ui.settle()
    label = kiosk_ui.app.kiosk.ids.text
    assert screen_problems(kiosk_ui.offscreen.window) == []
    body = label.text
    label.typeset = Typeset(((body[:-1], body[-1]),))
    assert any("kinsoku: line starts with '。'" in p for p in screen_problems(kiosk_ui.offscreen.window))


def test_kiosk_locales_preview_prints_every_line_and_font_size(kivy_window, capsys):
    from kiosk.cli import main

    assert main(["locales", "preview", "--lang", "ja", "--lang", "th", "--screen", "result"]) == 0
    out = capsys.readouterr().out
    from kiosk.app.preview import PREVIEW_SCREENS

    results = [n for n, screen in enumerate(PREVIEW_SCREENS) if screen.name == "result"]
    assert all(f"== 800x480 {lang} result#{n}" in out for lang in ("ja", "th") for n in results)
    assert "px │ 1.\u00a0受付の顔認証付きカードリーダーに" in out
    assert out.rstrip().endswith("2 locales, 8 screens: 0 problems")
