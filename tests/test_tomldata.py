"""The shared TOML data reader: every failure is one clear error naming file, field and (unless secret) value."""

import pytest
from pydantic import BaseModel, ConfigDict

from kiosk.tomldata import load_toml


class Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int
    secret: str = ""


class ShapeError(Exception):
    pass


def test_missing_unreadable_and_broken_files_name_the_file(tmp_path):
    with pytest.raises(ShapeError, match=r"nope\.toml: shape file not found"):
        load_toml(tmp_path / "nope.toml", Shape, ShapeError, "shape file")
    broken = tmp_path / "broken.toml"
    broken.write_text("size = [", encoding="utf-8")
    with pytest.raises(ShapeError, match=r"broken\.toml: not valid TOML"):
        load_toml(broken, Shape, ShapeError, "shape file")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ShapeError, match=r"binary\.toml: cannot read shape file"):
        load_toml(binary, Shape, ShapeError, "shape file")


def test_each_invalid_field_is_one_line_with_field_and_value(tmp_path):
    path = tmp_path / "shape.toml"
    path.write_text('size = "big"\ncolour = "red"\n', encoding="utf-8")
    with pytest.raises(ShapeError) as caught:
        load_toml(path, Shape, ShapeError, "shape file")
    lines = str(caught.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{path}: [size]") and "(value: 'big')" in lines[0]
    assert lines[1].startswith(f"{path}: [colour]") and "(value: 'red')" in lines[1]


def test_values_stay_out_of_errors_for_files_holding_secrets(tmp_path):
    path = tmp_path / "accounts.toml"
    path.write_text('size = "hunter2"\n', encoding="utf-8")
    with pytest.raises(ShapeError) as caught:
        load_toml(path, Shape, ShapeError, "accounts file", show_values=False)
    assert "[size]" in str(caught.value) and "hunter2" not in str(caught.value)


def test_a_valid_file_gives_the_model(tmp_path):
    path = tmp_path / "shape.toml"
    path.write_text("size = 3\n", encoding="utf-8")
    assert load_toml(path, Shape, ShapeError, "shape file") == Shape(size=3)
