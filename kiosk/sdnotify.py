"""systemd's notify protocol (READY, WATCHDOG, STATUS, STOPPING) and a heartbeat-per-worker watchdog.

Usage in the main loop (one thread owns the Watchdog's decisions; workers only call `beat`):

    notifier = Notifier.from_environ()
    watchdog = Watchdog(notifier, workers=("reader", "mqtt"))
    ...  # worker threads call watchdog.beat("reader") every loop turn (at least every few seconds)
    notifier.ready()          # once reader, screen and event link are up
    watchdog.tick()           # from the main loop, about once a second
    notifier.stopping()       # on shutdown

Everything is a no-op when NOTIFY_SOCKET is unset (not started by systemd), so the same code runs anywhere.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping

log = logging.getLogger(__name__)


def _socket_address(value: str) -> str | None:
    """NOTIFY_SOCKET as an AF_UNIX address: a path, or '@name' for the abstract namespace."""
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


class Notifier:
    """Sends notify messages to systemd over an AF_UNIX datagram socket; never raises."""

    def __init__(self, address: str | None, watchdog_seconds: float | None = None) -> None:
        self.address = address
        self.watchdog_seconds = watchdog_seconds
        self._socket: socket.socket | None = None
        self._ready_sent = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """Read NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID as systemd sets them for the service."""
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        address = _socket_address(raw) if raw else None
        if raw and address is None:
            log.warning("NOTIFY_SOCKET=%r is not a unix socket address; systemd notifications are off", raw)
        return cls(address, _watchdog_seconds(env))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *assignments: str) -> bool:
        """Send 'KEY=value' lines in one datagram; False (and a log line) when it could not be sent."""
        if self.address is None:
            return False
        message = "\n".join(assignments).encode("utf-8")
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.sendto(message, self.address)
        except OSError as exc:
            log.warning("systemd notify failed (%s): %s", assignments[0] if assignments else "", exc)
            return False
        return True

    def ready(self, status: str = "") -> bool:
        """READY=1, sent at most once per process."""
        if self._ready_sent:
            return False
        self._ready_sent = self.send("READY=1", *([f"STATUS={status}"] if status else []))
        return self._ready_sent

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _watchdog_seconds(env: Mapping[str, str]) -> float | None:
    """The watchdog timeout systemd expects us to meet, or None when the watchdog is not for this process."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec:
        return None
    if pid and pid != str(os.getpid()):
        return None
    try:
        seconds = int(usec) / 1_000_000
    except ValueError:
        log.warning("WATCHDOG_USEC=%r is not a number; watchdog pings are off", usec)
        return None
    return seconds if seconds > 0 else None


class Watchdog:
    """Pings systemd's watchdog from the main loop only while every registered worker has beaten recently.

    A worker that stops beating for `stale_after` seconds (default: the whole watchdog timeout) stops the pings,
    so systemd restarts the service. A main loop that hangs stops calling `tick`, with the same result.
    """

    def __init__(
        self,
        notifier: Notifier,
        workers: Iterable[str],
        stale_after: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.notifier = notifier
        self.period = notifier.watchdog_seconds / 2 if notifier.watchdog_seconds else None
        self.stale_after = stale_after or notifier.watchdog_seconds or 30.0
        self._clock = clock
        now = clock()
        self._lock = threading.Lock()
        self._last_beat = dict.fromkeys(workers, now)  # registration counts as a first beat
        self._last_ping: float | None = None
        self._reported_stale: frozenset[str] = frozenset()

    def beat(self, worker: str) -> None:
        """Called by a worker thread on every turn of its loop: 'I am alive'."""
        now = self._clock()
        with self._lock:
            if worker not in self._last_beat:
                raise KeyError(f"worker {worker!r} was not registered with the watchdog")
            self._last_beat[worker] = now

    def stale_workers(self) -> list[str]:
        """Workers that have not beaten within `stale_after` seconds."""
        now = self._clock()
        with self._lock:
            return sorted(name for name, last in self._last_beat.items() if now - last > self.stale_after)

    def tick(self) -> bool:
        """Called from the main loop; sends WATCHDOG=1 when half the timeout has passed and all workers are alive."""
        if self.period is None:
            return False
        stale = self.stale_workers()
        if stale:
            if frozenset(stale) != self._reported_stale:
                log.error("worker(s) not responding, withholding watchdog pings: %s", ", ".join(stale))
                self.notifier.status(f"not responding: {', '.join(stale)}")
            self._reported_stale = frozenset(stale)
            return False
        if self._reported_stale:
            log.info("all workers responding again")
            self._reported_stale = frozenset()
        now = self._clock()
        if self._last_ping is not None and now - self._last_ping < self.period:
            return False
        self._last_ping = now
        return self.notifier.watchdog()
