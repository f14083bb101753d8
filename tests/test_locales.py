"""Every locale is complete, follows its glossary, and has a font that covers every character it shows."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from kiosk.cli import main
from kiosk.locales import (
    SOURCE_LANG,
    LocaleError,
    accept_translation,
    completeness_problems,
    fallback_chain,
    font_problems,
    glossary_problems,
    glossary_terms_in,
    load_glossary,
    load_locales,
    locales_dir,
    missing_glyphs,
    read_locale_file,
    source_files,
    stale_texts,
)

LOCALES = load_locales()
TRANSLATIONS = [code for code in LOCALES if code != SOURCE_LANG]
MINE = [code for code in TRANSLATIONS if code != "en"]  # en belongs to the app and catalogue engineers
EXPECTED = {"ja", "ja-easy", "en", "zh-Hans", "zh-Hant", "ko", "vi", "pt-BR", "es", "tl", "ne", "id", "th", "my", "mn"}


def test_every_required_language_is_offered_in_its_own_script():
    assert set(LOCALES) >= EXPECTED
    assert LOCALES["th"].name == "ภาษาไทย" and LOCALES["ne"].name == "नेपाली" and LOCALES["my"].name == "မြန်မာ"
    for code, locale in LOCALES.items():
        ui = locales_dir() / code / "ui.json"
        if ui.exists():
            assert read_locale_file(ui).get("lang.self_name") == locale.name, code


def test_source_texts_exist():
    assert source_files() == ["guidance.json", "ui.json"]


@pytest.mark.parametrize("code", TRANSLATIONS)
def test_locale_is_complete_with_matching_placeholders(code):
    assert completeness_problems(code) == []


@pytest.mark.parametrize("code", MINE)
def test_locale_uses_its_glossary_terms(code):
    assert glossary_problems(code) == []


@pytest.mark.parametrize("code", list(LOCALES))
def test_font_covers_every_character_of_the_locale(code):
    assert font_problems(LOCALES[code]) == []


def test_tofu_check_catches_a_missing_script():
    thai_only = Path("/usr/share/fonts/truetype/noto/NotoSansThai-Regular.ttf")
    if not thai_only.is_file():
        pytest.skip("fonts-noto-core not installed")
    assert missing_glyphs(thai_only, "ไทย 123") == {"1", "2", "3"}
    assert missing_glyphs(LOCALES["th"].font_file(), "ไทย 123 नेपाली") == set("नेपाली") - {"\u200d"}


def test_glossary_term_inside_a_longer_term_is_not_counted():
    glossary = load_glossary(SOURCE_LANG)
    assert glossary_terms_in("マイナ保険証をお持ちですか", glossary) == {"myna_hokensho"}
    terms = glossary_terms_in("健康保険証と顔認証付きカードリーダー", glossary)
    assert terms == {"health_insurance_card", "face_reader"}


def test_fallback_chain_ends_in_japanese():
    assert fallback_chain(LOCALES, "ja-easy") == ["ja-easy", "ja"]
    assert fallback_chain(LOCALES, "th") == ["th", "en", "ja"]
    assert fallback_chain(LOCALES, "xx") == ["ja"]


def _catalogue_with(tmp_path: Path, languages: object) -> Path:
    (tmp_path / "locales").mkdir()
    text = languages if isinstance(languages, str) else json.dumps(languages)
    (tmp_path / "locales" / "languages.json").write_text(text, encoding="utf-8")
    return tmp_path


GOOD = {"name": "日本語", "english_name": "Japanese", "fonts": ["x.ttf"]}


@pytest.mark.parametrize(
    ("languages", "message"),
    [
        ("{not json", "not valid JSON"),
        ({"en": GOOD}, "including 'ja'"),
        ({"ja": GOOD, "EN_us": GOOD}, "[EN_us] is not a locale code"),
        ({"ja": {**GOOD, "fonts": []}}, "[ja.fonts]"),
        ({"ja": GOOD, "vi": {**GOOD, "fallback": ["en"]}}, "[vi.fallback] 'en'"),
        ({"ja": {**GOOD, "tts": {"engine": "say", "voice": "x"}}}, "[ja.tts.engine]"),
        ({"ja": {**GOOD, "colour": "red"}}, "[ja.colour]"),
    ],
)
def test_bad_languages_file_names_the_problem(tmp_path, languages, message):
    with pytest.raises(LocaleError, match=re.escape(message)) as caught:
        load_locales(_catalogue_with(tmp_path, languages))
    assert "languages.json" in str(caught.value)


def test_relative_font_paths_resolve_beside_languages_json(tmp_path):
    root = _catalogue_with(tmp_path, {"ja": {**GOOD, "fonts": ["fonts/A-Regular.ttf", "/nonexistent/B.ttf"]}})
    (root / "locales" / "fonts").mkdir()
    (root / "locales" / "fonts" / "A-Regular.ttf").write_bytes(b"x")
    (root / "locales" / "fonts" / "A-Bold.ttf").write_bytes(b"x")
    locale = load_locales(root)["ja"]
    assert locale.font_file() == root / "locales" / "fonts" / "A-Regular.ttf"
    assert locale.bold_font_file() == root / "locales" / "fonts" / "A-Bold.ttf"


def test_bad_glossary_names_the_term(tmp_path):
    root = _catalogue_with(tmp_path, {"ja": GOOD})
    (root / "locales" / "ja").mkdir()
    (root / "locales" / "ja" / "glossary.json").write_text('{"pin": []}', encoding="utf-8")
    with pytest.raises(LocaleError, match=r"glossary.json: \[pin\]"):
        load_glossary("ja", root)


def test_merged_script_font_gains_latin(tmp_path):
    from kiosk.fontbuild import NOTO_DIR, build_merged_font

    thai, latin = NOTO_DIR / "NotoSansThai-Regular.ttf", NOTO_DIR / "NotoSans-Regular.ttf"
    if not (thai.is_file() and latin.is_file()):
        pytest.skip("fonts-noto-core not installed")
    out = build_merged_font(thai, latin, tmp_path / "merged.ttf")
    assert missing_glyphs(out, "ภาษาไทย Error 123 (PIN)") == set()


def _copy_of_locales(tmp_path: Path, *codes: str) -> Path:
    for code in (SOURCE_LANG, *codes):
        shutil.copytree(locales_dir() / code, tmp_path / "locales" / code)
    shutil.copy(locales_dir() / "languages.json", tmp_path / "locales" / "languages.json")
    return tmp_path


def test_checks_report_a_changed_japanese_text_a_missing_id_and_a_lost_placeholder(tmp_path):
    root = _copy_of_locales(tmp_path, "vi")
    ja_ui = root / "locales" / "ja" / "ui.json"
    ja = json.loads(ja_ui.read_text(encoding="utf-8"))
    ja["button.call"] = "スタッフを呼んでください"
    ja_ui.write_text(json.dumps(ja, ensure_ascii=False), encoding="utf-8")
    vi_ui = root / "locales" / "vi" / "ui.json"
    vi = json.loads(vi_ui.read_text(encoding="utf-8"))
    del vi["button.home"]
    vi["lookup_result.heading"] = "Lỗi"
    vi_ui.write_text(json.dumps(vi, ensure_ascii=False), encoding="utf-8")
    assert stale_texts("vi", root) == ["vi/ui.json [button.call]"]
    problems = completeness_problems("vi", root)
    assert "vi/ui.json [button.home] missing" in problems
    assert any("[lookup_result.heading] placeholders []" in p for p in problems)
    accept_translation("vi", root)
    assert stale_texts("vi", root) == []


def test_glossary_check_names_the_expected_term(tmp_path):
    root = _copy_of_locales(tmp_path, "es")
    es_ui = root / "locales" / "es" / "ui.json"
    es = json.loads(es_ui.read_text(encoding="utf-8"))
    es["outage.option.shikaku_kakuninsho"] = "Si tiene el papel del seguro, entréguelo en la recepción."
    es_ui.write_text(json.dumps(es, ensure_ascii=False), encoding="utf-8")
    assert glossary_problems("es", root) == [
        "es/ui.json [outage.option.shikaku_kakuninsho] shikaku_kakuninsho: expected 'certificado de elegibilidad'"]


def test_locales_check_command_passes_for_the_shipped_translations(capsys):
    assert main(["locales", "check", *[arg for code in MINE for arg in ("--lang", code)]]) == 0
    assert f"{len(MINE)} locales: 0 problems," in capsys.readouterr().out  # stale texts are reported, not failed
    assert main(["locales", "check", "--lang", "xx"]) == 2
