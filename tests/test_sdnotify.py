"""kiosk.sdnotify against a real AF_UNIX datagram socket standing in for systemd's notify socket."""

import os
import socket
import threading
import time

import pytest

from kiosk.sdnotify import Notifier, Watchdog


@pytest.fixture
def systemd_socket(tmp_path):
    """A bound datagram socket like systemd's; yields (NOTIFY_SOCKET value, receive function)."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    yield str(path), lambda: _drain(sock)
    sock.close()


def _drain(sock):
    messages = []
    sock.setblocking(False)
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            return messages


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_ready_is_sent_once_with_status(systemd_socket):
    address, received = systemd_socket
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": address})
    assert notifier.ready("reader, screen and event link up")
    assert not notifier.ready()
    notifier.stopping()
    assert received() == ["READY=1\nSTATUS=reader, screen and event link up", "STOPPING=1"]


def test_abstract_socket_address():
    name = f"kiosk-test-{os.getpid()}-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": "@" + name})
        assert notifier.ready()
        assert _drain(sock) == ["READY=1"]
    finally:
        sock.close()


def test_everything_is_a_no_op_without_notify_socket():
    notifier = Notifier.from_environ({})
    assert not notifier.enabled
    assert not notifier.ready()
    watchdog = Watchdog(notifier, workers=("reader",))
    assert watchdog.period is None
    assert not watchdog.tick()


def test_unusable_socket_values_disable_notifications_without_raising(tmp_path):
    assert not Notifier.from_environ({"NOTIFY_SOCKET": "vsock:2:1234"}).enabled
    gone = Notifier.from_environ({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert gone.enabled
    assert not gone.ready()  # nobody bound there: logged, not raised


def test_watchdog_settings_follow_the_environment():
    own = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier.from_environ(own).watchdog_seconds == 30.0
    assert Notifier.from_environ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}).watchdog_seconds is None
    assert Notifier.from_environ({"WATCHDOG_USEC": "soon"}).watchdog_seconds is None


def test_pings_at_half_the_timeout_while_workers_beat(systemd_socket):
    address, received = systemd_socket
    clock = FakeClock()
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "10000000"})
    watchdog = Watchdog(notifier, workers=("reader", "mqtt"), clock=clock)
    assert watchdog.period == 5.0
    sent = []
    for _ in range(20):  # 20 s of main loop ticking once a second, workers beating
        watchdog.beat("reader")
        watchdog.beat("mqtt")
        sent.append(watchdog.tick())
        clock.now += 1.0
    assert sent.count(True) == 4  # at 0, 5, 10, 15 s
    assert received() == ["WATCHDOG=1"] * 4


def test_pings_stop_when_one_worker_hangs_and_resume_when_it_beats(systemd_socket):
    address, received = systemd_socket
    clock = FakeClock()
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "4000000"})
    watchdog = Watchdog(notifier, workers=("reader", "mqtt"), clock=clock)
    for _ in range(10):  # the reader hangs from the start; mqtt keeps beating
        watchdog.beat("mqtt")
        watchdog.tick()
        clock.now += 1.0
    assert watchdog.stale_workers() == ["reader"]
    messages = received()
    assert messages[:1] == ["WATCHDOG=1"]  # within its first 4 s the reader still counts as alive
    assert "STATUS=not responding: reader" in messages
    assert messages.count("STATUS=not responding: reader") == 1  # reported once, not every tick
    assert all(m != "WATCHDOG=1" for m in messages[messages.index("STATUS=not responding: reader"):])
    watchdog.beat("reader")
    assert watchdog.tick()
    assert received() == ["WATCHDOG=1"]


def test_unknown_worker_is_a_programming_error():
    watchdog = Watchdog(Notifier(None), workers=("reader",))
    with pytest.raises(KeyError):
        watchdog.beat("printer")


def test_real_threads_pings_stop_after_the_reader_thread_hangs(systemd_socket):
    """Real worker threads and the real clock: after the reader stops beating, no ping gets through."""
    address, received = systemd_socket
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "300000"})
    watchdog = Watchdog(notifier, workers=("reader", "mqtt"))
    hang, stop = threading.Event(), threading.Event()

    def worker(name, hang_event):
        while not stop.is_set():
            if not hang_event.is_set():
                watchdog.beat(name)
            time.sleep(0.005)

    threads = [
        threading.Thread(target=worker, args=("reader", hang), daemon=True),
        threading.Thread(target=worker, args=("mqtt", threading.Event()), daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        pings_alive = _tick_for(watchdog, 0.6)
        hang.set()
        hung_at = time.monotonic()
        pings_hung = _tick_for(watchdog, 1.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert pings_alive, "no WATCHDOG=1 while both workers were alive"
    late = [t for t in pings_hung if t > hung_at + watchdog.stale_after + 0.3]  # margin: a busy CI box
    assert not late, "WATCHDOG=1 kept being sent after the reader thread hung"
    assert "STATUS=not responding: reader" in received()


def _tick_for(watchdog, seconds):
    sent_at = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if watchdog.tick():
            sent_at.append(time.monotonic())
        time.sleep(0.01)
    return sent_at
