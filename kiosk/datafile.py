"""What the data-file readers share (`kiosk.tomldata` for TOML, `kiosk.jsondata` for JSON): read a UTF-8 file,
parse it, validate it into a pydantic model, and say what is wrong in one line per problem naming the file,
the field and the value given.

Readers raise `DataFileError` (structured: `problems`); the public `load_*` functions turn it into the caller's
own exception class with `as_error`, so each part of the kiosk keeps its error type (ConfigError, LocaleError …).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)
Location = tuple[str | int, ...]
NO_VALUE = object()
_PYDANTIC_STEPS = ("function-after", "function-before", "function-wrap", "literal[", "constrained-str", "tagged-union")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a data file: where (`loc`, the field's path; empty for the file as a whole), what
    (`message`, one sentence) and the value given (absent when there is none)."""

    loc: Location
    message: str
    value: object = NO_VALUE

    @property
    def field(self) -> str:
        return field_name(self.loc)

    def line(self, source: str, show_values: bool = True) -> str:
        """`source: [field] message (value: …)`; the value only when asked for and not a whole table."""
        shown = ""
        if show_values and self.value is not NO_VALUE and not isinstance(self.value, dict):
            shown = f" (value: {self.value!r})"
        where = f" [{self.field}]" if self.loc else ""
        return f"{source}:{where} {self.message}{shown}"


class DataFileError(Exception):
    """A data file that cannot be used: `source` (the file's path, or where the data came from) and one or more
    `problems`."""

    def __init__(self, source: str, problems: list[Problem]):
        self.source = source
        self.problems = problems
        super().__init__(self.text())

    def text(self, show_values: bool = True) -> str:
        return "\n".join(problem.line(self.source, show_values) for problem in self.problems)

    def as_error(self, error: type[Exception], show_values: bool = True) -> Exception:
        """The same message as the caller's own exception class (`raise exc.as_error(ConfigError) from None`)."""
        return error(self.text(show_values))


def field_name(loc: Location) -> str:
    """A pydantic error location as people write it: `conditions[1].steps.common`, without pydantic's own
    validator steps (`function-after[…]`, `[key]`, `literal[…]`)."""
    name = ""
    for part in loc:
        if isinstance(part, int):
            name += f"[{part}]"
        elif part != "[key]" and not part.startswith(_PYDANTIC_STEPS):
            name += f".{part}" if name else part
    return name


def read_data(path: Path, parse: Callable[[str], Any], syntax: str, what: str) -> Any:
    """The parsed contents of a UTF-8 text file, or DataFileError: `what` not found, cannot be read, or not
    valid `syntax` (the parser's ValueError, e.g. json.JSONDecodeError or tomllib.TOMLDecodeError)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataFileError(str(path), [Problem((), f"{what} not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFileError(str(path), [Problem((), f"cannot read {what}: {exc}")]) from None
    try:
        return parse(text)
    except ValueError as exc:
        raise DataFileError(str(path), [Problem((), f"not valid {syntax}: {exc}")]) from None


def check(model: type[Model], data: object, source: str) -> Model:
    """`data` as `model`, or DataFileError with one Problem per pydantic error."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [Problem(tuple(err["loc"]), err["msg"], err.get("input", NO_VALUE)) for err in exc.errors()]
        raise DataFileError(source, problems) from None


def validate(model: type[Model], data: object, error: type[Exception], source: str, show_values: bool = True) -> Model:
    """`data` as `model`, or `error` with one line per problem: source, [field], message and (unless the data
    holds secrets: `show_values=False`) the value given."""
    try:
        return check(model, data, source)
    except DataFileError as exc:
        raise exc.as_error(error, show_values) from None
