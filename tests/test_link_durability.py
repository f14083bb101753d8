"""At-least-once, in order, across broker restarts and a SIGKILLed kiosk process (real mosquitto, real SQLite).

A kiosk process emits events while the broker is stopped and started several times, is killed with SIGKILL
mid-burst (its Last Will is seen), and a new process on the same state directory carries on. A subscriber with
a persistent session must receive every event the kiosk stored, duplicates only with the same id and payload,
in per-kiosk order.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from tests.rigs import contract

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

PERSISTENT_BROKER = """
listener {port} 127.0.0.1
allow_anonymous true
persistence true
persistence_location {dir}/
max_queued_messages 0
log_dest stderr
log_type error
"""

KIOSK_PROCESS = """
import sys, time
from kiosk.config import config_from_dict
from kiosk.link import EventLink
state_dir, url, first, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
config = config_from_dict({"kiosk": {"id": "k1", "site": "s1", "state_dir": state_dir},
                           "mqtt": {"url": url, "heartbeat_seconds": 3600}})
link = EventLink(config, "cat-1", lambda message: None)
link.start()
for i in range(first, first + count):
    event_id = link.emit("lookup", {"code": f"{i % 1000:03d}", "known": False, "audience": None, "outage": None})
    print(event_id, flush=True)  # printed only once stored
    time.sleep(0.003)
print("emitted", flush=True)
while link.stats().backlog:
    time.sleep(0.05)
print("drained", flush=True)
time.sleep(120)
"""


class KioskProcess:
    def __init__(self, state_dir, url, first, count):
        self.proc = subprocess.Popen([sys.executable, "-c", KIOSK_PROCESS, str(state_dir), url, str(first),
                                      str(count)], stdout=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def stored_ids(self):
        return [line for line in self.lines if line not in ("emitted", "drained")]

    def wait_for(self, pred, timeout=60.0):
        deadline = time.monotonic() + timeout
        while not pred(self) and time.monotonic() < deadline:
            assert self.proc.poll() is None, "kiosk process died"
            time.sleep(0.01)
        assert pred(self), f"timed out; kiosk printed {len(self.lines)} lines"

    def kill(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


class Subscriber:
    """A dashboard with a persistent session: the broker queues for it while it is away."""

    def __init__(self, broker):
        self.messages: list[tuple[str, bytes, bool]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="durable-dashboard",
                                  protocol=mqtt.MQTTProtocolVersion.MQTTv5)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, m.payload, m.retain))
        self.client.on_connect = lambda c, _u, flags, rc, _p: c.subscribe("kiosk/s1/k1/#", qos=1)
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 3600
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.connect(broker.host, broker.port, clean_start=False, properties=properties)
        self.client.loop_start()
        assert subscribed.wait(10), "the dashboard could not subscribe"

    def events(self):
        return [json.loads(p) for t, p, _ in list(self.messages) if "/event/" in t]

    def statuses(self):
        return [json.loads(p) for t, p, _ in list(self.messages) if t.endswith("/status") and p]

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def bounce(broker, times, down=0.4, up=0.4):
    for _ in range(times):
        time.sleep(up)
        broker.stop()
        time.sleep(down)
        broker.start()


def test_burst_survives_broker_restarts_and_kill_9(mosquitto_factory, tmp_path):
    broker = mosquitto_factory(PERSISTENT_BROKER)
    subscriber = Subscriber(broker)
    state = tmp_path / "state"
    try:
        first = KioskProcess(state, broker.url, 0, 5000)
        first.wait_for(lambda p: len(p.stored_ids()) >= 50)
        bounce(broker, 3)  # three outages while the burst goes on
        first.wait_for(lambda p: len(p.stored_ids()) >= 600)
        seen = len(subscriber.statuses())
        first.kill()  # mid-burst, broker up: the Last Will says offline
        deadline = time.monotonic() + 60  # on loopback the broker sees the dead socket at once
        while not any(s["state"] == "offline" for s in subscriber.statuses()[seen:]) and time.monotonic() < deadline:
            time.sleep(0.05)
        will = [s for s in subscriber.statuses()[seen:] if s["state"] == "offline"][-1]
        assert will["details"] == {"reason": "lost"}
        contract.validate("Status", will)
        stored_first = first.stored_ids()
        assert 600 <= len(stored_first) < 5000

        second = KioskProcess(state, broker.url, 1000, 500)
        second.wait_for(lambda p: len(p.stored_ids()) >= 100)
        bounce(broker, 2)
        second.wait_for(lambda p: "drained" in p.lines, timeout=120)
        stored = stored_first + second.stored_ids()
        assert len(stored) >= 1000

        deadline = time.monotonic() + 30
        while not set(stored) <= {e["id"] for e in subscriber.events()} and time.monotonic() < deadline:
            time.sleep(0.1)
        received = subscriber.events()
        second.kill()
    finally:
        subscriber.close()

    by_id = {}
    for event in received:
        assert by_id.setdefault(event["id"], event) == event  # a duplicate is the very same event
    missing = set(stored) - set(by_id)
    assert not missing, f"{len(missing)} stored events never arrived"
    first_seen = list(dict.fromkeys(e["id"] for e in received))
    seqs = [by_id[i]["seq"] for i in first_seen]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # per-kiosk order, one seq per event
    assert [by_id[i]["seq"] for i in stored] == sorted(by_id[i]["seq"] for i in stored)
    for event in by_id.values():
        contract.validate_event(event)
    print(f"stored {len(stored)}, received {len(received)} ({len(received) - len(by_id)} duplicates)")
