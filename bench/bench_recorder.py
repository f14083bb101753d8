"""Benchmark of the event recorder and reports (not a test: prints numbers next to a baseline of the same run).

1. Ingest: a burst of N events (default 50,000) into the recorder (persistent session, SQLite WAL, ack after
   commit) vs a bare paho subscriber on the same broker. Target: recorder ≥ 50 % of bare.
2. Broker durability cost: bytes mosquitto writes (/proc/<pid>/io write_bytes) per event while events queue
   for an absent recorder, for each autosave choice (every change; the shipped kiosk.conf and facility.conf;
   time-based) vs persistence off, with the size of mosquitto.db at the end (what one save writes), and what
   a time-based save writes per minute while nothing happens.
3. Month report over a year of synthetic events from 10 kiosks (ROWS, default 1,000,000, written through
   Store.insert so presence spans are built as in service) on SQLite and on PostgreSQL (Debian package, temp
   cluster), the same offline threshold on both: p95 of the report vs a bare COUNT(*) over the same month.

    .venv/bin/python bench/bench_recorder.py [--events 50000] [--rows 1000000] [--no-postgres]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import paho.mqtt.client as mqtt
from sqlalchemy import func, select

from kiosk import events
from kiosk.config import config_from_dict
from kiosk.recorder import report_from_store
from kiosk.recorder.ingest import Recorder
from kiosk.recorder.models import Event
from kiosk.recorder.store import open_store
from tests.rigs.mosquitto import DEFAULT_CONFIG, Broker

TZ = ZoneInfo("Asia/Tokyo")
ROOT = Path(__file__).resolve().parent.parent


def payloads(n: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        env = events.envelope("lookup", {"code": "011", "known": True, "audience": "staff", "outage": False},
                              kiosk=f"k{i % 10}", site="site-1", seq=i // 10 + 1,  # each kiosk 1, 2, 3 …
                              catalogue_version="bench")
        out.append((events.Topics("kiosk", "site-1", f"k{i % 10}").event("lookup"), events.encode(env)))
    return out


def publish_all(broker: Broker, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTProtocolVersion.MQTTv5)
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    client.connect(broker.host, broker.port)
    client.loop_start()
    infos = [client.publish(t, p, qos=1) for t, p in messages]
    for info in infos:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()


def bare_rate(broker: Broker, messages: list[tuple[str, bytes]]) -> float:
    got = threading.Event()
    count = [0, 0.0]
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bare", protocol=mqtt.MQTTProtocolVersion.MQTTv5)

    def on_message(_c, _u, _m):
        count[0] += 1
        if count[0] == 1:
            count[1] = time.perf_counter()
        if count[0] == len(messages):
            got.set()

    client.on_message = on_message
    client.connect(broker.host, broker.port)
    client.subscribe("kiosk/+/+/event/#", qos=1)
    client.loop_start()
    time.sleep(0.5)
    threading.Thread(target=publish_all, args=(broker, messages), daemon=True).start()
    start = time.perf_counter()
    got.wait(300)
    elapsed = time.perf_counter() - start
    client.disconnect()
    client.loop_stop()
    return len(messages) / elapsed


def recorder_rate(broker: Broker, messages: list[tuple[str, bytes]], workdir: Path) -> float:
    store = open_store(f"sqlite:///{workdir / 'ingest.sqlite3'}")
    config = config_from_dict({"mqtt": {"url": broker.url}})
    recorder = Recorder(config.mqtt, store, sites=["site-1"], client_id="bench-recorder", session_expiry_hours=72,
                        retention_days=100_000)
    recorder.start()
    while not recorder.stats().connected:
        time.sleep(0.05)
    time.sleep(0.5)
    threading.Thread(target=publish_all, args=(broker, messages), daemon=True).start()
    start = time.perf_counter()
    while store.count() < len(messages):
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    recorder.stop()
    store.close()
    return len(messages) / elapsed


def write_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def _shipped(name: str) -> str:
    return "\n".join(line for line in (ROOT / "systemd/mosquitto" / name).read_text().splitlines()
                     if line.startswith(("persistence", "autosave")))


def durability_options() -> dict[str, str]:
    return {
        "persistence off": "persistence false",
        "every change (autosave_interval 1)": "persistence true\nautosave_on_changes true\nautosave_interval 1",
        "kiosk.conf (shipped, Pi)": _shipped("kiosk.conf"),
        "facility.conf (shipped, SSD)": _shipped("samples/facility.conf"),
        "every 60 s (time-based)": "persistence true\nautosave_on_changes false\nautosave_interval 60",
    }


def durability_cost(workdir: Path, n: int) -> dict[str, tuple[float, int]]:
    """Per option: (bytes written per event while `n` events queue for an absent recorder, mosquitto.db size)."""
    results = {}
    for number, (name, extra) in enumerate(durability_options().items()):
        config = DEFAULT_CONFIG.replace("persistence false\n", "") + extra + "\npersistence_location {dir}/\n"
        broker = Broker(workdir / f"dur-{number}", config).start()
        store = open_store(f"sqlite:///{workdir / f'dur-{number}.sqlite3'}")
        recorder = Recorder(config_from_dict({"mqtt": {"url": broker.url}}).mqtt, store, sites=["site-1"],
                            client_id="dur", session_expiry_hours=72, retention_days=100_000)
        recorder.start()
        while not recorder.stats().connected:
            time.sleep(0.05)
        time.sleep(0.3)
        recorder.stop()  # away: every event queues in its session
        assert broker.proc is not None
        before = write_bytes(broker.proc.pid)
        publish_all(broker, payloads(n))
        time.sleep(1.5)
        written = write_bytes(broker.proc.pid) - before
        broker.stop()  # a clean stop saves: the file then holds the whole queue
        database = workdir / f"dur-{number}" / "mosquitto.db"
        results[name] = (written / n, database.stat().st_size if database.exists() else 0)
        store.close()
    return results


def idle_time_based_writes(workdir: Path, seconds: float = 6.5, interval: int = 2) -> float:
    """Bytes a time-based autosave writes per save while no message moves (an empty broker, retained nothing)."""
    config = DEFAULT_CONFIG.replace("persistence false\n", "") + (
        f"persistence true\nautosave_on_changes false\nautosave_interval {interval}\npersistence_location {{dir}}/\n")
    broker = Broker(workdir / "dur-idle", config).start()
    assert broker.proc is not None
    time.sleep(1)
    before = write_bytes(broker.proc.pid)
    time.sleep(seconds)
    written = write_bytes(broker.proc.pid) - before
    broker.stop()
    return written / max(1, int(seconds // interval))


DAY_MS = 86_400_000
OUTAGE_EVERY_DAYS, OUTAGE_HOURS = 9, 3  # each kiosk is off 3 hours every 9 days (kiosk k shifted by k days)


def _off(kiosk: int, ts: int, start: int) -> bool:
    day, into = divmod(ts - start, DAY_MS)
    return (day + kiosk) % OUTAGE_EVERY_DAYS == 0 and 10 * 3_600_000 <= into < (10 + OUTAGE_HOURS) * 3_600_000


def fill(store, rows: int, year: int = 2025) -> None:
    """A year of 10 kiosks as the recorder would have stored it: `rows` events of the kinds a report reads
    (spread evenly, none while a kiosk is off), a heartbeat a minute whenever a kiosk runs — as presence spans
    (what Store.insert makes of them), plus heartbeat rows for the 8 days still kept (20–28 June, inside the
    reported month: the worst case for a report of the current month)."""
    from sqlalchemy import insert

    from kiosk.recorder.models import Presence
    from kiosk.recorder.presence import SLOT_MS

    random.seed(7)
    start = int(time.mktime((year, 1, 1, 0, 0, 0, 0, 0, -1)) * 1000)
    span = 365 * DAY_MS
    spans = []
    for kiosk in range(10):
        for slot_start in range(start, start + span, SLOT_MS):
            first = slot_start + kiosk * 1000
            beats = [first + m * 60_000 for m in range(15) if not _off(kiosk, first + m * 60_000, start)]
            if beats:
                spans.append({"site": "site-1", "kiosk": f"k{kiosk}", "first_ms": beats[0], "last_ms": beats[-1],
                              "heartbeats": len(beats)})
    with store.engine.begin() as connection:
        for at in range(0, len(spans), 50_000):
            connection.execute(insert(Presence), spans[at:at + 50_000])
    kinds = ["precheck"] * 45 + ["lookup"] * 15 + ["call", "call_acknowledged", "call_resolved"] * 4 + \
        ["reader_status", "lamp_status", "outage_entered"]
    outcomes = ["mynumber_card", "smartphone_iphone", "smartphone_android", "not_mynumber", "unreadable_card",
                "smartphone_mismatch"]
    batch: list[dict] = []

    def record(kind: str, kiosk: int, ts: int, seq: int, call: str | None = None) -> dict:
        return {"event_id": str(uuid.UUID(int=random.getrandbits(128))), "site": "site-1", "kiosk": f"k{kiosk}",
                "seq": seq, "kind": kind, "ts_ms": ts, "time": "", "received_ms": ts,
                "code": "011" if kind in ("lookup", "call") else None,
                "outcome": random.choice(outcomes) if kind == "precheck" else None,
                "reason": "staff_code" if kind.startswith("call") else None, "call_id": call,
                "available": (random.random() > 0.1) if kind == "reader_status" else None,
                "catalogue_version": "bench", "data": "{}"}

    for i in range(rows):
        kind, kiosk, ts = random.choice(kinds), i % 10, start + (i * span) // rows
        if not _off(kiosk, ts, start):
            batch.append(record(kind, kiosk, ts, i + 1, f"c{i // 30}" if kind.startswith("call") else None))
        if len(batch) >= 20_000:
            store.insert(batch)
            batch = []
    kept_from = int(time.mktime((year, 6, 20, 0, 0, 0, 0, 0, -1)) * 1000)
    for kiosk in range(10):
        for ts in range(kept_from + kiosk * 1000, kept_from + 8 * DAY_MS, 60_000):
            if not _off(kiosk, ts, start):
                batch.append(record("heartbeat", kiosk, ts, 10**7 + ts // 60_000))
            if len(batch) >= 20_000:
                store.insert(batch)
                batch = []
    store.insert(batch)
    if store.dialect == "postgresql":
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")
    else:
        with store.engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")


OFFLINE_AFTER = 180  # the default, on both databases


def month_report(store, label: str, repeats: int = 7) -> None:
    first, last = date(2025, 6, 1), date(2025, 6, 30)
    from kiosk.reports import range_ms

    start_ms, end_ms = range_ms(first, last, TZ)
    report_times, count_times = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        report = report_from_store(store, first, last, TZ, None, OFFLINE_AFTER, now_ms=end_ms)
        report_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with store.engine.connect() as connection:
            n = connection.execute(select(func.count()).select_from(Event)
                                   .where(Event.ts_ms >= start_ms, Event.ts_ms < end_ms)).scalar_one()
        count_times.append(time.perf_counter() - t0)
    p95 = lambda xs: statistics.quantiles(xs, n=20, method="inclusive")[18]  # noqa: E731
    print(f"  {label}: month report p95 {p95(report_times) * 1000:.0f} ms vs bare COUNT(*) p95 "
          f"{p95(count_times) * 1000:.0f} ms over {n:,} rows of the month "
          f"({sum(report['total']['events'].values()):,} counted, offline after {OFFLINE_AFTER} s: "
          f"{report['total']['offline_seconds'] / 3600:,.1f} h offline)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--durability-events", type=int, default=2_000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-recorder-"))
    messages = payloads(args.events)
    broker = Broker(workdir / "mosq", DEFAULT_CONFIG.replace("max_queued_messages 100000",
                                                             "max_queued_messages 200000")).start()
    try:
        bare = bare_rate(broker, messages)
        messages = payloads(args.events)  # new ids
        rec = recorder_rate(broker, messages, workdir)
    finally:
        broker.stop()
    print(f"ingest of {args.events:,} events: bare paho {bare:,.0f}/s, recorder (SQLite WAL, FULL sync, ack after "
          f"commit) {rec:,.0f}/s = {rec / bare * 100:.0f} % of bare (target >= 50 %)")

    cost = durability_cost(workdir, args.durability_events)
    print(f"broker writes while {args.durability_events:,} events queue for an absent recorder "
          "(bytes per event; mosquitto.db at the end = one save):")
    for name, (per_event, size) in cost.items():
        print(f"  {name:38s} {per_event:>10,.0f} B/event   db {size:>10,} B")
    print(f"  time-based autosave while idle: {idle_time_based_writes(workdir):,.0f} B per save (empty broker)")

    print(f"month report over a synthetic year of 10 kiosks ({args.rows:,} events, a heartbeat a minute as "
          "presence spans, 8 days of heartbeat rows):")
    sqlite_store = open_store(f"sqlite:///{workdir / 'year.sqlite3'}")
    t0 = time.perf_counter()
    fill(sqlite_store, args.rows)
    print(f"  (SQLite filled in {time.perf_counter() - t0:.0f} s: {sqlite_store.count():,} event rows)")
    month_report(sqlite_store, "SQLite")
    if not args.no_postgres:
        from tests.rigs.postgres import Postgres, pg_bin

        bindir = pg_bin()
        if bindir is None:
            print("  PostgreSQL: not installed (Debian package postgresql)")
        else:
            server = Postgres(bindir).start()
            try:
                pg_store = open_store(server.create_database())
                fill(pg_store, args.rows)
                month_report(pg_store, "PostgreSQL")
                pg_store.close()
            finally:
                server.remove()
    print(json.dumps({"ingest_ratio": round(rec / bare, 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
