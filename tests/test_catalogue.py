"""The error-code catalogue as shipped: every seed code, flags, corrections, guidance, facility steps, reload."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.catalogue import (
    SECTION_ORDER,
    CatalogueError,
    UnknownCode,
    audit_against_source,
    load_catalogue,
    placeholders,
    skeleton,
)
from kiosk.catalogue_import import SEED_NAME
from kiosk.config import FacilitySection
from kiosk.paths import catalogue_root

SEED_CODES = ["001", "002", "003", "004", "005", "006", "007", "008", "009", "010", "011", "012", "013", "014",
              "019", "020", "021", "022", "023", "024", "101", "102", "103",
              "901", "902", "903", "904", "905", "906", "950", "952"]
STAFF_CODES = {"008", "009", "011", "012", "013", "014", "024", "102", "103",
               "901", "902", "903", "904", "905", "906", "950", "952"}
# ○ in the last column, per condition (a continuation row's flag belongs to the condition it continues)
OUTAGE_BY_CONDITION = {"001": [True], "009": [True, False], "010": [True], "011": [True, True],
                       "901": [True, True], "902": [True], "903": [True], "904": [True], "905": [True],
                       "906": [True], "950": [True], "952": [True, True]}
HTML = re.compile(r"</?[A-Za-z][^>]*>|&[a-z]+;|&#\d+;")
WRAP_SPACE = re.compile(r"(?<=[\u3040-\u30ff\u4e00-\u9fff])(?<![。？！]) (?=[\u3040-\u30ff\u4e00-\u9fff])")


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def all_cleaned_texts(entry):
    yield "title", entry.title
    yield "message", entry.message
    for tag in entry.tags:
        yield "tags", tag
    for index, condition in enumerate(entry.conditions):
        yield f"conditions[{index}].check", condition.check
        for document in condition.documents:
            yield f"conditions[{index}].documents", document
        for section, steps in condition.steps.items():
            for step in steps:
                yield f"conditions[{index}].steps.{section}", step.text


def test_every_seed_code_is_present_exactly_once(catalogue):
    seed = (catalogue_root() / SEED_NAME).read_text(encoding="utf-8")
    rows_with_a_code = re.findall(r"^(\d{3})\t", seed, flags=re.MULTILINE)
    assert sorted(set(rows_with_a_code)) == SEED_CODES
    assert list(catalogue.codes) == SEED_CODES
    assert [entry.code for entry in catalogue.codes.values()] == SEED_CODES


def test_audience_follows_who_the_official_message_addresses(catalogue):
    for code, entry in catalogue.codes.items():
        assert entry.audience == ("staff" if code in STAFF_CODES else "patient"), code
        if entry.message.startswith("患者"):
            assert entry.audience == "patient"
        if entry.message.startswith("職員"):
            assert entry.audience == "staff"


def test_outage_flags_per_condition_and_per_code(catalogue):
    for code, entry in catalogue.codes.items():
        expected = OUTAGE_BY_CONDITION.get(code, [False] * len(entry.conditions))
        assert [condition.outage for condition in entry.conditions] == expected, code
        assert entry.outage == any(expected), code


def test_repeated_and_continued_rows_are_modelled_faithfully(catalogue):
    # 009: the same row twice with different document links (and outage flags) -> two conditions
    first, second = catalogue.get("009").conditions
    assert (first.source.rows, second.source.rows) == ([14], [15])
    assert first.check == second.check
    assert first.documents != second.documents
    assert "オンライン資格確認等システム操作マニュアル 一般利用者編" in second.documents
    # 011 and 952: a row with an empty code cell and its own お調べください = a second condition
    assert [c.source.rows for c in catalogue.get("011").conditions] == [[19], [22]]
    assert [c.source.rows for c in catalogue.get("952").conditions] == [[58], [59]]
    # 901: the second condition's cells continue across a page break (row 44 -> row 47)
    continued = catalogue.get("901").conditions[1]
    assert continued.source.rows == [44, 47]
    assert continued.source.outage == ["", "○"] and continued.outage
    steps = " ".join(step.text for step in continued.steps["common"])
    assert "保険資格の確認を行ってください" in steps
    assert "障害の解消目途や状況は、医療機関等向けポータルサイトで随時確認して下さい。" in steps


def test_no_html_or_wrap_spaces_left_in_cleaned_fields(catalogue):
    for code, entry in catalogue.codes.items():
        for field, text in all_cleaned_texts(entry):
            assert not HTML.search(text), (code, field, text)
            assert text == text.strip() and "  " not in text, (code, field, text)
        for field in ("title", "message"):
            assert not WRAP_SPACE.search(getattr(entry, field)), (code, field)


def test_named_extraction_slips_are_gone(catalogue):
    slips = ["ペンダ", "並未導入設定ベンダ", "受付窓口ご連絡", "マイポータル", "マイナンバーにて本人認証",
             "マイナンバーからダウンロード", "サービ ス", "資料のリンク先", "職員）"]
    for code, entry in catalogue.codes.items():
        for field, text in all_cleaned_texts(entry):
            for slip in slips:
                assert slip not in text, (code, field, slip)


def test_every_listed_correction_is_applied(catalogue):
    assert catalogue.corrections, "the corrections list must not be empty"
    for correction in catalogue.corrections:
        entry = catalogue.get(correction.code)
        field = correction.field
        if field == "heading":
            cleaned = "".join(f"【{tag}】" for tag in entry.tags) + entry.title
        elif field == "message":
            cleaned = entry.message
        else:
            index, part = re.fullmatch(r"conditions\[(\d+)\]\.(\w+)", field).groups()
            condition = entry.conditions[int(index)]
            cleaned = {"check": condition.check, "documents": " ".join(condition.documents),
                       "cause": " ".join(s.text for section in SECTION_ORDER for s in condition.steps.get(section, []))
                       }[part]
        original, corrected = skeleton(correction.original), skeleton(correction.corrected)
        assert corrected in skeleton(cleaned), correction
        if original not in corrected:
            assert original not in skeleton(cleaned), correction
        assert correction.reason


def test_uncertain_corrections_are_marked(catalogue):
    unsure = {(c.code, c.original) for c in catalogue.corrections if c.unsure}
    assert unsure == {("001", "ベンダに接続して"), ("903", "電子証明書を正しい認証処理で")}


def test_cleaned_text_equals_seed_plus_corrections(catalogue):
    assert audit_against_source(catalogue) == []


def test_message_parameters(catalogue):
    for code in ("003", "022"):
        entry = catalogue.get(code)
        assert entry.params == ["remaining"]
        assert "あと{remaining}回" in entry.message
        assert "あと2回" in entry.format_message({"remaining": 2})
    assert all(not entry.params for code, entry in catalogue.codes.items() if code not in ("003", "022"))


def test_every_code_has_ja_and_en_patient_guidance(catalogue):
    assert catalogue.languages[0] == "ja" and "en" in catalogue.languages
    for code, entry in catalogue.codes.items():
        ja, en = catalogue.guidance(code, "ja"), catalogue.guidance(code, "en")
        for guidance in (ja, en):
            assert 1 <= len(guidance.steps) <= 3
            assert guidance.params == set(entry.params) & guidance.params
            assert not any(HTML.search(text) for text in (guidance.title, *guidance.steps))
        assert ja.params == en.params
        assert ja.title != en.title
        assert (ja.call_staff, ja.illustrations) == (en.call_staff, en.illustrations)
        if entry.audience == "staff" or entry.outage:
            assert ja.call_staff, code
    assert catalogue.guidance("003", "en").params == {"remaining"}


def test_guidance_placeholders_fill_and_never_crash(catalogue):
    steps = " ".join(catalogue.guidance("003", "en").format({"remaining": 1}).steps)
    assert "After 1 more wrong tries" in steps and "{" not in steps
    assert "あとn回" in " ".join(catalogue.guidance("003", "ja").format().steps)


def test_guidance_language_fallback(catalogue):
    assert catalogue.guidance("021", "xx") == catalogue.guidance("021", "ja")
    assert catalogue.guidance("021", "en-GB") == catalogue.guidance("021", "en")


def test_code_021_reads_as_patient_guidance_in_english(catalogue):
    guidance = catalogue.guidance("021", "en")
    text = " ".join(guidance.steps).lower()
    assert "case" in text and "android" in text and "screen off" in text
    assert not guidance.call_staff
    assert guidance.illustrations == ["phone_nfc_spot", "android_screen_off"]


def test_unknown_codes_name_the_nearest(catalogue):
    with pytest.raises(UnknownCode) as raised:
        catalogue.get("015")
    assert raised.value.nearest == ["014", "019"]
    assert "014" in str(raised.value) and "019" in str(raised.value)
    with pytest.raises(UnknownCode) as raised:
        catalogue.guidance("951", "en")
    assert raised.value.nearest == ["950", "952"]
    with pytest.raises(UnknownCode) as raised:
        catalogue.get("21")
    assert raised.value.nearest == ["021"] and "three-digit" in str(raised.value)
    assert catalogue.nearest("999") == ["952"]
    assert catalogue.nearest("000") == ["001"]
    assert catalogue.nearest("abc") == []


@pytest.mark.parametrize("facility, sections", [
    (FacilitySection(type="clinic"), ["common"]),
    (FacilitySection(type="clinic", e_prescription=True), ["common", "clinic_eprescription"]),
    (FacilitySection(type="clinic", e_prescription=True, e_karte=True),
     ["common", "clinic_eprescription", "clinic_ekarte"]),
    (FacilitySection(type="pharmacy", e_prescription=True, e_karte=True), ["common", "pharmacy_eprescription"]),
])
def test_steps_for_facility(catalogue, facility, sections):
    condition = catalogue.get("001").conditions[0]
    expected = [step for section in sections for step in condition.steps[section]]
    assert condition.steps_for(facility) == expected
    texts = " ".join(step.text for step in condition.steps_for(facility))
    assert ("紹介元の病院・診療所" in texts) == ("clinic_ekarte" in sections)
    assert ("処方内容（控え）を受領" in texts) == ("pharmacy_eprescription" in sections)


def test_service_outage_codes_only_concern_their_service(catalogue):
    eprescription = catalogue.get("950").conditions[0]
    assert set(eprescription.steps) == {"clinic_eprescription", "pharmacy_eprescription"}
    assert eprescription.steps_for(FacilitySection(type="pharmacy", e_prescription=True))
    assert not eprescription.steps_for(FacilitySection(type="clinic"))
    ekarte = catalogue.get("952")
    assert set(ekarte.conditions[0].steps) == {"clinic_ekarte"}
    assert not ekarte.conditions[0].steps_for(FacilitySection(type="pharmacy", e_prescription=True))


def test_steps_keep_their_structure(catalogue):
    steps = catalogue.get("021").conditions[0].steps["common"]
    assert steps[0].depth == 0 and "以下を行った後にかざしてください" in steps[0].text
    assert [s.text for s in steps[1:3]] == ["スマートフォンケースを外す", "カードリーダーから少し離す"]
    assert all(step.depth == 1 for step in steps[1:])
    for entry in catalogue.codes.values():
        for condition in entry.conditions:
            for steps in condition.steps.values():
                assert steps and not any(step.text.startswith(("○", "・", "●")) for step in steps)


def test_documents_are_split_and_collected_per_code(catalogue):
    assert catalogue.get("101").documents == ["オンライン資格確認_運用時のヘルプガイド",
                                              "操作マニュアル(システム障害時編)"]
    assert len(catalogue.get("009").documents) == 3
    assert catalogue.get("002").documents == []


def test_version_and_reload_are_independent_loads(tmp_path, catalogue):
    import shutil

    assert re.fullmatch(r"\d{4}\.\d{2}\.\d{2}(\.\d+)?", catalogue.version)
    root = tmp_path / "catalogue"
    shutil.copytree(catalogue_root(), root)
    info = root / "catalogue.json"
    info.write_text(info.read_text(encoding="utf-8").replace(catalogue.version, "2030.01.01.1"), encoding="utf-8")
    assert load_catalogue(root).version == "2030.01.01.1"
    assert load_catalogue().version == catalogue.version


def test_placeholders_helper():
    assert placeholders("あと{remaining}回", "{remaining} {other}") == {"remaining", "other"}
    assert placeholders("no fields") == set()


def test_missing_fallback_language_is_a_clear_error(tmp_path):
    import shutil

    root = tmp_path / "catalogue"
    shutil.copytree(catalogue_root(), root)
    (root / "locales" / "ja" / "guidance.json").unlink()
    with pytest.raises(CatalogueError, match=r"locales/ja/guidance.json.*fallback"):
        load_catalogue(root)


@given(st.text(max_size=8))
@settings(max_examples=300, deadline=None)
def test_any_typed_code_is_found_or_named_near(catalogue, typed):
    try:
        entry = catalogue.get(typed)
    except UnknownCode as exc:
        assert all(code in catalogue.codes for code in exc.nearest)
        assert exc.nearest or not re.search(r"\d", typed)
    else:
        assert entry.code == typed
