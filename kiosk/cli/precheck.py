"""`kiosk precheck`: watch the card reader and print what each presented item is, with its official code.

One line per presentation (`--json`: one JSON object with at least `outcome` and `code`, null when all is
well). Exit codes: 0 ok, 2 bad configuration or rule table, 3 timeout with nothing presented, 4 the reader
cannot be used: stderr says why (`reader <cause>: <staff text>` and the fix, in the staff language, from
catalogue/locales/<ja|en>/staff.json). A reader fault never prints a patient outcome.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hardware.readers.contract import Observation
    from kiosk.precheck import Verdict

EXIT_TIMEOUT = 3
EXIT_NO_READER = 4
STAFF_TEXTS = "staff.json"  # reader.<cause> and reader.<cause>.fix
FIRST_STATUS_SECONDS = 10.0  # how long a back-end may take to say whether it found a reader


def register(subparsers: argparse._SubParsersAction) -> None:
    from hardware.readers import registry

    parser = subparsers.add_parser("precheck", help="pre-check cards and phones on the reader",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--reader", metavar=registry.spec_metavar(),
                        help=f"reader back-end (default: reader.backend in the config): {registry.spec_help()}")
    parser.add_argument("--reader-name", metavar="TEXT", help="pick the reader whose name contains TEXT")
    parser.add_argument("--expect", choices=("card", "iphone", "android"),
                        help="what the patient will choose on the face-auth reader")
    parser.add_argument("--once", action="store_true", help="exit after the first presentation")
    parser.add_argument("--json", action="store_true", help="one JSON object per presentation")
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="give up after this long (exit 3 if nothing was presented)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from hardware.readers.contract import Presented, ReaderError, ReaderStatus
    from hardware.readers.registry import open_reader
    from kiosk.cli import config_from_args
    from kiosk.precheck import DEFAULT_RULES, RulesError, classify, load_rules
    from kiosk.scenarios import load_scenario

    config = config_from_args(args)
    try:
        rules = load_rules(config.reader.rules) if config.reader.rules else DEFAULT_RULES
        section = config.reader.model_copy(update={"backend": args.reader}) if args.reader else config.reader
        reader = open_reader(section.spec(),
                             args.reader_name if args.reader_name is not None else config.reader.name,
                             rules.probe_options(), load_scenario=load_scenario)
    except RulesError as exc:
        print(f"kiosk precheck: bad rule table:\n{exc}", file=sys.stderr)
        return 2
    except ReaderError as exc:
        print(f"kiosk precheck: {exc}", file=sys.stderr)
        if exc.cause is not None:
            print(_fault(exc.cause, exc.params, config.console.language), file=sys.stderr)
        return EXIT_NO_READER

    events: queue.Queue = queue.Queue()
    stop = threading.Event()
    thread = threading.Thread(target=reader.run, args=(events.put, stop), daemon=True, name="reader")
    thread.start()
    started = time.monotonic()
    deadline = started + args.timeout if args.timeout is not None else None
    status_deadline = started + FIRST_STATUS_SECONDS
    seen_reader = fault = False
    presented = 0
    try:
        while True:
            now = time.monotonic()
            if deadline is not None and now >= deadline:  # a reader still faulty then: 4, not a timeout
                return 0 if presented else EXIT_NO_READER if fault else EXIT_TIMEOUT
            if not seen_reader and now >= status_deadline:
                print(f"kiosk precheck: {reader.description} did not start", file=sys.stderr)
                return EXIT_NO_READER
            limits = [t - now for t in (deadline, None if seen_reader else status_deadline) if t is not None]
            try:
                event = events.get(timeout=min(limits) if limits else None)
            except queue.Empty:
                continue
            if isinstance(event, ReaderStatus):
                if not event.available and not seen_reader:
                    print(f"kiosk precheck: no reader: {event.detail}", file=sys.stderr)
                    print(_fault(event.cause, event.params, config.console.language), file=sys.stderr)
                    return EXIT_NO_READER
                seen_reader, fault = seen_reader or event.available, not event.available
                print(f"kiosk precheck: {'reader ready' if event.available else 'reader lost'}: {event.detail}",
                      file=sys.stderr, flush=True)
                if not event.available:
                    print(_fault(event.cause, event.params, config.console.language), file=sys.stderr, flush=True)
            elif isinstance(event, Presented):
                presented += 1
                verdict = classify(event.observation, args.expect, rules)
                print(_line(verdict, event.observation, args.json), flush=True)
                if args.once:
                    return 0
    finally:
        stop.set()
        thread.join(timeout=5)


def _fault(cause: str, params: Mapping[str, str], lang: str) -> str:
    """`reader <cause>: <staff text>` and an indented `→ <fix>` line, in staff language `lang` (ja, else en)."""
    from kiosk.doctor import DoctorTexts

    texts = DoctorTexts(lang, name=STAFF_TEXTS)
    message, fix = texts.get(f"reader.{cause}", params), texts.get(f"reader.{cause}.fix", params)
    return f"reader {cause}: {message}" + (f"\n  → {fix}" if fix else "")


def _line(verdict: Verdict, observation: Observation, as_json: bool) -> str:
    """One line for a presentation: JSON (outcome, code, hints, family, elapsed_ms) or `outcome  code  (hints)`."""
    if as_json:
        return json.dumps({
            "outcome": verdict.outcome.value,
            "code": verdict.code,
            "hints": list(verdict.hints),
            "family": observation.family.value,
            "elapsed_ms": round(observation.elapsed_ms, 1),
        })
    code = verdict.code or "ok"
    hints = f"  ({', '.join(verdict.hints)})" if verdict.hints else ""
    return f"{verdict.outcome.value}  {code}{hints}"
