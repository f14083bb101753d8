"""Hostile and broken commands on the network against a real kiosk: `kiosk run --headless` (simulated reader)
over a real mosquitto, attacked the way anyone on the facility LAN could.

Hypothesis-generated `cmd` messages (deep nesting, huge strings, wrong types, wildcard and foreign response
topics, odd correlation data, retained), a flood of commands, retained commands and response-topic checks;
after each, the kiosk still answers a valid command and still delivers a new event (`Probe.answered`), and
the journal got a bounded number of lines. Link supervision runs the real Runtime + EventLink in this process:
a link thread that dies (or fails) says "offline" at once and is back within seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from kiosk import events

pytestmark = pytest.mark.mqtt
KIOSK, SITE = "k1", "s1"
TOPICS = events.Topics("kiosk", SITE, KIOSK)
CLIENT = "tester"
REPLY_TO = events.reply_topic("kiosk", SITE, CLIENT)  # kiosk/s1/reply/to/tester


class Probe:
    """One MQTT v5 client that sends (hostile and valid) commands and sees everything under kiosk/#."""

    def __init__(self, broker, subscribe: str | None = "kiosk/#"):
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTProtocolVersion.MQTTv5)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.messages: list[mqtt.MQTTMessage] = []
        self.cond = threading.Condition()
        self.rounds = 0
        self.connected = threading.Event()
        ready = threading.Event()
        self.client.on_message = self._received
        self.client.on_connect = lambda c, *_: (self.connected.set(), c.subscribe(subscribe, qos=1) if subscribe
                                                else ready.set())
        self.client.on_disconnect = lambda *_: self.connected.clear()
        self.client.on_subscribe = lambda *_: ready.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert ready.wait(5)

    def _received(self, _client, _userdata, message) -> None:
        with self.cond:
            self.messages.append(message)
            self.cond.notify_all()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def wait(self, pred, timeout: float = 15.0):
        with self.cond:
            found: list = []
            ok = self.cond.wait_for(lambda: found.extend(m for m in self.messages if pred(m)) or found, timeout)
            assert ok, f"nothing matched in {len(self.messages)} messages: " \
                       f"{[(m.topic, m.payload[:60]) for m in self.messages[-5:]]}"
            return found[0]

    def on(self, topic: str) -> list:
        with self.cond:
            return [m for m in self.messages if m.topic == topic]

    def send(self, payload: bytes, *, response_topic: str | None = REPLY_TO, correlation: bytes | None = None,
             retain: bool = False, topic: str = TOPICS.cmd) -> None:
        properties = Properties(PacketTypes.PUBLISH)
        if response_topic is not None:
            properties.ResponseTopic = response_topic
        if correlation is not None:
            properties.CorrelationData = correlation
        info = self.client.publish(topic, payload, qos=1, retain=retain, properties=properties)
        info.wait_for_publish(10)

    def send_hostile(self, **message) -> None:
        """Like `send`; a broker that drops this connection for what it sent (malformed UTF-8 in a property …)
        is the broker's right: reconnect and go on."""
        assert self.connected.wait(10), "the attacker could not reconnect"
        with contextlib.suppress(RuntimeError, ValueError, OSError):
            self.send(**message)

    def command(self, name: str, args: dict | None = None, *, retain: bool = False) -> dict:
        """A valid command; its answer (the response with this command's correlation data)."""
        correlation = events.new_id().encode()
        self.send(events.encode(events.command_payload(name, args, kiosk=KIOSK)), correlation=correlation,
                  retain=retain)
        answer = self.wait(lambda m: m.topic == REPLY_TO
                           and getattr(m.properties, "CorrelationData", None) == correlation)
        return json.loads(answer.payload)

    def answered(self) -> None:
        """The kiosk is not silenced: a valid command is answered, and the new event it causes is delivered."""
        self.rounds += 1
        self.command("outage_leave")  # whatever the fuzz left: out of outage mode
        code = f"{900 + self.rounds % 100:03d}"
        with self.cond:
            mark = len(self.messages)
        assert self.command("outage_enter", {"code": code})["ok"] is True
        event = self.wait(lambda m: m.topic == TOPICS.event("outage_entered") and m in self.messages[mark:])
        assert json.loads(event.payload)["data"]["code"] == code
        assert self.command("outage_leave")["ok"] is True


def write_config(tmp_path: Path, broker) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[kiosk]\nid = "{KIOSK}"\nsite = "{SITE}"\nstate_dir = "{tmp_path / "state"}"\n'
                    f'[reader]\nbackend = "sim"\n[mqtt]\nurl = "{broker.url}"\n')
    return path


class KioskProcess:
    """`kiosk run --headless` as systemd runs it, its stderr (the journal) in a file."""

    def __init__(self, config: Path, log: Path):
        self.config, self.log_path = config, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> KioskProcess:
        env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock", "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "kiosk", "--config", str(self.config), "run",
                                          "--headless"], stdout=log, stderr=log, env=env)
        return self

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def kiosk(tmp_path, mosquitto):
    """A running headless kiosk and a probe subscribed to everything it says."""
    probe = Probe(mosquitto)
    process = KioskProcess(write_config(tmp_path, mosquitto), tmp_path / "kiosk.log").start()
    probe.wait(lambda m: m.topic == TOPICS.status and json.loads(m.payload or b"{}").get("state") == "online",
               timeout=60)
    yield process, probe
    assert process.stop() == 0, process.log()[-3000:]
    probe.close()
    assert "Traceback" not in process.log()


