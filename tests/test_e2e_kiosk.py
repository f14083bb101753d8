"""End to end: a virtual card on real pcscd + vpcd → the kiosk → real mosquitto → a subscriber; staff commands
back over MQTT; the lamp on gpiozero's MockFactory; `kiosk run --headless` and `kiosk demo` as processes."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading

import paho.mqtt.client as mqtt
import pytest
from gpiozero.pins.mock import MockFactory
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hardware.readers.registry import open_reader
from hardware.signals import Signals
from kiosk import events
from kiosk.catalogue import load_catalogue
from kiosk.cli.run import EXIT_CONFIG
from kiosk.config import Config
from kiosk.link import EventLink
from kiosk.messages import CallButton, LookupEntered, ResetButton, Tap
from kiosk.runtime import Runtime
from kiosk.vocabulary import IDLE, RESULT, STAFF_COMING
from tests.rigs import contract
from tests.rigs.pcsc import reader_name
from tests.test_runtime import RecordingScreen

KIOSK, SITE = "k1", "s1"
TOPICS = events.Topics("kiosk", SITE, KIOSK)


def payloads(listener, topic):
    return [json.loads(m.payload) for m in listener.on(topic) if m.payload]


def send_command(broker, name, args, correlation=b"e2e"):
    """Publish a command as the staff console does: v5 response topic + correlation data."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTProtocolVersion.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    properties = Properties(PacketTypes.PUBLISH)
    properties.ResponseTopic = events.reply_topic("kiosk", SITE, "console")
    properties.CorrelationData = correlation
    payload = events.encode(events.command_payload(name, args, kiosk=KIOSK))
    client.publish(TOPICS.cmd, payload, qos=1, properties=properties).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def announce_console(broker) -> None:
    """A staff console of the site with one listener, as its retained presence (kiosk console does the same)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTProtocolVersion.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    presence = events.presence_payload(True, console="console-e2e", sites=[SITE], role="console", listeners=1)
    client.publish(events.presence_topic("kiosk", SITE, "console-e2e"), events.encode(presence), qos=1,
                   retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def config_file(tmp_path, broker, reader: str, extra: str = ""):
    """A config.toml for a kiosk process: this test's kiosk and site, a state dir, `reader` lines, the broker."""
    path = tmp_path / "config.toml"
    path.write_text(f"""
[kiosk]
id = "{KIOSK}"
site = "{SITE}"
state_dir = "{tmp_path / 'state'}"
[reader]
{reader}
[mqtt]
url = "{broker.url}"
{extra}""")
    return path


def kiosk_config(tmp_path, broker, **gpio) -> Config:
    return Config.model_validate({
        "kiosk": {"id": KIOSK, "site": SITE, "state_dir": str(tmp_path / "state")},
        "reader": {"backend": "pcsc", "name": reader_name(0)},
        "mqtt": {"url": broker.url},
        "ui": {"checking_seconds": 0.1},
        "gpio": gpio or {"lamp": None, "buzzer": None, "call_button": None, "reset_button": None},
    })


@pytest.fixture
def headless_kiosk(tmp_path, mosquitto):
    """The runtime in this process (headless loop in a thread): real pcsc reader, real link, mock GPIO."""
    factory = MockFactory()
    config = kiosk_config(tmp_path, mosquitto, lamp=17, buzzer=None, call_button=27, reset_button=22)
    screen = RecordingScreen()
    runtime = Runtime(
        config, reader=open_reader("pcsc", config.reader.name), catalogue_loader=load_catalogue, screen=screen,
        signals_factory=lambda post: Signals(config.gpio.pins(), lambda: post(CallButton()),
                                             lambda: post(ResetButton()), pin_factory=factory),
        link_factory=lambda version, post, on_turn: EventLink(config, version, post, on_turn=on_turn))
    thread = threading.Thread(target=runtime.run, name="kiosk-main")
    thread.start()
    yield runtime, screen, factory.pin(17)
    runtime.stop()
    thread.join(timeout=15)
    factory.close()
    assert not thread.is_alive()


