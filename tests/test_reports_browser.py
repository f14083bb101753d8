"""The console's reports page in Debian's Chromium (Playwright), over a real store fed by the console's own
recorder from a real mosquitto: charts render (screenshots not blank), numbers match a known event stream,
the CSV round-trips, a display account cannot open reports, a bad date range gets a clear error."""

from __future__ import annotations

import csv
import io
import json
import struct
import zlib

import pytest

from kiosk.config import config_from_dict
from kiosk.recorder.store import open_store
from tests.rigs.console import ACCOUNT_PASSWORDS
from tests.test_recorder import envelope, publish, wait_for
from tests.test_reports import stream

pytestmark = [pytest.mark.browser, pytest.mark.mqtt]


def png_colours(png: bytes) -> int:
    """How many distinct RGBA pixels a PNG screenshot holds (zlib only: 8-bit RGB/RGBA, filter-aware)."""
    width, height, depth, colour = struct.unpack(">IIBB", png[16:26])
    assert depth == 8 and colour in (2, 6)
    chunks, pos = [], 8
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        if kind == b"IDAT":
            chunks.append(png[pos + 8:pos + 8 + length])
        pos += 12 + length
    raw = zlib.decompress(b"".join(chunks))
    bpp = 4 if colour == 6 else 3
    stride = width * bpp
    previous = bytearray(stride)
    seen = set()
    for row in range(height):
        kind = raw[row * (stride + 1)]
        line = bytearray(raw[row * (stride + 1) + 1:(row + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up = previous[i]
            corner = previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        seen.update(bytes(line[i:i + bpp]) for i in range(0, stride, bpp * 7))  # every 7th pixel is plenty
        previous = line
    return len(seen)


def login(browser, url: str, account: str, lang: str = "en"):
    context = browser.new_context(locale="en-GB", viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(f"{url}/login?lang={lang}")
    page.fill("input[name=name]", account)
    page.fill("input[name=password]", ACCOUNT_PASSWORDS[account])
    page.click("button[type=submit]")
    page.wait_for_load_state()
    return page


@pytest.fixture
def reports_console(tmp_path, mosquitto, console_server):
    from kiosk.recorder.ingest import record_of

    store = open_store(f"sqlite:///{tmp_path / 'history.sqlite3'}")
    rows = []
    for n, ev in enumerate(stream(), 1):  # the known stream of tests/test_reports.py, as stored rows
        env = envelope(ev.kind, {}, kiosk=ev.kiosk, site="site-1", seq=n)
        record = record_of("kiosk", f"kiosk/site-1/{ev.kiosk}/event/{ev.kind}", json.dumps(env).encode(), 0)
        record.update(ts_ms=ev.ts_ms, code=ev.code, outcome=ev.outcome, reason=ev.reason, call_id=ev.call_id,
                      available=ev.available)
        rows.append(record)
    store.insert(rows)
    config = config_from_dict({"kiosk": {"site": "site-1", "state_dir": str(tmp_path / "state")},
                               "mqtt": {"url": mosquitto.url}, "recorder": {"offline_after_seconds": 1e9}})
    console = console_server(config, history=store)
    yield console, store, mosquitto
    console.stop()


def test_reports_page_draws_the_known_stream_and_csv_round_trips(reports_console, chromium):
    console, _store, broker = reports_console
    page = login(chromium, console.url, "staff")
    page.click("header a.reports")  # the live page links to the reports
    page.wait_for_url("**/reports?lang=en")
    page.goto(console.url + "/reports?lang=en&from=2026-05-01&to=2026-05-03")
    page.wait_for_selector("body[data-loaded=yes]")
    figures = page.inner_text("#summary")
    assert "3\nPre-checks" in figures and "5 (unanswered 1)" in figures
    assert "median 25 s / 90% within 79 s" in figures  # seconds below 2 min, minutes from there
    assert "median 2 min / 90% within 5 min" in figures
    assert page.inner_text("#table-lookups tbody").split() == ["011", "2", "901", "1"]
    for canvas in ("#chart-outcomes", "#chart-hours"):
        assert png_colours(page.locator(canvas).screenshot()) > 8, f"{canvas} is blank"

    report = page.request.get(console.url + "/api/report?from=2026-05-01&to=2026-05-03").json()
    text = page.request.get(console.url + "/api/report.csv?from=2026-05-01&to=2026-05-03").text()
    cells = {(r["period_type"], r["period"], r["metric"], r["key"]): r["value"]
             for r in csv.DictReader(io.StringIO(text))}
    for day in report["day"]:
        assert cells[("day", day["period"], "prechecks", "")] == str(day["prechecks"])
        for outcome, n in day["outcomes"].items():
            assert cells[("day", day["period"], "outcomes", outcome)] == str(n)
    assert cells[("total", "total", "acknowledged", "p90_seconds")] == "79.0"

    # the console's own recorder stores what kiosks publish now, once, and the history shows it
    live = envelope("lookup", {"code": "024", "known": True}, kiosk="k9", seq=1,
                    time="2026-05-03T12:00:00+09:00")
    topic = "kiosk/site-1/k9/event/lookup"
    publish(broker, [(topic, json.dumps(live).encode())] * 2)
    wait_for(lambda: page.request.get(console.url + "/api/history?from=2026-05-03&to=2026-05-03&kiosk=k9")
             .json()["events"] != [], what="the live event in the history")
    events = page.request.get(console.url + "/api/history?from=2026-05-03&to=2026-05-03&kiosk=k9").json()["events"]
    assert [(e["kind"], e["code"]) for e in events] == [("lookup", "024")]


def test_display_account_cannot_open_reports_and_a_bad_range_is_explained(reports_console, chromium):
    console, _store, _broker = reports_console
    wall = login(chromium, console.url, "wall")
    assert wall.locator("header a.reports").count() == 0  # no link for a wall screen
    response = wall.goto(console.url + "/reports?lang=en")
    assert response.status == 403 and "staff accounts only" in wall.inner_text("#denied")
    api = wall.request.get(console.url + "/api/report")
    assert api.status == 403 and api.json()["error"] == "reports_staff_only"
    assert wall.request.get(console.url + "/api/report.csv").status == 403

    page = login(chromium, console.url, "staff")
    page.goto(console.url + "/reports?lang=en&from=2026-05-04&to=2026-05-01")
    page.wait_for_selector("body[data-loaded=error]")
    assert page.inner_text("#report-error") == "The range starts (2026-05-04) after it ends (2026-05-01)."
    bad = page.request.get(console.url + "/api/report?from=2026-13-01&lang=ja")
    assert bad.status == 400 and bad.json()["error"] == "bad_date" and "2026-13-01" in bad.json()["message"]
