"""Every locale is complete, follows its glossary, and has a font that covers every character it shows."""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

import pytest

from kiosk.locales import (
    SOURCE_LANG,
    LocaleError,
    fallback_chain,
    glossary_terms_in,
    load_glossary,
    load_locales,
    locales_dir,
    missing_glyphs,
    placeholders,
    read_locale_file,
    text_leaves,
)

LOCALES = load_locales()
TRANSLATIONS = [code for code in LOCALES if code != SOURCE_LANG]
SOURCE_FILES = sorted(p.name for p in (locales_dir() / SOURCE_LANG).glob("*.json") if p.name != "glossary.json")
ALWAYS_SHOWN = string.digits + " ()-:/.,"  # error codes and counts are filled into every locale's texts
EXPECTED = {"ja", "ja-easy", "en", "zh-Hans", "zh-Hant", "ko", "vi", "pt-BR", "es", "tl", "ne", "id", "th", "my", "mn"}


def texts(code: str, name: str) -> dict[str, str]:
    return text_leaves(read_locale_file(locales_dir() / code / name))


def test_every_required_language_is_offered_in_its_own_script():
    assert set(LOCALES) >= EXPECTED
    assert LOCALES["th"].name == "ภาษาไทย" and LOCALES["ne"].name == "नेपाली" and LOCALES["my"].name == "မြန်မာ"
    for code, locale in LOCALES.items():
        ui = locales_dir() / code / "ui.json"
        if ui.exists():
            assert read_locale_file(ui).get("lang.self_name") == locale.name, code


def test_source_texts_exist():
    assert "ui.json" in SOURCE_FILES


@pytest.mark.parametrize("code", TRANSLATIONS)
@pytest.mark.parametrize("name", SOURCE_FILES)
def test_locale_is_complete_with_matching_placeholders(code, name):
    source = texts(SOURCE_LANG, name)
    translated = texts(code, name)
    missing = sorted(set(source) - set(translated))
    assert not missing, f"{code}/{name} lacks {missing[:10]}"
    empty = sorted(k for k, v in translated.items() if not v.strip())
    assert not empty, f"{code}/{name} has empty texts {empty[:10]}"
    extra = sorted(set(translated) - set(source))
    assert not extra, f"{code}/{name} has ids the Japanese source does not: {extra[:10]}"
    wrong = {k: (placeholders(source[k]), placeholders(v)) for k, v in translated.items()}
    wrong = {k: pair for k, pair in wrong.items() if pair[0] != pair[1]}
    assert not wrong, f"{code}/{name} placeholders differ from ja: {wrong}"


@pytest.mark.parametrize("code", [c for c in TRANSLATIONS if c != "en"])
@pytest.mark.parametrize("name", SOURCE_FILES)
def test_locale_uses_its_glossary_terms(code, name):
    source_glossary = load_glossary(SOURCE_LANG)
    glossary = load_glossary(code)
    assert set(glossary) == set(source_glossary), f"{code}/glossary.json must define every term of ja's"
    translated = texts(code, name)
    problems = []
    for key, source_text in texts(SOURCE_LANG, name).items():
        text = translated.get(key, "").casefold()
        for term in glossary_terms_in(source_text, source_glossary):
            if not any(form.casefold() in text for form in glossary[term]):
                problems.append(f"[{key}] {term}: expected {glossary[term][0]!r}")
    assert not problems, f"{code}/{name}:\n" + "\n".join(problems)


@pytest.mark.parametrize("code", list(LOCALES))
def test_font_covers_every_character_of_the_locale(code):
    locale = LOCALES[code]
    font = locale.font_file()
    assert font is not None, f"{code}: none of {locale.fonts} exists (systemd/debian-packages.txt installs them)"
    shown = ALWAYS_SHOWN + locale.name
    for path in sorted((locales_dir() / code).glob("*.json")):
        shown += "".join(text_leaves(read_locale_file(path)).values())
    assert missing_glyphs(font, shown, locale.face_index) == set()
    bold = locale.bold_font_file()
    if bold is not None:
        assert missing_glyphs(bold, shown, locale.face_index) == set()


def test_tofu_check_catches_a_missing_script():
    thai_only = Path("/usr/share/fonts/truetype/noto/NotoSansThai-Regular.ttf")
    if not thai_only.is_file():
        pytest.skip("fonts-noto-core not installed")
    assert missing_glyphs(thai_only, "ไทย 123") == {"1", "2", "3"}
    assert missing_glyphs(LOCALES["th"].font_file(), "ไทย 123 नेपाली") == set("नेपाली") - {"\u200d"}


def test_glossary_term_inside_a_longer_term_is_not_counted():
    glossary = load_glossary(SOURCE_LANG)
    assert glossary_terms_in("マイナ保険証をお持ちですか", glossary) == {"myna_hokensho"}
    assert glossary_terms_in("健康保険証と顔認証付きカードリーダー", glossary) == {"health_insurance_card", "face_reader"}


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
        ({"ja": {**GOOD, "fonts": []}}, "[ja] fonts"),
        ({"ja": GOOD, "vi": {**GOOD, "fallback": ["en"]}}, "[vi].fallback: 'en'"),
        ({"ja": {**GOOD, "tts": {"engine": "say", "voice": "x"}}}, "[ja] tts.engine"),
        ({"ja": {**GOOD, "colour": "red"}}, "[ja] colour"),
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
