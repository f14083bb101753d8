"""The event recorder: the store on real SQLite and PostgreSQL, ingest from a real mosquitto with a persistent
MQTT v5 session, exactly once by event id, and `kiosk report` over a known stream."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest

from kiosk import events
from kiosk.config import config_from_dict
from kiosk.recorder.ingest import Recorder, record_of
from kiosk.recorder.store import StoreError, open_store
from kiosk.reports import OUTCOMES
from tests.rigs import contract

pytestmark = pytest.mark.mqtt


def envelope(kind: str, data: dict, *, kiosk: str = "k1", site: str = "site-1", seq: int = 1,
             time: str = "2026-05-20T10:00:00.000+09:00") -> dict:
    return events.envelope(kind, data, kiosk=kiosk, site=site, seq=seq, catalogue_version="test", time=time)


def record(kind: str = "lookup", data: dict | None = None, **kw) -> dict:
    env = envelope(kind, data or {"code": "011", "known": True, "audience": "staff", "outage": False}, **kw)
    topic = events.Topics("kiosk", env["site"], env["kiosk"]).event(kind)
    found = record_of("kiosk", topic, events.encode(env), 0)
    assert found is not None
    return found


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'history.sqlite3'}"
    return request.getfixturevalue("postgres_url")


def test_store_keeps_each_event_id_once(store_url):
    store = open_store(store_url)
    first = [record(seq=n) for n in range(1, 6)]
    assert store.insert(first) == 5
    assert store.insert([*first[:3], record(seq=6)]) == 1  # a redelivery and one new
    assert store.insert([first[0], first[0]]) == 0  # twice in one batch
    assert store.count() == 6
    store.close()
    assert open_store(store_url).count() == 6  # reopening migrates nothing and keeps the rows


def test_migrations_build_exactly_the_models(store_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from kiosk.recorder.models import Base

    store = open_store(store_url)
    with store.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_history_filters_and_prune(store_url):
    store = open_store(store_url)
    store.insert([record(seq=1, time="2026-05-20T09:00:00+09:00"),
                  record("precheck", {"outcome": "smartphone_mismatch", "code": "021", "hints": []}, seq=2,
                         time="2026-05-20T09:10:00+09:00"),
                  record(seq=3, kiosk="k2", time="2026-05-20T09:20:00+09:00"),
                  record(seq=4, site="site-2", time="2026-05-19T09:00:00+09:00")])
    tz = ZoneInfo("Asia/Tokyo")
    from kiosk.reports import range_ms

    start, end = range_ms(date(2026, 5, 20), date(2026, 5, 20), tz)
    assert [(h.kind, h.code, h.kiosk) for h in store.history(start, end)] == [
        ("lookup", "011", "k2"), ("precheck", "021", "k1"), ("lookup", "011", "k1")]
    assert [h.kiosk for h in store.history(start, end, kiosk="k2")] == ["k2"]
    assert [h.kind for h in store.history(start, end, code="021")] == ["precheck"]
    assert store.history(start, end, sites=["site-2"]) == []
    assert store.sites() == ["site-1", "site-2"]
    assert store.prune(start) == 1 and store.count() == 3


def test_sqlite_store_is_private_and_in_wal_mode(tmp_path):
    path = tmp_path / "state" / "history.sqlite3"
    store = open_store(f"sqlite:///{path}")
    store.insert([record()])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for extra in ("-wal", "-shm"):
        side = path.with_name(path.name + extra)
        assert not side.exists() or stat.S_IMODE(side.stat().st_mode) == 0o600
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_bad_database_urls_get_clear_errors(tmp_path):
    with pytest.raises(StoreError, match="not a database URL"):
        open_store("history.db")
    with pytest.raises(StoreError, match="only SQLite and PostgreSQL"):
        open_store("mysql://u@127.0.0.1/x")
    with pytest.raises(StoreError, match="no event history at"):
        open_store(f"sqlite:///{tmp_path / 'missing.sqlite3'}", must_exist=True)
    with pytest.raises(StoreError, match=re.escape("history store postgresql+psycopg://u:***@127.0.0.1:9/x")):
        open_store("postgresql+psycopg://u:secret@127.0.0.1:9/x")  # refused; the password never shown


def test_malformed_or_mismatched_messages_are_not_records():
    good = envelope("lookup", {"code": "011", "known": True})
    topic = "kiosk/site-1/k1/event/lookup"
    assert record_of("kiosk", topic, events.encode(good), 0) is not None
    assert record_of("kiosk", topic, b"not json", 0) is None
    assert record_of("kiosk", "kiosk/site-1/k2/event/lookup", events.encode(good), 0) is None  # other kiosk
    assert record_of("kiosk", "kiosk/site-1/k1/event/call", events.encode(good), 0) is None  # other kind
    assert record_of("kiosk", "kiosk/site-1/k1/status", events.encode(good), 0) is None
    assert record_of("kiosk", topic, events.encode({**good, "time": "2026-05-20T10:00:00"}), 0) is None  # no zone
    assert record_of("kiosk", topic, events.encode({**good, "seq": 0}), 0) is None
    huge = {**good, "data": {"code": "011", "pad": "x" * 5000}}
    assert record_of("kiosk", topic, events.encode(huge), 0) is None
    bad_kind = {**good, "kind": "Lookup/#"}
    assert record_of("kiosk", "kiosk/site-1/k1/event/Lookup/#", events.encode(bad_kind), 0) is None


def test_a_kind_this_version_does_not_know_is_kept_and_reports_ignore_it(tmp_path):
    """A kiosk upgraded before its recorder: its new kinds are history too, not rejects."""
    newer = {**envelope("lookup", {"code": "011", "known": True}), "kind": "zz_newer_kind"}
    record = record_of("kiosk", "kiosk/site-1/k1/event/zz_newer_kind", events.encode(newer), 0)
    assert record is not None and record["kind"] == "zz_newer_kind"
    store = open_store(f"sqlite:///{tmp_path / 'h.sqlite3'}")
    known = record_of("kiosk", "kiosk/site-1/k1/event/lookup", events.encode(envelope("lookup", {"code": "011"})), 0)
    assert store.insert([record, known]) == 2
    assert sorted(stored_ids(store)) == sorted([newer["id"], known["event_id"]])


def publish(broker, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTProtocolVersion.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def wait_for(predicate, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def make_recorder(broker, store, sites=("site-1",), client_id="rec-test") -> Recorder:
    config = config_from_dict({"mqtt": {"url": broker.url}})
    return Recorder(config.mqtt, store, sites=list(sites), client_id=client_id, session_expiry_hours=72,
                    retention_days=400, clock=lambda: 1_779_238_800.0)  # 2026-05-20: nothing is pruned


def connected_recorder(broker, store, **options) -> Recorder:
    """make_recorder(...), started, once its session is on the broker."""
    recorder = make_recorder(broker, store, **options)
    recorder.start()
    wait_for(lambda: recorder.stats().connected, what="recorder connected")
    return recorder


def recorder_with_ten_events(broker, store) -> tuple[Recorder, list[tuple[str, bytes, str]]]:
    """A connected recorder that has stored events 1-10 of kiosk k1 (returned as event_message tuples)."""
    recorder = connected_recorder(broker, store)
    first = [event_message(n) for n in range(1, 11)]
    publish(broker, [(t, p) for t, p, _ in first])
    wait_for(lambda: store.count() == 10, what="10 events stored")
    return recorder, first


def event_message(seq: int, kiosk: str = "k1", site: str = "site-1") -> tuple[str, bytes, str]:
    env = envelope("lookup", {"code": "011", "known": True}, kiosk=kiosk, site=site, seq=seq)
    return events.Topics("kiosk", site, kiosk).event("lookup"), events.encode(env), env["id"]


def stored_ids(store) -> list[str]:
    from sqlalchemy import select

    from kiosk.recorder.models import Event

    with store.engine.connect() as connection:
        return list(connection.execute(select(Event.event_id)).scalars())


def test_recorder_gets_events_published_while_it_was_stopped_once_each(mosquitto, tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'h.sqlite3'}")
    recorder, first = recorder_with_ten_events(mosquitto, store)
    recorder.stop()

    later = [event_message(n) for n in range(11, 31)]  # while the recorder is away: queued in its session
    publish(mosquitto, [(t, p) for t, p, _ in later] + [(t, p) for t, p, _ in first[:5]])  # + 5 replays
    publish(mosquitto, [("kiosk/site-1/k1/event/lookup", b"garbage"), ("kiosk/site-2/k1/event/lookup",
                                                                        event_message(99, site="site-2")[1])])
    recorder = make_recorder(mosquitto, store)
    recorder.start()
    wait_for(lambda: store.count() == 30 and recorder.stats().duplicates == 5 and recorder.stats().rejected == 1,
             what="the queued events")
    recorder.stop()
    assert sorted(stored_ids(store)) == sorted(i for *_, i in first + later)  # site-2 is not recorded


def test_a_gap_in_a_kiosks_seq_is_asked_for_and_only_the_asked_kiosks_answer_is_stored(mosquitto, mqtt_listener,
                                                                                         tmp_path):
    """Events 1, 2, 6 of k1: the recorder sends k1 resend_events after 2 (contract-valid, response topic on its
    own reply topic). Here the test answers as the kiosk would (tests/test_recorder_durability.py runs the real
    link): a response under an id never asked is ignored; of the asked one, only k1's events are stored."""
    commands = mqtt_listener(mosquitto, "kiosk/site-1/+/cmd")
    store = open_store(f"sqlite:///{tmp_path / 'h.sqlite3'}")
    recorder = connected_recorder(mosquitto, store)
    stream = {n: event_message(n) for n in range(1, 7)}
    publish(mosquitto, [stream[n][:2] for n in (1, 2, 6)])
    asked = commands.wait(lambda ms: len(ms) >= 1)[0]
    command = json.loads(asked.payload)
    contract.validate("Command", command)
    assert (asked.topic, command["name"], command["args"]) == ("kiosk/site-1/k1/cmd", "resend_events",
                                                               {"after_seq": 2})
    assert asked.properties.ResponseTopic == events.reply_topic("kiosk", "site-1", "rec-test")

    def answer(command_id: str, sent: list[bytes]) -> None:
        body = events.response_payload(command_id, True, "resent", kiosk="k1", detail_id="events_resent",
                                       params={"count": str(len(sent))}, resent=[json.loads(p) for p in sent])
        contract.validate("CommandResponse", body)
        publish(mosquitto, [(asked.properties.ResponseTopic, events.encode(body))])

    forged = event_message(7)
    answer(events.new_id(), [forged[1]])  # never asked: ignored
    other = event_message(4, kiosk="k2")
    answer(command["id"], [stream[n][1] for n in (3, 4, 5)] + [other[1]])
    wait_for(lambda: recorder.stats().resent == 3, what="the resent events")
    wait_for(lambda: store.count() == 6, what="the gap filled")
    recorder.stop()
    assert sorted(stored_ids(store)) == sorted(stream[n][2] for n in range(1, 7))
    assert len(commands.messages) == 1  # filled: not asked again


