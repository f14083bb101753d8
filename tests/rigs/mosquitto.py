"""Real mosquitto on a free loopback port with a generated config, stopped by PID.

Fixtures:
- `mosquitto`: a plain anonymous broker -> Broker (`.host`, `.port`, `.url`, `.stop()`, `.start()`, `.kill()`)
- `mosquitto_factory(config=None, files=None)`: a broker from a custom config template; `{port}`, `{port2}`
  (a second free port) and `{dir}` (its own directory, holding `files`) are filled in.
- `mqtt_listener(broker, *filters, **tls)`: a v5 client collecting every message (Received) until teardown.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DEFAULT_CONFIG = """
listener {port} 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 100000
log_dest stderr
log_type error
log_type warning
log_type notice
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Broker:
    """One mosquitto process; the port stays the same across stop()/start()."""

    host = "127.0.0.1"

    def __init__(self, directory: Path, config: str, files: dict[str, str | bytes] | None = None):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port, self.port2 = free_port(), free_port()
        for name, content in (files or {}).items():
            path = self.dir / name
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
            path.chmod(0o600)
        self.config_path = self.dir / "mosquitto.conf"
        text = config.format(port=self.port, port2=self.port2, dir=self.dir)
        if os.geteuid() == 0 and not re.search(r"^user ", text, re.M):
            text += "\nuser root\n"  # else it drops to `mosquitto`, which cannot read pytest's tmp dirs
        self.config_path.write_text(text)
        self.log_path = self.dir / "mosquitto.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self) -> Broker:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.config_path)], stdout=log, stderr=log,
                                     cwd=self.dir)  # relative files (e.g. mosquitto.db) land here
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited {self.proc.returncode}:\n{self.log()}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not listen on {self.port}:\n{self.log()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def mosquitto_factory(tmp_path_factory) -> Iterator[Callable[..., Broker]]:
    if shutil.which("mosquitto") is None:
        pytest.skip("mosquitto is not installed (Debian package mosquitto)")
    brokers: list[Broker] = []

    def make(config: str = DEFAULT_CONFIG, files: dict[str, str | bytes] | None = None,
             start: bool = True) -> Broker:
        broker = Broker(tmp_path_factory.mktemp("mosquitto"), config, files)
        brokers.append(broker)
        return broker.start() if start else broker

    yield make
    for broker in brokers:
        broker.stop()


@pytest.fixture
def mosquitto(mosquitto_factory) -> Broker:
    return mosquitto_factory()


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    properties: object = None


@dataclass
class Listener:
    """Collects messages on a paho v5 client; `wait(pred)` blocks until pred(messages) is true."""

    client: object
    messages: list[Received] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def wait(self, pred: Callable[[list[Received]], bool], timeout: float = 10.0) -> list[Received]:
        with self.cond:
            if not self.cond.wait_for(lambda: pred(self.messages), timeout):
                raise AssertionError(f"timed out; got {len(self.messages)} messages, last "
                                     f"{[(m.topic, m.payload[:80]) for m in self.messages[-5:]]}")
            return list(self.messages)

    def on(self, topic: str) -> list[Received]:
        with self.cond:
            return [m for m in self.messages if m.topic == topic]


@pytest.fixture
def mqtt_listener():
    import paho.mqtt.client as mqtt

    clients = []

    def listen(broker: Broker, *filters: str, ca_file: str | None = None, username: str | None = None,
               password: str | None = None, port: int | None = None) -> Listener:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTProtocolVersion.MQTTv5)
        listener = Listener(client)
        subscribed = threading.Event()

        def on_message(_c, _u, msg):
            with listener.cond:
                listener.messages.append(Received(msg.topic, msg.payload, bool(msg.retain), msg.properties))
                listener.cond.notify_all()

        def on_connect(c, _u, _f, reason, _p):
            if not reason.is_failure:
                c.subscribe([(f, 1) for f in filters])

        client.on_message = on_message
        client.on_connect = on_connect
        client.on_subscribe = lambda *a: subscribed.set()
        if ca_file:
            client.tls_set(ca_certs=ca_file, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        if username:
            client.username_pw_set(username, password)
        client.connect(broker.host, port or broker.port)
        client.loop_start()
        clients.append(client)
        assert subscribed.wait(5), "listener could not subscribe"
        return listener

    yield listen
    for client in clients:
        client.disconnect()
        client.loop_stop()
