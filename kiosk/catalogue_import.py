"""Importer: the official error-code table (seed TSV) → the verbatim part of the catalogue.

The seed is a PDF extraction: a header row repeated on every page, blank lines between pages, and rows whose
code cell is empty. Such a row either continues the previous condition across a page break (its
お調べください cell is empty too) or adds a further condition to the previous code. A code whose row is
repeated (009) keeps one entry with one condition per row. Every cell is kept byte for byte, with the seed
line number it came from, so cleaned fields can be audited against it (`catalogue/source/verbatim.json`).

    python -m kiosk.catalogue_import [--seed PATH] [--out PATH] [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

from kiosk.paths import catalogue_root

SEED_NAME = "source/error-codes-seed.txt"
VERBATIM_NAME = "source/verbatim.json"
HEADER_FIRST_CELL = "コード"
COLUMNS = 7
CODE_PATTERN = re.compile(r"\d{3}")
CONDITION_CELLS = ("check", "cause", "documents", "outage")


class SeedFormatError(ValueError):
    """The seed does not have the shape the importer knows; the message names the line."""


def import_seed(text: str, source_name: str = SEED_NAME) -> dict:
    """Parse the seed text into the verbatim structure (see module docstring)."""
    columns: list[str] | None = None
    codes: dict[str, dict] = {}
    current: dict | None = None
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != COLUMNS:
            raise SeedFormatError(f"{source_name}:{number}: expected {COLUMNS} tab-separated cells, got {len(cells)}")
        if cells[0] == HEADER_FIRST_CELL:
            if columns is not None and cells != columns:
                raise SeedFormatError(f"{source_name}:{number}: page header differs from the first one")
            columns = cells
            continue
        if columns is None:
            raise SeedFormatError(f"{source_name}:{number}: data row before the header row")
        code, heading, message, check, cause, documents, outage = cells
        row = {"check": check, "cause": cause, "documents": documents, "outage": outage}
        if code:
            if not CODE_PATTERN.fullmatch(code):
                raise SeedFormatError(f"{source_name}:{number}: code cell {code!r} is not three digits")
            if current is not None and current["code"] == code:  # the same code repeated on its own row
                if (heading, message) != (current["heading"], current["message"]):
                    raise SeedFormatError(
                        f"{source_name}:{number}: code {code} repeated with a different heading or message")
                _add_condition(current, number, row)
                continue
            if code in codes:
                raise SeedFormatError(f"{source_name}:{number}: code {code} appears again after other codes")
            current = {"code": code, "rows": [], "heading": heading, "message": message, "conditions": []}
            codes[code] = current
            _add_condition(current, number, row)
            continue
        if current is None:
            raise SeedFormatError(f"{source_name}:{number}: continuation row before any code")
        if heading or message:
            raise SeedFormatError(f"{source_name}:{number}: row without a code has a heading or message")
        if check:
            _add_condition(current, number, row)
        else:  # the previous condition's cells continue across a page break
            condition = current["conditions"][-1]
            condition["rows"].append(number)
            current["rows"].append(number)
            for name in CONDITION_CELLS:
                condition[name].append(row[name])
    if columns is None:
        raise SeedFormatError(f"{source_name}: no header row found")
    for entry in codes.values():
        del entry["code"]
    return {
        "source": {"file": source_name, "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()},
        "columns": columns,
        "codes": codes,
    }


def _add_condition(entry: dict, number: int, row: dict[str, str]) -> None:
    entry["rows"].append(number)
    entry["conditions"].append({"rows": [number], **{name: [row[name]] for name in CONDITION_CELLS}})


def render(verbatim: dict) -> str:
    """The exact bytes committed as verbatim.json (stable key order, UTF-8, trailing newline)."""
    return json.dumps(verbatim, ensure_ascii=False, indent=2) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=Path, help=f"seed TSV (default: <catalogue>/{SEED_NAME})")
    parser.add_argument("--out", type=Path, help=f"output JSON (default: <catalogue>/{VERBATIM_NAME})")
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if the output would change")


def run(args: argparse.Namespace) -> int:
    """Regenerate (or with --check, compare) the verbatim part; errors go to stderr with exit 2."""
    root = catalogue_root()
    seed = args.seed or root / SEED_NAME
    out = args.out or root / VERBATIM_NAME
    try:
        text = seed.read_text(encoding="utf-8")
        rendered = render(import_seed(text, source_name=SEED_NAME if args.seed is None else str(seed)))
    except (OSError, UnicodeDecodeError, SeedFormatError) as exc:
        print(f"catalogue import: {exc}", file=sys.stderr)
        return 2
    if args.check:
        current = out.read_text(encoding="utf-8") if out.exists() else None
        if current != rendered:
            print(f"catalogue import: {out} is out of date; run without --check to regenerate", file=sys.stderr)
            return 1
        print(f"{out}: up to date")
        return 0
    out.write_text(rendered, encoding="utf-8")
    print(f"{out}: {len(json.loads(rendered)['codes'])} codes written")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kiosk.catalogue_import", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
