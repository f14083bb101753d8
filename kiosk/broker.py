"""Broker helpers for every MQTT client of the project (the kiosk's EventLink, the staff console, `kiosk watch`,
the recorder): the broker URL, the password file, TLS, a paho MQTT v5 client built from an `[mqtt]` config
section, and publishing a command the way the contract asks (docs/asyncapi.yaml, Command).

Credentials never appear in the URL; a bad setting raises kiosk.config.ConfigError naming the setting.
"""

from __future__ import annotations

import contextlib
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from kiosk import events
from kiosk.config import ConfigError, MqttSection


@dataclass(frozen=True)
class BrokerAddress:
    """Where the broker listens; `tls` for mqtts://."""

    tls: bool
    host: str
    port: int


def parse_broker_url(url: str) -> BrokerAddress:
    """mqtt://HOST[:PORT] or mqtts://HOST[:PORT]; credentials never in the URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ConfigError(f"[mqtt.url] {url!r}: expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")
    if parts.username or parts.password:
        raise ConfigError("[mqtt.url] must not hold a user name or password: use [mqtt] username and "
                          "password_file")
    if parts.path not in ("", "/") or parts.query:
        raise ConfigError(f"[mqtt.url] {url!r}: no path or query allowed")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"[mqtt.url] {url!r}: bad port") from None
    tls = parts.scheme == "mqtts"
    return BrokerAddress(tls, parts.hostname, port or (8883 if tls else 1883))


def read_password(path: Path) -> str:
    """The broker password from a file only its owner can read (first line, whitespace trimmed)."""
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXO | stat.S_IWGRP):
            raise ConfigError(f"[mqtt.password_file] {path}: readable or writable by others (mode "
                              f"{stat.S_IMODE(mode):04o}); run: chmod 600 {path}")
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"[mqtt.password_file] {path}: cannot read: {exc}") from None
    if not lines or not lines[0].strip():
        raise ConfigError(f"[mqtt.password_file] {path}: empty")
    return lines[0].strip()


def tls_context(section: MqttSection) -> ssl.SSLContext:
    """Server verification against ca_file (or the system CAs); a client certificate if configured."""
    try:
        context = ssl.create_default_context(cafile=str(section.ca_file) if section.ca_file else None)
        if section.cert_file:
            context.load_cert_chain(str(section.cert_file), str(section.key_file) if section.key_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"[mqtt] TLS files (ca_file {section.ca_file}, cert_file {section.cert_file}, "
                          f"key_file {section.key_file}): {exc}") from None
    return context


def new_client(section: MqttSection, client_id: str,
               auto_reconnect: bool = True) -> tuple[mqtt.Client, BrokerAddress]:
    """A paho MQTT v5 client with the credentials and TLS of `section` (raises ConfigError), not yet connected."""
    address = parse_broker_url(section.url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTProtocolVersion.MQTTv5, reconnect_on_failure=auto_reconnect)
    if section.username:
        client.username_pw_set(section.username,
                               read_password(section.password_file) if section.password_file else None)
    if address.tls:
        client.tls_set_context(tls_context(section))
    return client, address


@dataclass(frozen=True)
class Presence:
    """A console's (or `kiosk watch`'s) retained presence on `events.presence_topic`: kiosks count the consoles
    of their site that someone can hear (`listeners` ≥ 1). `arm` before connecting (the Last Will says
    "offline"), `announce` on every connect and whenever the number of listeners changes, `withdraw` on a clean
    stop. An "offline" presence expires after events.PRESENCE_EXPIRY_SECONDS (MQTT v5 message expiry), so
    consoles that came and went leave nothing behind."""

    topic: str
    console: str
    sites: tuple[str, ...]
    role: str

    @classmethod
    def of(cls, section: MqttSection, sites: list[str], console: str, role: str, under: str = "") -> Presence:
        """The presence of `console` (its MQTT client id: the shipped ACLs let a client write only the presence
        topic of its own client id) watching `sites` (events.ANY_SITE: all of them), announced under site
        `under` (default: the first of `sites`)."""
        return cls(events.presence_topic(section.prefix, under or sites[0], console), console, tuple(sites), role)

    def payload(self, online: bool, listeners: int = 0) -> bytes:
        return events.encode(events.presence_payload(online, console=self.console, sites=list(self.sites),
                                                     role=self.role, listeners=listeners))

    def arm(self, client: mqtt.Client) -> None:
        client.will_set(self.topic, self.payload(False), qos=1, retain=True,
                        properties=_expiring(PacketTypes.WILLMESSAGE))

    def announce(self, client: mqtt.Client, listeners: int) -> None:
        """Say "online" with `listeners` people who can hear a call now."""
        client.publish(self.topic, self.payload(True, listeners), qos=1, retain=True)

    def withdraw(self, client: mqtt.Client, timeout: float = 2.0) -> None:
        """Say "offline" and wait (at most `timeout` s) until it left; then the caller disconnects."""
        info = client.publish(self.topic, self.payload(False), qos=1, retain=True,
                              properties=_expiring(PacketTypes.PUBLISH))
        if info.rc == mqtt.MQTT_ERR_SUCCESS:
            with contextlib.suppress(RuntimeError, ValueError):  # not connected any more: the Last Will says it
                info.wait_for_publish(timeout)


def publish_command(client: mqtt.Client, prefix: str, site: str, kiosk: str, command: dict,
                    reply_to: str) -> mqtt.MQTTMessageInfo:
    """Publish `command` (events.command_payload) on the kiosk's `cmd` topic at QoS 1, with the MQTT v5 response
    topic `{prefix}/{site}/reply/to/<reply_to>` (events.reply_topic) and the command id as correlation data."""
    properties = Properties(PacketTypes.PUBLISH)
    properties.ResponseTopic = events.reply_topic(prefix, site, reply_to)
    properties.CorrelationData = command["id"].encode()
    return client.publish(events.Topics(prefix, site, kiosk).cmd, events.encode(command), qos=1,
                          properties=properties)


def _expiring(packet_type: int) -> Properties:
    properties = Properties(packet_type)
    properties.MessageExpiryInterval = events.PRESENCE_EXPIRY_SECONDS
    return properties
