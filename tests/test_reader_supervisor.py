"""The supervisor shared by the PC/SC and nfcpy back-ends: failures become ReaderStatus, never a dead thread."""

from __future__ import annotations

import itertools
import logging
import threading

from hardware.readers.contract import Cause, ReaderLost, ReaderStatus
from hardware.readers.toolkit import StatusLatch, supervise


def test_failures_are_posted_retried_and_never_escape(caplog):
    posted: list = []
    stop = threading.Event()
    latch = StatusLatch()
    attempts = iter([
        ReaderLost("pcscd is not running", Cause.SERVICE_DOWN),
        ReaderLost("pcscd is not running", Cause.SERVICE_DOWN),  # the same status is posted once
        RuntimeError("driver said 0123456789ABCDEF"),  # an unexpected failure: its text may identify
        "works",
    ])

    def session() -> None:
        attempt = next(attempts)
        if isinstance(attempt, Exception):
            raise attempt
        latch.report(posted.append, ReaderStatus(True, "reader"))
        stop.set()

    with caplog.at_level(logging.INFO):
        supervise(session, posted.append, stop, latch, (0.0,), "test reader")
    assert posted == [
        ReaderStatus(False, "pcscd is not running", Cause.SERVICE_DOWN),
        ReaderStatus(False, "test reader: unexpected error (RuntimeError); retrying", Cause.DRIVER_ERROR,
                     {"reader": "test reader", "error": "RuntimeError"}),
        ReaderStatus(True, "reader"),
    ]
    assert "RuntimeError" in caplog.text and "0123456789ABCDEF" not in caplog.text


def test_stop_ends_the_back_off_at_once():
    stop = threading.Event()
    latch = StatusLatch()

    def session() -> None:
        stop.set()
        raise ReaderLost("gone")

    thread = threading.Thread(target=supervise, args=(session, lambda e: None, stop, latch, (3600.0,), "r"))
    thread.start()
    thread.join(timeout=5)
    assert not thread.is_alive() and latch.last == ReaderStatus(False, "gone", Cause.DRIVER_ERROR)


def test_the_back_off_keeps_beating():
    """A reader that stays missing is a healthy supervisor: it beats through long back-offs (watchdog)."""
    import time

    stop = threading.Event()
    beats: list[float] = []

    def session() -> None:
        if len(beats) > 6:
            stop.set()
        raise ReaderLost("gone")

    started = time.monotonic()
    supervise(session, lambda e: None, stop, StatusLatch(), (2.5,), "r",
              heartbeat=lambda: beats.append(time.monotonic()))
    times = [started, *beats]
    assert len(beats) >= 7 and max(b - a for a, b in itertools.pairwise(times)) < 2.0
