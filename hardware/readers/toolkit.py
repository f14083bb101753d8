"""What the back-ends that drive real devices share: flap counting, status de-duplication, supervision.

Used by `pcsc` and `nfc`; the simulated reader needs none of it. The probe itself (what to ask an item) is
`hardware.readers.probe`; the allow-list `hardware.readers.apdu`.
"""

from __future__ import annotations

import logging
import os
import pwd
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hardware.readers.contract import (
    HEARTBEAT_SECONDS,
    Cause,
    Heartbeat,
    Post,
    ReaderLost,
    ReaderStatus,
    no_heartbeat,
)

log = logging.getLogger(__name__)


@dataclass
class FlapCounter:
    """Counts presentations within a sliding window of `window_seconds` (several items or a wobbling hand)."""

    window_seconds: float
    times: list[float] = field(default_factory=list)

    def add(self, now: float) -> int:
        """Record a presentation at monotonic time `now` (seconds); the count within the window, this one included."""
        self.times = [t for t in self.times if now - t < self.window_seconds] + [now]
        return len(self.times)


class StatusLatch:
    """Posts (and logs) a ReaderStatus only when it differs from the last one posted.

    `times_available` counts the available statuses posted: the supervisor resets its back-off when it grew.
    """

    def __init__(self) -> None:
        self.last: ReaderStatus | None = None
        self.times_available = 0

    def report(self, post: Post, status: ReaderStatus) -> None:
        if status != self.last:
            self.last = status
            self.times_available += status.available
            (log.info if status.available else log.warning)("%s", status.detail)
            post(status)


def this_user() -> str:
    """The name of the user this process runs as (what pcscd's polkit rule or a udev rule must allow)."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def wait_beating(stop: threading.Event, seconds: float, heartbeat: Heartbeat) -> bool:
    """Wait `seconds` or until `stop` is set (then True), beating at least every HEARTBEAT_SECONDS."""
    deadline = time.monotonic() + seconds
    while True:
        heartbeat()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return stop.is_set()
        if stop.wait(min(remaining, HEARTBEAT_SECONDS)):
            return True


def supervise(session: Callable[[], None], post: Post, stop: threading.Event, status: StatusLatch,
              retry_seconds: tuple[float, ...], description: str, heartbeat: Heartbeat = no_heartbeat) -> None:
    """Run `session` until `stop` is set; a ReaderLost or any other failure is posted and retried with back-off.

    `retry_seconds`: the waits after the 1st, 2nd, ... failure in a row (the last one repeats); a session
    that got the reader available in between starts the back-off over. `session` beats while it runs; the
    supervisor beats before each attempt and through the back-off. Never raises. Only the exception's type
    is logged for unexpected failures: driver messages may carry identifiers.
    """
    failures = 0
    while not stop.is_set():
        heartbeat()
        available_before = status.times_available
        try:
            session()
        except ReaderLost as lost:
            status.report(post, lost.status())
        except Exception as exc:  # the supervisor must outlive anything a driver throws
            log.error("%s failed (%s); restarting it", description, type(exc).__name__)
            status.report(post, ReaderStatus(False, f"{description}: unexpected error ({type(exc).__name__}); retrying",
                                             Cause.DRIVER_ERROR, {"reader": description, "error": type(exc).__name__}))
        if status.times_available != available_before:  # it worked for a while: retry quickly
            failures = 0
        wait_beating(stop, retry_seconds[min(failures, len(retry_seconds) - 1)], heartbeat)
        failures += 1
