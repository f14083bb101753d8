"""The shipped broker samples, adapted to loopback ports: TLS with a test CA and client certificates,
password accounts and the facility ACL (a kiosk writes only its own topics, the console commands, dashboards
only read), and the bridge to a central broker."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from kiosk import events
from kiosk.config import ConfigError, config_from_dict
from kiosk.link import EventLink
from kiosk.messages import Answer, Command, LinkChanged
from tests.test_link import Posted, wait_until

pytestmark = pytest.mark.mqtt

SAMPLES = Path(__file__).resolve().parent.parent / "systemd" / "mosquitto" / "samples"
PASSWORDS = {"k1": "kiosk-secret", "console": "console-secret", "dashboard": "dash-secret"}


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory: Path, name: str) -> None:
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=directory)


def make_cert(directory: Path, ca: str, name: str, san: str | None = None) -> None:
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", cwd=directory)
    extra = []
    if san:
        (directory / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        extra = ["-extfile", f"{name}.ext"]
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-days", "2", "-out", f"{name}.crt", *extra, cwd=directory)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (Debian package openssl)")
    directory = tmp_path_factory.mktemp("pki")
    make_ca(directory, "ca")
    make_cert(directory, "ca", "server", san="IP:127.0.0.1")
    make_cert(directory, "ca", "client")
    make_ca(directory, "other-ca")
    return directory


@pytest.fixture
def facility(mosquitto_factory, pki, tmp_path):
    """samples/facility.conf + facility.acl with loopback ports, the test PKI and client certs required."""
    conf = (SAMPLES / "facility.conf").read_text()
    conf = conf.replace("/etc/mosquitto/certs/", "{dir}/").replace("/etc/mosquitto/", "{dir}/")
    conf = conf.replace("listener 1883 127.0.0.1", "listener {port2} 127.0.0.1")
    conf = re.sub(r"^listener 8883$", "listener {port} 127.0.0.1", conf, flags=re.M)
    conf = conf.replace("require_certificate false", "require_certificate true")
    conf += "\nlog_dest stderr\npersistence_location {dir}/\n"
    acl = (SAMPLES / "facility.acl").read_text().replace("user reception-1", "user k1")
    passwd = tmp_path / "passwd"
    for user, password in PASSWORDS.items():
        subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if user == "k1" else []), str(passwd), user, password],
                       check=True, capture_output=True)
    files = {"facility.acl": acl, "facility.passwd": passwd.read_bytes()}
    for name in ("ca.crt", "server.crt", "server.key"):
        files[name] = (pki / name).read_bytes()
    return mosquitto_factory(conf, files)


def kiosk_config(tmp_path, broker, pki, **mqtt_options):
    secret = tmp_path / "mqtt-password"
    secret.write_text(PASSWORDS["k1"] + "\n")
    secret.chmod(0o600)
    options = {"url": f"mqtts://127.0.0.1:{broker.port}", "username": "k1", "password_file": str(secret),
               "ca_file": str(pki / "ca.crt"), "cert_file": str(pki / "client.crt"),
               "key_file": str(pki / "client.key"), **mqtt_options}
    return config_from_dict({"kiosk": {"id": "k1", "site": "s1", "state_dir": str(tmp_path / "state")},
                             "mqtt": options})


def local_client(broker, user):
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTProtocolVersion.MQTTv5)
    client.username_pw_set(user, PASSWORDS[user])
    acks = {}
    client.on_publish = lambda _c, _u, mid, reason, _p: acks.__setitem__(mid, reason)
    client.connect(broker.host, broker.port2)
    client.loop_start()
    return client, acks


def publish_and_ack(client, acks, topic, payload, properties=None):
    info = client.publish(topic, payload, qos=1, properties=properties)
    assert wait_until(lambda: info.mid in acks)
    return acks[info.mid]


def test_tls_passwords_and_facility_acl(facility, pki, tmp_path, mqtt_listener):
    console_view = mqtt_listener(facility, "kiosk/#", username="console", password=PASSWORDS["console"],
                                 port=facility.port2)
    posted = Posted()
    link = EventLink(kiosk_config(tmp_path, facility, pki), "cat-1", posted)
    link.start()
    try:
        assert posted.next(LinkChanged, timeout=10).connected
        link.emit("precheck", {"outcome": "mynumber_card", "code": None, "hints": []})
        console_view.wait(lambda ms: any(m.topic == "kiosk/s1/k1/event/precheck" for m in ms))
        assert link.stats().refused == 0

        # the kiosk account cannot write another kiosk's topics
        kiosk_raw, kiosk_acks = local_client(facility, "k1")
        assert publish_and_ack(kiosk_raw, kiosk_acks, "kiosk/s1/k2/event/precheck", b"{}").value == 0x87
        kiosk_raw.disconnect()

        # a dashboard cannot command; the console can, and reads the response
        properties = Properties(PacketTypes.PUBLISH)
        properties.ResponseTopic = events.reply_topic("kiosk", "s1", "console")
        properties.CorrelationData = b"c"
        dashboard, dashboard_acks = local_client(facility, "dashboard")
        forged = events.encode(events.command_payload("outage_enter", {}, kiosk="k1"))
        assert publish_and_ack(dashboard, dashboard_acks, "kiosk/s1/k1/cmd", forged, properties).value == 0x87
        dashboard.disconnect()
        console, console_acks = local_client(facility, "console")
        command = events.command_payload("lamp_test", {}, kiosk="k1")
        assert not publish_and_ack(console, console_acks, "kiosk/s1/k1/cmd", events.encode(command),
                                   properties).is_failure
        received = posted.next(Command)
        assert received.id == command["id"]  # the forged one never arrived: this is the first command
        received.reply(Answer(True, "lamp_test_started", "lamp tested"))
        console_view.wait(lambda ms: any(m.topic == "kiosk/s1/reply/to/console" for m in ms))
        console.disconnect()
    finally:
        link.stop()


def test_tls_refuses_a_broker_signed_by_another_ca(facility, pki, tmp_path):
    link = EventLink(kiosk_config(tmp_path, facility, pki, ca_file=str(pki / "other-ca.crt")), "c", Posted())
    link.start()
    try:
        assert wait_until(lambda: link.stats().last_error)
        assert "CERTIFICATE_VERIFY_FAILED" in link.stats().last_error
        assert not link.stats().connected
    finally:
        link.stop()


def test_missing_client_certificate_or_bad_password_is_refused(facility, pki, tmp_path):
    link = EventLink(kiosk_config(tmp_path, facility, pki, cert_file=None, key_file=None), "c", Posted())
    link.start()
    try:
        assert wait_until(lambda: link.stats().last_error)
        assert not link.stats().connected
    finally:
        link.stop()
    config = kiosk_config(tmp_path, facility, pki)
    config.mqtt.password_file.write_text("wrong\n")
    link = EventLink(config, "c", Posted())
    link.start()
    try:
        assert wait_until(lambda: "refused the connection" in (link.stats().last_error or ""))
        assert "Not authorized" in link.stats().last_error or "Bad user name" in link.stats().last_error
    finally:
        link.stop()


def test_unsafe_password_file_and_bad_tls_files_refused_at_start(tmp_path, pki, mosquitto):
    config = kiosk_config(tmp_path, mosquitto, pki)
    config.mqtt.password_file.chmod(0o644)
    with pytest.raises(ConfigError, match="readable or writable by others"):
        EventLink(config, "c", Posted())
    config.mqtt.password_file.chmod(0o600)
    config.mqtt.ca_file = tmp_path / "nope.crt"
    with pytest.raises(ConfigError, match="TLS files"):
        EventLink(config, "c", Posted())


def test_bridge_sample_forwards_to_central_and_commands_come_back(mosquitto_factory, mqtt_listener, tmp_path):
    central = mosquitto_factory()
    bridge = (SAMPLES / "bridge.conf").read_text()
    bridge = bridge.replace("central.example.org:8883", f"127.0.0.1:{central.port}").replace("site-1", "s1")
    bridge = re.sub(r"^(remote_username|remote_password|bridge_cafile|bridge_insecure) .*$", "", bridge, flags=re.M)
    facility = mosquitto_factory("listener {port} 127.0.0.1\nallow_anonymous true\nlog_dest stderr\n"
                                 + bridge.replace("{", "{{").replace("}", "}}"))
    central_view = mqtt_listener(central, "kiosk/#")
    posted = Posted()
    link = EventLink(config_from_dict({"kiosk": {"id": "k1", "site": "s1", "state_dir": str(tmp_path / "st")},
                                       "mqtt": {"url": facility.url}}), "cat", posted)
    link.start()
    try:
        posted.next(LinkChanged)
        central_view.wait(lambda ms: any(m.topic == "kiosk/s1/k1/status" for m in ms), timeout=15)
        event_id = link.emit("call", {"call_id": "c1", "reason": "staff_code", "code": "101", "audience": "staff"})
        got = central_view.wait(lambda ms: any(m.topic == "kiosk/s1/k1/event/call" for m in ms))
        assert json.loads(next(m for m in got if m.topic == "kiosk/s1/k1/event/call").payload)["id"] == event_id

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTProtocolVersion.MQTTv5)
        client.connect(central.host, central.port)
        client.loop_start()
        properties = Properties(PacketTypes.PUBLISH)
        properties.ResponseTopic = events.reply_topic("kiosk", "s1", "central-console")
        properties.CorrelationData = b"x"
        command = events.command_payload("resolve", {"call_id": "c1"}, kiosk="k1")
        client.publish("kiosk/s1/k1/cmd", events.encode(command), qos=1, properties=properties).wait_for_publish(5)
        received = posted.next(Command, timeout=10)
        assert received.name == "resolve"
        received.reply(Answer(True, "resolved", "resolved"))
        central_view.wait(lambda ms: any(m.topic == "kiosk/s1/reply/to/central-console" for m in ms))
        client.disconnect()
        client.loop_stop()
    finally:
        link.stop()


@pytest.fixture
def appliance(mosquitto_factory, tmp_path):
    """systemd/mosquitto/kiosk.conf + kiosk.acl as install.sh puts them, on a loopback port; accounts "kiosk"
    (password k-pw) and "homeassistant" (ha-pw)."""
    shipped = SAMPLES.parent
    conf = (shipped / "kiosk.conf").read_text().replace("/etc/mosquitto/", "{dir}/")
    conf = conf.replace("listener 1883 127.0.0.1", "listener {port} 127.0.0.1") + "\nlog_dest stderr\n"
    passwd = tmp_path / "passwd"
    for user, password in (("kiosk", "k-pw"), ("homeassistant", "ha-pw")):
        subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if user == "kiosk" else []), str(passwd), user,
                        password], check=True, capture_output=True)
    return mosquitto_factory(conf, {"kiosk.acl": (shipped / "kiosk.acl").read_text(),
                                    "kiosk.passwd": passwd.read_bytes()})


def test_installed_appliance_broker_config(appliance):
    broker = appliance

    def publish_as(user, password, topic):
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTProtocolVersion.MQTTv5)
        if user:
            client.username_pw_set(user, password)
        acks, connected = {}, []
        client.on_connect = lambda _c, _u, _f, reason, _p: connected.append(reason)
        client.on_publish = lambda _c, _u, mid, reason, _p: acks.__setitem__(mid, reason)
        client.connect(broker.host, broker.port)
        client.loop_start()
        assert wait_until(lambda: connected)
        try:
            if connected[0].is_failure:
                return connected[0]
            return publish_and_ack(client, acks, topic, b"{}")
        finally:
            client.disconnect()
            client.loop_stop()

    assert publish_as(None, None, "kiosk/s1/k1/event/x").is_failure  # anonymous: refused at CONNECT
    assert not publish_as("kiosk", "k-pw", "kiosk/site-1/kiosk-1/event/precheck").is_failure
    assert publish_as("homeassistant", "ha-pw", "kiosk/site-1/kiosk-1/cmd").value == 0x87  # read only
    assert not publish_as("homeassistant", "ha-pw", "homeassistant/status").is_failure
