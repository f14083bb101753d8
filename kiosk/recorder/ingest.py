"""The recorder's MQTT side: a persistent MQTT v5 session whose events land in the store exactly once.

- Session: a fixed client id (`[recorder] client_id`), clean start off and a session expiry of
  `[recorder] session_expiry_hours` (≥ 72 h: a weekend), so the broker queues the QoS 1 events published while
  the recorder is stopped and delivers them when it is back (MQTT v5 §3.1.2.4, §3.1.2.11.2).
- At least once in, exactly once stored: messages are acknowledged by hand (paho `manual_ack`), and only after
  the transaction holding them committed; anything not acknowledged is redelivered by the broker, and the
  store skips an event id it already holds. Malformed messages are acknowledged and counted, never stored.
- Gaps: a broker acknowledges an event before it saves it to disk, so a broker crash while the recorder is
  away can lose the newest queued events (docs/history.md). Each kiosk numbers its events (`seq`) and keeps
  its last acknowledged ones in memory; when an event arrives more than one past the highest stored for its
  kiosk, or a kiosk's online status says the broker acknowledged more (`sent_seq`), the recorder sends that
  kiosk `resend_events` (after the highest `seq` it holds) and stores what comes back like any event.
  At most one request per kiosk is open at a time (`RESEND_TIMEOUT`); gaps of dropped events simply get
  nothing back. The account needs write access to `{prefix}/+/+/cmd` (the facility ACL's `console`).
- Threads: paho's network thread only decodes and queues; one writer thread owns the store writes, in batches
  (up to `BATCH` messages a transaction), acknowledges, asks kiosks for gaps, and prunes once a day
  (`[recorder] retention_days`; heartbeat rows after `heartbeat_retention_days`, their presence spans stay).
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
from kiosk.broker import new_client, publish_command
from kiosk.config import MqttSection
from kiosk.recorder.store import Store
from kiosk.reports import OUTCOMES

log = logging.getLogger(__name__)

BATCH = 1000  # messages per transaction at most
MAX_DATA_CHARS = 4096  # an event's `data` as JSON; kiosk events are a few hundred bytes
PRUNE_EVERY_SECONDS = 86_400.0
RESEND_TIMEOUT = 15.0  # seconds a kiosk has to answer resend_events before it may be asked again
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


def _sent_seq(payload: bytes) -> int | None:
    """`details.sent_seq` of an online status payload, None for anything else (offline, cleared, malformed)."""
    try:
        status = events.load_payload(payload)
    except events.PayloadError:
        return None
    details = status.get("details") if isinstance(status, dict) and status.get("state") == "online" else None
    sent = details.get("sent_seq") if isinstance(details, dict) else None
    return sent if isinstance(sent, int) and not isinstance(sent, bool) and sent >= 0 else None


def _resent(prefix: str, site: str, payload: bytes, received_ms: int, generation: int, mid: int) -> _Resent | _Item:
    """A resend_events response on `{prefix}/{site}/reply/to/<recorder>`: its well-formed event rows of that
    site (each checked like a published event, `record_of`); anything else is a malformed message."""
    try:
        response = events.load_payload(payload)
    except events.PayloadError:
        return _Item(generation, mid, None)
    if not isinstance(response, dict) or not isinstance(response.get("id"), str) \
            or not isinstance(response.get("events"), list):
        return _Item(generation, mid, None)
    records = []
    for event in response["events"]:
        if isinstance(event, dict) and all(isinstance(event.get(k), str) for k in ("kiosk", "kind")):
            topic = events.Topics(prefix, site, event["kiosk"]).event(event["kind"])
            record = record_of(prefix, topic, json.dumps(event).encode(), received_ms)
            if record is not None:
                records.append(record)
    return _Resent(generation, mid, response["id"], records, response.get("more") is True)


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
    resent: int = 0  # events kiosks sent again on request (resend_events), stored or absorbed


@dataclass(frozen=True)
class _Item:
    """An `event/<kind>` message: its store row, or None when malformed."""
    generation: int  # the connection it came on: an ack is only valid on that connection
    mid: int  # 0 for QoS 0
    record: dict[str, Any] | None


@dataclass(frozen=True)
class _Tail:
    """A kiosk's online status: the broker acknowledged its events up to `sent_seq` (None: not said)."""
    generation: int
    mid: int
    site: str
    kiosk: str
    sent_seq: int | None


