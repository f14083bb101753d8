"""What the console knows about the kiosks: pure, owned by one thread (the server's asyncio loop).

MQTT messages go in (already parsed to dicts); `Update`s come out, one per thing that changed, for the
browsers. Nothing here knows about paho or HTTP. Only codes, kinds, times and kiosk ids are kept — never
anything about a patient.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from kiosk.ratelog import RateLimitedLog
from kiosk.vocabulary import CALL_REASONS

log = RateLimitedLog(logging.getLogger(__name__))

Key = tuple[str, str]  # (site, kiosk id)
Update = dict  # {"type": "kiosk"|"call"|"call_cleared"|"history"|"day", ...} — JSON for the browser
MAX_KIOSKS = 2_000  # default of `[console] max_kiosks`

HISTORY_KINDS = (
    "lookup", "precheck", "call", "call_acknowledged", "call_resolved", "outage_entered", "outage_left",
)
HISTORY_KEEP = 500  # entries of today's history kept for display; the per-code counts stay exact
# A kiosk's row is re-sent for a new `last_seen` alone at most this often (any other change: at once), so a
# flood of events costs the browsers one row update per kiosk per interval, not one per event.
LAST_SEEN_REFRESH = timedelta(seconds=15)
_SEEN_EVENT_IDS = 5_000  # QoS 1 may deliver an event twice: remember this many ids to count it once


def _row(view: Any) -> dict:
    """A view as JSON for the browser: its fields in order, a dict field copied. (`dataclasses.asdict` deep-copies
    every value: it was three quarters of the cost of handling a message in a flood.)"""
    return {name: dict(value) if isinstance(value, dict) else value for name, value in vars(view).items()}


@dataclass
class KioskView:
    site: str
    kiosk: str
    online: bool = False
    reader_ok: bool | None = None
    reader_cause: str | None = None  # why, as the staff text id reader.<cause> (with reader_params)
    reader_params: dict[str, str] = field(default_factory=dict)
    lamp: str | None = None
    backlog: int | None = None
    outage: bool = False
    outage_code: str | None = None  # the code that started outage mode, when one did
    last_seen: str | None = None  # when the console last heard from it (ISO 8601)


@dataclass
class CallView:
    site: str
    kiosk: str
    call_id: str
    reason: str
    code: str | None
    audience: str | None
    since: str | None
    acknowledged: bool
    escalation: int = 0  # 0, or the kiosk's call_escalated level (1 called again, 2 patient sent to the desk)


@dataclass
class HistoryEntry:
    time: str
    kind: str
    code: str | None
    site: str
    kiosk: str


@dataclass
class ConsoleState:
    """Kiosks, open calls and today's history, changed only through the `on_*` methods."""

    max_kiosks: int = MAX_KIOSKS  # kiosks tracked; a message from one more is ignored (and logged)
    kiosks: dict[Key, KioskView] = field(default_factory=dict)
    calls: dict[Key, CallView] = field(default_factory=dict)
    history: deque[HistoryEntry] = field(default_factory=lambda: deque(maxlen=HISTORY_KEEP))
    lookups: Counter = field(default_factory=Counter)  # code -> lookups today
    call_counts: Counter = field(default_factory=Counter)  # code (or call reason) -> calls today
    day: str = ""
    _seen: OrderedDict = field(default_factory=OrderedDict)
    _sent: dict[Key, tuple[dict, datetime]] = field(default_factory=dict)  # kiosk row last sent, and when

    def on_status(self, key: Key, status: dict | None, now: datetime) -> list[Update]:
        """A retained `status` payload, decoded by `kiosk.console.messages` ({online, backlog, reader_ok, lamp,
        outage, outage_code}; None where it did not say), or None when the retained status was cleared (a kiosk
        taken out of service): it leaves the page."""
        if status is None:
            return self._forget(key, now)
        view = self._kiosk(key)
        if view is None:
            return []
        view.online = status["online"]
        if status.get("backlog") is not None:
            view.backlog = status["backlog"]
        if status.get("reader_ok") is not None:
            view.reader_ok = status["reader_ok"]
            view.reader_cause, view.reader_params = status.get("reader_cause"), status.get("reader_params") or {}
        if status.get("lamp") is not None:
            view.lamp = status["lamp"]
        if status.get("outage") is not None:
            view.outage = status["outage"]
            view.outage_code = status.get("outage_code") if view.outage else None
        return self._touch(view, now)

    def on_call(self, key: Key, call: dict | None, now: datetime) -> list[Update]:
        """The retained `call` topic: the kiosk's open call, or None when it was cleared."""
        updates = self._day(now)
        if call is None:
            old = self.calls.pop(key, None)
            if old is not None:
                updates.append({"type": "call_cleared", "site": key[0], "kiosk": key[1], "call_id": old.call_id})
            return updates
        if key not in self.kiosks:
            new = self._kiosk(key)
            if new is None:
                return updates
            updates.append({"type": "kiosk", "kiosk": _row(new)})
        view = CallView(site=key[0], kiosk=key[1], **call)
        if self.calls.get(key) != view:
            self.calls[key] = view
            updates.append({"type": "call", "call": _row(view)})
        return updates

    def on_event(self, key: Key, event: dict, now: datetime) -> list[Update]:
        """An event envelope (`event/<kind>`): keeps presence fresh and today's history."""
        view = self._kiosk(key)
        if view is None:
            return []
        kind, data = event["kind"], event["data"]
        if kind == "lamp_status":
            view.lamp = data["pattern"] or view.lamp
        elif kind == "reader_status" and data["available"] is not None:
            view.reader_ok = data["available"]
            view.reader_cause, view.reader_params = data.get("cause"), data.get("params") or {}
        elif kind in ("outage_entered", "outage_left"):
            view.outage = kind == "outage_entered"
            view.outage_code = data.get("code") if view.outage else None
        if data.get("backlog") is not None:
            view.backlog = data["backlog"]
        updates = self._touch(view, now)
        if kind in HISTORY_KINDS and self._first_time(event["id"]):
            updates.extend(self._record(key, kind, data, event["time"]))
        return updates

    def restore(self, day: str, now: datetime, rows: Iterable[Any]) -> None:
        """Today's history and counts from the event store at start-up: `rows` are the events of local day
        `day` (YYYY-MM-DD), oldest first, with event_id, time, kind, code, reason, site and kiosk
        (kiosk.recorder.store.DayEvent). Events the live stream delivered meanwhile are not counted twice
        (same event id) and stay the newest lines. Nothing is restored once the day has turned."""
        self._day(now)
        if self.day != day:
            return
        live, delivered = list(self.history), set(self._seen)
        self.history.clear()
        for row in rows:
            if row.kind in HISTORY_KINDS and row.event_id not in delivered and self._first_time(row.event_id):
                reason = row.reason if row.reason in CALL_REASONS else None
                self._record((row.site, row.kiosk), row.kind, {"code": row.code, "reason": reason}, row.time)
        self.history.extend(live)

    def _forget(self, key: Key, now: datetime) -> list[Update]:
        updates = self.on_call(key, None, now) if key in self.calls else []
        self._sent.pop(key, None)
        if self.kiosks.pop(key, None) is not None:
            updates.append({"type": "kiosk_removed", "site": key[0], "kiosk": key[1]})
        return updates

    @property
    def outage_kiosks(self) -> list[Key]:
        return sorted(k for k, v in self.kiosks.items() if v.outage)

    def snapshot(self) -> dict:
        """Everything a browser needs to draw the page from scratch."""
        return {
            "kiosks": [_row(v) for _, v in sorted(self.kiosks.items())],
            "calls": [_row(v) for _, v in sorted(self.calls.items())],
            "history": [_row(h) for h in self.history],
            "counts": self._counts(),
            "day": self.day,
        }

    def _kiosk(self, key: Key) -> KioskView | None:
        """The kiosk's view, a new one for a new kiosk; None once `max_kiosks` are tracked (logged)."""
        view = self.kiosks.get(key)
        if view is None:
            if len(self.kiosks) >= self.max_kiosks:
                log.warning("cap", "more than %d kiosks: ignoring %s/%s and any other new kiosk "
                            "(raise [console] max_kiosks if there really are that many)", self.max_kiosks, *key)
                return None
            view = self.kiosks[key] = KioskView(site=key[0], kiosk=key[1])
        return view

    def _touch(self, view: KioskView, now: datetime) -> list[Update]:
        updates = self._day(now)
        view.last_seen = now.isoformat(timespec="seconds")
        row, key = _row(view), (view.site, view.kiosk)
        sent = self._sent.get(key)
        if sent is not None and now - sent[1] < LAST_SEEN_REFRESH \
                and {**sent[0], "last_seen": None} == {**row, "last_seen": None}:
            return updates  # only last_seen moved, and the browsers were told about this kiosk moments ago
        self._sent[key] = (row, now)
        updates.append({"type": "kiosk", "kiosk": row})
        return updates

    def _first_time(self, event_id: str) -> bool:
        if event_id in self._seen:
            return False
        self._seen[event_id] = None
        if len(self._seen) > _SEEN_EVENT_IDS:
            self._seen.popitem(last=False)
        return True

    def _record(self, key: Key, kind: str, data: dict, time: str) -> list[Update]:
        """A history line and, when a count changed, that one row of the counts (a delta, never the table).
        Counts are keyed only by contract values (kiosk.console.messages checked them): a three-digit code,
        else a call reason of kiosk.vocabulary.CALL_REASONS, else "unknown" — so their number is bounded."""
        code = data.get("code")
        counted = None
        if kind == "lookup" and code:
            counted = code
            self.lookups[code] += 1
        elif kind == "call":
            counted = code or data.get("reason") or "unknown"
            self.call_counts[counted] += 1
        elif kind == "precheck" and not code:
            return []  # a pre-check that found nothing wrong is not history worth a line
        entry = HistoryEntry(time=time, kind=kind, code=code, site=key[0], kiosk=key[1])
        self.history.append(entry)  # a deque of HISTORY_KEEP: the oldest falls off
        update: Update = {"type": "history", "entry": _row(entry)}
        if counted is not None:
            update["count"] = self._count(counted)
        return [update]

    def _count(self, code: str) -> dict:
        return {"code": code, "lookups": self.lookups[code], "calls": self.call_counts[code]}

    def _counts(self) -> list[dict]:
        return [self._count(c) for c in sorted(set(self.lookups) | set(self.call_counts))]

    def _day(self, now: datetime) -> list[Update]:
        """History is per local day: the first message after midnight starts a new one."""
        today = now.date().isoformat()
        if today == self.day:
            return []
        first = not self.day
        self.day = today
        self.history.clear()
        self.lookups.clear()
        self.call_counts.clear()
        return [] if first else [{"type": "day", "day": today}]
