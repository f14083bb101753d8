"""Home Assistant discovery against a real, current Home Assistant (tests/rigs/homeassistant.py): entity ids, names,
states and attributes through a scripted kiosk session, availability from the Last Will, withdrawal, HA's own
device page and the sample wall dashboard of docs/dashboards.md in a browser, and no warning or error from HA's
MQTT integration about our configs. The pure part (configs, names, every template rendered against the
contract's payloads) runs without HA.

Set KIOSK_SCREENSHOTS_DIR (e.g. docs/screenshots) to keep the screenshots of HA's pages there."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import jinja2
import paho.mqtt.client as mqtt
import pytest
import yaml
from gpiozero.pins.mock import MockFactory
from jinja2.sandbox import ImmutableSandboxedEnvironment

from hardware.readers.registry import open_reader
from kiosk import events, ha_discovery
from kiosk.cli.run import _build_runtime
from kiosk.config import MqttSection, load_config
from kiosk.locales import placeholders, source_files
from kiosk.messages import LookupEntered, Tap
from kiosk.outbox import STORAGE_STATES
from kiosk.paths import catalogue_root
from kiosk.precheck import Outcome, load_rules
from kiosk.scenarios import load_scenario
from tests.rigs import contract
from tests.rigs.homeassistant import DASHBOARD
from tests.test_e2e_kiosk import KIOSK, SITE, TOPICS, config_file, run_kiosk, send_command

REPO = Path(__file__).resolve().parent.parent
ENTITIES = {key: ha_discovery.entity_id(config["platform"], TOPICS, key)
            for key, config in ha_discovery.components(TOPICS).items()}


def _presenting(start_wait: float, *cards: tuple[str, float]) -> str:
    """A sim reader scenario (kiosk.scenarios): wait, then each (card, seconds after it) held for 1 s."""
    steps = [f"[[steps]]\nwait = {start_wait}\n"]
    steps += [f'[[steps]]\npresent = "{card}"\nhold = 1.0\nwait = {wait}\n' for card, wait in cards]
    return "".join(steps)


# The session: a card, a phone, two wrong cards (a call, escalated twice within seconds), then, while the test
# acknowledges, resolves and plays the outage commands, the reader unplugged for good (the test ends with SIGKILL).
SESSION = _presenting(2.0, ("mynumber_card", 3.0), ("iphone", 3.0), ("transit_card", 3.0), ("credit_card", 30.0)) \
    + "[[steps]]\nunplug = 3600.0\n"
# The browser test's kiosk: a card, two wrong cards, an open call escalated once; then idle.
SHOWCASE = _presenting(1.0, ("mynumber_card", 3.0), ("transit_card", 3.0), ("credit_card", 3600.0))
# [mqtt] options after ha_discovery, then the sections the tests vary.
KIOSK_OPTIONS = """ha_language = "ja"
heartbeat_seconds = 1
[ui]
failures_before_call = 2
[calls]
escalate_seconds = {escalate}
desk_seconds = {desk}
"""


# --- pure ------------------------------------------------------------------------------------------------

def test_discovery_config_is_device_based_with_stable_ids_and_localised_names():
    section = MqttSection(ha_discovery=True, ha_language="ja")
    sent = ha_discovery.messages(events.Topics("kiosk", "s1", "Front-Desk"), section)
    topics = [topic for topic, _ in sent]
    assert topics[-1] == "homeassistant/device/Front-Desk/config"
    assert "homeassistant/binary_sensor/Front-Desk/online/config" in topics  # emptied: earlier versions' configs
    assert all(payload == b"" for _, payload in sent[:-1])
    config = json.loads(sent[-1][1])
    assert config["origin"]["name"] == "mynumber-kiosk" and config["device"]["name"] == "キオスク Front-Desk"
    cmps = config["cmps"]
    assert cmps["online"]["default_entity_id"] == "binary_sensor.kiosk_front_desk_online"
    assert cmps["precheck"]["platform"] == "event" and cmps["precheck"]["event_types"] == [str(o) for o in Outcome]
    assert cmps["reader_fault"]["device_class"] == "problem" and cmps["outbox_backlog"]["entity_category"] == \
        "diagnostic"
    assert all("object_id" not in c for c in cmps.values())
    assert len({c["unique_id"] for c in cmps.values()}) == len(cmps)
    english = json.loads(ha_discovery.messages(events.Topics("kiosk", "s1", "k1"),
                                               MqttSection(ha_discovery=True, ha_language="vi"))[-1][1])
    assert english["cmps"]["reader_fault"]["name"] == "Reader fault"  # no Vietnamese names: English


def test_names_ja_and_en_cover_every_entity_and_are_not_asked_of_patient_locales():
    root = catalogue_root() / "locales"
    ja, en = (json.loads((root / lang / ha_discovery.NAMES_FILE).read_text(encoding="utf-8")) for lang in ("ja", "en"))
    assert ja.keys() == en.keys() == {"device", "model", *ha_discovery.components(TOPICS)}
    assert all(placeholders(ja[key]) == placeholders(en[key]) for key in ja)
    assert ha_discovery.NAMES_FILE not in source_files()  # staff-only: ja and en


def test_new_components_read_the_contract_s_fields():
    cmps = ha_discovery.components(TOPICS)
    escalated = cmps["call_escalated"]
    assert escalated["platform"] == "event" and escalated["state_topic"] == TOPICS.event(events.CALL_ESCALATED)
    assert escalated["event_types"] == ["escalated", "sent_to_desk"]
    assert sorted(ha_discovery.ESCALATION_TYPES) == [events.ESCALATED, events.SENT_TO_DESK]
    assert cmps["storage"]["options"] == list(STORAGE_STATES) and cmps["storage"]["entity_category"] == "diagnostic"
    assert cmps["clock_synchronized"]["state_topic"] == TOPICS.event(events.HEARTBEAT)
    assert "escalation" in cmps["open_call"]["json_attributes_template"]


def test_damaged_names_file_falls_back_to_ids(tmp_path, monkeypatch):
    (tmp_path / "locales" / "en").mkdir(parents=True)
    (tmp_path / "locales" / "en" / ha_discovery.NAMES_FILE).write_text("{not json", encoding="utf-8")
    monkeypatch.setattr(ha_discovery, "catalogue_root", lambda: tmp_path)
    ha_discovery.entity_names.cache_clear()
    try:
        config = ha_discovery.discovery_config(TOPICS, "en")
    finally:
        ha_discovery.entity_names.cache_clear()
    assert config["device"]["name"] == "k1" and config["cmps"]["reader_fault"]["name"] == "reader_fault"


def test_discovery_off_withdraws_every_config():
    sent = ha_discovery.messages(TOPICS, MqttSection(ha_discovery=False))
    assert ("homeassistant/device/k1/config", b"") in sent and all(payload == b"" for _, payload in sent)


def test_old_per_entity_configs_are_emptied_once_per_kiosk(tmp_path):
    section = MqttSection(ha_discovery=True)
    assert not ha_discovery.legacy_cleared(tmp_path)
    assert len(ha_discovery.messages(TOPICS, section)) == len(ha_discovery.LEGACY_ENTITIES) + 1
    ha_discovery.mark_legacy_cleared(tmp_path)
    assert ha_discovery.legacy_cleared(tmp_path)
    assert [topic for topic, _ in ha_discovery.messages(TOPICS, section, legacy=False)] == [
        "homeassistant/device/k1/config"]
    assert ha_discovery.messages(TOPICS, MqttSection(ha_discovery=False), legacy=False) == [
        ("homeassistant/device/k1/config", b"")]
    ha_discovery.mark_legacy_cleared(tmp_path / "missing")  # an unwritable state dir is logged, not raised
    assert not ha_discovery.legacy_cleared(tmp_path / "missing")




def _render(template: str, payload: bytes) -> str:
    """`template` as Home Assistant's MQTT integration renders it: `value` is the payload's text, `value_json` its
    JSON (absent when the payload is not JSON, e.g. an emptied retained call). An undefined name or attribute
    used in the output raises here; Home Assistant would log a warning for it."""
    variables = {"value": payload.decode()}
    with suppress(ValueError):
        variables["value_json"] = json.loads(payload)
    return ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined).from_string(template).render(variables)


def _event(kind: str, data: dict) -> bytes:
    payload = events.envelope(kind, data, kiosk=KIOSK, site=SITE, seq=1, catalogue_version="cat-1")
    contract.validate_event(payload)
    return events.encode(payload)


def _status(online: bool, details: dict) -> bytes:
    payload = events.status_payload(online, kiosk=KIOSK, site=SITE, catalogue_version="cat-1", details=details)
    contract.validate("Status", payload)
    return events.encode(payload)


def test_every_template_renders_the_contract_s_payloads_without_an_undefined_name():
    cmps = ha_discovery.components(TOPICS)
    state = events.kiosk_state(reader_available=False, reader_detail="unplugged", lamp="reader_fault", outage=True,
                               outage_code="101", consoles_online=0, reader_cause="reader_unplugged")
    online = _status(True, {"outbox": {"backlog": 3, "dropped": 0, "refused": 0, "last_error": None},
                            "clock": {"synchronized": True}, "call": events.ACKNOWLEDGED_CALL, **state})
    first_online = _status(True, {"outbox": {"backlog": 0, "dropped": 0, "refused": 0, "last_error": None}})
    lost = _status(False, {"reason": "lost"})

    def render(key: str, field: str, payload: bytes) -> str:
        return _render(cmps[key][field], payload)

    assert [render("online", "value_template", p) for p in (online, lost)] == ["online", "offline"]
    assert json.loads(render("online", "json_attributes_template", lost))["reason"] == "lost"
    assert json.loads(render("online", "json_attributes_template", online))["reason"] is None
    for key in ("reader_fault", "outage", "lamp", "catalogue_version", "precheck"):
        assert render(key, "availability_template", lost) == "offline"
    assert (render("reader_fault", "value_template", online), render("outage", "value_template", online)) == \
        ("ON", "ON")
    assert json.loads(render("reader_fault", "json_attributes_template", online)) == {
        "detail": "unplugged", "cause": "reader_unplugged"}
    no_cause = _status(True, events.kiosk_state(reader_available=True, reader_detail="ready", lamp="off",
                                                outage=False, outage_code=None))
    assert json.loads(render("reader_fault", "json_attributes_template", no_cause)) == {"detail": "ready",
                                                                                        "cause": ""}
    assert json.loads(render("outage", "json_attributes_template", online)) == {"code": "101"}
    assert render("lamp", "value_template", online) == "reader_fault"
    assert render("consoles_online", "value_template", online) == "0"
    # Offline, or online before the runtime said anything: nothing to show (HA ignores empty output, "None" is
    # unknown), never an undefined name.
    for payload in (lost, first_online):
        assert render("reader_fault", "value_template", payload) == render("outage", "value_template", payload) == ""
        assert render("lamp", "value_template", payload) == render("call_state", "value_template", payload) == \
            render("consoles_online", "value_template", payload) == "None"
        assert render("open_call", "value_template", payload) == ""
        assert render("reader_fault", "json_attributes_template", payload) == "{}"
    assert render("catalogue_version", "value_template", online) == "cat-1"

    precheck = _event(events.PRECHECK, {"outcome": "not_mynumber", "code": "002", "hints": ["transit_card_read"]})
    assert json.loads(render("precheck", "value_template", precheck)) == {
        "event_type": "not_mynumber", "code": "002", "hints": ["transit_card_read"]}
    assert render("last_outcome", "value_template", precheck) == "not_mynumber"
    assert json.loads(render("last_outcome", "json_attributes_template", precheck))["code"] == "002"
    lookup = _event(events.LOOKUP, {"code": "021", "known": True, "audience": "patient", "outage": False})
    assert render("last_code", "value_template", lookup) == "021"
    assert json.loads(render("last_code", "json_attributes_template", lookup))["audience"] == "patient"
    bare = _event(events.LOOKUP, {"code": "999", "known": False})  # audience and outage are optional
    assert json.loads(render("last_code", "json_attributes_template", bare))["outage"] is None

    call = {"call_id": "c1", "reason": "repeated_failures", "code": "002", "audience": "patient"}
    for level, expected in ((events.ESCALATED, "escalated"), (events.SENT_TO_DESK, "sent_to_desk")):
        escalated = _event(events.CALL_ESCALATED, {**call, "level": level, "waited_seconds": 61,
                                                   "consoles_online": 0})
        assert json.loads(render("call_escalated", "value_template", escalated)) == {
            "event_type": expected, "level": level, "reason": "repeated_failures", "code": "002",
            "waited_seconds": 61, "consoles_online": 0}
    retained = events.call_payload({**call, "since": "2026-11-30T09:00:00+09:00", "acknowledged": True,
                                    "escalation": events.SENT_TO_DESK}, kiosk=KIOSK, site=SITE)
    contract.validate("OpenCall", retained)
    open_call = events.encode(retained)
    assert (render("open_call", "value_template", online), render("call_state", "value_template", online)) == \
        ("ON", "acknowledged")
    for word, on in ((events.NO_CALL, "OFF"), (events.OPEN_CALL, "ON")):
        status = _status(True, {"call": word, **state})
        assert (render("open_call", "value_template", status), render("call_state", "value_template", status)) == \
            (on, word)
    assert json.loads(render("open_call", "json_attributes_template", open_call)) == {
        "reason": "repeated_failures", "code": "002", "since": "2026-11-30T09:00:00+09:00", "acknowledged": True,
        "audience": "patient", "escalation": 2}
    assert render("open_call", "json_attributes_template", b"") == "{}"  # resolved: the retained call emptied
    assert events.call_state(b"") == events.NO_CALL and events.call_state(open_call) == events.ACKNOWLEDGED_CALL

    outbox = {"backlog": 5, "dropped": 1, "refused": 0, "last_error": None, "storage": "read_only", "held": 4}
    for synchronized, expected in ((True, "ON"), (False, "OFF"), (None, "None")):
        beat = _event(events.HEARTBEAT, {"uptime_seconds": 9.5, "outbox": outbox, "clock_synchronized": synchronized})
        assert render("clock_synchronized", "value_template", beat) == expected
    assert render("outbox_backlog", "value_template", beat) == "5"
    assert json.loads(render("outbox_backlog", "json_attributes_template", beat)) == {
        "dropped": 1, "refused": 0, "held": 4}
    assert render("storage", "value_template", beat) == "read_only"
    older = _event(events.HEARTBEAT, {"uptime_seconds": 9.5, "outbox": {"backlog": 0, "dropped": 0, "refused": 0,
                                                                         "last_error": None}})
    assert (render("storage", "value_template", older), render("clock_synchronized", "value_template", older)) == \
        ("ok", "None")
    assert json.loads(render("outbox_backlog", "json_attributes_template", older))["held"] == 0


# --- against Home Assistant ------------------------------------------------------------------------------

def _client() -> mqtt.Client:
    return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTProtocolVersion.MQTTv5)


def _next_message(broker, topic: str, timeout: float = 30.0) -> bytes:
    """The retained message on `topic`, or the next one published there."""
    got: list[bytes] = []
    client = _client()
    client.on_message = lambda _c, _u, msg: got.append(msg.payload)
    client.connect(broker.host, broker.port)
    client.subscribe(topic, qos=1)
    client.loop_start()
    deadline = time.monotonic() + timeout
    while not got and time.monotonic() < deadline:
        time.sleep(0.05)
    client.disconnect()
    client.loop_stop()
    assert got, f"nothing on {topic}"
    return got[0]


def _publish_retained(broker, topic: str, payload: bytes) -> None:
    client = _client()
    client.connect(broker.host, broker.port)
    client.loop_start()
    client.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


@pytest.fixture(scope="module")
def kiosk_dir(tmp_path_factory) -> Path:
    """Kiosk k1's one folder (config.toml, state/) for every kiosk run of this module: the same kiosk restarted,
    so it empties the old per-entity configs once, as in the field (a fresh state dir would empty them again,
    which Home Assistant, already holding the device, logs as conflicting discovery messages)."""
    return tmp_path_factory.mktemp("kiosk-k1")


def _config(folder: Path, ha, reader: str, discovery: bool = True, escalate: float = 60.0,
            desk: float = 180.0) -> Path:
    extra = f"ha_discovery = {'true' if discovery else 'false'}\n" + KIOSK_OPTIONS.format(escalate=escalate,
                                                                                        desk=desk)
    return config_file(folder, ha.broker, reader, extra)


def _scenario(tmp_path: Path, text: str) -> Path:
    path = tmp_path / f"scenario-{len(text)}.toml"
    path.write_text(text)
    return path


@contextmanager
def _kiosk_in_process(config_path: Path) -> Iterator:
    """The kiosk as `kiosk run --headless` builds it (kiosk.cli.run), in this process so the test can post what
    the touch screen would (Tap, LookupEntered); GPIO is gpiozero's mock. Stopped cleanly ("offline", stopped)."""
    config = load_config(config_path)
    rules = load_rules(config.reader.rules)
    reader = open_reader(config.reader.spec(), config.reader.name, rules.probe_options(),
                         load_scenario=load_scenario)
    pins = MockFactory()
    runtime = _build_runtime(config, reader, rules, pin_factory=pins)
    thread = threading.Thread(target=runtime.run, name="kiosk-main")
    thread.start()
    try:
        yield runtime
    finally:
        runtime.stop()
        thread.join(timeout=30)
        pins.close()
    assert not thread.is_alive()