def test_kiosk_report_cli_json_and_csv_from_a_known_stream(tmp_path):
    url = f"sqlite:///{tmp_path / 'h.sqlite3'}"
    store = open_store(url)
    store.insert([
        record("precheck", {"outcome": "mynumber_card", "code": None, "hints": []}, seq=1,
               time="2026-05-20T09:00:00+09:00"),
        record("precheck", {"outcome": "smartphone_mismatch", "code": "021", "hints": []}, seq=2,
               time="2026-05-20T09:05:00+09:00"),
        record("call", {"call_id": "c1", "reason": "staff_code", "code": "011", "audience": "staff"}, seq=3,
               time="2026-05-20T09:06:00+09:00"),
        record("call_acknowledged", {"call_id": "c1", "reason": "staff_code", "code": "011", "audience": "staff"},
               seq=4, time="2026-05-20T09:06:45+09:00"),
        record("heartbeat", {"uptime_seconds": 1, "outbox": {"backlog": 0, "dropped": 0, "refused": 0,
                                                               "last_error": None}}, seq=5,
               time="2026-05-20T09:07:00+09:00"),
        record(seq=6, site="site-2", time="2026-05-20T09:00:00+09:00"),
    ])
    store.close()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "kiosk", "report", "--database", url, *args],
                              capture_output=True, text=True, timeout=60)

    done = run("--site", "site-1", "--from", "2026-05-20", "--to", "2026-05-20", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["total"]["events"] == {"call": 1, "call_acknowledged": 1, "heartbeat": 1, "precheck": 2}
    assert report["total"]["outcomes"]["smartphone_mismatch"] == 1
    assert report["total"]["acknowledged"]["median_seconds"] == 45.0
    assert report["sites"] == ["site-1"]
    done = run("--from", "2026-05-20", "--to", "2026-05-20", "--csv")
    assert done.returncode == 0 and done.stdout.startswith("period_type,period,metric,key,value")
    assert "total,total,lookups,011,1" in done.stdout.splitlines()  # both sites without --site
    done = run("--from", "2026-05-21", "--to", "2026-05-20")
    assert done.returncode == 2 and "starts (2026-05-21) after it ends (2026-05-20)" in done.stderr
    done = run("--to", "20-05-2026")
    assert done.returncode == 2 and "not a date" in done.stderr


def synthetic_stream(seed: int = 5) -> list[dict]:
    """Records of three kiosks over four local days around a month end, every kind a report reads:
    heartbeats each minute with silences of all lengths (some across midnight, one at the range's end),
    pre-checks, lookups, calls answered late, early, twice or never, reader faults, lamp patterns."""
    import random

    rng = random.Random(seed)
    base = 1_779_980_400_000  # 2026-05-29T00:00+09:00
    out: list[dict] = []

    def add(kind: str, kiosk: str, ts: int, data: dict) -> None:
        iso = datetime.fromtimestamp(ts / 1000, ZoneInfo("Asia/Tokyo")).isoformat(timespec="milliseconds")
        out.append(record(kind, data, kiosk=kiosk, seq=len(out) + 1, time=iso))

    for number, kiosk in enumerate(("k1", "k2", "k3")):
        ts = base - 86_400_000 + number * 7_000
        stop = base + 3 * 86_400_000 + 43_200_000 - number * 3_600_000
        while ts < stop:
            add("heartbeat", kiosk, ts, {"uptime_seconds": 1})
            roll = rng.random()
            if roll < 0.004:
                ts += rng.choice([130_000, 181_000, 900_000, 5_400_000, 40_000_000])  # silences of every length
            else:
                ts += 60_000 + rng.randrange(-900, 900)
            if rng.random() < 0.08:
                at = ts - rng.randrange(1, 50_000)
                kind = rng.choice(["precheck", "lookup", "call", "reader_status", "lamp_status", "outage_entered"])
                if kind == "precheck":
                    add(kind, kiosk, at, {"outcome": rng.choice(OUTCOMES), "code": rng.choice([None, "021"]),
                                          "hints": []})
                elif kind == "lookup":
                    add(kind, kiosk, at, {"code": rng.choice(["011", "021", "901"]), "known": True})
                elif kind == "call":
                    call = f"c{len(out)}"
                    reason = rng.choice(["patient_request", "staff_code", "repeated_failures"])
                    add(kind, kiosk, at, {"call_id": call, "reason": reason, "code": rng.choice([None, "011"])})
                    for answer in ("call_acknowledged", "call_resolved"):
                        for _ in range(rng.choice([0, 1, 1, 2])):
                            add(answer, kiosk, at + rng.randrange(-5_000, 2 * 86_400_000 // rng.choice([1, 50, 500])),
                                {"call_id": call, "reason": reason})
                elif kind == "reader_status":
                    add(kind, kiosk, at, {"available": rng.random() < 0.5})
                elif kind == "lamp_status":
                    add(kind, kiosk, at, {"pattern": "idle"})
                else:
                    add(kind, kiosk, at, {"code": "901"})
    return out


def as_report_event(r: dict):
    from kiosk.reports import ReportEvent

    return ReportEvent(r["ts_ms"], r["site"], r["kiosk"], r["kind"], r["code"], r["outcome"], r["reason"],
                       r["call_id"], r["available"])


def test_report_from_the_store_equals_the_pure_report_of_every_event(store_url):
    """The SQL path (aggregates, presence spans) gives exactly the numbers of kiosk.reports.build_report over
    every event, whatever the batches, the order of arrival and the duplicates, in zones with whole-hour,
    45-minute and daylight-saving offsets."""
    import random

    from kiosk.recorder import report_from_store
    from kiosk.reports import build_report, range_ms, silences

    records = synthetic_stream()
    store = open_store(store_url)
    early = random.Random(2).sample(records, 1500)  # first a backlog, out of order and new …
    for start in range(0, 1500, 500):
        store.insert(early[start:start + 500])
    for start in range(0, len(records), 1000):  # … then everything in batches, each partly redelivered
        batch = records[start:start + 1000]
        store.insert(batch + batch[:50])
    replay = random.Random(1).sample(records, 400)  # an outbox replay, out of order
    store.insert(replay)
    events = [as_report_event(r) for r in records]
    for zone, first, last, threshold in [("Asia/Tokyo", date(2026, 5, 29), date(2026, 6, 1), 180),
                                         ("Asia/Tokyo", date(2026, 5, 31), date(2026, 5, 31), 600),
                                         ("Asia/Kathmandu", date(2026, 5, 29), date(2026, 5, 30), 120),
                                         ("Europe/Berlin", date(2026, 5, 30), date(2026, 6, 2), 180)]:
        tz = ZoneInfo(zone)
        start_ms, end_ms = range_ms(first, last, tz)
        now_ms = end_ms - 2 * 3_600_000  # "now" inside the last day: the silence at the end counts until now
        expected = build_report(events, silences(events, threshold * 1000, start_ms, end_ms, now_ms), first, last,
                                tz, sites=["site-1"]).as_dict()
        assert report_from_store(store, first, last, tz, ["site-1"], threshold, now_ms=now_ms) == expected, zone
        assert expected["total"]["offline_seconds"] > 0 and expected["total"]["acknowledged"]["count"] > 3
        assert expected["total"]["events"]["heartbeat"] > 1000


def test_presence_replaces_old_heartbeat_rows_and_counts_each_heartbeat_once(store_url):
    from sqlalchemy import select

    from kiosk.recorder.models import Event, Presence

    store = open_store(store_url)
    beats = [record("heartbeat", {"uptime_seconds": n}, seq=n + 1, time=f"2026-05-20T10:{n:02d}:00+09:00")
             for n in range(0, 60)]
    late = beats[10:20]
    cutoff = beats[30]["ts_ms"]  # heartbeats before it are older than their rows are kept
    assert store.insert(beats[30:], heartbeat_rows_after_ms=cutoff) == 30
    assert store.insert(late, heartbeat_rows_after_ms=cutoff) == 10  # too old for a row: presence only
    assert store.insert(late, heartbeat_rows_after_ms=cutoff) == 10  # … so a redelivery cannot count twice
    with store.engine.connect() as connection:
        spans = connection.execute(select(Presence.first_ms, Presence.last_ms, Presence.heartbeats)
                                   .order_by(Presence.first_ms)).all()
        assert connection.execute(select(func_count()).select_from(Event)).scalar_one() == 30
    # 10:10-10:19 and 10:30-10:59 in four 15-minute slots; 10:20-10:29 unheard: a 11-minute silence
    assert [(b - a) // 60_000 for a, b, _n in spans] == [4, 4, 14, 14]
    assert [n for *_, n in spans] == [0, 0, 15, 15]
    assert store.prune(cutoff + 60_000 * 40, heartbeats_before_ms=cutoff + 60_000 * 40) == 30
    gaps = store.gaps(beats[0]["ts_ms"], beats[-1]["ts_ms"] + 60_000, 300_000, now_ms=beats[-1]["ts_ms"] + 60_000)
    assert gaps == []  # pruned presence: nothing left to tell


def func_count():
    from sqlalchemy import func

    return func.count()


def test_a_restarted_console_shows_todays_counts_from_the_store_once_each(tmp_path, mosquitto, console_server):
    """The live page's "Today" comes from the store at start-up; a redelivered event is not counted twice."""
    now = datetime.now().astimezone()
    stamp = now.isoformat(timespec="milliseconds")
    yesterday = (now - timedelta(days=1)).isoformat(timespec="milliseconds")
    lookup = {"code": "011", "known": True, "audience": "staff", "outage": False}
    stored = [record("lookup", lookup, seq=1, time=stamp), record("lookup", lookup, seq=2, time=stamp),
              record("call", {"call_id": "c1", "reason": "staff_code", "code": "011"}, seq=3, time=stamp),
              record("call", {"call_id": "c2", "reason": "patient_request"}, seq=4, time=stamp),
              record("lookup", lookup, seq=5, time=yesterday), record("heartbeat", {"uptime_seconds": 1}, seq=6,
                                                                      time=stamp)]
    store = open_store(f"sqlite:///{tmp_path / 'history.sqlite3'}")
    store.insert(stored)
    config = config_from_dict({"kiosk": {"site": "site-1", "state_dir": str(tmp_path / "state")},
                               "mqtt": {"url": mosquitto.url}, "recorder": {"client_id": "rec-console"}})
    console = console_server(config, history=store)
    hub = console.app.state.console.hub
    expected = [{"code": "011", "lookups": 2, "calls": 1}, {"code": "patient_request", "lookups": 0, "calls": 1}]
    assert hub.snapshot()["counts"] == expected
    assert [(h["kind"], h["code"]) for h in hub.snapshot()["history"]] == [
        ("lookup", "011"), ("lookup", "011"), ("call", "011"), ("call", None)]

    again = envelope("lookup", lookup, seq=1, time=stamp)
    again["id"] = stored[0]["event_id"]  # the same event, delivered again (QoS 1 / outbox replay)
    fresh = envelope("lookup", {**lookup, "code": "024"}, seq=7, time=stamp)
    topic = events.Topics("kiosk", "site-1", "k1").event("lookup")
    wait_for(lambda: hub.connected, what="the console's link")
    publish(mosquitto, [(topic, events.encode(again)), (topic, events.encode(fresh))])
    wait_for(lambda: any(c["code"] == "024" for c in hub.snapshot()["counts"]), what="the live lookup counted")
    assert hub.snapshot()["counts"][:1] == [{"code": "011", "lookups": 2, "calls": 1}]
    console.stop()


def test_migration_0002_builds_presence_from_the_events_already_stored(store_url):
    """A store of the first schema (every heartbeat a row) gets presence spans that give the same offline
    time as the events themselves."""
    from alembic import command
    from alembic.config import Config as AlembicConfig
    from sqlalchemy import insert

    from kiosk.recorder.models import Event
    from kiosk.recorder.store import Store
    from kiosk.reports import range_ms, silences

    store = Store(open_store(store_url, migrate=False).engine)
    config = AlembicConfig()
    config.set_main_option("script_location", "kiosk/recorder/migrations")
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
    records = synthetic_stream(seed=9)
    with store.engine.begin() as connection:
        connection.execute(insert(Event), records)
    store.migrate()
    first, last, tz = date(2026, 5, 29), date(2026, 6, 1), ZoneInfo("Asia/Tokyo")
    start_ms, end_ms = range_ms(first, last, tz)
    events_ = [as_report_event(r) for r in records]
    assert store.gaps(start_ms, end_ms, 180_000, now_ms=end_ms) == silences(events_, 180_000, start_ms, end_ms, end_ms)
    heartbeats = sum(1 for r in records if r["kind"] == "heartbeat" and start_ms <= r["ts_ms"] < end_ms)
    assert sum(t.n for t in store.report_inputs(first, last, tz).tallies if t.kind == "heartbeat") == heartbeats
