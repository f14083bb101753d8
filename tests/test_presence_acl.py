"""Console presence under the shipped broker ACLs, on real mosquitto (issue 18): a `kiosk console` or
`kiosk watch` under any account writes its own presence (and Last Will) and nobody else's
(`pattern write kiosk/+/console/%c/status`), and kiosks read every presence."""

from __future__ import annotations

import json

import paho.mqtt.client as mqtt
import pytest

from kiosk import events
from kiosk.broker import Presence
from kiosk.config import MqttSection
from kiosk.console.mqtt import ConsoleLink
from tests import test_link_security as security
from tests.test_link import wait_until

PASSWORDS = security.PASSWORDS
facility, pki, appliance = security.facility, security.pki, security.appliance  # brokers with the shipped ACLs

pytestmark = pytest.mark.mqtt


def client_of(broker, user: str, password: str, client_id: str, port: int) -> tuple[mqtt.Client, dict]:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTProtocolVersion.MQTTv5)
    client.username_pw_set(user, password)
    acks: dict = {}
    client.on_publish = lambda _c, _u, mid, reason, _p: acks.__setitem__(mid, reason)
    return client, acks


def publish(client, acks, topic: str):
    info = client.publish(topic, b'{"state": "online"}', qos=1, retain=True)
    assert wait_until(lambda: info.mid in acks)
    return acks[info.mid]


def test_facility_acl_any_account_writes_its_own_presence_only(facility, tmp_path, mqtt_listener):
    seen = mqtt_listener(facility, "kiosk/+/console/+/status", username="k1", password=PASSWORDS["k1"],
                         port=facility.port2)  # a kiosk account reads every presence
    secret = tmp_path / "dashboard-password"
    secret.write_text(PASSWORDS["dashboard"] + "\n")
    secret.chmod(0o600)
    section = MqttSection(url=f"mqtt://127.0.0.1:{facility.port2}", username="dashboard", password_file=secret)

    # a console under an account other than "console" announces itself, with its listeners
    link = ConsoleLink(section, ["s1"], lambda message: None)
    link.start()
    try:
        topic = events.presence_topic("kiosk", "s1", link.client_name)
        seen.wait(lambda ms: any(m.topic == topic for m in ms))
        link.set_listeners(2)
        seen.wait(lambda ms: any(m.topic == topic and json.loads(m.payload).get("listeners") == 2 for m in ms))
    finally:
        link.stop()
    seen.wait(lambda ms: json.loads([m for m in ms if m.topic == topic][-1].payload)["state"] == "offline")

    # nobody writes another client's presence: not the console account, not a dashboard, not a kiosk
    for user, client_id in (("console", "console-mine"), ("dashboard", "watch-mine"), ("k1", "kiosk-s1-k1")):
        client, acks = client_of(facility, user, PASSWORDS[user], client_id, facility.port2)
        client.connect(facility.host, facility.port2)
        client.loop_start()
        try:
            assert publish(client, acks, f"kiosk/s1/console/{link.client_name}/status").value == 0x87, user
            if user != "k1":
                assert not publish(client, acks, f"kiosk/s1/console/{client_id}/status").is_failure, user
        finally:
            client.disconnect()
            client.loop_stop()

    # a watch killed under the dashboard account: its Last Will (its own presence) still says offline
    watch = Presence.of(section, [events.ANY_SITE], "watch-killed", "watch", under="s1")
    client, acks = client_of(facility, "dashboard", PASSWORDS["dashboard"], watch.console, facility.port2)
    watch.arm(client)
    connected: list = []
    client.on_connect = lambda c, _u, _f, reason, _p: connected.append(reason)
    client.connect(facility.host, facility.port2)
    client.loop_start()
    assert wait_until(lambda: connected) and not connected[0].is_failure
    watch.announce(client, 1)
    seen.wait(lambda ms: any(m.topic == watch.topic for m in ms))
    client.loop_stop()
    client.socket().close()  # gone without DISCONNECT, as a killed process
    seen.wait(lambda ms: [json.loads(m.payload)["state"] for m in ms if m.topic == watch.topic][-1] == "offline",
              timeout=15)


def test_appliance_acl_lets_any_account_announce_only_itself(appliance):
    broker = appliance
    for user, password, client_id in (("kiosk", "k-pw", "console-1"), ("homeassistant", "ha-pw", "watch-1")):
        client, acks = client_of(broker, user, password, client_id, broker.port)
        client.connect(broker.host, broker.port)
        client.loop_start()
        try:
            assert not publish(client, acks, f"kiosk/site-1/console/{client_id}/status").is_failure, user
            other = publish(client, acks, "kiosk/site-1/console/someone-else/status")
            assert other.is_failure == (user != "kiosk"), user  # the appliance's own account writes kiosk/#
        finally:
            client.disconnect()
            client.loop_stop()
