"""Events over MQTT: the durable outbox against bare paho QoS 1, measured in the same run on a real mosquitto.

1. event -> subscriber latency, p50/p99: EventLink.emit (SQLite commit; the link thread fsyncs, then publishes)
   vs a bare paho QoS 1 publish of a same-sized payload; and how long emit() blocks the main loop;
2. outbox drain after an outage: 10,000 stored events published once the broker is reachable, events/s vs
   bare paho QoS 1 throughput (100 in flight, as the link uses).

Run from the repository root: .venv/bin/python bench/bench_events.py [--events N] [--drain N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiosk import events
from kiosk.config import config_from_dict
from kiosk.link import WINDOW, EventLink
from tests.rigs.mosquitto import DEFAULT_CONFIG, Broker

DATA = {"outcome": "unreadable_card", "code": None, "hints": ["move_closer"]}


class Subscriber:
    """Records when each event id arrives."""

    def __init__(self, broker: Broker, topic: str):
        self.arrived: dict[str, float] = {}
        self.cond = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTProtocolVersion.MQTTv5)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        subscribed.wait(5)

    def _on_message(self, _c, _u, message):
        now = time.perf_counter()
        event_id = message.payload[7:43].decode()  # '{"id":"<uuid>"' — no JSON parse on the clock
        with self.cond:
            self.arrived.setdefault(event_id, now)
            self.cond.notify_all()

    def wait_count(self, n: int, timeout: float = 300) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.arrived) >= n, timeout), f"{len(self.arrived)}/{n}"

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def bare_client(broker: Broker) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTProtocolVersion.MQTTv5)
    client.max_inflight_messages_set(WINDOW)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def bare_payload(seq: int) -> tuple[str, bytes]:
    payload = events.envelope("precheck", DATA, kiosk="bare", site="s1", seq=seq, catalogue_version="bench")
    return payload["id"], events.encode(payload)


def percentiles(latencies: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(latencies, n=100)
    return q[49] * 1000, q[98] * 1000


def make_link(broker_url: str, state_dir: Path) -> EventLink:
    config = config_from_dict({"kiosk": {"id": "k1", "site": "s1", "state_dir": str(state_dir)},
                               "mqtt": {"url": broker_url, "heartbeat_seconds": 3600}})
    return EventLink(config, "bench", lambda message: None)


def latency(broker: Broker, workdir: Path, n: int) -> dict[str, tuple[float, float]]:
    results = {}
    subscriber = Subscriber(broker, "kiosk/s1/+/event/#")
    client = bare_client(broker)
    sent: dict[str, float] = {}
    for seq in range(1, n + 1):
        event_id, payload = bare_payload(seq)
        sent[event_id] = time.perf_counter()
        client.publish("kiosk/s1/bare/event/precheck", payload, qos=1)
        time.sleep(0.002)
    subscriber.wait_count(n)
    results["bare paho QoS 1"] = percentiles([subscriber.arrived[i] - t for i, t in sent.items()])
    client.disconnect()
    client.loop_stop()

    link = make_link(broker.url, workdir / "latency")
    link.start()
    while not link.stats().connected:
        time.sleep(0.01)
    sent, blocked = {}, []
    for _ in range(n):
        start = time.perf_counter()
        sent[link.emit("precheck", DATA)] = start
        blocked.append(time.perf_counter() - start)
        time.sleep(0.002)
    subscriber.wait_count(2 * n)
    results["outbox (EventLink)"] = percentiles([subscriber.arrived[i] - t for i, t in sent.items()])
    results["emit() call (main loop blocked)"] = percentiles(blocked)
    link.stop()
    subscriber.close()
    return results


def drain(broker: Broker, workdir: Path, n: int) -> dict[str, float]:
    results = {}
    subscriber = Subscriber(broker, "kiosk/s1/+/event/#")
    client = bare_client(broker)
    payloads = [bare_payload(seq)[1] for seq in range(1, n + 1)]
    start = time.perf_counter()
    for payload in payloads:
        client.publish("kiosk/s1/bare/event/precheck", payload, qos=1)
    subscriber.wait_count(n)
    results["bare paho QoS 1"] = n / (time.perf_counter() - start)
    client.disconnect()
    client.loop_stop()

    link = make_link(broker.url, workdir / "drain")  # not started: as if the broker had been away
    start = time.perf_counter()
    for _ in range(n):
        link.emit("precheck", DATA)
    results["outbox fill (emit, link stopped)"] = n / (time.perf_counter() - start)
    start = time.perf_counter()
    link.start()
    subscriber.wait_count(2 * n)
    results["outbox drain (connect + replay)"] = n / (time.perf_counter() - start)
    while link.stats().backlog:
        time.sleep(0.01)
    link.stop()
    subscriber.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000, help="events for the latency test")
    parser.add_argument("--drain", type=int, default=10_000, help="events queued for the drain test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=Path.home()) as tmp:  # on disk, not tmpfs: fsync costs what it costs
        workdir = Path(tmp)
        broker = Broker(workdir / "broker", DEFAULT_CONFIG + "\nuser root\n").start()
        try:
            lat = latency(broker, workdir, args.events)
            rates = drain(broker, workdir, args.drain)
        finally:
            broker.stop()
    bare_p50, bare_p99 = lat["bare paho QoS 1"]
    print(f"event -> subscriber latency, {args.events} events, loopback mosquitto")
    for name, (p50, p99) in lat.items():
        print(f"  {name:<34} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms")
    box_p50, box_p99 = lat["outbox (EventLink)"]
    print(f"  {'outbox overhead':<34} p50 {box_p50 - bare_p50:+7.2f} ms   p99 {box_p99 - bare_p99:+7.2f} ms"
          f"   (target <= 5 ms at p99)")
    print(f"throughput, {args.drain} events")
    for name, rate in rates.items():
        print(f"  {name:<34} {rate:9.0f} events/s")
    ratio = rates["outbox drain (connect + replay)"] / rates["bare paho QoS 1"]
    print(f"  drain / bare paho                  {ratio:9.1%}   (target >= 2,000 events/s and >= 30 %)")


if __name__ == "__main__":
    main()