def _lamp_follows(ha) -> None:
    """HA's lamp sensor shows the pattern the kiosk's retained status carries now (patterns: kiosk.vocabulary)."""
    def same(state):
        return state["state"] == json.loads(_next_message(ha.broker, TOPICS.status))["details"]["lamp"]
    ha.wait_for(ENTITIES["lamp"], same)


def _event_type(expected):
    return lambda s: s["attributes"].get("event_type") == expected


def _wait_until(predicate, message: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, message
        time.sleep(0.2)


def _fired(states, attribute: str) -> list[tuple[str, object]]:
    """(event type, `attribute`) of each event among an event entity's states (not its availability changes)."""
    return [(s["attributes"]["event_type"], s["attributes"].get(attribute)) for s in states
            if s["attributes"].get("event_type")]


def _ours(ha) -> set[str]:
    """Entity ids of kiosk k1's device in Home Assistant (by its device, whatever the ids are)."""
    device = ha.template(f"{{{{ device_id('{ENTITIES['online']}') }}}}")
    return set(json.loads(ha.template(f"{{{{ device_entities('{device}') | tojson }}}}")))


@pytest.mark.slow
@pytest.mark.mqtt
def test_home_assistant_follows_a_kiosk_session(home_assistant, kiosk_dir, tmp_path):
    ha = home_assistant
    # A kiosk upgraded from the per-entity discovery of earlier versions: that config must leave no duplicate.
    _publish_retained(ha.broker, "homeassistant/binary_sensor/k1/online/config", json.dumps({
        "name": "Online", "state_topic": TOPICS.status, "value_template": "{{ value_json.state }}",
        "payload_on": "online", "payload_off": "offline", "unique_id": f"kiosk_{SITE}_{KIOSK}_online",
        "device": {"identifiers": [f"kiosk_{SITE}_{KIOSK}"], "name": f"Kiosk {KIOSK}"}}).encode())
    deadline = time.monotonic() + 30  # HA names it from the device and entity names (object_id is ignored)
    while not any(s["attributes"].get("friendly_name") == f"Kiosk {KIOSK} Online" for s in ha.states().values()):
        assert time.monotonic() < deadline, "the legacy config made no entity"
        time.sleep(0.2)

    # 1. First start: every entity appears with its id and Japanese name and follows the retained status and the
    #    heartbeat; a code looked up on the touch screen reaches last_code; a clean stop: offline, "stopped".
    with _kiosk_in_process(_config(kiosk_dir, ha, 'backend = "sim"')) as kiosk:
        ha.wait_for(ENTITIES["online"], lambda s: s["state"] == "on")
        ha.wait_for(ENTITIES["catalogue_version"], lambda s: s["state"] not in ("unknown", "unavailable"))
        assert _ours(ha) == set(ENTITIES.values()), _ours(ha) ^ set(ENTITIES.values())
        states = ha.states()
        names = ha_discovery.entity_names("ja")
        for key, entity in ENTITIES.items():
            assert states[entity]["attributes"]["friendly_name"] == f"キオスク {KIOSK} {names[key]}", entity
        assert states[ENTITIES["last_outcome"]]["attributes"]["options"] == [str(o) for o in Outcome]
        assert states[ENTITIES["storage"]]["attributes"]["options"] == list(STORAGE_STATES)
        assert states[ENTITIES["precheck"]]["attributes"]["event_types"] == [str(o) for o in Outcome]
        assert states[ENTITIES["call_escalated"]]["attributes"]["event_types"] == ["escalated", "sent_to_desk"]
        ha.wait_for(ENTITIES["reader_fault"], lambda s: s["state"] == "off")
        ha.wait_for(ENTITIES["outage"], lambda s: s["state"] == "off")
        ha.wait_for(ENTITIES["call_state"], lambda s: s["state"] == "none")
        ha.wait_for(ENTITIES["consoles_online"], lambda s: s["state"] == "0")  # no console in this test
        _lamp_follows(ha)
        beat = json.loads(_next_message(ha.broker, TOPICS.event(events.HEARTBEAT)))["data"]
        clock = {True: "on", False: "off", None: "unknown"}[beat["clock_synchronized"]]
        ha.wait_for(ENTITIES["clock_synchronized"], lambda s: s["state"] == clock)
        ha.wait_for(ENTITIES["outbox_backlog"], lambda s: s["state"] == "0" and s["attributes"]["held"] == 0)
        ha.wait_for(ENTITIES["storage"], lambda s: s["state"] == "ok")

        kiosk.post(Tap("lookup"))
        kiosk.post(LookupEntered("021"))
        looked_up = ha.wait_for(ENTITIES["last_code"], lambda s: s["state"] == "021")["attributes"]
        assert (looked_up["known"], looked_up["audience"], looked_up["outage"]) == (True, "patient", False)
    ha.wait_for(ENTITIES["online"], lambda s: s["state"] == "off" and s["attributes"]["reason"] == "stopped")
    ha.wait_for(ENTITIES["lamp"], lambda s: s["state"] == "unavailable")

    # 2. `kiosk run --headless` through the scripted session: card, phone, wrong cards (a call, escalated to
    #    both levels), acknowledge, resolve, outage; the reader unplugged; then SIGKILL (the Last Will).
    automations = _doc_automations()  # docs/dashboards.md: announce a call; unanswered calls to staff phones
    assert len(automations) == 2
    for number, automation in enumerate(automations):
        ha.add_automation(f"kiosk_doc_{number}", automation)  # Home Assistant validates them
    session = _scenario(tmp_path, SESSION)
    started = ha.template("{{ utcnow().isoformat() }}")
    kiosk = run_kiosk(["--config", str(_config(kiosk_dir, ha, f'backend = "sim:{session}"', escalate=1,
                                               desk=2)), "run", "--headless"], tmp_path)
    try:
        ha.wait_for(ENTITIES["online"], lambda s: s["state"] == "on")
        call = ha.wait_for(ENTITIES["open_call"], lambda s: s["state"] == "on")["attributes"]  # the 4th card
        # Every pre-check is one event (from HA's history, so none is missed however slow the polling).
        prechecks = _fired(ha.history(ENTITIES["precheck"], started, lambda ss: len(_fired(ss, "code")) >= 4),
                           "code")
        assert [event_type for event_type, _ in prechecks] == ["mynumber_card", "smartphone_iphone", "not_mynumber",
                                                               "not_mynumber"]
        assert prechecks[-1][1] == "002"
        assert ha.wait_for(ENTITIES["last_outcome"], lambda s: s["state"] == "not_mynumber")["attributes"]["code"] \
            == "002"
        assert call["reason"] == "repeated_failures" and call["acknowledged"] is False and call["since"]
        ha.wait_for(ENTITIES["call_state"], lambda s: s["state"] == "open")

        # Unacknowledged: staff called once more after 1 s, the patient sent to the desk after 2 s.
        last = ha.wait_for(ENTITIES["call_escalated"], _event_type("sent_to_desk"))["attributes"]
        assert (last["level"], last["reason"], last["code"], last["consoles_online"]) == \
            (events.SENT_TO_DESK, "repeated_failures", "002", 0)
        assert last["waited_seconds"] >= 2
        history = ha.history(ENTITIES["call_escalated"], started, lambda ss: len(_fired(ss, "level")) >= 2)
        assert _fired(history, "level") == [("escalated", events.ESCALATED), ("sent_to_desk", events.SENT_TO_DESK)]
        ha.wait_for(ENTITIES["open_call"], lambda s: s["attributes"].get("escalation") == events.SENT_TO_DESK)
        for number in range(len(automations)):  # both sample automations fired on this kiosk's entities
            _wait_until(lambda n=number: (ha.automation(f"kiosk_doc_{n}") or {}).get("attributes", {})
                        .get("last_triggered"), f"automation kiosk_doc_{number} never fired")
        _lamp_follows(ha)

        call_id = json.loads(_next_message(ha.broker, TOPICS.call))["call_id"]
        send_command(ha.broker, "acknowledge", {"call_id": call_id})
        ha.wait_for(ENTITIES["call_state"], lambda s: s["state"] == "acknowledged")
        ha.wait_for(ENTITIES["open_call"], lambda s: s["attributes"].get("acknowledged") is True)
        _lamp_follows(ha)
        send_command(ha.broker, "resolve", {"call_id": call_id})
        ha.wait_for(ENTITIES["open_call"], lambda s: s["state"] == "off" and "reason" not in s["attributes"])
        ha.wait_for(ENTITIES["call_state"], lambda s: s["state"] == "none")

        send_command(ha.broker, "outage_enter", {"code": "101"})
        assert ha.wait_for(ENTITIES["outage"], lambda s: s["state"] == "on")["attributes"]["code"] == "101"
        _lamp_follows(ha)
        send_command(ha.broker, "outage_leave", {})
        ha.wait_for(ENTITIES["outage"], lambda s: s["state"] == "off")

        fault = ha.wait_for(ENTITIES["reader_fault"], lambda s: s["state"] == "on", timeout=120)
        assert (fault["attributes"]["detail"], fault["attributes"]["cause"]) == ("simulated unplug",
                                                                              "simulated_unplug")
        _lamp_follows(ha)
        ha.wait_for(ENTITIES["outbox_backlog"], lambda s: s["state"] == "0")
    finally:
        kiosk.send_signal(signal.SIGKILL)  # no clean "offline": the broker sends the Last Will
        kiosk.communicate(timeout=30)

    # 3. The Last Will: offline ("lost"), every other entity unavailable.
    ha.wait_for(ENTITIES["online"], lambda s: s["state"] == "off" and s["attributes"]["reason"] == "lost")
    for key, entity in ENTITIES.items():
        if key != "online":
            ha.wait_for(entity, lambda s: s["state"] == "unavailable")
    assert ha.mqtt_problems() == []


def _dashboard_yaml() -> str:
    """The sample reception wall dashboard of docs/dashboards.md (its first YAML block)."""
    text = (REPO / "docs" / "dashboards.md").read_text(encoding="utf-8")
    match = re.search(r"^## A reception wall screen$.*?^```yaml\n(.*?)^```$", text, re.S | re.M)
    assert match, "docs/dashboards.md has no YAML block under 'A reception wall screen'"
    return match.group(1)


def _doc_automations() -> list[dict]:
    """The sample automations of docs/dashboards.md (its YAML blocks with `triggers`)."""
    text = (REPO / "docs" / "dashboards.md").read_text(encoding="utf-8")
    blocks = [yaml.safe_load(block) for block in re.findall(r"^```yaml\n(.*?)^```$", text, re.S | re.M)]
    return [block for block in blocks if isinstance(block, dict) and "triggers" in block]


def _keep_screenshot(path: Path) -> None:
    if folder := os.environ.get("KIOSK_SCREENSHOTS_DIR"):
        shutil.copy(path, Path(folder) / path.name)


@pytest.mark.slow
@pytest.mark.mqtt
@pytest.mark.browser
def test_home_assistant_shows_the_kiosk_device_and_the_sample_wall_dashboard(home_assistant, chromium, kiosk_dir,
                                                                            tmp_path):
    ha = home_assistant
    ha.dashboard_file.write_text(_dashboard_yaml(), encoding="utf-8")
    showcase = _scenario(tmp_path, SHOWCASE)
    with _kiosk_in_process(_config(kiosk_dir, ha, f'backend = "sim:{showcase}"', escalate=1,
                                   desk=3600)):
        ha.wait_for(ENTITIES["call_escalated"], _event_type("escalated"))
        _lamp_follows(ha)
        device = ha.template(f"{{{{ device_id('{ENTITIES['online']}') }}}}")
        page = chromium.new_page(viewport={"width": 1280, "height": 1080}, locale="ja-JP")
        page.set_default_timeout(90_000)  # the frontend's first load on two busy cores
        try:
            # Home Assistant's own login flow (auth provider "homeassistant"), as a facility's IT person logs in.
            page.goto(ha.url + "/")
            page.wait_for_url("**/auth/authorize**")
            page.locator("input[name=username]").fill(ha.username)
            page.locator("input[name=password]").fill(ha.password)
            page.locator("input[name=password]").press("Enter")
            page.wait_for_url(lambda url: "/auth/" not in url and "auth_callback" not in url)

            page.goto(f"{ha.url}/config/devices/device/{device}")
            names = ha_discovery.entity_names("ja")
            page.get_by_text(names["device"].format(kiosk=KIOSK)).first.wait_for()
            for key in ("open_call", "call_escalated", "reader_fault", "storage", "clock_synchronized"):
                page.get_by_text(names[key], exact=True).first.wait_for()
            page.wait_for_timeout(1000)  # icons and relative times settle
            shot = tmp_path / "homeassistant-device.png"
            page.screenshot(path=str(shot))
            _keep_screenshot(shot)

            # The sample wall dashboard: Home Assistant renders every card (an invalid one is a hui-error-card).
            page.goto(f"{ha.url}/{DASHBOARD}/kiosk")
            page.locator("hui-tile-card").first.wait_for()
            page.get_by_text(names["open_call"]).first.wait_for()
            page.locator("hui-logbook-card, hui-history-graph-card").first.wait_for()
            page.wait_for_timeout(1000)
            assert page.locator("hui-error-card").count() == 0, page.locator("hui-error-card").all_inner_texts()
            shot = tmp_path / "homeassistant-wall.png"
            page.screenshot(path=str(shot))
            _keep_screenshot(shot)
        finally:
            page.close()
    assert ha.mqtt_problems() == []


@pytest.mark.slow
@pytest.mark.mqtt
def test_home_assistant_restarted_knows_the_kiosk_at_once_and_forgets_it_taken_out(home_assistant, kiosk_dir):
    ha = home_assistant
    with _kiosk_in_process(_config(kiosk_dir, ha, 'backend = "sim"')):
        ha.wait_for(ENTITIES["online"], lambda s: s["state"] == "on")
        ha.wait_for(ENTITIES["call_state"], lambda s: s["state"] == "none")
        # Home Assistant restarts: everything the retained status says is back at once, "no call" included (no
        # retained call exists then: the status' details.call says it); the kiosk announces itself again.
        ha.stop()
        ha.start()
        ha.wait_for(ENTITIES["online"], lambda s: s["state"] == "on")
        ha.wait_for(ENTITIES["call_state"], lambda s: s["state"] == "none")
        ha.wait_for(ENTITIES["open_call"], lambda s: s["state"] == "off")
        ha.wait_for(ENTITIES["reader_fault"], lambda s: s["state"] == "off")
        ha.wait_for(ENTITIES["consoles_online"], lambda s: s["state"] == "0")
        _lamp_follows(ha)
    with _kiosk_in_process(_config(kiosk_dir, ha, 'backend = "sim"', discovery=False)):
        deadline = time.monotonic() + 30
        while any(entity in ha.states() for entity in ENTITIES.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(entity in ha.states() for entity in ENTITIES.values())
        assert ha.template(f"{{{{ device_id('{ENTITIES['online']}') }}}}") in ("", "None")
    assert ha.mqtt_problems() == []
