"""Presence spans: when each kiosk was heard from, kept compactly instead of every heartbeat (pure).

A span is a run of a kiosk's events (any kind) within one 15-minute UTC slot (`SLOT_MS`) whose consecutive
events are at most `JOIN_MS` apart; it keeps the first and last instant and how many heartbeats it holds. A
kiosk that runs all day is about 96 spans a day instead of 1,440 heartbeats, yet every silence longer than
`JOIN_MS` is exactly the distance between two consecutive spans: offline time (`[recorder]
offline_after_seconds`, which is at least `JOIN_MS`) is exact, and heartbeat counts per local day or hour
are exact too, since every zone's UTC offset is a multiple of 15 minutes.

Merging is idempotent (an event already in a span changes nothing), so QoS 1 redelivery and outbox replay
need no special care here; only the heartbeat count must be given new heartbeats alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

SLOT_MS = 15 * 60_000
JOIN_MS = 120_000  # > the kiosk's heartbeat (60 s) with one to spare; <= the smallest offline threshold


class Span(NamedTuple):
    first_ms: int
    last_ms: int
    heartbeats: int


def slot_of(ts_ms: int) -> int:
    return ts_ms // SLOT_MS


def merge(spans: Iterable[Span], points: Iterable[tuple[int, int]]) -> list[Span]:
    """The spans of one kiosk in one slot after adding `points` ((ts_ms, new heartbeats 0/1), all in that
    slot): oldest first, consecutive spans more than JOIN_MS apart."""
    out: list[Span] = []
    for item in sorted([*spans, *(Span(ts, ts, n) for ts, n in points)]):
        if out and item.first_ms - out[-1].last_ms <= JOIN_MS:
            last = out[-1]
            out[-1] = Span(last.first_ms, max(last.last_ms, item.last_ms), last.heartbeats + item.heartbeats)
        else:
            out.append(item)
    return out
