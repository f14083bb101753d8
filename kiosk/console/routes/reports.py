"""Reports and history from the event store (staff accounts only): /reports (the page, charts drawn in the
browser with the vendored Chart.js), /api/report (JSON, `kiosk.reports.Report.as_dict`), /api/report.csv
(the spreadsheet form) and /api/history (events of a range, filtered by site, kiosk, kind and code).

The store is `app.state.history` (`kiosk.recorder.store.Store`, None when the console keeps no history).
Dates are YYYY-MM-DD in the facility's time zone; a bad range is refused with a sentence in the browser's
language (400 bad_date / bad_range / range_too_long).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from kiosk.console.auth import Session
from kiosk.console.routes.dependencies import LANGUAGES, ConsoleDep, Refused, SessionLookup, SignedIn
from kiosk.recorder import report_from_store
from kiosk.reports import ReportError, parse_range, range_ms, to_csv

router = APIRouter()
_RANGE_ERRORS = {"not_a_date": "bad_date", "reversed": "bad_range", "too_long": "range_too_long"}


def staff_reader(session: SignedIn) -> Session:
    """A signed-in staff account: wall screens (display accounts) do not see reports."""
    if not session.account.can_command:
        raise Refused("reports_staff_only", 403)
    return session


StaffReader = Annotated[Session, Depends(staff_reader)]


def _history(request: Request) -> Any:
    store = getattr(request.app.state, "history", None)
    if store is None:
        raise Refused("no_history", 503)
    return store


def _query(request: Request, console: ConsoleDep) -> dict[str, Any]:
    """from / to / site of the request, checked: the site must be one of this console's."""
    settings = request.app.state.history_settings
    tz = ZoneInfo(settings["timezone"])
    params = request.query_params
    try:
        first, last = parse_range(params.get("from") or None, params.get("to") or None, datetime.now(tz).date())
    except ReportError as exc:
        raise Refused(_RANGE_ERRORS[exc.reason], 400, **exc.params) from None
    site = params.get("site") or None
    sites = console.hub.sites
    if site is not None and site not in sites and "+" not in sites:
        raise Refused("other_site", 403)
    chosen = [site] if site else (None if "+" in sites else list(sites))
    return {"first": first, "last": last, "tz": tz, "sites": chosen,
            "offline_after": settings["offline_after_seconds"]}


Query = Annotated[dict[str, Any], Depends(_query)]


async def _report(request: Request, query: dict[str, Any]) -> dict[str, Any]:
    store = _history(request)
    return await run_in_threadpool(report_from_store, store, query["first"], query["last"], query["tz"],
                                   query["sites"], query["offline_after"])


@router.get("/reports", response_class=HTMLResponse)
async def reports_page(request: Request, console: ConsoleDep, lookup: SessionLookup) -> Response:
    session, why = lookup
    if session is None:
        return RedirectResponse("/login?why=expired" if why == "session_expired" else "/login", 303)
    lang = console.lang_of(request)
    if not session.account.can_command:
        return console.page(request, "reports.html", 403, session=session, denied=True, strings={}, sites=[],
                            other_lang=lang, other_name="")
    other = next(code for code in LANGUAGES if code != lang)
    return console.page(request, "reports.html", session=session, denied=False, strings=console.strings[lang],
                        sites=console.hub.sites, other_lang=other, other_name=console.strings[other]["lang.name"])


@router.get("/api/report")
async def report_json(request: Request, _session: StaffReader, query: Query) -> JSONResponse:
    return JSONResponse(await _report(request, query))


@router.get("/api/report.csv")
async def report_csv(request: Request, _session: StaffReader, query: Query) -> Response:
    report = await _report(request, query)
    name = f"kiosk-report-{report['from']}-{report['to']}.csv"
    return Response(to_csv(report), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/api/history")
async def history(request: Request, _session: StaffReader, query: Query) -> JSONResponse:
    store = _history(request)
    params = request.query_params
    start_ms, end_ms = range_ms(query["first"], query["last"], query["tz"])
    rows = await run_in_threadpool(
        lambda: store.history(start_ms, end_ms, sites=query["sites"], kiosk=params.get("kiosk") or None,
                              kind=params.get("kind") or None, code=params.get("code") or None))
    return JSONResponse({"events": [asdict(row) for row in rows]})
