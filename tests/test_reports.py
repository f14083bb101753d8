"""kiosk.reports: pure report computations over a known event stream (no database)."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from kiosk.reports import Gap, ReportError, ReportEvent, build_report, csv_rows, parse_range, range_ms, to_csv

TOKYO = ZoneInfo("Asia/Tokyo")


def ms(text: str, tz: ZoneInfo = TOKYO) -> int:
    return round(datetime.fromisoformat(text).replace(tzinfo=tz).timestamp() * 1000)


def call_events(kiosk: str, call_id: str, raised: str, ack: str | None, resolved: str | None,
                reason: str = "patient_request", code: str | None = None) -> list[ReportEvent]:
    out = [ReportEvent(ms(raised), "s1", kiosk, "call", code, None, reason, call_id)]
    if ack:
        out.append(ReportEvent(ms(ack), "s1", kiosk, "call_acknowledged", code, None, reason, call_id))
    if resolved:
        out.append(ReportEvent(ms(resolved), "s1", kiosk, "call_resolved", code, None, reason, call_id))
    return out


def stream() -> list[ReportEvent]:
    events = [
        ReportEvent(ms("2026-05-01T08:59:59"), "s1", "k1", "precheck", None, "mynumber_card"),
        ReportEvent(ms("2026-05-01T09:00:00"), "s1", "k1", "precheck", "021", "smartphone_mismatch"),
        ReportEvent(ms("2026-05-02T23:59:59"), "s1", "k2", "precheck", None, "smartphone_iphone"),
        ReportEvent(ms("2026-05-01T10:00:00"), "s1", "k1", "lookup", "011"),
        ReportEvent(ms("2026-05-01T10:01:00"), "s1", "k1", "lookup", "011"),
        ReportEvent(ms("2026-05-03T00:00:00"), "s1", "k1", "lookup", "901"),
        ReportEvent(ms("2026-05-01T11:00:00"), "s1", "k1", "reader_status", available=False),
        ReportEvent(ms("2026-05-01T11:05:00"), "s1", "k1", "reader_status", available=True),
        ReportEvent(ms("2026-05-02T12:00:00"), "s1", "k2", "outage_entered", "901"),
    ]
    events += call_events("k1", "c1", "2026-05-01T09:00:00", "2026-05-01T09:00:10", "2026-05-01T09:02:00",
                          "staff_code", "011")
    events += call_events("k1", "c2", "2026-05-01T09:30:00", "2026-05-01T09:30:20", "2026-05-01T09:31:00")
    events += call_events("k2", "c3", "2026-05-02T15:00:00", "2026-05-02T15:00:30", None)
    events += call_events("k2", "c4", "2026-05-02T16:00:00", None, None, "repeated_failures")
    # raised on the last day, answered after the range: still timed
    events += call_events("k1", "c5", "2026-05-03T23:59:00", "2026-05-04T00:00:40", "2026-05-04T00:05:00")
    # outside the range altogether: not counted
    events += call_events("k1", "c6", "2026-04-30T23:59:59", "2026-05-01T00:00:05", None)
    return events


def test_counts_outcomes_codes_calls_and_faults_in_the_facility_time_zone():
    report = build_report(stream(), [], date(2026, 5, 1), date(2026, 5, 3), TOKYO).as_dict()
    total = report["total"]
    assert total["prechecks"] == 3
    assert total["outcomes"]["mynumber_card"] == 1 and total["outcomes"]["smartphone_mismatch"] == 1
    assert total["outcomes"]["smartphone_iphone"] == 1 and total["outcomes"]["unreadable_card"] == 0
    assert total["lookups"] == {"011": 2, "901": 1}
    assert total["calls"] == 5
    assert total["calls_by_reason"] == {"patient_request": 3, "staff_code": 1, "outage": 0, "repeated_failures": 1}
    assert total["calls_by_code"] == {"011": 1}
    assert total["reader_faults"] == 1 and total["outages"] == 1 and total["unanswered"] == 1
    assert total["events"]["call"] == 5 and total["events"]["precheck"] == 3
    days = {d["period"]: d for d in report["day"]}
    assert list(days) == ["2026-05-01", "2026-05-02", "2026-05-03"]
    assert days["2026-05-01"]["prechecks"] == 2 and days["2026-05-02"]["prechecks"] == 1  # 23:59:59 JST
    assert days["2026-05-03"]["lookups"] == {"901": 1}  # midnight JST is the new day
    hours = {h["period"]: h for h in report["hour"]}
    assert len(hours) == 24 and hours["08"]["prechecks"] == 1 and hours["09"]["prechecks"] == 1
    assert hours["09"]["calls"] == 2
    assert [w["period"] for w in report["week"]] == ["2026-W18"]
    assert [m["period"] for m in report["month"]] == ["2026-05"]
    assert report["month"][0]["calls"] == 5


def test_response_times_median_and_90th_percentile_from_the_event_timestamps():
    total = build_report(stream(), [], date(2026, 5, 1), date(2026, 5, 3), TOKYO).as_dict()["total"]
    # acknowledged after 10, 20, 30, 100 s; resolved after 120, 60, 360 s
    assert total["acknowledged"] == {"count": 4, "median_seconds": 25.0, "p90_seconds": 79.0}
    assert total["resolved"] == {"count": 3, "median_seconds": 120.0, "p90_seconds": 312.0}


def test_the_same_stream_in_utc_moves_events_across_days():
    utc = ZoneInfo("UTC")
    report = build_report(stream(), [], date(2026, 5, 1), date(2026, 5, 3), utc).as_dict()
    days = {d["period"]: d["prechecks"] for d in report["day"]}
    assert days == {"2026-05-01": 1, "2026-05-02": 1, "2026-05-03": 0}  # 08:59:59 JST is 30 April in UTC
    assert report["timezone"] == "UTC"


def test_offline_time_is_clipped_to_the_range_and_split_across_days_and_hours():
    gaps = [Gap("s1", "k1", ms("2026-04-30T23:00:00"), ms("2026-05-01T01:30:00")),  # 1.5 h inside
            Gap("s1", "k2", ms("2026-05-02T23:30:00"), ms("2026-05-03T00:15:00")),  # 30 + 15 min
            Gap("s1", "k2", ms("2026-05-03T23:00:00"), ms("2026-05-04T05:00:00"))]  # 1 h inside
    report = build_report([], gaps, date(2026, 5, 1), date(2026, 5, 3), TOKYO).as_dict()
    assert report["total"]["offline_seconds"] == 5400 + 2700 + 3600
    days = {d["period"]: d["offline_seconds"] for d in report["day"]}
    assert days == {"2026-05-01": 5400, "2026-05-02": 1800, "2026-05-03": 900 + 3600}
    hours = {h["period"]: h["offline_seconds"] for h in report["hour"]}
    assert hours["00"] == 3600 + 900 and hours["01"] == 1800 and hours["23"] == 1800 + 3600
    kiosks = {k["kiosk"]: k["offline_seconds"] for k in report["kiosks"]}
    assert kiosks == {"k1": 5400, "k2": 6300}


def test_parse_range_defaults_and_clear_errors():
    today = date(2026, 5, 31)
    assert parse_range(None, None, today) == (date(2026, 5, 2), today)
    assert parse_range("2026-05-01", "2026-05-01", today) == (date(2026, 5, 1), date(2026, 5, 1))
    with pytest.raises(ReportError, match=re.escape("starts (2026-05-02) after it ends (2026-05-01)")):
        parse_range("2026-05-02", "2026-05-01", today)
    with pytest.raises(ReportError, match="not a date"):
        parse_range("2026-02-30", None, today)
    with pytest.raises(ReportError, match="not a date"):
        parse_range(None, "yesterday", today)
    with pytest.raises(ReportError, match="longer than three years"):
        parse_range("2020-01-01", "2026-01-01", today)
    start, end = range_ms(date(2026, 5, 1), date(2026, 5, 1), TOKYO)
    assert end - start == 86_400_000 and start == ms("2026-05-01T00:00:00")


def test_csv_round_trips_every_number_of_the_json():
    report = build_report(stream(), [Gap("s1", "k1", ms("2026-05-01T01:00:00"), ms("2026-05-01T02:00:00"))],
                          date(2026, 5, 1), date(2026, 5, 3), TOKYO).as_dict()
    text = to_csv(report)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(csv_rows(report))
    cell = {(r["period_type"], r["period"], r["metric"], r["key"]): r["value"] for r in rows}
    assert cell[("total", "total", "prechecks", "")] == "3"
    assert cell[("total", "total", "outcomes", "smartphone_mismatch")] == "1"
    assert cell[("day", "2026-05-01", "lookups", "011")] == "2"
    assert cell[("total", "total", "acknowledged", "p90_seconds")] == "79.0"
    assert cell[("total", "total", "resolved", "median_seconds")] == "120.0"
    assert cell[("kiosk", "s1/k1", "offline_seconds", "")] == "3600.0"
    assert cell[("day", "2026-05-03", "acknowledged", "median_seconds")] == "100.0"
    assert cell[("day", "2026-05-02", "resolved", "median_seconds")] == ""  # None is an empty cell


def test_a_range_that_ends_before_it_starts_is_refused():
    with pytest.raises(ReportError):
        build_report([], [], date(2026, 5, 2), date(2026, 5, 1), TOKYO)
