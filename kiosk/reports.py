"""Facility reports from recorded events: pure computations, no database and no clock.

Two ways in, one way out (`assemble`), so the database path is checked against the plain one:

- `build_report(events, gaps, first, last, tz)`: the reference, from every event of the range in Python
  (`silences(events, …)` gives the gaps the same way the store does);
- `kiosk.recorder.store.Store.report_inputs`: the same inputs aggregated in SQL — event counts per
  time slot (`Tally`) and per kiosk (`KioskTally`), one row per timed call (`CallTimes`), the silences from
  the kiosks' presence spans (`Gap`) — so a month over a million rows never leaves the database row by row.

A `Report` holds, per day, ISO week, month and hour of day, per kiosk and in total —

- pre-check outcomes (`kiosk.precheck.Outcome` values), codes looked up, staff calls by reason and by code;
- staff response time, from the events' own timestamps: call → `call_acknowledged` and call → `call_resolved`,
  median and 90th percentile in seconds (linear interpolation between the closest ranks, as numpy's default;
  a call is counted in the period it was raised, its answer may come later);
- kiosk offline time in seconds (silences longer than `[recorder] offline_after_seconds`, split across the
  periods they cover; see `silences`) and reader faults (`reader_status` events saying the reader is
  unavailable).

Periods are local to the facility's time zone (`[facility] timezone`): days and hours are the clinic's.
`Report.as_dict()` is the JSON of `kiosk report --json` and the console's reports page; `to_csv(report)` is
its spreadsheet form (one value a row: period_type, period, metric, key, value).
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from kiosk.precheck import Outcome
from kiosk.vocabulary import CALL_REASONS

OUTCOMES = tuple(outcome.value for outcome in Outcome)
PERIOD_TYPES = ("day", "week", "month", "hour")
_SLOT_MS = 15 * 60_000  # every zone's UTC offset is a multiple of 15 minutes: one local calendar per slot
HOUR_MS, DAY_MS = 3_600_000, 86_400_000
ANSWER_WINDOW_MS = DAY_MS  # a call raised near the end of a range is still timed if answered within this
# A kiosk's silence is seen if its last event before it is at most this long before the range; a kiosk not
# heard from since longer is taken as retired (or not yet installed) for that range, not as offline.
OFFLINE_LOOKBACK_MS = 10 * DAY_MS


class ReportError(ValueError):
    """A report that cannot be made as asked. `reason` (`not_a_date`, `reversed`, `too_long`) and `params`
    let a caller say it in its own language; str() is the English sentence."""

    def __init__(self, reason: str, message: str, **params: str):
        super().__init__(message)
        self.reason, self.params = reason, params


class ReportEvent(NamedTuple):
    """The columns of one recorded event a report reads."""

    ts_ms: int  # the event's `time`, Unix milliseconds
    site: str
    kiosk: str
    kind: str
    code: str | None = None
    outcome: str | None = None
    reason: str | None = None
    call_id: str | None = None
    available: bool | None = None


class Gap(NamedTuple):
    """A kiosk heard nothing from between start_ms and end_ms (Unix ms): offline."""

    site: str
    kiosk: str
    start_ms: int
    end_ms: int


class Tally(NamedTuple):
    """`n` events alike (kind and the columns a report counts by) in the time slot starting at `when_ms`; a
    slot never crosses a local hour (see `slot_ms`)."""

    when_ms: int
    kind: str
    code: str | None
    outcome: str | None
    reason: str | None
    available: bool | None
    n: int


class KioskTally(NamedTuple):
    """`n` events alike of one kiosk in the whole range."""

    site: str
    kiosk: str
    kind: str
    code: str | None
    outcome: str | None
    reason: str | None
    available: bool | None
    n: int


class CallTimes(NamedTuple):
    """A call raised in the range (its first `call` event) and its first answers at or after it, within
    `ANSWER_WINDOW_MS` after the range (Unix ms; None = not answered that way)."""

    raised_ms: int
    site: str
    kiosk: str
    acknowledged_ms: int | None
    resolved_ms: int | None


def parse_range(start: str | None, end: str | None, today: date, default_days: int = 30) -> tuple[date, date]:
    """`--from` / `--to` (YYYY-MM-DD, both inclusive) → (first day, last day). Missing `end` is `today`, missing
    `start` is `default_days` - 1 days before `end`. Raises ReportError with a sentence to show."""
    try:
        last = date.fromisoformat(end) if end else today
    except ValueError:
        raise ReportError("not_a_date", f"the end date {end!r} is not a date (YYYY-MM-DD)", value=str(end)) from None
    try:
        first = date.fromisoformat(start) if start else last - timedelta(days=default_days - 1)
    except ValueError:
        raise ReportError("not_a_date", f"the start date {start!r} is not a date (YYYY-MM-DD)",
                          value=str(start)) from None
    if first > last:
        raise ReportError("reversed", f"the range starts ({first}) after it ends ({last})",
                          start=first.isoformat(), end=last.isoformat())
    if (last - first).days >= 3 * 366:
        raise ReportError("too_long", f"the range {first} – {last} is longer than three years",
                          start=first.isoformat(), end=last.isoformat())
    return first, last


def range_ms(first: date, last: date, tz: ZoneInfo) -> tuple[int, int]:
    """[start, end) in Unix ms of the local days first … last."""
    def midnight(day: date) -> int:
        return round(datetime(day.year, day.month, day.day, tzinfo=tz).timestamp() * 1000)
    return midnight(first), midnight(last + timedelta(days=1))


@dataclass(frozen=True)
class Latency:
    """Seconds from a call to its answer."""

    count: int
    median_seconds: float | None
    p90_seconds: float | None

    @classmethod
    def of(cls, seconds: list[float]) -> Latency:
        if not seconds:
            return cls(0, None, None)
        ordered = sorted(seconds)
        p90 = ordered[0] if len(ordered) == 1 else statistics.quantiles(ordered, n=10, method="inclusive")[8]
        return cls(len(ordered), round(statistics.median(ordered), 3), round(p90, 3))


@dataclass
class Bucket:
    """What happened in one period (a day, week, month, hour of day, or the whole range)."""

    period: str
    events: Counter = field(default_factory=Counter)  # kind -> n
    outcomes: Counter = field(default_factory=Counter)  # pre-check outcome -> n
    lookups: Counter = field(default_factory=Counter)  # code looked up -> n
    calls_by_reason: Counter = field(default_factory=Counter)
    calls_by_code: Counter = field(default_factory=Counter)  # calls that named a code
    acknowledged: list[float] = field(default_factory=list)  # seconds call -> acknowledged
    resolved: list[float] = field(default_factory=list)  # seconds call -> resolved
    unanswered: int = 0  # calls with neither answer in the data
    offline_ms: int = 0
    reader_faults: int = 0
    outages: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "events": dict(sorted(self.events.items())),
            "outcomes": {outcome: self.outcomes[outcome] for outcome in OUTCOMES},
            "prechecks": sum(self.outcomes.values()),
            "lookups": dict(sorted(self.lookups.items())),
            "calls": sum(self.calls_by_reason.values()),
            "calls_by_reason": {reason: self.calls_by_reason[reason] for reason in
                                (*CALL_REASONS, *sorted(set(self.calls_by_reason) - set(CALL_REASONS)))},
            "calls_by_code": dict(sorted(self.calls_by_code.items())),
            "acknowledged": Latency.of(self.acknowledged).__dict__,
            "resolved": Latency.of(self.resolved).__dict__,
            "unanswered": self.unanswered,
            "offline_seconds": round(self.offline_ms / 1000, 3),
            "reader_faults": self.reader_faults,
            "outages": self.outages,
        }


@dataclass
class Report:
    first: date
    last: date
    timezone: str
    sites: list[str] | None
    total: Bucket
    periods: dict[str, dict[str, Bucket]]  # period type -> period -> bucket, in order
    kiosks: dict[tuple[str, str], Bucket]

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.first.isoformat(), "to": self.last.isoformat(), "timezone": self.timezone,
            "sites": self.sites,
            "total": self.total.as_dict(),
            **{kind: [b.as_dict() for b in buckets.values()] for kind, buckets in self.periods.items()},
            "kiosks": [{"site": site, "kiosk": kiosk, **bucket.as_dict()}
                       for (site, kiosk), bucket in sorted(self.kiosks.items())],
        }


class _Calendar:
    """Local period names of an instant, cached per 15-minute slot."""

    def __init__(self, tz: ZoneInfo):
        self.tz = tz
        self._cache: dict[int, tuple[str, str, str, str]] = {}
        self._boundaries: dict[int, int] = {}

    def keys(self, ts_ms: int) -> tuple[str, str, str, str]:
        slot = ts_ms // _SLOT_MS
        found = self._cache.get(slot)
        if found is None:
            local = datetime.fromtimestamp(slot * _SLOT_MS / 1000, self.tz)
            found = self._cache[slot] = (local.date().isoformat(), _week(local.date()), local.strftime("%Y-%m"),
                                         local.strftime("%H"))
        return found

    def next_boundary(self, ts_ms: int) -> int:
        """The next local hour boundary after ts_ms (pieces of offline time never cross an hour); the same for
        every instant of a 15-minute slot, so cached per slot."""
        slot = ts_ms // _SLOT_MS
        found = self._boundaries.get(slot)
        if found is None:
            start = slot * _SLOT_MS
            local = datetime.fromtimestamp(start / 1000, self.tz).replace(minute=0, second=0, microsecond=0)
            boundary = round((local + timedelta(hours=1)).astimezone(UTC).timestamp() * 1000)
            found = self._boundaries[slot] = boundary if boundary > start else start + HOUR_MS
        return found


def _week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def _empty_periods(first: date, last: date) -> dict[str, dict[str, Bucket]]:
    periods: dict[str, dict[str, Bucket]] = {kind: {} for kind in PERIOD_TYPES}
    day = first
    while day <= last:
        for kind, key in (("day", day.isoformat()), ("week", _week(day)), ("month", day.strftime("%Y-%m"))):
            periods[kind].setdefault(key, Bucket(key))
        day += timedelta(days=1)
    periods["hour"] = {f"{hour:02d}": Bucket(f"{hour:02d}") for hour in range(24)}
    return periods


def slot_ms(first: date, last: date, tz: ZoneInfo) -> int:
    """The longest time slot (ms) that divides every local hour of first … last into whole slots counted
    from the range's start: the greatest common divisor of an hour and the zone's UTC offsets in the range
    (an hour for Asia/Tokyo, 30 min for Asia/Kolkata, 15 min for Asia/Kathmandu). The database groups events
    by slot; each slot then belongs to one local hour, day, week and month."""
    step = HOUR_MS
    day = first - timedelta(days=1)
    while day <= last + timedelta(days=1):  # noon and midnight: a zone changes its offset at most once a day
        for hour in (0, 12):
            offset = datetime(day.year, day.month, day.day, hour, tzinfo=tz).utcoffset() or timedelta(0)
            step = math.gcd(step, abs(round(offset.total_seconds() * 1000)))
        day += timedelta(days=1)
    return step


def silences(events: Iterable[ReportEvent], threshold_ms: int, start_ms: int, end_ms: int,
             until_ms: int) -> list[Gap]:
    """The kiosks' offline time around [start_ms, end_ms), from every event (any kind: a running kiosk sends
    a heartbeat every minute, even with the broker down, as its outbox keeps them):

    - each silence longer than `threshold_ms` between two consecutive events of a kiosk that ends after
      start_ms, among its events from `OFFLINE_LOOKBACK_MS` before the range up to its end;
    - a kiosk silent since its last such event counts as offline until min(end_ms, until_ms) ("now").

    A kiosk with no event from the lookback on is not counted (retired, or not installed yet). This is the
    reference for `kiosk.recorder.store.Store.gaps`, which finds the same silences between presence spans.
    """
    lookback = start_ms - OFFLINE_LOOKBACK_MS
    stamps: dict[tuple[str, str], list[int]] = defaultdict(list)
    for ev in events:
        if lookback <= ev.ts_ms < end_ms:
            stamps[(ev.site, ev.kiosk)].append(ev.ts_ms)
    until = min(end_ms, until_ms)
    found = []
    for (site, kiosk), times in stamps.items():
        times.sort()
        found += [Gap(site, kiosk, a, b) for a, b in itertools.pairwise(times) if b - a > threshold_ms and b > start_ms]
        if until - times[-1] > threshold_ms:
            found.append(Gap(site, kiosk, times[-1], until))
    return sorted(found)


def build_report(events: Iterable[ReportEvent], gaps: Iterable[Gap], first: date, last: date, tz: ZoneInfo,
                 *, sites: list[str] | None = None) -> Report:
    """The report of the local days first … last (inclusive) in `tz`, from every event in Python (the
    reference for the database path, and for callers without a store).

    `events` may include answers (`call_acknowledged` / `call_resolved`) up to `ANSWER_WINDOW_MS` after the
    range, to time calls raised near its end; events outside the range are otherwise ignored. Raises
    ReportError if last < first.
    """
    _check(first, last)
    start_ms, end_ms = range_ms(first, last, tz)
    events = list(events)
    counts: Counter[tuple[Any, ...]] = Counter()
    calls: dict[tuple[str, str, str], int] = {}
    for ev in events:
        if start_ms <= ev.ts_ms < end_ms:
            counts[(ev.ts_ms, ev.site, ev.kiosk, ev.kind, ev.code, ev.outcome, ev.reason, ev.available)] += 1
            if ev.kind == "call" and ev.call_id:
                key = (ev.site, ev.kiosk, ev.call_id)
                calls[key] = min(calls.get(key, ev.ts_ms), ev.ts_ms)
    answers = [(ev.site, ev.kiosk, ev.call_id, ev.kind, ev.ts_ms) for ev in events if ev.call_id]
    tallies = [Tally(ts, kind, code, outcome, reason, available, n)
               for (ts, _site, _kiosk, kind, code, outcome, reason, available), n in counts.items()]
    per_kiosk: Counter[KioskTally] = Counter()
    for (_ts, site, kiosk, kind, code, outcome, reason, available), n in counts.items():
        per_kiosk[KioskTally(site, kiosk, kind, code, outcome, reason, available, 0)] += n
    return assemble(tallies, [key._replace(n=n) for key, n in per_kiosk.items()],
                    call_times(calls, answers, end_ms), gaps, first, last, tz, sites=sites)


def call_times(raised: dict[tuple[str, str, str], int], answers: Iterable[tuple[str, str, str, str, int]],
               end_ms: int) -> list[CallTimes]:
    """Each call — (site, kiosk, call_id) → when it was first raised in the range — with its first
    acknowledgement and resolution among `answers` ((site, kiosk, call_id, kind, ts_ms); other kinds ignored)
    at or after it and before `end_ms` + `ANSWER_WINDOW_MS`."""
    first: dict[tuple[str, str, str, str], int] = {}
    for site, kiosk, call_id, kind, ts_ms in answers:
        when = raised.get((site, kiosk, call_id))
        if kind in ("call_acknowledged", "call_resolved") and when is not None \
                and when <= ts_ms < end_ms + ANSWER_WINDOW_MS:
            key = (site, kiosk, call_id, kind)
            first[key] = min(first.get(key, ts_ms), ts_ms)
    return [CallTimes(when, site, kiosk, first.get((site, kiosk, call_id, "call_acknowledged")),
                      first.get((site, kiosk, call_id, "call_resolved")))
            for (site, kiosk, call_id), when in raised.items()]


def assemble(tallies: Iterable[Tally], kiosk_tallies: Iterable[KioskTally], calls: Iterable[CallTimes],
             gaps: Iterable[Gap], first: date, last: date, tz: ZoneInfo, *,
             sites: list[str] | None = None) -> Report:
    """The report of the local days first … last from aggregated inputs (`build_report`'s, or the store's
    `Store.report_inputs`). Tallies and calls outside the range are ignored; gaps are clipped to it. Raises
    ReportError if last < first."""
    _check(first, last)
    start_ms, end_ms = range_ms(first, last, tz)
    calendar = _Calendar(tz)
    total = Bucket("total")
    periods = _empty_periods(first, last)
    kiosks: dict[tuple[str, str], Bucket] = defaultdict(lambda: Bucket("kiosk"))

    at_slot: dict[int, list[Bucket]] = {}

    def buckets_at(ts_ms: int) -> list[Bucket]:  # the same for every instant of a 15-minute slot
        found = at_slot.get(ts_ms // _SLOT_MS)
        if found is None:
            day, week, month, hour = calendar.keys(ts_ms)
            found = at_slot[ts_ms // _SLOT_MS] = [total, periods["day"][day], periods["week"][week],
                                                  periods["month"][month], periods["hour"][hour]]
        return found

    for tally in tallies:
        if start_ms <= tally.when_ms < end_ms:
            for bucket in buckets_at(tally.when_ms):
                _count(bucket, tally.kind, tally.code, tally.outcome, tally.reason, tally.available, tally.n)
    for k in kiosk_tallies:
        _count(kiosks[(k.site, k.kiosk)], k.kind, k.code, k.outcome, k.reason, k.available, k.n)

    for call in calls:
        if not start_ms <= call.raised_ms < end_ms:
            continue
        for bucket in [*buckets_at(call.raised_ms), kiosks[(call.site, call.kiosk)]]:
            if call.acknowledged_ms is not None and call.acknowledged_ms >= call.raised_ms:
                bucket.acknowledged.append((call.acknowledged_ms - call.raised_ms) / 1000)
            if call.resolved_ms is not None and call.resolved_ms >= call.raised_ms:
                bucket.resolved.append((call.resolved_ms - call.raised_ms) / 1000)
            if call.acknowledged_ms is None and call.resolved_ms is None:
                bucket.unanswered += 1

    for gap in gaps:
        position, stop = max(gap.start_ms, start_ms), min(gap.end_ms, end_ms)
        while position < stop:
            piece_end = min(calendar.next_boundary(position), stop)
            for bucket in [*buckets_at(position), kiosks[(gap.site, gap.kiosk)]]:
                bucket.offline_ms += piece_end - position
            position = piece_end
    return Report(first, last, tz.key, sites, total, periods, dict(kiosks))


def _check(first: date, last: date) -> None:
    if last < first:
        raise ReportError("reversed", f"the range starts ({first}) after it ends ({last})",
                          start=first.isoformat(), end=last.isoformat())


def _count(bucket: Bucket, kind: str, code: str | None, outcome: str | None, reason: str | None,
           available: bool | None, n: int) -> None:
    bucket.events[kind] += n
    if kind == "precheck" and outcome:
        bucket.outcomes[outcome] += n
    elif kind == "lookup" and code:
        bucket.lookups[code] += n
    elif kind == "call":
        bucket.calls_by_reason[reason or "unknown"] += n
        if code:
            bucket.calls_by_code[code] += n
    elif kind == "reader_status" and available is False:
        bucket.reader_faults += n
    elif kind == "outage_entered":
        bucket.outages += n


CSV_COLUMNS = ("period_type", "period", "metric", "key", "value")


def csv_rows(report: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """One value a row from `Report.as_dict()`: (period_type, period, metric, key, value); `key` is the
    outcome, code, reason, kind or latency statistic, empty for plain numbers; None values are empty."""
    rows: list[tuple[str, str, str, str, str]] = []
    sections = [("total", [report["total"]])] + [(kind, report[kind]) for kind in PERIOD_TYPES]
    sections.append(("kiosk", [{**k, "period": f"{k['site']}/{k['kiosk']}"} for k in report["kiosks"]]))
    for period_type, buckets in sections:
        for bucket in buckets:
            for metric, value in bucket.items():
                if metric in ("period", "site", "kiosk"):
                    continue
                if isinstance(value, dict):
                    rows.extend((period_type, bucket["period"], metric, str(key), _cell(v)) for key, v in value.items())
                else:
                    rows.append((period_type, bucket["period"], metric, "", _cell(value)))
    return rows


def to_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(csv_rows(report))
    return out.getvalue()


def _cell(value: Any) -> str:
    return "" if value is None else str(value)