@pytest.fixture
def attacker(mosquitto):
    """A second connection for hostile messages (the broker may cut it off; the probe's stays up)."""
    client = Probe(mosquitto, subscribe=None)
    yield client
    client.close()


# --- generated commands --------------------------------------------------------------------------------

# Control characters and noncharacters are left out: mosquitto cuts off a client whose response topic holds one
# (the broker's own defence), which would test the broker, not the kiosk.
TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cn", "Co")), max_size=40)
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
                    max_leaves=12)
HUGE = st.integers(1, 300_000).map(lambda n: "x" * n)  # strings up to 300 KB (limit: 4 KB a command)
ID_LIKE = st.sampled_from(["ok-1", "", "a" * 65, "../x", "+", "#", "a b"]) | TEXT | HUGE | JSON
COMMAND_LIKE = st.fixed_dictionaries(
    {"id": ID_LIKE, "name": st.sampled_from([*events.COMMAND_NAMES, "", "shutdown"]) | JSON,
     "kiosk": st.sampled_from([KIOSK, "k2", ""]) | JSON},
    optional={"args": JSON | st.fixed_dictionaries({}, optional={"call_id": ID_LIKE, "seconds": JSON,
                                                                 "code": JSON | st.just("0")}),
              "time": JSON | HUGE, "schema_version": st.sampled_from([1, 2, "1", None]), "extra": JSON},
).map(lambda doc: json.dumps(doc).encode())
NESTED = st.tuples(st.integers(17, 20_000), st.sampled_from(["[", "{\"a\":"]), st.booleans()).map(
    lambda t: (t[1] * t[0] + ("" if t[2] else ("]" if t[1] == "[" else "}") * t[0])).encode())
PAYLOADS = COMMAND_LIKE | NESTED | st.binary(max_size=300) | JSON.map(lambda v: json.dumps(v).encode()) \
    | HUGE.map(lambda s: json.dumps({"id": s, "name": "lamp_test", "kiosk": KIOSK}).encode())
RESPONSE_TOPICS = st.sampled_from([
    REPLY_TO, None, "", f"kiosk/{SITE}/reply/#", f"kiosk/{SITE}/reply/to/+", f"kiosk/{SITE}/reply/to/#",
    f"kiosk/+/reply/to/{CLIENT}", f"kiosk/{SITE}/reply/to/{CLIENT}/deeper", f"kiosk/{SITE}/reply/status",
    f"kiosk/s2/reply/to/{CLIENT}", f"other/{SITE}/reply/to/{CLIENT}", TOPICS.status, TOPICS.cmd, "#",
]) | TEXT | st.integers(100, 2000).map(lambda n: f"kiosk/{SITE}/reply/to/" + "x" * n)
HOSTILE = st.fixed_dictionaries({"payload": PAYLOADS, "response_topic": RESPONSE_TOPICS,
                                 "correlation": st.none() | st.binary(max_size=600), "retain": st.booleans()})


@pytest.mark.slow
@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(batch=st.lists(HOSTILE, min_size=1, max_size=6))
def test_no_generated_command_silences_the_kiosk(kiosk, attacker, batch):
    process, probe = kiosk
    for message in batch:
        attacker.send_hostile(**message)  # acknowledged by the broker: routed to the kiosk before the probe
    probe.answered()
    if any(message["retain"] for message in batch):  # a retained command stays on the broker: cleared
        probe.send(b"", response_topic=None, retain=True)
    assert process.proc.poll() is None


def test_a_flood_of_commands_costs_a_few_log_lines_and_silences_nothing(kiosk):
    process, probe = kiosk
    lines_before = len(process.log().splitlines())
    for n in range(1500):
        probe.client.publish(TOPICS.cmd, b"{not json" if n % 3 else b"[" * 5000, qos=1, properties=_reply_to())
    for _ in range(1500):  # valid, each with its own id: every one goes into the replay table
        info = probe.client.publish(TOPICS.cmd, events.encode(events.command_payload("outage_leave", kiosk=KIOSK)),
                                    qos=1, properties=_reply_to())
    info.wait_for_publish(30)
    probe.answered()
    refusals = [line for line in process.log().splitlines()[lines_before:] if "command refused" in line]
    assert 1 <= len(refusals) <= 4  # one line per kind of problem per minute, with the count held back
    answers = [json.loads(m.payload) for m in probe.on(REPLY_TO)]
    assert sum(a["error"] == "not_json" for a in answers) >= 900  # every bad one answered, none executed


def _reply_to() -> Properties:
    properties = Properties(PacketTypes.PUBLISH)
    properties.ResponseTopic = REPLY_TO
    return properties


