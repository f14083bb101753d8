"""Home Assistant discovery against a real, current Home Assistant (tests/rigs/homeassistant.py): entity ids, names,
states and attributes through a scripted headless kiosk session, availability from the Last Will, withdrawal,
and no warning or error from HA's MQTT integration about our configs. The pure part runs without HA."""

from __future__ import annotations

import json
import signal
import time

import paho.mqtt.client as mqtt
import pytest

from kiosk import events, ha_discovery
from kiosk.config import MqttSection
from kiosk.locales import placeholders, source_files
from kiosk.outbox import STORAGE_STATES
from kiosk.paths import catalogue_root
from kiosk.precheck import Outcome
from tests.test_e2e_kiosk import KIOSK, SITE, TOPICS, config_file, run_kiosk, send_command

ENTITIES = {key: ha_discovery.entity_id(config["platform"], TOPICS, key)
            for key, config in ha_discovery.components(TOPICS).items()}
SCENARIO = """
[[steps]]
wait = 2.0
[[steps]]
present = "mynumber_card"
hold = 1.0
wait = 3.0
[[steps]]
present = "iphone"
hold = 1.0
wait = 3.0
[[steps]]
present = "transit_card"
hold = 1.0
wait = 3.0
[[steps]]
present = "credit_card"
hold = 1.0
wait = 60.0
[[steps]]
unplug = 10.0
wait = 3600.0
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


# --- against Home Assistant ------------------------------------------------------------------------------

def _retained(broker, topic: str) -> bytes:
    got: list[bytes] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTProtocolVersion.MQTTv5)
    client.on_message = lambda _c, _u, msg: got.append(msg.payload)
    client.connect(broker.host, broker.port)
    client.subscribe(topic, qos=1)
    client.loop_start()
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        time.sleep(0.05)
    client.disconnect()
    client.loop_stop()
    assert got, f"nothing retained on {topic}"
    return got[0]


def _publish_retained(broker, topic: str, payload: bytes) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTProtocolVersion.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    client.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def _kiosk(tmp_path, ha, reader: str, discovery: bool = True):
    extra = (f"ha_discovery = {'true' if discovery else 'false'}\nha_language = \"ja\"\nheartbeat_seconds = 1\n"
             "[ui]\nfailures_before_call = 2\n")
    tmp_path.mkdir()
    config = config_file(tmp_path, ha.broker, reader, extra)
    return run_kiosk(["--config", str(config), "run", "--headless"], tmp_path)


def _lamp_follows(ha) -> None:
    """HA's lamp sensor shows the pattern the kiosk's retained status carries now (patterns: kiosk.vocabulary)."""
    def same(state):
        return state["state"] == json.loads(_retained(ha.broker, TOPICS.status))["details"]["lamp"]
    ha.wait_for(ENTITIES["lamp"], same)


def _event_type(expected):
    return lambda s: s["attributes"].get("event_type") == expected


@pytest.mark.slow
@pytest.mark.mqtt
def test_home_assistant_follows_a_kiosk_session(home_assistant, tmp_path):
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

    # 1. First start: every entity appears with its id and Japanese name, and follows the retained status.
    first = _kiosk(tmp_path / "first", ha, 'backend = "sim"')
    try:
        ha.wait_for(ENTITIES["online"], lambda s: s["state"] == "on")
        states = ha.states()
        ours = {e for e in states if "kiosk" in e and e.split(".")[0] in ("binary_sensor", "sensor", "event")}
        assert ours == set(ENTITIES.values()), ours ^ set(ENTITIES.values())
        assert states[ENTITIES["reader_fault"]]["attributes"]["friendly_name"] == "キオスク k1 読み取り機の異常"
        assert states[ENTITIES["last_outcome"]]["attributes"]["options"] == [str(o) for o in Outcome]
        ha.wait_for(ENTITIES["reader_fault"], lambda s: s["state"] == "off")
        ha.wait_for(ENTITIES["outage"], lambda s: s["state"] == "off")
        _lamp_follows(ha)
        ha.wait_for(ENTITIES["outbox_backlog"], lambda s: s["state"] == "0")
        assert ha.state(ENTITIES["catalogue_version"])["state"] not in ("unknown", "unavailable", "")
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    assert first.returncode == 0
    ha.wait_for(ENTITIES["online"], lambda s: s["state"] == "off" and s["attributes"]["reason"] == "stopped")
    ha.wait_for(ENTITIES["lamp"], lambda s: s["state"] == "unavailable")

    # 2. A scripted session: card, phone, wrong cards (a call), acknowledge, resolve, outage, reader fault.
    scenario = tmp_path / "session.toml"
    scenario.write_text(SCENARIO)
    kiosk = _kiosk(tmp_path / "second", ha, f'backend = "sim:{scenario}"')
    try:
        ha.wait_for(ENTITIES["online"], lambda s: s["state"] == "on")
        ha.wait_for(ENTITIES["precheck"], _event_type("mynumber_card"))
        ha.wait_for(ENTITIES["last_outcome"], lambda s: s["state"] == "mynumber_card")
        ha.wait_for(ENTITIES["precheck"], _event_type("smartphone_iphone"))
        precheck = ha.wait_for(ENTITIES["precheck"], _event_type("not_mynumber"))
        assert precheck["attributes"]["code"] == "002"
        assert ha.wait_for(ENTITIES["last_outcome"], lambda s: s["state"] == "not_mynumber")["attributes"]["code"] \
            == "002"
        call = ha.wait_for(ENTITIES["open_call"], lambda s: s["state"] == "on")["attributes"]
        assert call["reason"] == "repeated_failures" and call["acknowledged"] is False and call["since"]
        ha.wait_for(ENTITIES["call_state"], lambda s: s["state"] == "open")
        _lamp_follows(ha)

        call_id = json.loads(_retained(ha.broker, TOPICS.call))["call_id"]
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
        assert fault["attributes"]["detail"] == "simulated unplug"
        _lamp_follows(ha)
        ha.wait_for(ENTITIES["reader_fault"], lambda s: s["state"] == "off")
        ha.wait_for(ENTITIES["outbox_backlog"], lambda s: s["state"] == "0")
    finally:
        kiosk.send_signal(signal.SIGKILL)  # no clean "offline": the broker sends the Last Will
        kiosk.communicate(timeout=30)

    # 3. The Last Will: offline ("lost"), every other entity unavailable.
    ha.wait_for(ENTITIES["online"], lambda s: s["state"] == "off" and s["attributes"]["reason"] == "lost")
    for key in ("reader_fault", "lamp", "call_state", "outbox_backlog"):
        ha.wait_for(ENTITIES[key], lambda s: s["state"] == "unavailable")
    assert ha.mqtt_problems() == []


@pytest.mark.slow
@pytest.mark.mqtt
def test_home_assistant_forgets_a_kiosk_taken_out_of_discovery(home_assistant, tmp_path):
    ha = home_assistant
    kiosk = _kiosk(tmp_path / "on", ha, 'backend = "sim"')
    try:
        ha.wait_for(ENTITIES["online"], lambda s: s["state"] == "on")
    finally:
        kiosk.send_signal(signal.SIGTERM)
        kiosk.communicate(timeout=30)
    kiosk = _kiosk(tmp_path / "off", ha, 'backend = "sim"', discovery=False)
    try:
        deadline = time.monotonic() + 30
        while any(entity in ha.states() for entity in ENTITIES.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(entity in ha.states() for entity in ENTITIES.values())
    finally:
        kiosk.send_signal(signal.SIGTERM)
        kiosk.communicate(timeout=30)
    assert ha.mqtt_problems() == []
