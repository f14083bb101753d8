"""`kiosk run --headless` as systemd runs it (Type=notify, WatchdogSec): a real notify socket, a real broker."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.mqtt

KIOSK = Path(sys.executable).parent / "kiosk"


class NotifySocket:
    """Stands in for systemd: collects every datagram the service sends, with arrival times."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[tuple[float, str]] = []

    def wait_for(self, text: str, timeout: float, after: float = 0.0) -> float:
        """Arrival time of the first `text` after `after`; fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            for arrived, message in self.messages:
                if arrived > after and text in message.splitlines():
                    return arrived
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {text!r} within {timeout} s; got {self.messages}"
            self.sock.settimeout(remaining)
            with contextlib.suppress(TimeoutError):
                self.messages.append((time.monotonic(), self.sock.recv(4096).decode()))

    def count(self, text: str, after: float = 0.0) -> int:
        return sum(1 for arrived, message in self.messages if arrived > after and text in message.splitlines())


@pytest.fixture
def service(tmp_path, mosquitto):
    """The kiosk started the way kiosk.service starts it, with a 2 s watchdog."""
    config = tmp_path / "config.toml"
    config.write_text(
        f'[kiosk]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[reader]\nbackend = "sim"\n'
        f'[mqtt]\nurl = "{mosquitto.url}"\n'
    )
    notify = NotifySocket(tmp_path / "notify")
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "2000000"}
    log = tmp_path / "kiosk.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [str(KIOSK), "--config", str(config), "run", "--headless"],
            env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )
    process.log = log
    yield process, notify, mosquitto
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)
    notify.sock.close()


def test_ready_once_watchdog_pings_survive_a_broker_outage_and_stop_is_clean(service):
    process, notify, broker = service
    ready = notify.wait_for("READY=1", timeout=60)
    first_ping = notify.wait_for("WATCHDOG=1", timeout=10, after=ready)
    notify.wait_for("WATCHDOG=1", timeout=10, after=first_ping)

    # The broker going away is an outage, not a hang: the MQTT worker keeps beating, systemd must not restart.
    broker.stop()
    outage = time.monotonic()
    last = notify.wait_for("WATCHDOG=1", timeout=10, after=outage + 2.5)
    broker.start()
    notify.wait_for("WATCHDOG=1", timeout=10, after=last)

    process.send_signal(signal.SIGTERM)  # what `systemctl stop` sends
    notify.wait_for("STOPPING=1", timeout=20)
    assert process.wait(timeout=20) == 0, process.log.read_text()
    assert notify.count("READY=1") == 1
