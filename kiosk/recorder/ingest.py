"""The recorder's MQTT side: a persistent MQTT v5 session whose events land in the store exactly once.

- Session: a fixed client id (`[recorder] client_id`), clean start off and a session expiry of
  `[recorder] session_expiry_hours` (≥ 72 h: a weekend), so the broker queues the QoS 1 events published while
  the recorder is stopped and delivers them when it is back (MQTT v5 §3.1.2.4, §3.1.2.11.2).
- At least once in, exactly once stored: messages are acknowledged by hand (paho `manual_ack`), and only after
  the transaction holding them committed; anything not acknowledged is redelivered by the broker, and the
  store skips an event id it already holds. Malformed messages are acknowledged and counted, never stored.
- Threads: paho's network thread only decodes and queues; one writer thread owns the store writes, in batches
  (up to `BATCH` messages a transaction), acknowledges, and prunes once a day (`[recorder] retention_days`;
  heartbeat rows after `heartbeat_retention_days`, their presence spans stay for offline time).
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from kiosk import events
from kiosk.config import MqttSection
from kiosk.recorder.store import Store
from kiosk.reports import OUTCOMES

log = logging.getLogger(__name__)

BATCH = 1000  # messages per transaction at most
MAX_DATA_CHARS = 4096  # an event's `data` as JSON; kiosk events are a few hundred bytes
PRUNE_EVERY_SECONDS = 86_400.0
RETRY_MIN, RETRY_MAX = 0.5, 30.0  # seconds between attempts when the database refuses a write


class _Envelope(BaseModel):
    """The fields of the contract's `Envelope` the store keeps (docs/asyncapi.yaml); extra fields ignored."""

    model_config = ConfigDict(extra="ignore", strict=True)
    id: str = Field(pattern=events.ID_PATTERN)
    # any well-formed kind, known or not: a kiosk upgraded before its recorder must not lose history (reports
    # count only the kinds they know)
    kind: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    kiosk: str = Field(pattern=events.ID_PATTERN)
    site: str = Field(pattern=events.ID_PATTERN)
    seq: int = Field(ge=1)
    time: str = Field(max_length=40)
    catalogue_version: str = Field(default="", max_length=64)
    data: dict[str, Any]


def record_of(prefix: str, topic: str, payload: bytes, received_ms: int) -> dict[str, Any] | None:
    """The store row of one `event/<kind>` message, or None if it is not a well-formed event of that topic
    (wrong topic, not JSON, missing fields, a kind or site/kiosk that disagrees with the topic, a time
    without a zone). A kind this version does not know is stored like any other (forward compatible)."""
    parsed = events.parse_topic(prefix, topic)
    if parsed is None or not parsed[2].startswith("event/"):
        return None
    site, kiosk, rest = parsed
    try:
        envelope = _Envelope.model_validate_json(payload)
        moment = datetime.fromisoformat(envelope.time)
    except (ValidationError, ValueError):
        return None
    if (envelope.site, envelope.kiosk, f"event/{envelope.kind}") != (site, kiosk, rest) \
            or moment.tzinfo is None:
        return None
    data = envelope.data
    encoded = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    if len(encoded) > MAX_DATA_CHARS:
        return None
    return {
        "event_id": envelope.id, "site": site, "kiosk": kiosk, "seq": envelope.seq, "kind": envelope.kind,
        "ts_ms": round(moment.timestamp() * 1000), "time": envelope.time, "received_ms": received_ms,
        "code": _word(data.get("code"), r"^[0-9]{3}$"),
        "outcome": data.get("outcome") if data.get("outcome") in OUTCOMES else None,
        "reason": _word(data.get("reason"), events.ID_PATTERN, 32),
        "call_id": _word(data.get("call_id"), events.ID_PATTERN),
        "available": data.get("available") if isinstance(data.get("available"), bool) else None,
        "catalogue_version": envelope.catalogue_version, "data": encoded,
    }


def _word(value: Any, pattern: str, max_length: int = 64) -> str | None:
    return value if isinstance(value, str) and len(value) <= max_length and re.match(pattern, value) else None


@dataclass(frozen=True)
class RecorderStats:
    connected: bool
    stored: int  # new events written since start
    duplicates: int  # redelivered or replayed events absorbed
    rejected: int  # malformed messages acknowledged and dropped
    pending: int  # received, not yet committed
    last_error: str | None


@dataclass(frozen=True)
class _Item:
    generation: int  # the connection it came on: an ack is only valid on that connection
    mid: int
    record: dict[str, Any] | None