@dataclass(frozen=True)
class _Resent:
    """A response on the recorder's reply topic: the events a kiosk sent again (rows not yet checked
    against the request, which the writer thread holds)."""
    generation: int
    mid: int
    command_id: str
    records: list[dict[str, Any]]
    more: bool


_Queued = _Item | _Tail | _Resent


class Recorder:
    """Subscribes to the events of `sites` ("+" = every site) and writes them to `store`."""

    def __init__(self, mqtt_config: MqttSection, store: Store, *, sites: list[str], client_id: str,
                 session_expiry_hours: float, retention_days: int, heartbeat_retention_days: int = 8,
                 clock: Callable[[], float] = time.time):
        """Bad broker settings raise kiosk.config.ConfigError here."""
        self._config, self._store, self._sites = mqtt_config, store, sites
        self._expiry = round(session_expiry_hours * 3600)
        self._retention_ms = retention_days * 86_400_000
        self._heartbeat_retention_ms = min(heartbeat_retention_days, retention_days) * 86_400_000
        self._clock = clock
        self._client_id = client_id
        self._client, self._address = new_client(mqtt_config, client_id)
        self._client.manual_ack_set(True)
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._queue: queue.SimpleQueue[_Queued | None] = queue.SimpleQueue()
        self._generation = 0
        self._connected = False
        self._stored = self._duplicates = self._rejected = 0
        self._last_error: str | None = None
        self._writer = threading.Thread(target=self._write_loop, name="recorder-writer", daemon=True)
        self._next_prune = 0.0
        # owned by the writer thread: the highest seq stored per (site, kiosk), open resend_events requests
        self._high: dict[tuple[str, str], int] = {}
        self._asked: dict[str, tuple[str, str, float]] = {}  # command id -> site, kiosk, deadline (monotonic)
        self._resent = 0

    @property
    def filters(self) -> list[str]:
        return [events.subscription(self._config.prefix, site, what="event/#") for site in self._sites]

    def _subscriptions(self) -> list[tuple[str, int]]:
        """Events (QoS 1, queued in the session), the kiosks' retained status (QoS 0: read again on every
        subscribe, never queued) and the responses to resend_events (QoS 1)."""
        prefix = self._config.prefix
        return ([(f, 1) for f in self.filters]
                + [(events.subscription(prefix, site, what="status"), 0) for site in self._sites]
                + [(events.reply_topic(prefix, site, self._client_id), 1) for site in self._sites])

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
                             self._queue.qsize(), self._last_error, self._resent)

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
        client.subscribe(self._subscriptions())
        log.info("recorder connected to %s:%d; recording %s", self._address.host, self._address.port,
                 ", ".join(self.filters))

    def _on_disconnect(self, _client: Any, _userdata: Any, _flags: Any, reason_code: Any, _props: Any) -> None:
        self._connected = False
        log.warning("recorder lost the broker: %s", reason_code)

    def _on_message(self, _client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        mid = message.mid if message.qos else 0
        item: _Queued
        try:
            item = self._decode(message, mid)
        except Exception:  # a bug in decoding must never kill the network thread
            log.exception("recorder could not decode a message on %s", message.topic)
            item = _Item(self._generation, mid, None)
        self._queue.put(item)

    def _decode(self, message: mqtt.MQTTMessage, mid: int) -> _Queued:
        prefix, now_ms = self._config.prefix, round(self._clock() * 1000)
        parsed = events.parse_topic(prefix, message.topic)
        if parsed is not None and parsed[2] == "status":
            return _Tail(self._generation, mid, parsed[0], parsed[1], _sent_seq(message.payload))
        levels = message.topic.split("/")
        if len(levels) == 5 and levels[4] == self._client_id \
                and events.reply_topic(prefix, levels[1], self._client_id) == message.topic:
            return _resent(prefix, levels[1], message.payload, now_ms, self._generation, mid)
        return _Item(self._generation, mid, record_of(prefix, message.topic, message.payload, now_ms))

    # --- the writer thread ----------------------------------------------------------------------------------

    def _write_loop(self) -> None:
        delay = RETRY_MIN
        batch: list[_Queued] = []
        # rows to store and kiosks to ask, from batch[:prepared] (a batch waiting for a retry grows meanwhile)
        records: list[dict[str, Any]] = []
        asks: dict[tuple[str, str], int] = {}
        prepared = 0
        stopping = False
        while not (stopping and not batch):
            if not batch and not stopping:
                try:
                    item = self._queue.get(timeout=1.0)
                except queue.Empty:
                    self._maybe_prune()
                    self._expire_requests()
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
            if prepared < len(batch):
                self._prepare(batch[prepared:], records, asks)
                prepared = len(batch)
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
            self._rejected += sum(isinstance(item, _Item) and item.record is None for item in batch)
            for item in batch:
                if item.mid and item.generation == self._generation:
                    self._client.ack(item.mid, 1)
            self._expire_requests()
            for (site, kiosk), after in asks.items():
                self._ask(site, kiosk, after)
            batch, records, asks, prepared = [], [], {}, 0
            self._maybe_prune()

    # --- gaps: resend_events ---------------------------------------------------------------------------------

    def _prepare(self, items: list[_Queued], records: list[dict[str, Any]],
                 asks: dict[tuple[str, str], int]) -> None:
        """Add the rows to store from `items` to `records`, and the kiosks to ask for events again to `asks`:
        (site, kiosk) -> the seq to ask after. A row more than one past the highest seq held for its kiosk, or a
        status whose `sent_seq` is above it, opens a gap; a response continues (`more`) after its last row.
        Each item is prepared once (this takes answered requests off the open ones)."""

        def follow(record: dict[str, Any], gaps: bool) -> None:
            key = (record["site"], record["kiosk"])
            high = self._high_of(key)
            if high is None:
                return
            if gaps and record["seq"] > high + 1:
                asks[key] = min(asks.get(key, high), high)
            self._high[key] = max(high, record["seq"])

        for item in items:
            if isinstance(item, _Item) and item.record is not None:
                follow(item.record, gaps=True)
                records.append(item.record)
            elif isinstance(item, _Tail) and item.sent_seq is not None:
                key = (item.site, item.kiosk)
                high = self._high_of(key)
                if high is not None and item.sent_seq > high:
                    asks[key] = min(asks.get(key, high), high)
            elif isinstance(item, _Resent):
                request = self._asked.pop(item.command_id, None)
                if request is None:
                    continue  # not ours, or answered after its timeout: a new request covers it
                site, kiosk, _deadline = request
                mine = [r for r in item.records if (r["site"], r["kiosk"]) == (site, kiosk)]
                self._resent += len(mine)
                log.info("recorder: kiosk %s/%s sent %d events again", site, kiosk, len(mine))
                for record in mine:
                    follow(record, gaps=False)
                records.extend(mine)
                if item.more and mine:
                    asks[(site, kiosk)] = max(r["seq"] for r in mine)

    def _high_of(self, key: tuple[str, str]) -> int | None:
        """The highest seq held for a kiosk (read from the store the first time), None while the store cannot
        say: no gap is looked for then (its events are stored as always)."""
        if key not in self._high:
            try:
                self._high[key] = self._store.last_seq(*key)
            except SQLAlchemyError as exc:
                log.warning("history store: cannot read kiosk %s/%s's last seq: %s", *key,
                            str(getattr(exc, "orig", exc)).strip()[:200])
                return None
        return self._high[key]

    def _ask(self, site: str, kiosk: str, after_seq: int) -> None:
        """Publish resend_events to one kiosk, unless a request to it is still open."""
        if not self._connected or (site, kiosk) in {(s, k) for s, k, _deadline in self._asked.values()}:
            return
        command = events.command_payload(events.RESEND_EVENTS, {"after_seq": after_seq}, kiosk=kiosk)
        self._asked[command["id"]] = (site, kiosk, time.monotonic() + RESEND_TIMEOUT)
        publish_command(self._client, self._config.prefix, site, kiosk, command, self._client_id)
        log.info("recorder: asked kiosk %s/%s for its events after seq %d", site, kiosk, after_seq)

    def _expire_requests(self) -> None:
        now = time.monotonic()
        for command_id, (site, kiosk, deadline) in list(self._asked.items()):
            if deadline <= now:
                del self._asked[command_id]
                log.warning("recorder: kiosk %s/%s did not answer resend_events within %.0f s (offline, or the "
                            "recorder's broker account may not publish to %s)", site, kiosk, RESEND_TIMEOUT,
                            events.Topics(self._config.prefix, site, kiosk).cmd)

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
