"""Broken or incomplete catalogue files give one clear CatalogueError naming file, code and field."""

import json
import shutil

import pytest

from kiosk.catalogue import CatalogueError, audit_against_source, load_catalogue
from kiosk.paths import catalogue_root


@pytest.fixture
def root(tmp_path):
    copy = tmp_path / "catalogue"
    shutil.copytree(catalogue_root(), copy, ignore=shutil.ignore_patterns("fonts", "voices", "*.ttf", "*.htsvoice"))
    return copy


def edit(path, change):
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")


def expect_error(root, file, code, field):
    with pytest.raises(CatalogueError) as raised:
        load_catalogue(root)
    error = raised.value
    assert error.file.endswith(file), str(error)
    assert (error.code, error.field) == (code, field), str(error)
    assert file in str(error) and (not code or f"code {code}" in str(error))
    return error


def test_missing_field_in_codes(root):
    edit(root / "codes.json", lambda d: d["021"].pop("title"))
    expect_error(root, "codes.json", "021", "title")


def test_wrong_type_deep_in_a_condition(root):
    edit(root / "codes.json", lambda d: d["011"]["conditions"][1].update(outage="yes please"))
    expect_error(root, "codes.json", "011", "conditions[1].outage")


def test_unknown_facility_section(root):
    edit(root / "codes.json", lambda d: d["001"]["conditions"][0]["steps"].update(hospital=[{"text": "x"}]))
    error = expect_error(root, "codes.json", "001", "conditions[0].steps.hospital")
    assert "common" in str(error)


def test_bad_audience_value_is_shown(root):
    edit(root / "codes.json", lambda d: d["008"].update(audience="nurse"))
    error = expect_error(root, "codes.json", "008", "audience")
    assert "'nurse'" in str(error)


def test_code_missing_from_codes(root):
    edit(root / "codes.json", lambda d: d.pop("952"))
    error = expect_error(root, "codes.json", "952", "")
    assert "verbatim" in str(error)


def test_locale_missing_a_code(root):
    edit(root / "locales/en/guidance.json", lambda d: d.pop("021"))
    error = expect_error(root, "locales/en/guidance.json", "021", "")
    assert "missing" in str(error)


def test_locale_with_an_extra_code(root):
    edit(root / "locales/en/guidance.json", lambda d: d.update({"999": {"title": "x", "steps": ["y"]}}))
    expect_error(root, "locales/en/guidance.json", "999", "")


def test_locale_with_mismatched_placeholder(root):
    edit(root / "locales/en/guidance.json", lambda d: d["003"]["steps"].__setitem__(1, "{tries} more tries left."))
    error = expect_error(root, "locales/en/guidance.json", "003", "title/steps")
    assert "remaining" in str(error) and "tries" in str(error)


def test_locale_with_too_many_steps(root):
    edit(root / "locales/ja/guidance.json", lambda d: d["021"]["steps"].append("四つ目"))
    expect_error(root, "locales/ja/guidance.json", "021", "steps")


def test_locale_with_an_unknown_key(root):
    edit(root / "locales/en/guidance.json", lambda d: d["021"].update(subtitle="x"))
    expect_error(root, "locales/en/guidance.json", "021", "subtitle")


def test_unknown_illustration(root):
    edit(root / "guidance.json", lambda d: d["021"].update(illustrations=["phone_upside_down"]))
    error = expect_error(root, "guidance.json", "021", "illustrations[0]")
    assert "phone_nfc_spot" in str(error)


def test_message_placeholder_without_param(root):
    edit(root / "codes.json", lambda d: d["003"].update(params=[]))
    expect_error(root, "codes.json", "003", "message")


def test_invalid_json_names_the_file(root):
    (root / "locales/en/guidance.json").write_text('{"001": ', encoding="utf-8")
    with pytest.raises(CatalogueError, match=r"locales/en/guidance.json.*not valid JSON"):
        load_catalogue(root)


def test_missing_file_names_the_file(root):
    (root / "corrections.json").unlink()
    with pytest.raises(CatalogueError, match=r"corrections.json.*file not found"):
        load_catalogue(root)


def test_bad_version_string(root):
    edit(root / "catalogue.json", lambda d: d.update(version="latest"))
    expect_error(root, "catalogue.json", "", "version")


def test_languages_are_the_folders_with_guidance(root):
    before = load_catalogue(root).languages
    # qaa: ISO 639-2 "reserved for local use", a code that can never ship (a real one such as fr may one day)
    assert before[0] == "ja" and "en" in before and "qaa" not in before and "zz" not in before
    shutil.copytree(root / "locales/en", root / "locales/qaa")
    (root / "locales/zz").mkdir()  # a folder with no guidance yet is not a language
    catalogue = load_catalogue(root)
    assert catalogue.languages == ("ja", *sorted([*before[1:], "qaa"]))
    assert catalogue.guidance("021", "zz") == catalogue.guidance("021", "ja")


def test_a_new_locale_is_validated_like_the_others(root):
    shutil.copytree(root / "locales/en", root / "locales/qaa")  # qaa: reserved for local use, never shipped
    edit(root / "locales/qaa/guidance.json", lambda d: d.pop("101"))
    expect_error(root, "locales/qaa/guidance.json", "101", "")


def test_audit_catches_an_unlisted_edit(root):
    def change(d):
        d["021"]["conditions"][0]["steps"]["common"][1]["text"] = "ケースを外す"
    edit(root / "codes.json", change)
    problems = audit_against_source(load_catalogue(root))
    assert len(problems) == 1 and "code 021" in problems[0] and "conditions[0].steps" in problems[0]


def test_audit_catches_a_correction_that_points_at_nothing(root):
    edit(root / "corrections.json", lambda d: d.append({
        "code": "950", "field": "message", "original": "存在しない", "corrected": "x", "kind": "typo", "reason": "r"}))
    problems = audit_against_source(load_catalogue(root))
    assert any("code 950" in p and "存在しない" in p for p in problems)


def test_audit_catches_a_wrong_outage_flag(root):
    edit(root / "codes.json", lambda d: d["009"]["conditions"][1].update(outage=True))
    problems = audit_against_source(load_catalogue(root))
    assert problems == [p for p in problems if "code 009" in p and "outage" in p] and problems