@pytest.mark.pcsc
@pytest.mark.mqtt
def test_virtual_card_to_a_subscriber_then_a_staff_code_call_acknowledged_over_mqtt(
        headless_kiosk, virtual_card, mosquitto, mqtt_listener):
    runtime, screen, lamp = headless_kiosk
    watcher = mqtt_listener(mosquitto, events.subscription("kiosk", SITE, KIOSK), "kiosk/s1/reply/#")
    watcher.wait(lambda ms: any(p["state"] == "online" for p in payloads(watcher, TOPICS.status)))
    screen.shown.wait_for(lambda s: s.name == IDLE)
    announce_console(mosquitto)  # staff listen: the call's lamp is "call" (with none it is rightly "no_console")
    watcher.wait(lambda ms: any(p["details"].get("consoles_online") == 1 for p in payloads(watcher, TOPICS.status)))

    # 1. A My Number card on the companion's reader → the precheck event reaches the subscriber.
    card = virtual_card("transit_card")
    watcher.wait(lambda ms: payloads(watcher, TOPICS.event("precheck")), timeout=15)
    precheck = payloads(watcher, TOPICS.event("precheck"))[0]
    contract.validate_event(precheck)
    assert precheck["data"]["outcome"] == "not_mynumber" and precheck["data"]["code"] == "002"
    assert screen.shown.wait_for(lambda s: s.name == RESULT).context["code"] == "002"
    card.remove()

    # 2. The patient keys in a code addressed to staff → a call event, the retained call, the lamp blinking.
    runtime.post(Tap("lookup"))
    runtime.post(LookupEntered("013"))
    watcher.wait(lambda ms: payloads(watcher, TOPICS.event("call")))
    call = payloads(watcher, TOPICS.event("call"))[0]
    assert call["data"]["reason"] == "staff_code" and call["data"]["code"] == "013"
    watcher.wait(lambda ms: payloads(watcher, TOPICS.call))
    screen.lamps.wait_for(lambda p: p == "call")
    lamp.clear_states()
    threading.Event().wait(1.3)
    states = [s.state for s in lamp.states]
    assert len(states) >= 3 and all(a != b for a, b in itertools.pairwise(states))  # on/off/on...: blinking

    # 3. Staff acknowledge over MQTT → answered, the lamp steady, "staff is on the way" on screen.
    send_command(mosquitto, "acknowledge", {"call_id": call["data"]["call_id"]})
    answers = watcher.wait(lambda ms: any(m.topic.startswith("kiosk/s1/reply/") for m in ms))
    answer = json.loads(next(m for m in answers if m.topic.startswith("kiosk/s1/reply/")).payload)
    assert answer["ok"] is True
    watcher.wait(lambda ms: payloads(watcher, TOPICS.event("call_acknowledged")))
    screen.lamps.wait_for(lambda p: p == "acknowledged")
    lamp.clear_states()
    threading.Event().wait(1.1)
    assert lamp.state is True and len(lamp.states) == 1  # steady: no edge in a second
    runtime.post(Tap("home"))
    screen.shown.wait_for(lambda s: s.name == STAFF_COMING)
    retained = payloads(watcher, TOPICS.call)[-1]
    assert retained["acknowledged"] is True