def test_retained_commands_are_refused_and_never_run_also_after_a_restart(kiosk):
    process, probe = kiosk
    answer = probe.command("outage_enter", {"code": "950"}, retain=True)
    assert (answer["ok"], answer["error"]) == (False, "retained")
    process.stop()  # the retained command is still on the broker: the new kiosk receives it when it subscribes
    offline_at = len(probe.messages)
    process.start()
    probe.wait(lambda m: m.topic == TOPICS.status and json.loads(m.payload or b"{}").get("state") == "online"
               and m in probe.messages[offline_at:], timeout=60)
    again = probe.wait(lambda m: m.topic == REPLY_TO and m in probe.messages[offline_at:]
                       and json.loads(m.payload).get("error") == "retained")
    assert json.loads(again.payload)["ok"] is False
    assert probe.on(TOPICS.event("outage_entered")) == []  # never run
    probe.send(b"", response_topic=None, retain=True)
    probe.answered()


def test_responses_go_only_to_a_concrete_reply_topic_of_the_kiosks_own_site(kiosk):
    _, probe = kiosk
    refused = [f"kiosk/{SITE}/reply/#", f"kiosk/{SITE}/reply/to/+", f"kiosk/{SITE}/reply/status",
               f"kiosk/{SITE}/reply/to/{CLIENT}/deeper", f"kiosk/s2/reply/to/{CLIENT}", f"other/{SITE}/reply/to/x",
               TOPICS.status, f"kiosk/{SITE}/k2/status"]
    for topic in refused:
        probe.send(events.encode(events.command_payload("outage_enter", {"code": "950"}, kiosk=KIOSK)),
                   response_topic=topic, correlation=b"refused")
    probe.answered()
    replies = [m for m in probe.messages if getattr(m.properties, "CorrelationData", None) == b"refused"
               and m.topic != TOPICS.cmd]  # (the probe sees its own commands too)
    assert replies == []  # nothing published anywhere for a refused response topic ...
    outage = [json.loads(m.payload)["data"]["code"] for m in probe.on(TOPICS.event("outage_entered"))]
    assert "950" not in outage  # ... and the command not run
    assert all(m.topic.startswith(f"kiosk/{SITE}/reply/to/") for m in probe.messages if "/reply/" in m.topic)


# --- supervision: the real Runtime and EventLink in this process --------------------------------------------

class LinkKilled(BaseException):
    """Ends the link thread outright (what `except Exception` cannot catch: the supervisor's case)."""


@pytest.fixture
def supervised(tmp_path, mosquitto):
    """A headless Runtime (sim reader) whose EventLink runs `fault` (when set) on its next loop turn — the
    link's documented per-turn hook (`on_turn`, the watchdog beat) is the boundary where the fault goes in."""
    from hardware.readers.sim import SimReader
    from kiosk.catalogue import load_catalogue
    from kiosk.config import Config
    from kiosk.link import EventLink
    from kiosk.runtime import Runtime
    from tests.test_runtime import RecordingScreen

    config = Config.model_validate({"kiosk": {"id": KIOSK, "site": SITE, "state_dir": str(tmp_path / "state")},
                                    "reader": {"backend": "sim"}, "mqtt": {"url": mosquitto.url}})
    fault: list[BaseException] = []

    def link_factory(version, post, on_turn):
        def turn():
            on_turn()
            if fault:
                raise fault.pop()

        return EventLink(config, version, post, on_turn=turn)

    probe = Probe(mosquitto)
    runtime = Runtime(config, reader=SimReader(), catalogue_loader=load_catalogue, screen=RecordingScreen(),
                      link_factory=link_factory)
    thread = threading.Thread(target=runtime.run, name="kiosk-main")
    thread.start()
    probe.wait(lambda m: m.topic == TOPICS.status and json.loads(m.payload or b"{}").get("state") == "online")
    yield runtime, probe, fault
    runtime.stop()
    thread.join(15)
    probe.close()
    assert not thread.is_alive()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the killed thread's end
@pytest.mark.parametrize("fault", [LinkKilled("thread ended"), RuntimeError("a bug in the link")],
                         ids=["thread-dies", "thread-fails"])
def test_a_link_that_dies_says_offline_at_once_and_is_back_within_seconds(supervised, fault):
    runtime, probe, faults = supervised
    old_thread = runtime.link._thread
    mark = len(probe.messages)
    faults.append(fault)
    failed = probe.wait(lambda m: m.topic == TOPICS.status and m in probe.messages[mark:]
                        and json.loads(m.payload).get("details") == {"reason": "link_failed"}, timeout=5)
    assert json.loads(failed.payload)["state"] == "offline"
    after = probe.messages.index(failed)
    probe.wait(lambda m: m.topic == TOPICS.status and m in probe.messages[after:]
               and json.loads(m.payload).get("state") == "online", timeout=10)  # far below WatchdogSec=30
    assert runtime.link.alive and (runtime.link._thread is not old_thread) == isinstance(fault, LinkKilled)
    probe.answered()
    assert runtime.watchdog.stale_workers() == []  # the watchdog still watches: beats resumed
