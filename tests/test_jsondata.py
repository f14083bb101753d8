"""The shared JSON data reader: every failure is one clear error naming file, field and (unless secret) value,
in the same style as TOML files (kiosk.tomldata)."""

import json

import pytest
from pydantic import BaseModel, ConfigDict

from kiosk.datafile import DataFileError
from kiosk.jsondata import load_json, parse_json, read_json


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    depth: int = 0


class Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int
    steps: list[Step] = []
    secret: str = ""


class ShapeError(Exception):
    pass


def test_missing_unreadable_and_broken_files_name_the_file(tmp_path):
    with pytest.raises(ShapeError, match=r"nope\.json: shape file not found$"):
        load_json(tmp_path / "nope.json", Shape, ShapeError, "shape file")
    broken = tmp_path / "broken.json"
    broken.write_text('{"size": ', encoding="utf-8")
    with pytest.raises(ShapeError, match=r"broken\.json: not valid JSON: Expecting value: line 1"):
        load_json(broken, Shape, ShapeError, "shape file")
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ShapeError, match=r"binary\.json: cannot read shape file"):
        read_json(binary, ShapeError, "shape file")


def test_each_invalid_field_is_one_line_with_field_and_value(tmp_path):
    path = tmp_path / "shape.json"
    path.write_text(json.dumps({"size": "big", "colour": "red", "steps": [{"text": "a"}, {"text": "b", "depth": "x"}]}),
                    encoding="utf-8")
    with pytest.raises(ShapeError) as caught:
        load_json(path, Shape, ShapeError, "shape file")
    lines = str(caught.value).splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith(f"{path}: [size] ") and lines[0].endswith("(value: 'big')")
    assert lines[1].startswith(f"{path}: [steps[1].depth] ") and lines[1].endswith("(value: 'x')")
    assert lines[2].startswith(f"{path}: [colour] Extra inputs") and lines[2].endswith("(value: 'red')")


def test_values_stay_out_of_errors_for_files_holding_secrets(tmp_path):
    path = tmp_path / "secret.json"
    path.write_text('{"size": "hunter2"}', encoding="utf-8")
    with pytest.raises(ShapeError) as caught:
        load_json(path, Shape, ShapeError, "secret file", show_values=False)
    assert "[size]" in str(caught.value) and "hunter2" not in str(caught.value)


def test_structured_problems_for_callers_that_report_fields_themselves(tmp_path):
    path = tmp_path / "shape.json"
    path.write_text('{"size": 1, "steps": [{"depth": 2}]}', encoding="utf-8")
    with pytest.raises(DataFileError) as caught:
        parse_json(path, Shape, "shape file")
    (problem,) = caught.value.problems
    assert caught.value.source == str(path)
    assert (problem.loc, problem.field) == (("steps", 0, "text"), "steps[0].text")
    assert problem.value == {"depth": 2}
    assert problem.line(str(path)) == f"{path}: [steps[0].text] Field required"  # a whole table is not repeated


def test_a_valid_file_gives_the_model_and_read_json_any_value(tmp_path):
    path = tmp_path / "shape.json"
    path.write_text('{"size": 3, "steps": [{"text": "x"}]}', encoding="utf-8")
    assert load_json(path, Shape, ShapeError, "shape file") == Shape(size=3, steps=[Step(text="x")])
    path.write_text("[1, 2]", encoding="utf-8")
    assert read_json(path, ShapeError, "list") == [1, 2]
