"""Read a TOML data file into a pydantic model; every error names the file, the field and the value.

One place for the config, the pre-check rule table, reader scenarios and the console's accounts file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


def read_toml(path: Path, error: type[Exception], what: str) -> dict:
    """The file's tables, or `error` with one sentence naming the file."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read {what}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from None


def validate(model: type[Model], data: dict, error: type[Exception], source: str, show_values: bool = True) -> Model:
    """`data` as `model`, or `error` with one line per problem: source, [field], message and (unless the file
    holds secrets: `show_values=False`) the value given."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            value = err.get("input")
            shown = f" (value: {value!r})" if show_values and not isinstance(value, dict) else ""
            problems.append(f"{source}: [{field}] {err['msg']}{shown}")
        raise error("\n".join(problems)) from None


def load_toml(path: Path, model: type[Model], error: type[Exception], what: str, show_values: bool = True) -> Model:
    """Read and validate in one step."""
    return validate(model, read_toml(path, error, what), error, str(path), show_values)
