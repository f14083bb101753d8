"""`kiosk watch` against a real broker: live events, presence, the open-call table, bad payloads survive."""

import signal
import subprocess
import sys
import threading

import pytest

from kiosk import events
from kiosk.cli.watch import WatchState
from kiosk.config import config_from_dict
from kiosk.effects import Call
from kiosk.link import EventLink
from kiosk.messages import LinkChanged
from tests.test_link import Posted, wait_until


def test_describe_tracks_presence_and_calls():
    state = WatchState("kiosk")
    line = state.describe("kiosk/s1/k1/status", events.encode(events.status_payload(
        False, kiosk="k1", site="s1", catalogue_version="c", details={"reason": "lost"})))
    assert "offline" in line.plain and "lost" in line.plain and state.online == {"s1/k1": False}
    call = Call(id="c1", reason="staff_code", code="101", audience="staff", since=events.timestamp())
    line = state.describe("kiosk/s1/k1/call", events.encode(events.call_payload(call, kiosk="k1", site="s1")))
    assert "CALL OPEN" in line.plain and "101" in line.plain and "s1/k1" in state.calls
    assert state.describe("kiosk/s1/k1/call", b"").plain.endswith("no open call") and state.calls == {}
    assert "unreadable" in state.describe("kiosk/s1/k1/event/precheck", b"\xff{").plain
    assert state.describe("elsewhere/x", b"{}") is None
    reply = events.response_payload("c1", False, "nope", kiosk="k1", error="replayed")
    assert "ERROR replayed" in state.describe("kiosk/s1/reply/console", events.encode(reply)).plain


def test_describe_shows_console_presence_and_never_takes_a_console_for_a_kiosk():
    state = WatchState("kiosk")
    topic = events.presence_topic("kiosk", "s1", "console-ab12")
    online = events.encode(events.presence_payload(True, console="console-ab12", sites=["s1", "s2"], role="console",
                                                   listeners=2))
    assert "console online, 2 listening" in state.describe(topic, online).plain
    assert state.consoles == {"s1/console-ab12": True}
    unheard = events.encode(events.presence_payload(True, console="console-ab12", sites=["s1"], role="console"))
    assert "console online, nobody listening" in state.describe(topic, unheard).plain
    offline = events.encode(events.presence_payload(False, console="console-ab12", sites=["s1"], role="console"))
    assert "console offline" in state.describe(topic, offline).plain and state.online == {}
    assert "unreadable" in state.describe(topic, b"[1]").plain
    assert state.describe("kiosk/s1/console/status", b"{}") is None  # never a kiosk named "console"


@pytest.mark.mqtt
def test_watch_prints_live_events_and_open_calls(mosquitto, tmp_path):
    config_file = tmp_path / "config.toml"
    config_file.write_text('[kiosk]\nid = "k1"\nsite = "s1"\n')
    watch = subprocess.Popen([sys.executable, "-m", "kiosk", "--config", str(config_file), "watch",
                              "--broker", mosquitto.url, "--state-dir", str(tmp_path)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={"COLUMNS": "160", "PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"})
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(watch.stdout), daemon=True)
    reader.start()
    posted = Posted()
    link = EventLink(config_from_dict({"kiosk": {"id": "k1", "site": "s1", "state_dir": str(tmp_path / "s")},
                                       "mqtt": {"url": mosquitto.url}}), "cat", posted)
    try:
        assert wait_until(lambda: any("connected" in line for line in lines), timeout=30), lines
        link.start()
        posted.next(LinkChanged)
        link.emit("precheck", {"outcome": "smartphone_mismatch", "code": None, "hints": []})
        link.set_call(Call(id="c7", reason="patient_request", code=None, audience="patient",
                           since=events.timestamp()))
        link.emit("call", {"call_id": "c7", "reason": "patient_request", "code": None, "audience": "patient"})
        link.set_call(None)

        def shown() -> bool:  # the call opened, then cleared (the link also re-publishes its status meanwhile)
            out = "".join(lines)
            return ("precheck outcome=smartphone_mismatch" in out and "CALL OPEN patient_request" in out
                    and out.rfind("no open call") > out.find("CALL OPEN patient_request"))

        assert wait_until(shown, timeout=30), lines
        watch.send_signal(signal.SIGINT)  # Ctrl-C: how a person stops it
        watch.wait(timeout=30)
        reader.join(5)
    finally:
        link.stop()
        if watch.poll() is None:
            watch.kill()
    out = "".join(lines)
    assert watch.returncode == 130, watch.stderr.read()  # interrupted by the user: no traceback
    assert "Traceback" not in watch.stderr.read()
    assert "s1/k1" in out and "● online" in out
    assert "open calls: 1" in out and "open calls: 0" in out


def test_describe_survives_deeply_nested_and_huge_payloads():
    """Nothing on the broker may stop `kiosk watch`: nesting and size are checked before the JSON parser."""
    state = WatchState("kiosk")
    for payload in (b"[" * 100_000, b"[" * 5_000 + b"]" * 5_000, b'{"a":' * 3_000, b'"' + b"x" * 200_000 + b'"'):
        assert "unreadable" in state.describe("kiosk/s1/k1/status", payload).plain
        assert "unreadable" in state.describe(events.presence_topic("kiosk", "s1", "console-1"), payload).plain
