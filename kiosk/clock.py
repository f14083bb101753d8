"""Is the wall clock synchronised? (A Pi has no RTC: it boots with the last shutdown time until NTP corrects it.)

Timeouts, debounces, backoffs, flap windows and expiries run on `time.monotonic()` everywhere, so a wall-clock
jump neither fires nor stalls them. Event timestamps are wall-clock, so events say whether that clock was
synchronised (`clock_synchronized` in the heartbeat, `details.clock` in the retained status) and dashboards can
tell a real time from a boot-time guess.

Source of the fact: the kernel's NTP state, `adjtimex(2)` with modes 0 (read-only, any user): the clock is
synchronised when the call does not return TIME_ERROR and STA_UNSYNC is clear in `status` — what systemd's
`timedatectl show -p NTPSynchronized` and systemd-timesyncd report.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

TIME_ERROR = 5  # adjtimex(2) return value: the clock is not synchronised
STA_UNSYNC = 0x0040


class _Timex(ctypes.Structure):
    """The leading fields of struct timex (linux/timex.h); the rest is room for the kernel to fill."""

    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                ("_rest", ctypes.c_byte * 256)]


def synchronized() -> bool | None:
    """True when the kernel says NTP has synchronised the clock, False when not, None when it cannot tell."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        timex = _Timex()
        state = libc.adjtimex(ctypes.byref(timex))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != TIME_ERROR and not timex.status & STA_UNSYNC


def clock_state() -> dict[str, Any]:
    """`{"synchronized": bool | None}` for the status details."""
    return {"synchronized": synchronized()}
