"""Read a JSON data file into a pydantic model; every error names the file, the field and the value.

One place for the catalogue, the locale files (languages.json, guidance/ui/glossary.json), the display modes,
the kiosk's staff settings and the console's strings. Same reading and error style as TOML files
(`kiosk.tomldata`), shared through `kiosk.datafile`:

    modes = load_json(path, DisplayFile, DisplayError, "display modes")   # DisplayError("path: [field] … (value: …)")

`read_json` gives the parsed value without a model; callers needing structured problems (the catalogue reports
file, code and field separately) catch `kiosk.datafile.DataFileError` from `parse_json`.
"""

from __future__ import annotations

import json
from pathlib import Path

from kiosk.datafile import DataFileError, Model, check, read_data, validate

__all__ = ["load_json", "parse_json", "read_json", "validate"]


def read_json(path: Path, error: type[Exception], what: str) -> object:
    """The file's value (object, array …), or `error` with one sentence naming the file: not found, cannot be
    read, not valid JSON."""
    try:
        return read_data(path, json.loads, "JSON", what)
    except DataFileError as exc:
        raise exc.as_error(error) from None


def parse_json(path: Path, model: type[Model], what: str) -> Model:
    """Read and validate, raising `kiosk.datafile.DataFileError` (with its `problems`) on any failure."""
    return check(model, read_data(path, json.loads, "JSON", what), str(path))


def load_json(path: Path, model: type[Model], error: type[Exception], what: str, show_values: bool = True) -> Model:
    """Read and validate in one step; `error` with one line per problem (file, [field], message, value)."""
    try:
        return parse_json(path, model, what)
    except DataFileError as exc:
        raise exc.as_error(error, show_values) from None