def run_kiosk(args, tmp_path, env_extra=None, **kwargs):
    env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock", "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    return subprocess.Popen([sys.executable, "-m", "kiosk", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.mark.pcsc
@pytest.mark.mqtt
def test_kiosk_run_headless_process(tmp_path, virtual_card, mosquitto, mqtt_listener):
    config = config_file(tmp_path, mosquitto, f'backend = "pcsc"\nname = "{reader_name(0)}"')
    watcher = mqtt_listener(mosquitto, events.subscription("kiosk", SITE, KIOSK))
    process = run_kiosk(["--config", str(config), "run", "--headless"], tmp_path)
    try:
        watcher.wait(lambda ms: any(p["state"] == "online" for p in payloads(watcher, TOPICS.status)), timeout=30)
        card = virtual_card("mynumber_card")
        watcher.wait(lambda ms: payloads(watcher, TOPICS.event("precheck")), timeout=15)
        assert payloads(watcher, TOPICS.event("precheck"))[0]["data"]["outcome"] == "mynumber_card"
        card.remove()
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err[-3000:]
    watcher.wait(lambda ms: payloads(watcher, TOPICS.status)[-1]["state"] == "offline")


def test_kiosk_run_with_a_bad_config_says_what_is_wrong(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[ui]\nfailures_before_call = 0\n')
    process = run_kiosk(["--config", str(config), "run", "--headless"], tmp_path)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == EXIT_CONFIG  # no screen to show it on: systemd must not restart into it
    assert "failures_before_call" in err and "config.toml" in err and "Traceback" not in err


def test_kiosk_run_with_an_unknown_reader_backend_fails_clearly(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(f'[kiosk]\nstate_dir = "{tmp_path}"\n[reader]\nbackend = "usb-magic"\n')
    process = run_kiosk(["--config", str(config), "run", "--headless"], tmp_path)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == EXIT_CONFIG
    assert "usb-magic" in err and "Traceback" not in err


@pytest.mark.mqtt
def test_kiosk_demo_scenario_without_display_prints_events_and_publishes_them(tmp_path, mosquitto, mqtt_listener):
    scenario = tmp_path / "short.toml"
    scenario.write_text('[[steps]]\npresent = "iphone"\nhold = 1.5\n')
    watcher = mqtt_listener(mosquitto, "kiosk/#")
    process = run_kiosk(["demo", "--scenario", str(scenario), "--broker", mosquitto.url,
                         "--state-dir", str(tmp_path / "state")], tmp_path)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-3000:]
    printed = [line.split("  ", 1) for line in out.splitlines() if "/event/" in line]
    kinds = [topic.rsplit("/", 1)[1] for topic, _ in printed]
    assert "precheck" in kinds
    precheck = json.loads(dict(zip(kinds, (d for _, d in printed), strict=False))["precheck"])
    assert precheck["outcome"] == "smartphone_iphone"
    watcher.wait(lambda ms: any(m.topic.endswith("/event/precheck") for m in ms))


@pytest.mark.slow
@pytest.mark.ui
def test_kiosk_demo_without_display_saves_every_screen_in_ja_and_en(tmp_path):
    """The README's first command: no broker, no display, a fresh state dir → screenshots, events, exit 0."""
    out_dir = tmp_path / "shots"
    process = run_kiosk(["demo", "--out", str(out_dir)], tmp_path)
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]
    shots = sorted(p.name for p in out_dir.glob("*.png"))
    for screen in ("idle", "checking", "result", "lookup", "lookup_result", "calling", "staff_coming", "outage",
                   "staff_pin", "staff"):
        for lang in ("ja", "en"):
            assert any(screen in name and lang in name for name in shots), (screen, lang, shots)
    kinds = {line.split("  ", 1)[0].rsplit("/", 1)[1] for line in out.splitlines() if "/event/" in line}
    assert {"precheck", "lookup", "call", "call_acknowledged", "call_resolved", "outage_entered"} <= kinds


@pytest.mark.pcsc
@pytest.mark.mqtt
@pytest.mark.ui
def test_offscreen_kiosk_card_lookup_call_and_acknowledge(kivy_window, tmp_path, virtual_card, mosquitto,
                                                          mqtt_listener):
    """The issue's end to end with the real KioskApp offscreen: every step is waited for by running frames
    (Kivy's Clock drives the runtime, so the test thread must never block it)."""
    from kiosk.app.kioskapp import KioskApp
    from kiosk.app.offscreen import OffscreenKiosk
    from kiosk.app.texts import UiTexts
    from tests.rigs.kivy import KioskUi

    factory = MockFactory()
    config = kiosk_config(tmp_path, mosquitto, lamp=17, buzzer=None, call_button=27, reset_button=22)
    runtime = Runtime(
        config, reader=open_reader("pcsc", config.reader.name), catalogue_loader=load_catalogue,
        languages=("ja", "en"),
        signals_factory=lambda post: Signals(config.gpio.pins(), lambda: post(CallButton()),
                                             lambda: post(ResetButton()), pin_factory=factory),
        link_factory=lambda version, post, on_turn: EventLink(config, version, post, on_turn=on_turn))
    watcher = mqtt_listener(mosquitto, events.subscription("kiosk", SITE, KIOSK), "kiosk/s1/reply/#")
    app = KioskApp(runtime)
    ui = KioskUi(app, runtime, None, OffscreenKiosk(app, (800, 480)), factory)
    lamp = factory.pin(17)

    def until(condition, seconds=15.0):
        assert ui.offscreen.wait_for(condition, seconds)

    try:
        ui.wait_screen("idle")
        card = virtual_card("mynumber_card")
        until(lambda: payloads(watcher, TOPICS.event("precheck")))
        assert payloads(watcher, TOPICS.event("precheck"))[0]["data"]["outcome"] == "mynumber_card"
        ui.wait_screen("result")
        card.remove()
        ui.wait_screen("idle")

        ui.tap_target("lookup")  # through Kivy's input pipeline
        ui.wait_screen("lookup")
        for digit in "013":
            ui.tap_target(digit)
        ui.tap_target("keypad:submit")
        ui.wait_screen("lookup_result")
        until(lambda: payloads(watcher, TOPICS.event("call")))
        call = payloads(watcher, TOPICS.event("call"))[0]["data"]
        assert (call["reason"], call["code"]) == ("staff_code", "013")
        lamp.clear_states()
        until(lambda: len(lamp.states) >= 3, 5)  # blinking

        send_command(mosquitto, "acknowledge", {"call_id": call["call_id"]})
        until(lambda: payloads(watcher, TOPICS.event("call_acknowledged")))
        ui.tap_target("done")
        ui.wait_screen("staff_coming")
        assert app.kiosk.ids.title.text == UiTexts().text("ja", "staff_coming.title")
        lamp.clear_states()
        ui.offscreen.wait_for(lambda: False, 1.2)  # frames for 1.2 s: more than a blink period
        assert lamp.state is True and len(lamp.states) == 1  # steady
    finally:
        ui.offscreen.close()
        runtime.shutdown()
        factory.close()


@pytest.mark.mqtt
@pytest.mark.ui
def test_kiosk_run_with_screen_leaves_cleanly_on_sigterm(tmp_path, mosquitto, mqtt_listener):
    """systemd stops the full-screen kiosk with SIGTERM: it must say "offline" (stopped), not just vanish."""
    config = config_file(tmp_path, mosquitto, 'backend = "sim"', "[ui]\nfullscreen = false\n")
    watcher = mqtt_listener(mosquitto, events.subscription("kiosk", SITE, KIOSK))
    process = run_kiosk(["--config", str(config), "run"], tmp_path,
                        env_extra={"SDL_VIDEODRIVER": "offscreen", "KIVY_HOME": str(tmp_path / "kivy")})
    try:
        watcher.wait(lambda ms: payloads(watcher, TOPICS.event("lamp_status")), timeout=60)
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err[-3000:]
    status = payloads(watcher, TOPICS.status)[-1]
    assert status["state"] == "offline" and status["details"] == {"reason": "stopped"}


def probe_rules(tmp_path):
    """The shipped rule table with `[probe] read_token = false` and untyped tokens counted as unreadable: a My
    Number card then gives `unreadable_card` only if the reader skipped the token AND the classifier used it."""
    from kiosk.precheck import default_rules_path

    shipped = default_rules_path().read_text(encoding="utf-8")
    changed = shipped.replace("read_token = true", "read_token = false").replace('untyped = "card"',
                                                                                'untyped = "unreadable"')
    assert changed.count("false") > shipped.count("false") and 'untyped = "unreadable"' in changed
    path = tmp_path / "rules.toml"
    path.write_text(changed, encoding="utf-8")
    return path


@pytest.mark.pcsc
@pytest.mark.mqtt
def test_kiosk_run_gives_the_rule_tables_probe_settings_to_the_reader(tmp_path, virtual_card, mosquitto,
                                                                      mqtt_listener):
    from hardware.readers import apdu

    config = config_file(tmp_path, mosquitto,
                         f'backend = "pcsc"\nname = "{reader_name(0)}"\nrules = "{probe_rules(tmp_path)}"')
    watcher = mqtt_listener(mosquitto, events.subscription("kiosk", SITE, KIOSK))
    process = run_kiosk(["--config", str(config), "run", "--headless"], tmp_path)
    try:
        watcher.wait(lambda ms: any(p["state"] == "online" for p in payloads(watcher, TOPICS.status)), timeout=30)
        card = virtual_card("mynumber_card")
        watcher.wait(lambda ms: payloads(watcher, TOPICS.event("precheck")), timeout=15)
        assert payloads(watcher, TOPICS.event("precheck"))[0]["data"]["outcome"] == "unreadable_card"
        assert card.received == [apdu.SELECT_JPKI]  # no token read: [probe] read_token = false
        card.remove()
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err[-3000:]


def test_kiosk_demo_gives_the_rule_tables_probe_settings_to_the_sim_reader(tmp_path):
    scenario = tmp_path / "card.toml"
    scenario.write_text('[[steps]]\npresent = "mynumber_card"\nhold = 1.0\n')
    config = tmp_path / "config.toml"
    config.write_text(f'[reader]\nrules = "{probe_rules(tmp_path)}"\n[mqtt]\nurl = "mqtt://127.0.0.1:9"\n')
    process = run_kiosk(["--config", str(config), "demo", "--scenario", str(scenario),
                         "--state-dir", str(tmp_path / "state")], tmp_path)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-3000:]
    precheck = [json.loads(line.split("  ", 1)[1]) for line in out.splitlines() if "/event/precheck  " in line]
    assert [p["outcome"] for p in precheck] == ["unreadable_card"]
