"""kiosk.link against a real mosquitto: presence, events, the retained call, commands, ACL refusals, HA discovery."""

import json
import queue
import time
from dataclasses import replace

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from kiosk import events, ha_discovery
from kiosk.broker import parse_broker_url, read_password
from kiosk.config import ConfigError, config_from_dict
from kiosk.effects import Call
from kiosk.link import EventLink
from kiosk.messages import Answer, Command, LinkChanged
from tests.rigs import contract

pytestmark = pytest.mark.mqtt

KIOSK, SITE = "k1", "s1"
TOPICS = events.Topics("kiosk", SITE, KIOSK)


def wait_until(pred, timeout=10.0) -> bool:
    """Poll pred() until it is true or the time is up; returns its last value."""
    deadline = time.monotonic() + timeout
    while not pred() and time.monotonic() < deadline:
        time.sleep(0.02)
    return pred()


def make_config(tmp_path, url, **mqtt_options):
    return config_from_dict({"kiosk": {"id": KIOSK, "site": SITE, "state_dir": str(tmp_path / "state")},
                             "mqtt": {"url": url, **mqtt_options}})


class Posted:
    """Stands in for the main loop: collects what the link posts."""

    def __init__(self):
        self.queue = queue.Queue()

    def __call__(self, message):
        self.queue.put(message)

    def next(self, kind, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            message = self.queue.get(timeout=max(0.01, deadline - time.monotonic()))
            if isinstance(message, kind):
                return message

    def commands(self):
        return [m for m in list(self.queue.queue) if isinstance(m, Command)]


@pytest.fixture
def link_factory(tmp_path):
    links = []

    def make(url, **options):
        posted = Posted()
        link = EventLink(make_config(tmp_path, url, **options), "cat-1", posted)
        link.start()
        links.append(link)
        return link, posted

    yield make
    for link in links:
        link.stop()


def payloads(listener, topic):
    return [json.loads(m.payload) for m in listener.on(topic) if m.payload]


def test_presence_events_and_retained_call(mosquitto, mqtt_listener, link_factory):
    watcher = mqtt_listener(mosquitto, "kiosk/#")
    link, posted = link_factory(mosquitto.url)
    assert posted.next(LinkChanged).connected is True
    watcher.wait(lambda ms: any(m.topic == TOPICS.status for m in ms))
    status = payloads(watcher, TOPICS.status)[-1]
    contract.validate("Status", status)
    assert status["state"] == "online"

    ids = [link.emit("precheck", {"outcome": "not_mynumber", "code": None, "hints": []}),
           link.emit("call", {"call_id": "c1", "reason": "patient_request", "code": None, "audience": "patient"})]
    call = Call(id="c1", reason="patient_request", code=None, audience="patient", since=events.timestamp())
    link.set_call(call)
    # the link cleared the retained call when it connected (an empty payload); wait for c1's own publish, or a
    # late subscriber could race it and receive it live (RETAIN 0) instead of as the retained message
    watcher.wait(lambda ms: sum(m.topic.startswith(TOPICS.base + "/event/") for m in ms) >= 2
                 and any(m.topic == TOPICS.call and m.payload for m in ms))
    got = [json.loads(m.payload) for m in watcher.messages if "/event/" in m.topic]
    assert [e["id"] for e in got] == ids and got[0]["seq"] < got[1]["seq"]
    for event in got:
        contract.validate_event(event)
    call_message = next(m for m in watcher.messages if "/event/call" in m.topic)
    assert 0 < call_message.properties.MessageExpiryInterval <= 900  # a stale call expires in queues

    late = mqtt_listener(mosquitto, TOPICS.call)  # a console that starts later sees the open call
    retained = late.wait(lambda ms: len(ms) >= 1)[0]
    assert retained.retain and json.loads(retained.payload)["call_id"] == "c1"
    contract.validate("OpenCall", json.loads(retained.payload))

    link.set_call(None)  # resolved: the retained call is cleared
    late.wait(lambda ms: len(ms) >= 2 and ms[-1].payload == b"")
    assert mqtt_listener(mosquitto, TOPICS.call).messages == []  # nothing retained any more
    assert link.stats().backlog == 0 and link.stats().connected

    link.stop()
    watcher.wait(lambda ms: payloads(watcher, TOPICS.status)[-1]["state"] == "offline")
    assert payloads(watcher, TOPICS.status)[-1]["details"] == {"reason": "stopped"}


CONSOLE_REPLIES = events.reply_topic("kiosk", SITE, "console")


def await_online(broker, mqtt_listener) -> None:
    """Until the link's online status is published: the broker handled its cmd SUBSCRIBE before that publish
    (one connection's packets in order), so a command sent now reaches it. LinkChanged alone does not say so:
    it is posted right after the SUBSCRIBE is sent, and a command can overtake it (commands are not queued)."""
    status = mqtt_listener(broker, TOPICS.status)
    status.wait(lambda ms: any(m.payload and json.loads(m.payload)["state"] == "online" for m in ms))


def send_command(broker, payload: bytes, response_topic=CONSOLE_REPLIES, correlation=b"corr-1"):
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTProtocolVersion.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    properties = Properties(PacketTypes.PUBLISH)
    if response_topic:
        properties.ResponseTopic = response_topic
    properties.CorrelationData = correlation
    client.publish(TOPICS.cmd, payload, qos=1, properties=properties).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def test_commands_valid_posted_and_answered_bad_refused(mosquitto, mqtt_listener, link_factory, tmp_path):
    replies = mqtt_listener(mosquitto, "kiosk/s1/reply/#")
    link, posted = link_factory(mosquitto.url)
    posted.next(LinkChanged)
    await_online(mosquitto, mqtt_listener)

    good = events.command_payload("acknowledge", {"call_id": "c1"}, kiosk=KIOSK)
    send_command(mosquitto, events.encode(good), correlation=b"good")
    command = posted.next(Command)
    assert (command.id, command.name, command.args) == (good["id"], "acknowledge", {"call_id": "c1"})
    command.reply(Answer(True, "acknowledged", "acknowledged"))
    command.reply(Answer(False, "rejected", "a second answer is ignored"))
    answer = replies.wait(lambda ms: len(ms) >= 1)[0]
    assert answer.properties.CorrelationData == b"good"
    body = json.loads(answer.payload)
    contract.validate("CommandResponse", body)
    assert (body["id"], body["ok"], body["error"]) == (good["id"], True, None)

    bad = [
        (b"x" * 5000, events.TOO_LARGE),
        (b"{oops", events.NOT_JSON),
        (events.encode({"id": "z", "name": "lamp_test"}), events.INVALID),
        (events.encode(events.command_payload("format_disk", {}, kiosk=KIOSK)), events.UNKNOWN_COMMAND),
        (events.encode(events.command_payload("lamp_test", {}, kiosk="k2")), events.WRONG_KIOSK),
        (events.encode(good), events.REPLAYED),
    ]
    for index, (raw, _) in enumerate(bad):
        send_command(mosquitto, raw, correlation=f"bad-{index}".encode())
    answers = replies.wait(lambda ms: len(ms) >= 1 + len(bad))[1:]
    by_correlation = {m.properties.CorrelationData: json.loads(m.payload) for m in answers}
    for index, (_, code) in enumerate(bad):
        body = by_correlation[f"bad-{index}".encode()]
        contract.validate("CommandResponse", body)
        assert (body["ok"], body["error"]) == (False, code)

    # no response topic, or one outside the reply tree: refused without an answer
    send_command(mosquitto, events.encode(events.command_payload("lamp_test", {}, kiosk=KIOSK)), response_topic=None)
    send_command(mosquitto, events.encode(events.command_payload("lamp_test", {}, kiosk=KIOSK)),
                 response_topic="kiosk/s1/k1/status")
    probe = events.command_payload("outage_leave", {}, kiosk=KIOSK)
    send_command(mosquitto, events.encode(probe), correlation=b"probe")
    assert posted.next(Command).id == probe["id"]  # the next thing posted: nothing bad got through
    assert posted.commands() == []

    # replay memory survives a restart of the link
    link.stop()
    _link2, posted2 = link_factory(mosquitto.url)
    posted2.next(LinkChanged)
    await_online(mosquitto, mqtt_listener)  # the retained status says "offline" (stopped) until then
    send_command(mosquitto, events.encode(good), correlation=b"again")
    again = replies.wait(lambda ms: any(m.properties.CorrelationData == b"again" for m in ms))
    body = json.loads(next(m for m in again if m.properties.CorrelationData == b"again").payload)
    assert body["error"] == events.REPLAYED
    assert posted2.commands() == []


def test_resend_events_answers_from_the_acknowledged_events_in_pages(mosquitto, mqtt_listener, link_factory):
    """The link answers resend_events itself (the flow never sees it): the events the broker acknowledged after
    `after_seq`, oldest first, as published, at most MAX_RESENT_BYTES a response (`more` says ask again); the
    online status carries sent_seq. Events not acknowledged yet are not resent (the outbox still sends them)."""
    watcher = mqtt_listener(mosquitto, "kiosk/s1/#")
    link, posted = link_factory(mosquitto.url)
    posted.next(LinkChanged)
    ids = [link.emit("lookup", {"code": f"{i % 1000:03d}", "known": False, "audience": None, "outage": None})
           for i in range(300)]
    watcher.wait(lambda ms: sum("/event/" in m.topic for m in ms) >= 300)
    published = {json.loads(m.payload)["id"]: m.payload for m in watcher.messages if "/event/" in m.topic}
    assert wait_until(lambda: link.stats().backlog == 0)  # every PUBACK handled
    link.set_state({"lamp": "off"})  # any change re-publishes the online status
    watcher.wait(lambda ms: payloads(watcher, TOPICS.status)[-1]["details"].get("sent_seq") == 300)
    contract.validate("Status", payloads(watcher, TOPICS.status)[-1])

    def ask(after_seq: int, correlation: bytes) -> dict:
        send_command(mosquitto, events.encode(events.command_payload(events.RESEND_EVENTS, {"after_seq": after_seq},
                                                                     kiosk=KIOSK)), correlation=correlation)
        message = watcher.wait(lambda ms: any(m.properties.CorrelationData == correlation for m in ms
                                              if "/reply/" in m.topic))
        body = json.loads(next(m.payload for m in message if "/reply/" in m.topic
                               and m.properties.CorrelationData == correlation))
        contract.validate("CommandResponse", body)
        assert body["ok"] and body["detail_id"] == "events_resent"
        assert body["params"] == {"count": str(len(body["events"]))}
        assert len(events.encode(body)) <= events.MAX_PAYLOAD_BYTES
        return body

    pages, after = [], 0
    while True:
        body = ask(after, f"page-{len(pages)}".encode())
        pages.append(body)
        if not body["more"]:
            break
        after = body["events"][-1]["seq"]
    assert len(pages) >= 2  # 300 lookups are more than one response holds
    resent = [event for page in pages for event in page["events"]]
    assert [event["id"] for event in resent] == ids  # each once, oldest first
    assert all(events.encode(event) == published[event["id"]] for event in resent)  # as published
    assert ask(300, b"none")["events"] == [] and ask(295, b"tail")["events"][0]["seq"] == 296
    assert posted.commands() == []  # answered by the link: nothing reached the main loop


ACL_CONFIG = """
listener {port} 127.0.0.1
allow_anonymous true
acl_file {dir}/acl
persistence false
log_dest stderr
"""
ACL = """
topic write kiosk/s1/k1/status
topic write kiosk/s1/k1/call
topic write kiosk/s1/k1/event/call
topic read kiosk/s1/k1/cmd
"""


def test_acl_refusal_detected_and_reported(mosquitto_factory, link_factory, caplog):
    broker = mosquitto_factory(ACL_CONFIG, {"acl": ACL})
    link, posted = link_factory(broker.url)
    posted.next(LinkChanged)
    link.emit("precheck", {"outcome": "nothing", "code": None, "hints": []})  # not allowed by the ACL
    link.emit("call", {"call_id": "c2", "reason": "outage", "code": "101", "audience": "staff"})
    wait_until(lambda: link.stats().backlog == 1 and link.stats().refused == 1)
    stats = link.stats()
    assert stats.refused == 1 and stats.backlog == 1  # the call went; the refused precheck is kept
    assert "Not authorized" in stats.last_error and "event seq 1" in stats.last_error
    assert any("broker refused event" in r.getMessage() for r in caplog.records)


def _publish(broker, topic: str, payload: bytes, retain: bool = False) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTProtocolVersion.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


HA_DEVICE_TOPIC = "homeassistant/device/k1/config"
HA_LEGACY_TOPICS = {f"homeassistant/{component}/k1/{key}/config" for component, key in ha_discovery.LEGACY_ENTITIES}


def test_ha_discovery_announced_and_reannounced(mosquitto, mqtt_listener, link_factory):
    announced = mqtt_listener(mosquitto, "homeassistant/#")
    link, posted = link_factory(mosquitto.url, ha_discovery=True, ha_language="en")
    posted.next(LinkChanged)
    first = announced.wait(lambda ms: any(m.topic == HA_DEVICE_TOPIC for m in ms))
    # Earlier versions' per-entity configs are emptied first, then the one device-based config.
    assert [m.topic for m in first[:-1]] and {m.topic for m in first[:-1]} == HA_LEGACY_TOPICS
    assert all(m.payload == b"" for m in first[:-1]) and first[-1].topic == HA_DEVICE_TOPIC
    config = json.loads(first[-1].payload)
    assert config == ha_discovery.discovery_config(TOPICS, "en")
    assert config["device"] == {"identifiers": ["kiosk_s1_k1"], "name": "Kiosk k1", "manufacturer": "mynumber-kiosk",
                                "model": "My Number pre-check kiosk", "sw_version": config["origin"]["sw_version"],
                                "suggested_area": SITE}
    assert config["origin"]["name"] == "mynumber-kiosk" and config["qos"] == 1
    cmps = config["cmps"]
    assert set(cmps) == set(ha_discovery.components(TOPICS))
    online = cmps["online"]
    assert (online["platform"], online["state_topic"], online["default_entity_id"], online["unique_id"]) == \
        ("binary_sensor", TOPICS.status, "binary_sensor.kiosk_k1_online", "kiosk_s1_k1_online")
    assert "availability_topic" not in online  # online is the availability itself
    for key, component in cmps.items():
        assert "object_id" not in component and component["name"]
        assert component["default_entity_id"] == f"{component['platform']}.kiosk_k1_{key}"
        if key != "online":
            assert component["availability_topic"] == TOPICS.status, key
    assert cmps["precheck"]["state_topic"] == TOPICS.event(events.PRECHECK)
    assert (cmps["open_call"]["state_topic"], cmps["open_call"]["json_attributes_topic"]) == \
        (TOPICS.status, TOPICS.call)
    # Retained: Home Assistant started later gets it from the broker.
    late = mqtt_listener(mosquitto, HA_DEVICE_TOPIC)
    retained = late.wait(lambda ms: bool(ms))[0]
    assert retained.retain and json.loads(retained.payload) == config

    # Home Assistant's birth message: announced again (the device only: once HA has it, a message on an old
    # per-entity topic is a "conflicting discovery" warning); its last will ("offline") is not a reason to.
    _publish(mosquitto, "homeassistant/status", b"offline")
    _publish(mosquitto, "homeassistant/status", b"online")
    again = announced.wait(lambda ms: len([m for m in ms if m.topic == HA_DEVICE_TOPIC]) >= 2)
    assert [m.topic for m in again[len(first):] if m.topic.endswith("/config")] == [HA_DEVICE_TOPIC]
    assert json.loads(again[-1].payload) == config
    # A restart (same state dir): the device config alone, the old topics were emptied once already.
    link.stop()
    _link, posted = link_factory(mosquitto.url, ha_discovery=True, ha_language="en")
    posted.next(LinkChanged)
    restarted = announced.wait(lambda ms: len([m for m in ms if m.topic == HA_DEVICE_TOPIC]) >= 3)
    assert [m.topic for m in restarted[len(again):] if m.topic.endswith("/config")] == [HA_DEVICE_TOPIC]


def test_ha_discovery_off_withdraws_the_device(mosquitto, mqtt_listener, link_factory):
    _publish(mosquitto, HA_DEVICE_TOPIC, b'{"cmps": {}}', retain=True)  # announced while ha_discovery was on
    live = mqtt_listener(mosquitto, "homeassistant/#")
    live.wait(lambda ms: any(m.topic == HA_DEVICE_TOPIC for m in ms))
    _link, posted = link_factory(mosquitto.url, ha_discovery=False)
    posted.next(LinkChanged)
    withdrawn = live.wait(lambda ms: len([m for m in ms if m.topic == HA_DEVICE_TOPIC]) == 2)
    assert {m.topic for m in withdrawn[1:]} == HA_LEGACY_TOPICS | {HA_DEVICE_TOPIC}
    assert all(m.payload == b"" for m in withdrawn[1:])
    # Nothing stays retained: a subscriber gets the retained status (filters answered in order) and no config.
    late = mqtt_listener(mosquitto, HA_DEVICE_TOPIC, TOPICS.status)
    got = late.wait(lambda ms: any(m.topic == TOPICS.status for m in ms))
    assert [m.topic for m in got] == [TOPICS.status]


def test_broker_url_and_password_file_checks(tmp_path):
    assert parse_broker_url("mqtts://broker.local").port == 8883
    assert parse_broker_url("mqtt://127.0.0.1:1999").port == 1999
    for bad in ("http://x", "mqtt://user:pw@host", "mqtt://", "mqtt://h:99999", "mqtt://h/path"):
        with pytest.raises(ConfigError):
            parse_broker_url(bad)
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_password(secret)
    secret.chmod(0o600)
    assert read_password(secret) == "s3cret"
    with pytest.raises(ConfigError, match="cannot read"):
        read_password(tmp_path / "missing")


def test_link_keeps_storing_while_broker_is_down(tmp_path, link_factory, mosquitto_factory):
    broker = mosquitto_factory(start=False)
    link, posted = link_factory(broker.url)
    for _ in range(5):
        link.emit("lookup", {"code": "101", "known": True, "audience": "staff", "outage": True})
    assert link.stats().backlog == 5 and not link.stats().connected
    assert wait_until(lambda: "cannot connect" in (link.stats().last_error or ""))
    broker.start()
    assert posted.next(LinkChanged, timeout=15).connected
    assert wait_until(lambda: link.stats().backlog == 0)


def test_full_outbox_drops_low_value_first_and_reports_it(mosquitto_factory, mqtt_listener, link_factory):
    broker = mosquitto_factory(start=False)
    link, posted = link_factory(broker.url, outbox_cap=100)
    for i in range(120):
        link.emit("reader_status", {"available": i % 2 == 0, "detail": "flapping"})
    for i in range(10):
        link.emit("call", {"call_id": f"c{i}", "reason": "patient_request", "code": None, "audience": "patient"})
    assert link.outbox.flush()  # the outbox's writer thread applies the cap as it stores them
    stats = link.stats()
    assert (stats.backlog, stats.dropped) == (100, 30)
    link.stop()  # the kiosk restarts once the broker is back; the report survives in the outbox
    broker.start()
    watcher = mqtt_listener(broker, "kiosk/s1/k1/event/#")
    link, posted = link_factory(broker.url, outbox_cap=100)
    posted.next(LinkChanged, timeout=15)
    got = watcher.wait(lambda ms: any(m.topic.endswith("/outbox_dropped") for m in ms)
                       and sum(m.topic.endswith("/event/call") for m in ms) == 10)
    report = json.loads(next(m for m in got if m.topic.endswith("/outbox_dropped")).payload)
    contract.validate_event(report)
    assert report["data"] == {"count": 30, "by_kind": {"reader_status": 30}, "total": 30}
    calls = [json.loads(m.payload) for m in got if m.topic.endswith("/event/call")]
    assert [c["data"]["call_id"] for c in calls] == [f"c{i}" for i in range(10)]  # no call was dropped


def test_unanswered_command_times_out_and_a_late_reply_is_ignored(mosquitto, mqtt_listener, link_factory,
                                                                  monkeypatch):
    monkeypatch.setattr("kiosk.link.COMMAND_TIMEOUT", 0.5)
    replies = mqtt_listener(mosquitto, "kiosk/s1/reply/#")
    _link, posted = link_factory(mosquitto.url)
    posted.next(LinkChanged)
    await_online(mosquitto, mqtt_listener)
    send_command(mosquitto, events.encode(events.command_payload("reload_catalogue", {}, kiosk=KIOSK)))
    command = posted.next(Command)
    answer = json.loads(replies.wait(lambda ms: len(ms) >= 1)[0].payload)
    contract.validate("CommandResponse", answer)
    assert (answer["id"], answer["ok"], answer["error"]) == (command.id, False, events.TIMEOUT)
    command.reply(Answer(True, "acknowledged", "too late"))
    time.sleep(0.3)
    assert len(replies.messages) == 1


def test_heartbeat_carries_outbox_stats(mosquitto, mqtt_listener, link_factory, monkeypatch):
    monkeypatch.setattr("kiosk.clock.synchronized", lambda: False)  # a Pi just booted, NTP not yet answered
    watcher = mqtt_listener(mosquitto, TOPICS.event("heartbeat"))
    status = mqtt_listener(mosquitto, TOPICS.status)
    _link, _posted = link_factory(mosquitto.url, heartbeat_seconds=0.2)
    beats = [json.loads(m.payload) for m in watcher.wait(lambda ms: len(ms) >= 2)]
    assert beats[0]["data"]["clock_synchronized"] is False
    online = json.loads(status.wait(lambda ms: len(ms) >= 1)[0].payload)
    contract.validate("Status", online)
    assert online["details"]["clock"] == {"synchronized": False}
    for beat in beats:
        contract.validate_event(beat)
    assert set(beats[0]["data"]["outbox"]) == {"backlog", "dropped", "refused", "last_error", "storage", "held"}
    assert beats[0]["data"]["outbox"]["storage"] == "ok"
    assert beats[1]["seq"] > beats[0]["seq"]


def test_a_silent_server_is_given_up_and_retried(tmp_path, link_factory, monkeypatch):
    import socket

    monkeypatch.setattr("kiosk.link.CONNACK_TIMEOUT", 0.3)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts TCP (the kernel does), never speaks MQTT
    try:
        link, _posted = link_factory(f"mqtt://127.0.0.1:{silent.getsockname()[1]}")
        assert wait_until(lambda: "no answer to CONNECT" in (link.stats().last_error or ""))
        assert not link.stats().connected
    finally:
        silent.close()


def test_events_are_fsynced_before_they_are_published(mosquitto, mqtt_listener, link_factory, monkeypatch):
    import os

    synced_at = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        real_fsync(fd)
        if os.readlink(f"/proc/self/fd/{fd}").endswith("outbox.sqlite3-wal"):
            synced_at.append(time.perf_counter())

    monkeypatch.setattr(os, "fsync", recording_fsync)
    received_at = []
    watcher = mqtt_listener(mosquitto, TOPICS.event("precheck"))
    watcher.client.on_message = lambda *_: received_at.append(time.perf_counter())
    link, posted = link_factory(mosquitto.url)
    posted.next(LinkChanged)
    link.emit("precheck", {"outcome": "nothing", "code": None, "hints": []})
    assert wait_until(lambda: received_at)
    assert synced_at and synced_at[0] < received_at[0]


def test_backlog_reaches_the_main_loop_while_offline(mosquitto_factory, link_factory):
    broker = mosquitto_factory(start=False)
    link, posted = link_factory(broker.url, heartbeat_seconds=0.2)
    for _ in range(3):
        link.emit("lamp_status", {"pattern": "call"})
    change = posted.next(LinkChanged)
    assert change.connected is False and change.pending >= 4  # three events + the heartbeat itself


def test_kiosk_state_is_retained_in_the_status_and_republished_when_it_changes(mosquitto, mqtt_listener,
                                                                               link_factory):
    link, posted = link_factory(mosquitto.url)
    link.set_state(events.kiosk_state(reader_available=True, reader_detail="reader", lamp="off", outage=False,
                                      outage_code=None))
    posted.next(LinkChanged)
    link.set_state(events.kiosk_state(reader_available=False, reader_detail="card reader 'X' was unplugged",
                                      lamp="outage", outage=True, outage_code="950"))
    watcher = mqtt_listener(mosquitto, TOPICS.status)
    watcher.wait(lambda ms: any(m.payload and json.loads(m.payload)["details"].get("lamp") == "outage" for m in ms))
    status = payloads(watcher, TOPICS.status)[-1]
    contract.validate("Status", status)
    assert status["state"] == "online" and status["details"]["outbox"]["backlog"] == 0
    assert status["details"]["reader"] == {"available": False, "detail": "card reader 'X' was unplugged"}
    assert status["details"]["outage"] == {"active": True, "code": "950"}
    late = mqtt_listener(mosquitto, TOPICS.status).wait(lambda ms: len(ms) >= 1)[0]  # retained, as last sent
    assert late.retain and json.loads(late.payload)["details"] == status["details"]


def test_the_status_says_the_call_s_state_and_is_republished_when_it_changes(mosquitto, mqtt_listener, link_factory):
    """details.call: a late subscriber (Home Assistant after a restart) cannot take "no retained call" for "none"."""
    watcher = mqtt_listener(mosquitto, TOPICS.status)
    link, posted = link_factory(mosquitto.url)
    posted.next(LinkChanged)

    def calls(ms):
        return [json.loads(m.payload)["details"].get("call") for m in ms if m.payload]

    watcher.wait(lambda ms: calls(ms) == ["none"])
    call = Call(id="c9", reason="patient_request", code=None, audience="patient", since=events.timestamp())
    link.set_call(call)
    watcher.wait(lambda ms: calls(ms)[-1:] == ["open"])
    link.set_call(replace(call, escalation=events.ESCALATED))  # same state: no new status
    link.set_call(replace(call, escalation=events.ESCALATED, acknowledged=True))
    link.set_call(None)
    got = watcher.wait(lambda ms: calls(ms)[-1:] == ["none"] and len(calls(ms)) >= 4)
    assert calls(got) == ["none", "open", "acknowledged", "none"]
    for status in payloads(watcher, TOPICS.status):
        contract.validate("Status", status)
