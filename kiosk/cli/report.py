"""`kiosk report`: the facility report of a date range from the history store, as text, JSON or CSV."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

from kiosk.cli import config_from_args
from kiosk.config import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="counts, staff response times, offline time and reader faults over a date range",
        description="Report from the event history (see docs/history.md). Dates are YYYY-MM-DD, both "
                    "inclusive, in the facility's time zone ([facility] timezone).")
    parser.add_argument("--site", action="append", metavar="SITE", help="only this site (repeatable)")
    parser.add_argument("--from", dest="start", metavar="DATE", help="first day (default: 29 days before --to)")
    parser.add_argument("--to", dest="end", metavar="DATE", help="last day (default: today)")
    parser.add_argument("--database", metavar="URL", help="history store URL (default as for kiosk recorder)")
    parser.add_argument("--state-dir", metavar="DIR", help="where the default SQLite store lives")
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_const", const="json", dest="form", help="the whole report as JSON")
    form.add_argument("--csv", action="store_const", const="csv", dest="form",
                      help="one value a row: period_type,period,metric,key,value")
    parser.set_defaults(handler=run, form="text")


def run(args: argparse.Namespace) -> int:
    from kiosk.recorder import database_url, report_from_store
    from kiosk.recorder.store import StoreError, open_store
    from kiosk.reports import ReportError, parse_range, to_csv

    config = config_from_args(args)
    if args.database:
        config.recorder.database = args.database
    tz = ZoneInfo(config.facility.timezone)
    try:
        first, last = parse_range(args.start, args.end, datetime.now(tz).date())
    except ReportError as exc:
        print(f"kiosk report: {exc}", file=sys.stderr)
        return 2
    try:
        store = open_store(database_url(config, os.environ), migrate=False, must_exist=True)
    except StoreError as exc:
        raise ConfigError(str(exc)) from None
    try:
        report = report_from_store(store, first, last, tz, args.site, config.recorder.offline_after_seconds)
    finally:
        store.close()
    if args.form == "json":
        print(json.dumps(report, ensure_ascii=False, indent=2))
    elif args.form == "csv":
        sys.stdout.write(to_csv(report))
    else:
        print(summary(report))
    return 0


def summary(report: dict) -> str:
    """A few lines for a terminal."""
    total = report["total"]
    lines = [f"{report['from']} – {report['to']} ({report['timezone']})"
             + (f", sites {', '.join(report['sites'])}" if report["sites"] else ""),
             f"pre-checks {total['prechecks']}: " + ", ".join(f"{k} {v}" for k, v in total["outcomes"].items() if v),
             "codes looked up: " + (", ".join(f"{k} ×{v}" for k, v in total["lookups"].items()) or "none"),
             f"staff calls {total['calls']}: "
             + ", ".join(f"{k} {v}" for k, v in total["calls_by_reason"].items() if v)]
    for stage in ("acknowledged", "resolved"):
        latency = total[stage]
        if latency["count"]:
            lines.append(f"call → {stage}: median {_duration(latency['median_seconds'])}, "
                         f"90% within {_duration(latency['p90_seconds'])} ({latency['count']} calls)")
    lines.append(f"unanswered calls {total['unanswered']}, "
                 f"kiosk offline {total['offline_seconds'] / 3600:.1f} h, "
                 f"reader faults {total['reader_faults']}, outages {total['outages']}")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    """Seconds up to 2 min, minutes up to 2 h, then hours (as the console's Reports page)."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"
