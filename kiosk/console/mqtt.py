"""The console's MQTT adapter (paho, MQTT v5): subscribes to the kiosks of its sites and sends commands.

The paho network thread never touches console state: it decodes each message and posts it to the Hub.
Two connections: the kiosks' retained `status` and `call` topics come in on one of their own, so no flood of
events (thousands queued at the broker, decoded one by one) can hold a call back; events, command responses,
commands and the presence use the other.
Broker credentials stay here, on the server; browsers never see them.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt

from kiosk import events
from kiosk.broker import Presence, new_client, publish_command
from kiosk.config import MqttSection
from kiosk.console.hub import LinkState
from kiosk.console.messages import Decoded, decode
from kiosk.ratelog import RateLimitedLog

log = logging.getLogger(__name__)
_dropped = RateLimitedLog(log)


class ConsoleLink:
    """One broker connection for the console: kiosk topics of `sites` in, commands out."""

    def __init__(self, mqtt_config: MqttSection, sites: list[str], post: Callable[[Decoded | LinkState], None]):
        """Bad broker settings (URL, password file, TLS files) raise kiosk.config.ConfigError here."""
        self._config = mqtt_config
        self._sites = sites
        self._post = post
        self.client_name = f"console-{secrets.token_hex(4)}"
        self._client, self._address = new_client(mqtt_config, self.client_name)
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._calls, _ = new_client(mqtt_config, f"{self.client_name}-calls")  # status + call: never behind events
        self._calls.reconnect_delay_set(min_delay=1, max_delay=10)
        self._calls.on_connect = self._on_calls_connect
        self._calls.on_message = self._on_message
        self._presence = Presence.of(mqtt_config, sites, self.client_name, "console")
        self._presence.arm(self._client)  # killed or cut off: the broker says "offline" for it
        self._listeners = 0  # staff pages that can hear a call (kiosk.console.listeners)
        self._announcing = threading.Lock()  # the latest count is the last one published
        self._stopping = False

    def reply_topic(self, site: str) -> str:
        return events.reply_topic(self._config.prefix, site, self.client_name)

    def start(self) -> None:
        """Connect in the background; paho retries for as long as the console runs."""
        for client in (self._calls, self._client):
            client.connect_async(self._address.host, self._address.port,
                                 keepalive=self._config.console_keepalive_seconds)
            client.loop_start()

    def stop(self) -> None:
        """Say "offline" (retained presence), then disconnect."""
        with self._announcing:  # nothing says "online" after this (a page closing while the server stops)
            self._stopping = True
        self._presence.withdraw(self._client)
        for client in (self._client, self._calls):
            client.disconnect()
            client.loop_stop()

    def set_listeners(self, count: int) -> None:
        """The presence says how many staff pages can hear a call now (kiosks count consoles with one or more)."""
        with self._announcing:
            self._listeners = count
            if not self._stopping:
                self._presence.announce(self._client, count)  # not connected: the next connect announces it

    def publish_command(self, site: str, kiosk: str, payload: dict) -> bool:
        """Publish a command with a v5 response topic and the command id as correlation data."""
        info = publish_command(self._client, self._config.prefix, site, kiosk, payload, self.client_name)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("broker refused the console: %s", reason_code)
            return
        prefix = self._config.prefix
        topics = []
        for site in self._sites:
            topics += [events.subscription(prefix, site, what="event/#"), self.reply_topic(site)]
        client.subscribe([(t, 1) for t in topics])
        with self._announcing:  # kiosks of these sites count this console while someone can hear it
            if not self._stopping:
                self._presence.announce(client, self._listeners)
        log.info("console connected to the broker; watching sites %s", ", ".join(self._sites))
        self._post(LinkState(True))

    def _on_calls_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("broker refused the console's status/call connection: %s", reason_code)
            return
        prefix = self._config.prefix
        client.subscribe([(events.subscription(prefix, site, what=what), 1)
                          for site in self._sites for what in ("status", "call")])

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        log.warning("console lost the broker: %s", reason_code)
        self._post(LinkState(False))

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        props = getattr(message, "properties", None)
        correlation = getattr(props, "CorrelationData", None)
        site_replies = {self.reply_topic(site) for site in self._sites}
        reply_topic = message.topic if message.topic in site_replies else ""
        try:
            decoded = decode(self._config.prefix, message.topic, message.payload, correlation, reply_topic)
        except Exception as exc:  # a bug in decoding must never kill the network thread (nor flood the log)
            _dropped.error("decode", "could not decode a message on %s: %s: %s", message.topic[:100],
                           type(exc).__name__, str(exc)[:200])
            return
        if decoded is None:
            log.debug("ignored a malformed or foreign message on %s", message.topic)
            return
        self._post(decoded)

