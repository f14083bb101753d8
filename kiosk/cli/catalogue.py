"""`kiosk catalogue`: list, show, validate and import the error-code catalogue.

Exit codes: 0 ok, 1 the catalogue data is broken, 2 an unknown or malformed code (the message names the
nearest known codes).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import SimpleNamespace

from kiosk import catalogue_import

# --facility: the sections a clinic / pharmacy can be shown, assuming it uses every service it can.
FACILITIES = {
    "clinic": SimpleNamespace(type="clinic", e_prescription=True, e_karte=True),
    "pharmacy": SimpleNamespace(type="pharmacy", e_prescription=True, e_karte=False),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("catalogue", help="browse and check the error-code catalogue",
                                   description=__doc__.splitlines()[0])
    actions = parser.add_subparsers(dest="catalogue_action", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="every code with its audience, outage flag and title")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=run_list)

    show = actions.add_parser("show", help="one code: patient guidance, then the official text for staff")
    show.add_argument("code", help="three-digit error code, e.g. 021")
    show.add_argument("--lang", default="ja", help="guidance language (a folder in catalogue/locales; default ja)")
    show.add_argument("--facility", choices=sorted(FACILITIES), help="show only the steps for this kind of facility")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(handler=run_show)

    validate = actions.add_parser("validate", help="load and audit a catalogue folder (default: the installed one)")
    validate.add_argument("path", nargs="?", type=Path, help="catalogue folder")
    validate.set_defaults(handler=run_validate)

    importer = actions.add_parser("import", help="regenerate source/verbatim.json from the seed table")
    catalogue_import.add_arguments(importer)
    importer.set_defaults(handler=catalogue_import.run)


def _load(path: Path | None = None):
    from kiosk.catalogue import CatalogueError, load_catalogue

    try:
        return load_catalogue(path)
    except CatalogueError as exc:
        print(f"kiosk catalogue: the catalogue data is broken:\n{exc}", file=sys.stderr)
        return None


def run_list(args: argparse.Namespace) -> int:
    catalogue = _load()
    if catalogue is None:
        return 1
    rows = [{"code": e.code, "title": e.title, "tags": e.tags, "audience": e.audience, "outage": e.outage,
             "call_staff": catalogue.guidance(e.code).call_staff} for e in catalogue.codes.values()]
    if args.json:
        print(json.dumps({"version": catalogue.version, "codes": rows}, ensure_ascii=False, indent=2))
        return 0
    print(f"catalogue {catalogue.version}: {len(rows)} codes (audience, outage = system failure, title)")
    for row in rows:
        print(f"{row['code']}  {row['audience']:<7}  {'outage' if row['outage'] else '-':<6}  {row['title']}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from kiosk.catalogue import UnknownCode

    catalogue = _load()
    if catalogue is None:
        return 1
    try:
        entry = catalogue.get(args.code)
    except UnknownCode as exc:
        known = "" if exc.nearest else f"; known codes run from {min(catalogue.codes)} to {max(catalogue.codes)}"
        print(f"kiosk catalogue: {exc}{known} (see `kiosk catalogue list`)", file=sys.stderr)
        return 2
    lang = catalogue.resolve_language(args.lang)
    if lang != args.lang:
        print(f"kiosk catalogue: no guidance in {args.lang!r}; showing {lang!r} "
              f"(available: {', '.join(catalogue.languages)})", file=sys.stderr)
    guidance = catalogue.guidance(entry.code, lang)
    facility = FACILITIES.get(args.facility)
    if args.json:
        print(json.dumps(_as_json(catalogue, entry, guidance, lang, facility), ensure_ascii=False, indent=2))
        return 0
    _print_entry(catalogue, entry, guidance, facility)
    return 0


def _sections(catalogue, condition, facility) -> dict[str, list]:
    from kiosk.catalogue import SECTION_ORDER, sections_for

    wanted = sections_for(facility) if facility else SECTION_ORDER
    return {section: condition.steps[section] for section in wanted if section in condition.steps}


def _as_json(catalogue, entry, guidance, lang, facility) -> dict:
    return {
        "version": catalogue.version,
        "code": entry.code, "title": entry.title, "tags": entry.tags, "audience": entry.audience,
        "outage": entry.outage, "message": entry.message, "params": entry.params, "documents": entry.documents,
        "facility": vars(facility) if facility else None,
        "conditions": [
            {"check": c.check, "outage": c.outage, "documents": c.documents, "seed_rows": c.source.rows,
             "steps": {section: [step.model_dump() for step in steps]
                       for section, steps in _sections(catalogue, c, facility).items()}}
            for c in entry.conditions
        ],
        "guidance": {"lang": lang, **guidance.model_dump()},
    }


def _print_entry(catalogue, entry, guidance, facility) -> None:
    print(f"{entry.code}  {guidance.title}")
    for number, step in enumerate(guidance.format().steps, start=1):
        print(f"  {number}. {step}")
    print()
    extras = [f"call staff: {'yes' if guidance.call_staff else 'no'}"]
    if guidance.illustrations:
        extras.append(f"pictures: {', '.join(guidance.illustrations)}")
    print("  (" + "; ".join(extras) + ")")
    print()
    print(f"For staff — official text ({entry.code} {entry.title}; {' '.join(f'【{t}】' for t in entry.tags)}; "
          f"audience: {entry.audience}; "
          f"{'system failure: interim operation' if entry.outage else 'no system failure'})")
    print(f"  画面のメッセージ: {entry.format_message()}")
    for number, condition in enumerate(entry.conditions, start=1):
        flag = "○ 障害・暫定運用" if condition.outage else "-"
        print(f"  お調べください {number} [{flag}] (seed rows {', '.join(map(str, condition.source.rows))}):")
        print(f"    {condition.check}")
        for section, steps in _sections(catalogue, condition, facility).items():
            print(f"    {catalogue.section_header(section)}")
            for step in steps:
                bullet = "" if step.text.startswith(("※", "①", "②")) else "・"
                indent = "  " * step.depth
                print(f"      {indent}{bullet}{step.text}")
        if condition.documents:
            print(f"    資料: {' / '.join(condition.documents)}")


def run_validate(args: argparse.Namespace) -> int:
    from kiosk.catalogue import audit_against_source

    catalogue = _load(args.path)
    if catalogue is None:
        return 1
    problems = audit_against_source(catalogue)
    seed = catalogue.root / catalogue_import.SEED_NAME
    try:
        fresh = catalogue_import.render(catalogue_import.import_seed(seed.read_text(encoding="utf-8")))
        if fresh != (catalogue.root / catalogue_import.VERBATIM_NAME).read_text(encoding="utf-8"):
            problems.append(f"{catalogue_import.VERBATIM_NAME}: out of date with the seed; "
                            "run `kiosk catalogue import`")
    except (OSError, UnicodeDecodeError, catalogue_import.SeedFormatError) as exc:
        problems.append(f"{seed}: {exc}")
    if problems:
        print("kiosk catalogue: the catalogue does not match its seed:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"OK: catalogue {catalogue.version} at {catalogue.root}: {len(catalogue.codes)} codes, "
          f"{len(catalogue.corrections)} corrections audited, languages: {', '.join(catalogue.languages)}")
    return 0
