"""Broker helpers for every MQTT client of the project (the kiosk's EventLink, the staff console, `kiosk watch`):
the broker URL, the password file, TLS, and a paho MQTT v5 client built from an `[mqtt]` config section.

Credentials never appear in the URL; a bad setting raises kiosk.config.ConfigError naming the setting.
"""

from __future__ import annotations

import ssl
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

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
