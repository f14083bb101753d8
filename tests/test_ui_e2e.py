"""End to end with the real screen: a virtual card on pcscd + vpcd → the kiosk app (Kivy offscreen, real runtime)
→ mosquitto → a subscriber; the patient keys a staff code on the touchscreen → call event and the lamp blinking;
a staff acknowledge over MQTT → the lamp steady and "staff is on the way" on the screen."""

from __future__ import annotations

import itertools

import pytest

from kiosk import events
from kiosk.app.texts import UiTexts
from tests.rigs import contract
from tests.test_e2e_kiosk import TOPICS, kiosk_config, payloads, send_command

pytestmark = [pytest.mark.ui, pytest.mark.pcsc, pytest.mark.mqtt, pytest.mark.slow]


def test_card_to_subscriber_then_staff_code_by_touch_and_acknowledge_on_screen(
        kiosk_ui_factory, virtual_card, mosquitto, mqtt_listener, tmp_path):
    from hardware.readers.registry import open_reader

    config = kiosk_config(tmp_path, mosquitto, lamp=17, buzzer=None, call_button=27, reset_button=22)
    ui = kiosk_ui_factory(config, open_reader("pcsc", config.reader.name), link=True)
    texts = UiTexts()
    watcher = mqtt_listener(mosquitto, events.subscription("kiosk", config.kiosk.site, config.kiosk.id))
    ui.offscreen.wait_for(lambda: any(p["state"] == "online" for p in payloads(watcher, TOPICS.status)), 15)

    card = virtual_card("mynumber_card")
    ui.wait_screen("result", 15)
    assert ui.app.kiosk.ids.title.text == texts.text("ja", "result.mynumber_card.title")
    assert ui.offscreen.wait_for(lambda: payloads(watcher, TOPICS.event("precheck")), 10)
    precheck = payloads(watcher, TOPICS.event("precheck"))[0]
    contract.validate_event(precheck)
    assert precheck["data"]["outcome"] == "mynumber_card"
    card.remove()

    ui.tap_target("done")
    ui.wait_screen("idle")
    ui.tap_target("lookup")
    ui.wait_screen("lookup")
    for digit in "013":  # a code addressed to staff
        ui.tap_target(digit)
    ui.tap_target("keypad:submit")
    ui.wait_screen("lookup_result")
    assert ui.app.view.banner == texts.text("ja", "call.called")
    assert ui.offscreen.wait_for(lambda: payloads(watcher, TOPICS.event("call")), 10)
    call = payloads(watcher, TOPICS.event("call"))[0]["data"]
    assert call["reason"] == "staff_code" and call["code"] == "013"
    lamp = ui.pins.pin(config.gpio.lamp)
    lamp.clear_states()
    assert ui.offscreen.wait_for(lambda: len(lamp.states) >= 3, 5)
    states = [s.state for s in lamp.states]
    assert all(a != b for a, b in itertools.pairwise(states)), states  # on, off, on…: blinking

    send_command(mosquitto, "acknowledge", {"call_id": call["call_id"]})
    assert ui.offscreen.wait_for(lambda: ui.runtime.lamp.pattern == "acknowledged", 10)
    ui.tap_target("done")
    ui.wait_screen("staff_coming")
    assert ui.app.kiosk.ids.title.text == texts.text("ja", "staff_coming.title")
    lamp.clear_states()
    ui.run_for(1.2)
    assert lamp.state and len(lamp.states) == 1  # steady: no edge in over a second
