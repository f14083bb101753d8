"""Read a TOML data file into a pydantic model; every error names the file, the field and the value.

One place for the config, the pre-check rule table, reader scenarios and the console's accounts file. The
reading and error style are shared with JSON files (`kiosk.jsondata`) through `kiosk.datafile`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from kiosk.datafile import DataFileError, Model, read_data, validate

__all__ = ["load_toml", "read_toml", "validate"]


def read_toml(path: Path, error: type[Exception], what: str) -> dict[str, Any]:
    """The file's tables, or `error` with one sentence naming the file."""
    try:
        data: dict[str, Any] = read_data(path, tomllib.loads, "TOML", what)
    except DataFileError as exc:
        raise exc.as_error(error) from None
    return data


def load_toml(path: Path, model: type[Model], error: type[Exception], what: str, show_values: bool = True) -> Model:
    """Read and validate in one step."""
    return validate(model, read_toml(path, error, what), error, str(path), show_values)
