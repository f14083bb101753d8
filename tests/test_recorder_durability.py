"""Nothing lost between kiosk, broker and store, on real mosquitto with the shipped persistence settings:

- recorder stopped, the real kiosk link publishing, broker SIGKILLed and restarted, recorder back → the
  recorder's session and every event saved before the crash survive, and the newest ones the broker had not
  saved yet (at most autosave_interval - 1 changes with the shipped configs) come back from the kiosk through
  resend_events: every event stored exactly once (docs/history.md "Broker durability");
- a broker without persistence (everything lost, the recorder's session too) → still every event once, all
  of them resent by the kiosk, in pages; a `call` event that expired (MQTT v5 message expiry) in the queue of
  an absent recorder comes back the same way;
- `kiosk recorder` SIGKILLed mid-burst and restarted → every event exactly once;
- scale-out: two facility brokers bridged (systemd/mosquitto/samples/bridge.conf) to a central broker, one
  central recorder writing to a real PostgreSQL → events of both sites once each, reports filter by site.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from kiosk.recorder.store import open_store
from tests.test_recorder import (
    connected_recorder,
    event_message,
    make_recorder,
    publish,
    recorder_with_ten_events,
    stored_ids,
    wait_for,
)

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
MOSQUITTO = ROOT / "systemd" / "mosquitto"
_NOT_FOR_TESTS = re.compile(r"^(listener|password_file|acl_file|allow_anonymous|cafile|certfile|keyfile|"
                            r"tls_version|require_certificate|per_listener_settings)\b")


def shipped_persistence(name: str, every_change: bool = False) -> str:
    """The shipped broker config without its listeners, accounts and TLS: what a crash test should keep
    (`every_change`: with autosave_interval 1 instead, the strict choice)."""
    lines = (MOSQUITTO / name).read_text().splitlines()
    kept = [line for line in lines if line.strip() and not line.startswith("#") and not _NOT_FOR_TESTS.match(line)]
    if every_change:
        kept = [("autosave_interval 1" if line.startswith("autosave_interval ") else line) for line in kept]
    return ("listener {port} 127.0.0.1\nallow_anonymous true\npersistence_location {dir}/\nlog_dest stderr\n"
            + "\n".join(kept) + "\n")


def link(broker_url: str, state_dir: Path, kiosk: str = "k1", site: str = "site-1"):
    from kiosk.config import config_from_dict
    from kiosk.link import EventLink

    config = config_from_dict({"kiosk": {"id": kiosk, "site": site, "state_dir": str(state_dir)},
                               "mqtt": {"url": broker_url, "heartbeat_seconds": 3600}})
    return EventLink(config, "test", lambda _message: None)


def emit(link_, n: int, start: int = 0) -> list[str]:
    return [link_.emit("lookup", {"code": f"{(start + i) % 1000:03d}", "known": False, "audience": None,
                                  "outage": None}) for i in range(n)]


@pytest.mark.parametrize(("config", "every_change"), [("kiosk.conf", False), ("samples/facility.conf", False),
                                                     ("kiosk.conf", True)])
def test_broker_crash_while_the_recorder_is_away_keeps_the_session_and_what_was_saved(config, every_change,
                                                                                     mosquitto_factory, tmp_path):
    """Without resend_events the newest events the broker had not saved are lost (up to autosave_interval - 1);
    with persistence off or mosquitto's default autosave (every 30 min) the recorder's session is gone too and
    the events after the crash only come back from the kiosk."""
    broker = mosquitto_factory(shipped_persistence(config, every_change))
    store = open_store(f"sqlite:///{tmp_path / 'h.sqlite3'}")
    connected_recorder(broker, store).stop()  # its session is on the broker; the recorder is away

    kiosk = link(broker.url, tmp_path / "kiosk")
    kiosk.start()
    before = emit(kiosk, 150)
    wait_for(lambda: kiosk.stats().backlog == 0, what="the kiosk's outbox drained (every PUBACK in)")
    broker.kill()  # SIGKILL: no clean save
    broker.start()
    after = emit(kiosk, 50, 150)
    wait_for(lambda: kiosk.stats().backlog == 0 and kiosk.stats().connected, what="outbox drained again")

    recorder = make_recorder(broker, store)  # the kiosk keeps running, as in a clinic
    recorder.start()
    wait_for(lambda: store.count() >= len(before) + len(after), timeout=30, what="every event stored")
    time.sleep(1.0)  # anything more would be a duplicate row: there is none, the id is unique
    recorder.stop()
    kiosk.stop()
    stored = stored_ids(store)
    assert len(stored) == len(set(stored)) and set(stored) == set(before + after)


def test_a_broker_that_loses_everything_still_loses_no_event(mosquitto_factory, tmp_path):
    """Persistence off: the crash takes the recorder's session and every queued event. The kiosk's online
    status says how far the broker acknowledged (sent_seq), the recorder asks, the kiosk resends all of
    them (three pages of at most 48 KiB): each stored once. Fails without resend_events (nothing stored)."""
    broker = mosquitto_factory("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    store = open_store(f"sqlite:///{tmp_path / 'h.sqlite3'}")
    kiosk = link(broker.url, tmp_path / "kiosk")
    kiosk.start()
    sent = emit(kiosk, 400)
    wait_for(lambda: kiosk.stats().backlog == 0, what="the kiosk's outbox drained (every PUBACK in)")
    broker.kill()
    broker.start()
    wait_for(lambda: kiosk.stats().connected, what="the kiosk reconnected")

    recorder = make_recorder(broker, store)  # a brand-new session: the broker holds nothing for it
    recorder.start()
    wait_for(lambda: store.count() >= len(sent), timeout=30, what="every event stored")
    time.sleep(1.0)
    assert recorder.stats().resent >= len(sent) and recorder.stats().rejected == 0
    recorder.stop()
    kiosk.stop()
    stored = stored_ids(store)
    assert sorted(stored) == sorted(sent)


def test_a_call_event_that_expired_in_the_recorders_queue_comes_back_from_the_kiosk(mosquitto, tmp_path,
                                                                                   monkeypatch):
    """A `call` event carries an MQTT v5 message expiry (kiosk.link.CALL_EVENT_TTL, 900 s: a stale call must not
    ring a console that connects later), so the broker discards it from the queue of a recorder away longer than
    that. The events around it arrive; the hole in seq makes the recorder ask, and the kiosk resends it."""
    import kiosk.link

    monkeypatch.setattr(kiosk.link, "CALL_EVENT_TTL", 1.0)
    store = open_store(f"sqlite:///{tmp_path / 'h.sqlite3'}")
    connected_recorder(mosquitto, store).stop()  # its session is on the broker; the recorder is away

    kiosk = link(mosquitto.url, tmp_path / "kiosk")
    kiosk.start()
    sent = [*emit(kiosk, 1), kiosk.emit("call", {"call_id": "c1", "reason": "patient_request", "code": None,
                                                "audience": "patient", "consoles_online": 0}), *emit(kiosk, 1, 1)]
    wait_for(lambda: kiosk.stats().backlog == 0, what="the kiosk's outbox drained")
    time.sleep(2.0)  # the call event's expiry passes while it waits in the recorder's queue

    recorder = make_recorder(mosquitto, store)
    recorder.start()
    wait_for(lambda: store.count() >= len(sent), timeout=30, what="every event stored")
    assert recorder.stats().resent >= 1
    recorder.stop()
    kiosk.stop()
    assert sorted(stored_ids(store)) == sorted(sent)


def test_a_database_that_goes_away_loses_nothing_and_stops_nothing(mosquitto, tmp_path):
    """PostgreSQL stopped under a running recorder (its own cluster, not the session's): writes fail with a clear
    last_error, nothing is acknowledged, the first events of a kiosk it has never seen cannot even be checked for
    gaps; the recorder keeps running, and once the database is back every event is stored once."""
    from tests.rigs.postgres import Postgres, pg_bin

    bindir = pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (Debian package postgresql)")
    server = Postgres(bindir).start()
    try:
        store = open_store(server.create_database())
        recorder, first = recorder_with_ten_events(mosquitto, store)

        server.stop()
        during = [event_message(n) for n in range(11, 21)] + [event_message(n, kiosk="k2") for n in range(1, 6)]
        publish(mosquitto, [(t, p) for t, p, _ in during])
        wait_for(lambda: (recorder.stats().last_error or "").startswith("history store write failed"),
                 what="the failed write reported")
        server.start()
        wait_for(lambda: store.count() == 25 and recorder.stats().pending == 0, timeout=60,
                 what="everything stored once the database is back")
        assert recorder.stats().last_error is None and recorder.stats().rejected == 0
        recorder.stop()
        assert sorted(stored_ids(store)) == sorted(i for *_, i in first + during)
        store.close()
    finally:
        server.remove()


def test_recorder_killed_mid_burst_stores_every_event_once(mosquitto_factory, tmp_path):
    broker = mosquitto_factory(shipped_persistence("kiosk.conf"))
    url = f"sqlite:///{tmp_path / 'h.sqlite3'}"
    config = tmp_path / "config.toml"
    config.write_text(f'[mqtt]\nurl = "{broker.url}"\n[recorder]\ndatabase = "{url}"\nclient_id = "rec-kill"\n')

    def start() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "kiosk", "--config", str(config), "recorder"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    store = open_store(url)
    proc = start()
    try:
        wait_for(lambda: " as rec-kill " in broker.log(), what="the recorder connected")
        time.sleep(0.5)  # and subscribed: its session exists
        messages = [event_message(n) for n in range(1, 3001)]
        publish(broker, [(t, p) for t, p, _ in messages[:1500]])
        wait_for(lambda: store.count() > 0, what="the burst is being stored")
        os.kill(proc.pid, signal.SIGKILL)  # mid-burst: some stored and not yet acknowledged
        proc.wait()
        publish(broker, [(t, p) for t, p, _ in messages[1500:]])
        proc = start()
        wait_for(lambda: store.count() >= 3000, timeout=60, what="3000 events stored")
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(20)
    assert sorted(stored_ids(store)) == sorted(i for *_, i in messages)


def bridge_config(site: str, central_port: int) -> str:
    """samples/bridge.conf pointed at the central test broker (plain TCP, no account) for `site`."""
    text = (MOSQUITTO / "samples" / "bridge.conf").read_text().replace("site-1", site)
    text = re.sub(r"^address .*$", f"address 127.0.0.1:{central_port}", text, flags=re.M)
    text = re.sub(r"^(remote_username|remote_password|bridge_cafile|bridge_insecure) .*\n", "", text, flags=re.M)
    return "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n" + text


def test_two_facilities_bridged_to_a_central_recorder_on_postgresql(mosquitto_factory, postgres_url, tmp_path):
    from kiosk.recorder import report_from_store as make_report

    central = mosquitto_factory(shipped_persistence("samples/facility.conf"))
    facilities = {site: mosquitto_factory(bridge_config(site, central.port)) for site in ("east", "west")}
    store = open_store(postgres_url)
    recorder = make_recorder(central, store, sites=["+"], client_id="central-recorder")
    recorder.start()
    wait_for(lambda: recorder.stats().connected, what="central recorder connected")
    for broker in facilities.values():
        wait_for(lambda b=broker: "Connecting bridge" in b.log(), what="bridge connecting")
    time.sleep(2)  # the bridges connect and subscribe

    ids: dict[str, list[str]] = {}
    kiosks = []
    for site, broker in facilities.items():
        for number in (1, 2):
            kiosk = link(broker.url, tmp_path / f"{site}-{number}", kiosk=f"k{number}", site=site)
            kiosk.start()
            kiosks.append(kiosk)
            ids.setdefault(site, []).extend(emit(kiosk, 40 if site == "east" else 25))
    for kiosk in kiosks:
        wait_for(lambda k=kiosk: k.stats().backlog == 0, what="outboxes drained")
        kiosk.stop()
    wait_for(lambda: store.count() >= 130, timeout=30, what="130 events at the centre")
    recorder.stop()
    assert sorted(stored_ids(store)) == sorted(ids["east"] + ids["west"])
    assert store.sites() == ["east", "west"]
    tz = ZoneInfo("Asia/Tokyo")
    first, last = date.today() - timedelta(days=1), date.today() + timedelta(days=1)
    east = make_report(store, first, last, tz, ["east"], 180)
    both = make_report(store, first, last, tz, None, 180)
    assert east["total"]["events"]["lookup"] == 80 and both["total"]["events"]["lookup"] == 130
