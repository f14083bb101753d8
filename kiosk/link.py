"""The MQTT adapter: drains the durable outbox, keeps presence and the open call retained, takes commands.

One link thread owns everything here. paho's network thread and the main loop only put messages into its
inbox; the link never touches kiosk state — valid commands are posted into the main loop as `Command`, and
the main loop answers with `command.reply(kiosk.messages.Answer(...))`.

Each connection is a fresh paho client: on connect the whole outbox is replayed in `seq` order (anything not
yet acknowledged, so a lost PUBACK means a duplicate with the same id, never a loss). A row is deleted only
after a PUBACK with a success reason code; a refusal (e.g. 0x87 by the ACL) is counted, logged and kept for
the next connection.

A PUBACK only says the broker has the event; a broker that crashes before saving it to disk loses it
(docs/history.md). So the link keeps the last RESEND_KEEP acknowledged events in memory and answers the
`resend_events` command from them (a recorder that sees a gap in `seq` asks), and its online status carries
`sent_seq`, the highest acknowledged `seq`, so a gap at the end shows too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from kiosk import clock, events, ha_discovery
from kiosk.broker import new_client, parse_broker_url
from kiosk.config import Config, ConfigError
from kiosk.effects import Call
from kiosk.messages import Answer, Command, ConsolesChanged, LinkChanged, Message
from kiosk.outbox import Outbox, OutboxError, OutboxStats, Stored
from kiosk.ratelog import RateLimitedLog

log = logging.getLogger("kiosk.link")

WINDOW = 100  # QoS 1 messages in flight per connection
CALL_EVENT_TTL = 900.0  # seconds a `call` event may wait in a subscriber's queue (MQTT v5 message expiry)
RECONNECT_MIN, RECONNECT_MAX = 0.2, 10.0
STOP_FLUSH_SECONDS = 2.0
CONNACK_TIMEOUT = 10.0  # a broker (or anything else on that port) that takes the TCP connection but never answers
COMMAND_TIMEOUT = 10.0  # seconds the main loop has to answer a command before the caller hears "timeout"
PRESENCE_SETTLE_SECONDS = 0.5  # after connecting, the retained console presence arrives; count it after this long
MAX_CONSOLES_TRACKED = 1_000  # presence topics followed at most (a flood of fake consoles cannot grow memory)
WORKER_RESTART_SECONDS = 1.0  # a link that failed starts over after this long
# Acknowledged events kept in memory for resend_events (~400 B each): more than a broker saving every 100
# changes (systemd/mosquitto/samples/facility.conf) can lose in a crash.
RESEND_KEEP = 1_000


# --- the link thread's inbox: from the main loop ----------------------------------------------------------

@dataclass(frozen=True)
class _Wake:
    """An event went into the outbox: publish it."""


@dataclass(frozen=True)
class _SetCall:
    """Retain this `call` payload (b"" clears it)."""
    payload: bytes


@dataclass(frozen=True)
class _SetState:
    """The kiosk's reader / lamp / outage state (events.kiosk_state) for the online status."""
    state: dict[str, Any]


@dataclass(frozen=True)
class _Answer:
    """The main loop's reply to a command."""
    command_id: str
    answer: Answer


@dataclass(frozen=True)
class _Stop:
    """Say "offline" and end the link thread."""


# --- the link thread's inbox: from paho's network thread (each names the client it came from) --------------

@dataclass(frozen=True)
class _Connected:
    client: mqtt.Client
    reason: ReasonCode


@dataclass(frozen=True)
class _Disconnected:
    client: mqtt.Client
    reason: ReasonCode


@dataclass(frozen=True)
class _Acked:
    client: mqtt.Client
    mid: int
    reason: ReasonCode


@dataclass(frozen=True)
class _Received:
    client: mqtt.Client
    message: mqtt.MQTTMessage


_Inbox = _Wake | _SetCall | _SetState | _Answer | _Stop | _Connected | _Disconnected | _Acked | _Received


@dataclass(frozen=True)
class LinkStats:
    """The link's figures for the staff screen: broker connection and the outbox's backlog/drops/refusals."""

    connected: bool
    backlog: int
    dropped: int
    refused: int
    last_error: str | None


