"""The speaker button offscreen: tapped through Kivy's input pipeline, the screen's guidance is spoken by the real
Voice (Open JTalk) and played by aplay into an ALSA file sink; muted in staff mode, nothing plays and the button
is gone. The large-text and high-contrast toggles on the idle screen, tapped, change the look; idle resets them."""

from __future__ import annotations

import pytest

from kiosk.config import Config
from kiosk.messages import Tap
from kiosk.voice import speech_text
from tests.rigs.kivy import STAFF_PIN
from tests.rigs.voice import Finished, needs_voice, played_samples

pytestmark = pytest.mark.ui




def voiced_kiosk(kiosk_ui_factory, tmp_path):
    out = tmp_path / "speaker.raw"
    config = Config.model_validate({
        "kiosk": {"state_dir": str(tmp_path / "state")},
        "reader": {"backend": "sim"},
        "ui": {"checking_seconds": 0.1},
        "voice": {"device": f"file:FILE={out},FORMAT=raw", "cache_dir": str(tmp_path / "clips")},
    })
    ui = kiosk_ui_factory(config)
    finished = Finished()
    ui.runtime.voice.on_finished = finished
    return ui, out, finished




@needs_voice
def test_the_speaker_button_reads_the_result_aloud_through_the_sink(kiosk_ui_factory, tmp_path):
    ui, out, finished = voiced_kiosk(kiosk_ui_factory, tmp_path)
    assert not ui.buttons("speak"), "no speaker on the idle screen"
    ui.reader.present("transit_card")
    ui.wait_screen("result")
    spoken = ui.app.speech()
    assert ui.app.view.title in spoken and ui.app.view.steps[0] in spoken
    ui.tap_target("speak")
    assert ui.offscreen.wait_for(finished.event.is_set, 60) and finished.results == [True]
    samples = played_samples(out)
    assert len(samples) > 16000 and max(map(abs, samples)) > 1000
    voice = ui.runtime.voice
    assert voice.cache.path_for(voice.synthesizers["ja"], spoken).is_file()  # that very text was synthesised


@needs_voice
def test_a_lookup_result_speaks_its_guidance_item(kiosk_ui_factory, tmp_path):
    """The clip `kiosk voice build` makes at install time for the item is the one the button plays."""
    ui, _out, finished = voiced_kiosk(kiosk_ui_factory, tmp_path)
    ui.tap_target("lookup")
    ui.wait_screen("lookup")
    for digit in "021":
        ui.tap_target(digit)
    ui.tap_target("keypad:submit")
    ui.wait_screen("lookup_result")
    item = ui.runtime.catalogue.guidance("021", "ja")
    assert ui.app.speech() == speech_text(item.title, item.steps)
    ui.tap_target("speak")
    assert ui.offscreen.wait_for(finished.event.is_set, 60) and finished.results == [True]


@needs_voice
def test_muted_in_staff_mode_nothing_plays_and_the_button_is_gone(kiosk_ui_factory, tmp_path):
    ui, out, finished = voiced_kiosk(kiosk_ui_factory, tmp_path)
    for _ in range(ui.app.kiosk.ids.corner.TAPS_NEEDED):
        ui.tap(ui.app.kiosk.ids.corner)
    ui.wait_screen("staff_pin")
    for digit in STAFF_PIN:
        ui.tap_target(digit)
    ui.tap_target("keypad:submit")
    ui.wait_screen("staff")
    ui.tap_target("voice_mute")
    assert ui.offscreen.wait_for(lambda: ui.runtime.voice.muted, 5)
    assert ui.buttons("voice_mute")[0].text == ui.app.texts.text("ja", "staff.voice_unmute")
    ui.tap_target("done")
    ui.wait_screen("idle")
    ui.tap_target("call")
    ui.wait_screen("calling")
    assert not ui.buttons("speak")
    ui.runtime.post(Tap("speak"))  # even if something sent it
    ui.run_for(1.0)
    assert finished.results == [] and not played_samples(out)


def test_display_toggles_change_the_look_and_idle_resets_them(kiosk_ui):
    app = kiosk_ui.app
    standard = app.display_modes.look()
    assert app.text_scale == standard.scale and app.palette["background"] == standard.rgba("background")
    kiosk_ui.tap_target("display:large_text")
    assert kiosk_ui.offscreen.wait_for(lambda: app.text_scale > standard.scale, 5)
    kiosk_ui.tap_target("display:high_contrast")
    contrast = app.display_modes.look(True, True)
    assert kiosk_ui.offscreen.wait_for(lambda: app.palette["background"] == contrast.rgba("background"), 5)
    assert [b.style for b in kiosk_ui.buttons() if b.target.startswith("display:")] == ["primary", "primary"]
    title_size = app.kiosk.ids.title.font_size
    kiosk_ui.tap_target("lookup")
    kiosk_ui.wait_screen("lookup")
    assert app.palette["background"] == contrast.rgba("background")  # kept while the patient is here
    kiosk_ui.tap_target("home")
    kiosk_ui.wait_screen("idle")
    assert app.text_scale == standard.scale and app.palette["background"] == standard.rgba("background")
    kiosk_ui.settle()
    assert app.kiosk.ids.title.font_size < title_size