class Recorder:
    """Subscribes to the events of `sites` ("+" = every site) and writes them to `store`."""

    def __init__(self, mqtt_config: MqttSection, store: Store, *, sites: list[str], client_id: str,
                 session_expiry_hours: float, retention_days: int, heartbeat_retention_days: int = 8,
                 clock: Callable[[], float] = time.time):
        """Bad broker settings raise kiosk.config.ConfigError here."""
        from kiosk.broker import new_client

        self._config, self._store, self._sites = mqtt_config, store, sites
        self._expiry = round(session_expiry_hours * 3600)
        self._retention_ms = retention_days * 86_400_000
        self._heartbeat_retention_ms = min(heartbeat_retention_days, retention_days) * 86_400_000
        self._clock = clock
        self._client, self._address = new_client(mqtt_config, client_id)
        self._client.manual_ack_set(True)
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._generation = 0
        self._connected = False
        self._stored = self._duplicates = self._rejected = 0
        self._last_error: str | None = None
        self._writer = threading.Thread(target=self._write_loop, name="recorder-writer", daemon=True)
        self._next_prune = 0.0

    @property
    def filters(self) -> list[str]:
        return [events.subscription(self._config.prefix, site, what="event/#") for site in self._sites]

    def start(self) -> None:
        """Connect in the background (paho retries as long as the recorder runs) and start the writer."""
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self._expiry
        self._writer.start()
        self._client.connect_async(self._address.host, self._address.port, keepalive=30, clean_start=False,
                                   properties=properties)
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect (the broker keeps the session and queues for it), then write what was received."""
        self._client.disconnect()
        self._client.loop_stop()
        self._queue.put(None)
        self._writer.join(30)

    def stats(self) -> RecorderStats:
        return RecorderStats(self._connected, self._stored, self._duplicates, self._rejected,
                             self._queue.qsize(), self._last_error)

    # --- paho's network thread ----------------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _userdata: Any, flags: Any, reason_code: Any, _props: Any) -> None:
        if reason_code.is_failure:
            self._last_error = f"broker refused the recorder: {reason_code}"
            log.warning("%s", self._last_error)
            return
        self._generation += 1
        self._connected = True
        if not flags.session_present:
            log.info("recorder: new MQTT session on the broker (events from before it was created went to "
                     "subscribers that existed then)")
        client.subscribe([(f, 1) for f in self.filters])
        log.info("recorder connected to %s:%d; recording %s", self._address.host, self._address.port,
                 ", ".join(self.filters))

    def _on_disconnect(self, _client: Any, _userdata: Any, _flags: Any, reason_code: Any, _props: Any) -> None:
        self._connected = False
        log.warning("recorder lost the broker: %s", reason_code)

    def _on_message(self, _client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            record = record_of(self._config.prefix, message.topic, message.payload, round(self._clock() * 1000))
        except Exception:  # a bug in decoding must never kill the network thread
            log.exception("recorder could not decode a message on %s", message.topic)
            record = None
        self._queue.put(_Item(self._generation, message.mid if message.qos else 0, record))

    # --- the writer thread ----------------------------------------------------------------------------------

    def _write_loop(self) -> None:
        delay = RETRY_MIN
        batch: list[_Item] = []
        stopping = False
        while not (stopping and not batch):
            if not batch and not stopping:
                try:
                    item = self._queue.get(timeout=1.0)
                except queue.Empty:
                    self._maybe_prune()
                    continue
                if item is None:
                    stopping = True
                else:
                    batch.append(item)
            while len(batch) < BATCH and not stopping:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                else:
                    batch.append(item)
            if not batch:
                continue
            records = [item.record for item in batch if item.record is not None]
            try:
                new = self._store.insert(records, heartbeat_rows_after_ms=round(self._clock() * 1000)
                                         - self._heartbeat_retention_ms)
            except SQLAlchemyError as exc:
                self._last_error = f"history store write failed: {str(getattr(exc, 'orig', exc)).strip()[:200]}"
                log.warning("%s; retrying in %.1f s (nothing is acknowledged until stored)", self._last_error, delay)
                if stopping:
                    return  # unacknowledged: the broker redelivers them to the session next time
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            delay = RETRY_MIN
            self._last_error = None
            self._stored += new
            self._duplicates += len(records) - new
            self._rejected += len(batch) - len(records)
            for item in batch:
                if item.mid and item.generation == self._generation:
                    self._client.ack(item.mid, 1)
            batch = []
            self._maybe_prune()

    def _maybe_prune(self) -> None:
        now = self._clock()
        if now < self._next_prune:
            return
        self._next_prune = now + PRUNE_EVERY_SECONDS
        try:
            removed = self._store.prune(round(now * 1000) - self._retention_ms,
                                        round(now * 1000) - self._heartbeat_retention_ms)
        except SQLAlchemyError as exc:
            log.warning("history store: pruning failed: %s", str(getattr(exc, "orig", exc)).strip()[:200])
            return
        if removed:
            log.info("history store: pruned %d events older than the retention period", removed)
