"""Log lines about what the network sends, at a bounded rate: a flood of bad messages costs the journal one
line per kind of problem per interval, never a line (or a traceback) per message."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

MAX_KINDS = 64  # distinct problem kinds remembered; kinds come from code, never from message content


class RateLimitedLog:
    """`warning(kind, msg, *args)` logs the first line of each `kind` per `interval` seconds and counts the
    rest; the next line logged for that kind says how many were held back. Thread-safe enough for counters
    (a lost increment only changes a count in a log line)."""

    def __init__(self, logger: logging.Logger, interval: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._log, self._interval, self._clock = logger, interval, clock
        self._next: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warning(self, kind: str, msg: str, *args: object) -> None:
        self._emit(logging.WARNING, kind, msg, args)

    def error(self, kind: str, msg: str, *args: object) -> None:
        self._emit(logging.ERROR, kind, msg, args)

    def _emit(self, level: int, kind: str, msg: str, args: tuple[object, ...]) -> None:
        now = self._clock()
        if now < self._next.get(kind, 0.0):
            self._held[kind] = self._held.get(kind, 0) + 1
            return
        if kind not in self._next and len(self._next) >= MAX_KINDS:
            self._next.clear()
            self._held.clear()
        self._next[kind] = now + self._interval
        held = self._held.pop(kind, 0)
        if held:
            msg += f" (and {held} more like this in the last {self._interval:.0f} s)"
        self._log.log(level, msg, *args)