class EventLink:
    """The kiosk's MQTT actor: events through the durable outbox, retained status and call, staff commands."""

    def __init__(self, config: Config, catalogue_version: str, post: Callable[[Message], None],
                 on_turn: Callable[[], None] | None = None):
        """`post` puts a message into the main loop; `on_turn` (e.g. a watchdog beat) runs every loop turn.
        Bad broker settings raise ConfigError here."""
        section = config.mqtt
        self._section, self._post, self._on_turn = section, post, on_turn
        self.catalogue_version = catalogue_version
        self.kiosk, self.site = config.kiosk.id, config.kiosk.site
        self._state_dir = config.kiosk.state_dir
        self.topics = events.Topics(section.prefix, self.site, self.kiosk)
        self.address = parse_broker_url(section.url)
        new_client(section, "check")  # bad broker settings fail here, before the link thread starts
        if self.kiosk in events.RESERVED_KIOSK_IDS:
            raise ConfigError(f"[kiosk.id] {self.kiosk!r} is reserved ({{prefix}}/{{site}}/reply/ holds command "
                              "responses, {prefix}/{site}/console/ console presence)")
        try:
            self.outbox = Outbox.open(config.kiosk.state_dir / "outbox.sqlite3", section.outbox_cap)
        except OutboxError as exc:
            raise ConfigError(str(exc)) from None
        self._inbox: queue.SimpleQueue[_Inbox] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="mqtt-link", daemon=True)
        self._started = time.monotonic()
        # Owned by the link thread:
        self._client: mqtt.Client | None = None
        self._connected = False
        self._in_flight: dict[int, Stored] = {}  # mid -> the outbox row published with it
        self._sent: OrderedDict[int, Stored] = OrderedDict()  # seq -> the last RESEND_KEEP acknowledged events
        self._sent_seq = 0  # the highest seq the broker acknowledged (0: none since start)
        self._last_handed = 0
        self._synced = 0  # outbox rows up to this seq are known to be on disk
        self._call = b""
        self._state: dict[str, Any] = {}  # events.kiosk_state(): reader, lamp, outage (in the online status)
        self._awaiting: dict[str, tuple[float, str, bytes | None]] = {}  # command id -> deadline, reply to
        self._reconnect_at = 0.0
        self._connack_deadline = 0.0
        self._backoff = RECONNECT_MIN
        self._next_heartbeat = time.monotonic() + section.heartbeat_seconds
        self._consoles: dict[str, bool] = {}  # presence topic -> online, for consoles that watch this site
        self._consoles_posted: int | None = None  # the count last posted into the main loop
        self._consoles_settle_at: float | None = None  # after (re)connecting: when to post the first count
        self._refusals = RateLimitedLog(log)

    # --- called from the main loop -----------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def emit(self, kind: str, data: dict[str, Any], at: str | None = None) -> str:
        """Store an event in the outbox (then it is published); returns its id. `at`: the envelope's time
        (ISO 8601 with zone) when the flow fixed it (a `call` is stamped with its `since`), else now."""
        event_id = events.new_id()

        def payload(seq: int) -> bytes:
            return events.encode(events.envelope(kind, data, kiosk=self.kiosk, site=self.site, seq=seq,
                                                 catalogue_version=self.catalogue_version, event_id=event_id,
                                                 time=at))

        try:
            self.outbox.put(kind, self.topics.event(kind), payload, CALL_EVENT_TTL if kind == events.CALL else None)
        except Exception as exc:  # a full disk must not take the kiosk down
            log.error("event %s not stored: %s", kind, exc)
            return event_id
        self._inbox.put(_Wake())
        return event_id

    def set_call(self, call: Call | None) -> None:
        """Retain the open call, or clear it with None."""
        payload = events.encode(events.call_payload(call, kiosk=self.kiosk, site=self.site)) if call else b""
        self._inbox.put(_SetCall(payload))

    def set_state(self, state: dict[str, Any]) -> None:
        """The kiosk's reader, lamp and outage state (events.kiosk_state); re-published in the retained status."""
        self._inbox.put(_SetState(dict(state)))

    def stats(self) -> LinkStats:
        box: OutboxStats = self.outbox.stats()
        return LinkStats(self._connected, box.backlog, box.dropped, box.refused, box.last_error)

    def stop(self, timeout: float = 5.0) -> None:
        """Say "offline" (retained), disconnect cleanly, close the outbox."""
        if self._thread.is_alive():
            self._inbox.put(_Stop())
            self._thread.join(timeout)
        self.outbox.close()

    # --- the link thread ---------------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        """False once the link thread has ended (stopped, or died of something `_run` could not contain)."""
        return self._thread.is_alive()

    def restart(self) -> None:
        """Start a new link thread after the old one died (the runtime's supervisor calls this; the old thread
        is gone, so nothing else owns the link's state now). Says "offline" first if still connected."""
        if self._thread.is_alive():
            return
        self._fail("the MQTT link thread ended")
        self._thread = threading.Thread(target=self._run, name="mqtt-link", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                self._loop()
                return
            except Exception as exc:  # a bug must not silence the kiosk: say so at once, start over
                log.exception("the MQTT link failed; reconnecting in %.0f s", WORKER_RESTART_SECONDS)
                self._fail(f"the MQTT link failed ({type(exc).__name__}); restarted")
                time.sleep(WORKER_RESTART_SECONDS)

    def _fail(self, error: str) -> None:
        """After a failure in the link: the retained status says "offline" (reason link_failed) at once, the
        connection is dropped (a fresh one follows), staff see the error on the staff screen."""
        with contextlib.suppress(Exception):
            if self._connected and self._client is not None:
                info = self._client.publish(self.topics.status, self._status(False, {"reason": "link_failed"}),
                                            qos=1, retain=True)
                info.wait_for_publish(1.0)
        with contextlib.suppress(Exception):
            self._drop_client()
        with contextlib.suppress(Exception):
            self.outbox.note_error(error)
        self._connected, self._client = False, None
        self._reconnect_at = time.monotonic() + WORKER_RESTART_SECONDS
        self._post(LinkChanged(False, self.outbox.stats().backlog))

    def _loop(self) -> None:
        while True:
            if self._on_turn:
                self._on_turn()
            now = time.monotonic()
            if self._client is None and now >= self._reconnect_at:
                self._connect()
            elif self._client is not None and not self._connected and now >= self._connack_deadline:
                self._drop_client()
                self._give_up(f"no answer to CONNECT within {CONNACK_TIMEOUT:.0f} s")
            if now >= self._next_heartbeat:
                self._next_heartbeat = now + self._section.heartbeat_seconds
                self._heartbeat()
            try:
                messages = [self._inbox.get(timeout=self._wait_seconds())]
            except queue.Empty:
                messages = []
            while True:
                try:
                    messages.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            acked: list[int] = []
            for message in messages:
                if isinstance(message, _Stop):
                    self.outbox.delete(acked)
                    self._shutdown()
                    return
                self._handle(message, acked)
            self.outbox.delete(acked)
            self._expire_commands()
            self._report_consoles()
            self._fill_window()

    def _wait_seconds(self) -> float:
        deadlines = [self._next_heartbeat, time.monotonic() + 1.0, *(d for d, *_ in self._awaiting.values())]
        if self._client is None:
            deadlines.append(self._reconnect_at)
        if self._consoles_settle_at is not None:
            deadlines.append(self._consoles_settle_at)
        return max(0.0, min(deadlines) - time.monotonic())

    def _handle(self, message: _Inbox, acked: list[int]) -> None:
        match message:
            case _SetCall(payload):
                before, self._call = self._call, payload
                self._publish_call()
                if events.call_state(payload) != events.call_state(before):
                    self._publish_online()  # details.call
            case _SetState(state):
                self._state = state
                self._publish_online()
            case _Answer(command_id, answer):
                self._answer(command_id, answer)
            case _Wake() | _Stop():
                pass
            case _Acked() | _Connected() | _Disconnected() | _Received() if message.client is not self._client:
                pass  # a late callback from a connection already given up
            case _Acked(_, mid, reason):
                self._on_ack(mid, reason, acked)
            case _Connected(_, reason):
                self._on_connack(reason)
            case _Disconnected(_, reason):
                self._on_disconnected(reason)
            case _Received(_, msg):
                try:
                    self._on_message(msg)
                except Exception as exc:  # no message may stop the link: logged (rate-limited), dropped
                    self._refusals.error("bug", "message on %s dropped: %s: %s", str(msg.topic)[:100],
                                         type(exc).__name__, str(exc)[:200])

    def _connect(self) -> None:
        try:
            client, _ = new_client(self._section, f"kiosk-{self.site}-{self.kiosk}", auto_reconnect=False)
        except ConfigError as exc:  # e.g. the password file changed under us
            self._give_up(str(exc))
            return
        client.will_set(self.topics.status, self._status(False, {"reason": "lost"}), qos=1, retain=True)
        client.max_inflight_messages_set(WINDOW)
        put = self._inbox.put
        client.on_connect = lambda c, _u, _f, reason, _p: put(_Connected(c, reason))
        client.on_disconnect = lambda c, _u, _f, reason, _p: put(_Disconnected(c, reason))
        client.on_publish = lambda c, _u, mid, reason, _p: put(_Acked(c, mid, reason))
        client.on_message = lambda c, _u, msg: put(_Received(c, msg))
        try:
            client.connect(self.address.host, self.address.port, keepalive=30, clean_start=True)
        except (OSError, ssl.SSLError) as exc:
            self._give_up(f"cannot connect to {self.address.host}:{self.address.port}: {exc}")
            return
        self._client = client
        self._connack_deadline = time.monotonic() + CONNACK_TIMEOUT
        client.loop_start()

    def _on_connack(self, reason: ReasonCode) -> None:
        if reason.is_failure:
            self._drop_client()
            self._give_up(f"broker refused the connection: {reason}")
            return
        self._connected, self._backoff = True, RECONNECT_MIN
        self._in_flight.clear()
        self._last_handed = 0  # replay everything not yet acknowledged, in order
        log.info("connected to %s:%s", self.address.host, self.address.port)
        client = self._live_client()
        # cmd with Retain As Published (MQTT v5 3.8.3.1): a command published retained keeps its RETAIN flag on
        # live delivery too (not only when sent for the subscription), so the kiosk can refuse it either way
        subscriptions: list[tuple[str, Any]] = [
            (self.topics.cmd, SubscribeOptions(qos=1, retainAsPublished=True)),
            (events.presence_subscription(self.topics.prefix), 1)]
        self._consoles.clear()
        self._consoles_settle_at = time.monotonic() + PRESENCE_SETTLE_SECONDS
        if self._section.ha_discovery:
            subscriptions.append((ha_discovery.status_topic(self._section.ha_prefix), 1))
        client.subscribe(subscriptions)
        self._publish_online()
        self._publish_call()
        self._announce()
        self._report_drops()
        self._post(LinkChanged(True, self.outbox.stats().backlog))

    def _on_disconnected(self, reason: ReasonCode) -> None:
        self._drop_client()
        self._give_up(f"connection lost: {reason}")

    def _live_client(self) -> mqtt.Client:
        """The current connection's client (only called while there is one)."""
        assert self._client is not None
        return self._client

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        was_connected, self._connected = self._connected, False
        self._in_flight.clear()
        if client is not None:
            client.loop_stop()
            client.disconnect()
        if was_connected:
            self._post(LinkChanged(False, self.outbox.stats().backlog))
        self._no_consoles()

    def _give_up(self, error: str) -> None:
        log.warning("%s; retrying in %.1f s", error, self._backoff)
        self._no_consoles()
        self.outbox.note_error(error)
        self._reconnect_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, RECONNECT_MAX)

    def _fill_window(self) -> None:
        if not self._connected:
            return
        now = time.time()
        while len(self._in_flight) < WINDOW:
            rows = self.outbox.pending(self._last_handed, WINDOW - len(self._in_flight))
            if not rows:
                return
            if rows[-1].seq > self._synced:
                self.outbox.sync()  # never publish what a power cut could take back
                self._synced = rows[-1].seq
            for row in rows:
                properties = None
                expiry = row.expiry_left(now)
                if expiry is not None:
                    properties = Properties(PacketTypes.PUBLISH)
                    properties.MessageExpiryInterval = expiry
                info = self._live_client().publish(row.topic, row.payload, qos=1, properties=properties)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    return  # the connection is going; the disconnect message follows
                self._in_flight[info.mid] = row
                self._last_handed = row.seq

    def _on_ack(self, mid: int, reason: ReasonCode, acked: list[int]) -> None:
        row = self._in_flight.pop(mid, None)
        if row is None:
            return  # status, call, responses: not from the outbox
        if reason.is_failure:
            error = f"broker refused event seq {row.seq}: {reason} (check the broker ACL for {self.topics.base}/#)"
            log.error(error)
            self.outbox.refused(1, error)
            return
        acked.append(row.seq)
        self._sent[row.seq] = row
        self._sent.move_to_end(row.seq)
        while len(self._sent) > RESEND_KEEP:
            self._sent.popitem(last=False)
        self._sent_seq = max(self._sent_seq, row.seq)

    def _resend(self, after_seq: int) -> tuple[list[dict[str, Any]], bool]:
        """The acknowledged events still held with seq > `after_seq`, oldest first, within
        events.MAX_RESENT_BYTES; and whether more are held beyond those."""
        resent: list[dict[str, Any]] = []
        size = 0
        for seq in sorted(s for s in self._sent if s > after_seq):
            payload = self._sent[seq].payload
            if resent and size + len(payload) > events.MAX_RESENT_BYTES:
                return resent, True
            try:
                resent.append(json.loads(payload))  # the link's own encoding (events.encode) …
            except ValueError:
                continue  # … unless a row salvaged from a damaged outbox is not whole: it went out as it was
            size += len(payload) + 1
        return resent, False

    # --- console presence: who is listening --------------------------------------------------------------

    def _on_presence(self, site: str, msg: mqtt.MQTTMessage) -> None:
        """A console's retained presence: counted while it watches this kiosk's site and someone can hear it
        (online with at least one listener)."""
        presence = events.presence_of(msg.payload, site)
        if presence is None:
            return
        if presence.listening and events.listens_to(presence.sites, self.site):
            if msg.topic in self._consoles or len(self._consoles) < MAX_CONSOLES_TRACKED:
                self._consoles[msg.topic] = True
        else:
            self._consoles.pop(msg.topic, None)

    def _report_consoles(self) -> None:
        """Post ConsolesChanged when the count of consoles online changed (first after the settle time)."""
        if self._consoles_settle_at is not None:
            if time.monotonic() < self._consoles_settle_at:
                return
            self._consoles_settle_at = None
        if self._connected:
            self._post_consoles(len(self._consoles))

    def _no_consoles(self) -> None:
        """Without a broker no console can hear this kiosk: 0 (the presence is re-read on the next connection)."""
        self._consoles.clear()
        self._consoles_settle_at = None
        self._post_consoles(0)

    def _post_consoles(self, count: int) -> None:
        if count != self._consoles_posted:
            self._consoles_posted = count
            log.info("staff consoles online for site %s: %d", self.site, count)
            self._post(ConsolesChanged(count))

    def _publish_online(self) -> None:
        """The retained "online" status with the outbox figures and the kiosk's state."""
        if self._connected:
            details = {"outbox": self.outbox.stats().as_dict(), "clock": clock.clock_state(),
                       "call": events.call_state(self._call), "sent_seq": self._sent_seq, **self._state}
            self._live_client().publish(self.topics.status, self._status(True, details), qos=1, retain=True)

    def _publish_call(self) -> None:
        if self._connected:
            self._live_client().publish(self.topics.call, self._call, qos=1, retain=True)

    def _announce(self) -> None:
        """Home Assistant discovery (retained), or its withdrawal when ha_discovery is off; the per-entity configs
        of earlier versions are emptied the first time only (ha_discovery.legacy_cleared)."""
        legacy = not ha_discovery.legacy_cleared(self._state_dir)
        for topic, payload in ha_discovery.messages(self.topics, self._section, legacy=legacy):
            self._live_client().publish(topic, payload, qos=1, retain=True)
        if legacy:
            ha_discovery.mark_legacy_cleared(self._state_dir)

    def _report_drops(self) -> None:
        """outbox_dropped for events the outbox gave up, outbox_recovered for a damaged file it set aside."""
        report = self.outbox.take_drop_report()
        if report:
            count = sum(report.values())
            log.warning("outbox was full: dropped %d events %s", count, report)
            self.emit(events.OUTBOX_DROPPED, {"count": count, "by_kind": report,
                                              "total": self.outbox.stats().dropped})
        for recovery in self.outbox.take_recovery_reports():
            self.emit(events.OUTBOX_RECOVERED, {"salvaged": recovery.salvaged, "lost": recovery.lost,
                                                "cause": recovery.cause, "kept_as": recovery.kept_as})

    def _heartbeat(self) -> None:
        """The heartbeat event, and a fresh backlog figure for the staff screen."""
        self._report_drops()
        self.emit(events.HEARTBEAT, {"uptime_seconds": round(time.monotonic() - self._started, 1),
                                     "outbox": self.outbox.stats().as_dict(),
                                     "clock_synchronized": clock.synchronized()})
        self._post(LinkChanged(self._connected, self.outbox.stats().backlog))

    def _status(self, online: bool, details: dict[str, Any]) -> bytes:
        return events.encode(events.status_payload(online, kiosk=self.kiosk, site=self.site,
                                                   catalogue_version=self.catalogue_version, details=details))

    # --- commands ----------------------------------------------------------------------------------------

    def _on_message(self, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == ha_discovery.status_topic(self._section.ha_prefix):
            if msg.payload == b"online":
                self._announce()
            return
        presence = events.parse_presence_topic(self.topics.prefix, msg.topic)
        if presence is not None:
            self._on_presence(presence[0], msg)
            return
        if msg.topic != self.topics.cmd:
            return
        response_topic = getattr(msg.properties, "ResponseTopic", None)
        correlation = getattr(msg.properties, "CorrelationData", None)
        if not isinstance(response_topic, str) or not self.topics.valid_response_topic(response_topic):
            self._refusals.warning("topic", "command refused: response topic %r is not %s/<client>",
                                   str(response_topic)[:100], self.topics.reply_root)
            return
        if correlation is not None and (not isinstance(correlation, bytes)
                                        or len(correlation) > events.MAX_CORRELATION_BYTES):
            self._refusals.warning("correlation", "command refused: correlation data over %d bytes",
                                   events.MAX_CORRELATION_BYTES)
            return
        try:
            if msg.retain:  # a retained command would run again after every restart: never executed
                raise events.CommandError(events.RETAINED, "retained commands are refused; publish without retain")
            command = events.parse_command(msg.payload, self.kiosk)
            if not self.outbox.remember_command(command.id):
                raise events.CommandError(events.REPLAYED, f"command id {command.id} was already used",
                                          command.id)
        except events.CommandError as err:
            self._refusals.warning(err.code, "command refused: %s: %s", err.code, err.detail[:200])
            self._respond(response_topic, correlation, events.response_payload(
                err.command_id, False, err.detail, kiosk=self.kiosk, error=err.code))
            return
        if command.name == events.RESEND_EVENTS:  # the link's own: it holds the events, the flow does not
            resent, more = self._resend(command.args["after_seq"])
            log.info("command %s (%s): %d events resent", command.name, command.id, len(resent))
            self._respond(response_topic, correlation, events.response_payload(
                command.id, True, f"{len(resent)} events resent", kiosk=self.kiosk, detail_id="events_resent",
                params={"count": str(len(resent))}, resent=resent, more=more))
            return
        log.info("command %s (%s) accepted", command.name, command.id)
        self._awaiting[command.id] = (time.monotonic() + COMMAND_TIMEOUT, response_topic, correlation)
        put = self._inbox.put
        self._post(Command(command.id, command.name, command.args,
                           reply=lambda answer: put(_Answer(command.id, answer))))

    def _answer(self, command_id: str, answer: Answer) -> None:
        """The main loop's reply (or a timeout): sent once; a later second answer is ignored."""
        waiting = self._awaiting.pop(command_id, None)
        if waiting is None:
            log.info("late or repeated answer to command %s ignored", command_id)
            return
        _, topic, correlation = waiting
        self._respond(topic, correlation, events.response_payload(
            command_id, answer.ok, answer.detail, kiosk=self.kiosk, error=None if answer.ok else events.REJECTED,
            detail_id=answer.text, params=answer.params))

    def _expire_commands(self) -> None:
        now = time.monotonic()
        for command_id in [c for c, (deadline, *_) in self._awaiting.items() if deadline <= now]:
            log.warning("command %s not answered by the kiosk within %.0f s", command_id, COMMAND_TIMEOUT)
            _deadline, topic, correlation = self._awaiting.pop(command_id)
            self._respond(topic, correlation, events.response_payload(
                command_id, False, f"the kiosk did not answer within {COMMAND_TIMEOUT:.0f} s",
                kiosk=self.kiosk, error=events.TIMEOUT, params={"seconds": f"{COMMAND_TIMEOUT:.0f}"}))

    def _respond(self, topic: str, correlation: bytes | None, payload: dict[str, Any]) -> None:
        if not self._connected:
            log.warning("response to command %s lost: not connected", payload.get("id"))
            return
        properties = Properties(PacketTypes.PUBLISH)
        if correlation is not None:
            properties.CorrelationData = correlation
        self._live_client().publish(topic, events.encode(payload), qos=1, properties=properties)

    # --- shutdown ----------------------------------------------------------------------------------------

    def _shutdown(self) -> None:
        if not self._connected:
            self._drop_client()
            return
        info = self._live_client().publish(self.topics.status, self._status(False, {"reason": "stopped"}),
                                    qos=1, retain=True)
        deadline = time.monotonic() + STOP_FLUSH_SECONDS
        acked: list[int] = []
        while self._connected and time.monotonic() < deadline:
            try:
                message = self._inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if isinstance(message, _Acked) and message.client is self._client and message.mid == info.mid:
                break
            if isinstance(message, (_Acked, _Disconnected)):
                self._handle(message, acked)
        self.outbox.delete(acked)
        self._connected = False
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()
        log.info("disconnected (stopped)")
