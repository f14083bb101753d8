"""The locale list (`catalogue/locales/languages.json`): native names, fonts, fallback, voice. Pure data access.

Adding a language is a data change only: a `languages.json` entry plus `catalogue/locales/<code>/*.json`
(see `catalogue/locales/README.md`). Font paths in the file are absolute, or relative to `catalogue/locales/`.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from kiosk.jsondata import read_json, validate
from kiosk.paths import catalogue_root

SOURCE_LANG = "ja"
INVISIBLE = {0x200B, 0x200C, 0x200D, 0xFE0F}  # zero-width (non-)joiners: shaping hints, no glyph needed
LOCALE_CODE = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"


class LocaleError(Exception):
    """languages.json or a locale file that cannot be used; the message names file, entry and field."""


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TtsEntry(_Entry):
    engine: Literal["open_jtalk", "espeak-ng"]
    voice: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")


class LanguageEntry(_Entry):
    name: str = Field(min_length=1)  # in its own script, as the language picker shows it
    english_name: str = Field(min_length=1)
    script: str = Field(default="Zyyy", pattern=r"^[A-Z][a-z]{3}$")  # ISO 15924, for text shaping (Deva, Mymr …)
    fonts: tuple[str, ...] = Field(min_length=1)  # candidates, first existing file wins
    face_index: int = Field(default=0, ge=0)  # face inside a .ttc collection (Noto CJK: 0 JP, 1 KR, 2 SC, 3 TC)
    fallback: tuple[str, ...] = ()  # where a missing text is taken from, in order
    tts: TtsEntry | None = None  # None: no offline voice for this language


LanguagesFile = RootModel[dict[str, LanguageEntry]]  # languages.json: locale code → entry, in picker order


@dataclass(frozen=True)
class Locale:
    """One language the kiosk offers, with paths resolved."""

    code: str
    name: str
    english_name: str
    script: str  # ISO 15924: give it to the text renderer (Kivy Label.font_script_name) or Devanagari and
    # Myanmar are drawn unshaped (visible virama, vowel signs in the wrong place)
    fonts: tuple[Path, ...]
    face_index: int
    fallback: tuple[str, ...]
    tts: TtsEntry | None

    def font_file(self) -> Path | None:
        """The first font candidate that exists on this machine, or None."""
        return next((path for path in self.fonts if path.is_file()), None)

    def bold_font_file(self) -> Path | None:
        """The bold sibling of `font_file()` (…-Regular… → …-Bold…) when it exists."""
        regular = self.font_file()
        if regular is None or "Regular" not in regular.name:
            return None
        bold = regular.with_name(regular.name.replace("Regular", "Bold"))
        return bold if bold.is_file() else None


def locales_dir(root: Path | None = None) -> Path:
    return (root or catalogue_root()) / "locales"


def load_locales(root: Path | None = None) -> dict[str, Locale]:
    """Every locale in languages.json, in picker order; raises LocaleError naming the bad entry."""
    folder = locales_dir(root)
    path = folder / "languages.json"
    raw = read_json(path, LocaleError, "locale list")
    if not isinstance(raw, dict) or SOURCE_LANG not in raw:
        raise LocaleError(f"{path}: expected an object keyed by locale code, including {SOURCE_LANG!r}")
    for code in raw:
        if not re.match(LOCALE_CODE, code):
            raise LocaleError(f"{path}: [{code}] is not a locale code like 'vi' or 'zh-Hant'")
    entries = validate(LanguagesFile, raw, LocaleError, str(path)).root
    locales: dict[str, Locale] = {}
    for code, entry in entries.items():
        for other in entry.fallback:
            if other not in raw or other == code:
                raise LocaleError(f"{path}: [{code}.fallback] {other!r} is not another listed locale")
        locales[code] = Locale(
            code=code,
            name=entry.name,
            english_name=entry.english_name,
            script=entry.script,
            fonts=tuple(folder / font for font in entry.fonts),  # an absolute path stays as it is
            face_index=entry.face_index,
            fallback=entry.fallback,
            tts=entry.tts,
        )
    return locales


def fallback_chain(locales: dict[str, Locale], code: str) -> list[str]:
    """`code` then its fallbacks (transitively, no repeats), ending with the Japanese source."""
    chain: list[str] = []
    pending = [code if code in locales else SOURCE_LANG]
    while pending:
        current = pending.pop(0)
        if current not in chain:
            chain.append(current)
            pending.extend(locales[current].fallback)
    if SOURCE_LANG not in chain:
        chain.append(SOURCE_LANG)
    return chain


def read_locale_file(path: Path) -> dict:
    """A locale JSON file (guidance.json, ui.json, glossary.json) as an object; LocaleError names the file."""
    data = read_json(path, LocaleError, "locale file")
    if not isinstance(data, dict):
        raise LocaleError(f"{path}: expected a JSON object keyed by id")
    return data


def text_leaves(data: object, prefix: str = "") -> dict[str, str]:
    """Every string in a nested JSON value, keyed by its path (`001/steps/0`); keys starting with `_` are notes."""
    if isinstance(data, str):
        return {prefix: data}
    items: list[tuple[str, object]]
    if isinstance(data, dict):
        items = [(str(k), v) for k, v in data.items() if not str(k).startswith("_")]
    elif isinstance(data, list):
        items = [(str(i), v) for i, v in enumerate(data)]
    else:
        return {}
    leaves: dict[str, str] = {}
    for key, value in items:
        leaves.update(text_leaves(value, f"{prefix}/{key}" if prefix else key))
    return leaves


def placeholders(text: str) -> set[str]:
    """The `{name}` placeholders in a text (str.format syntax)."""
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def load_glossary(code: str, root: Path | None = None) -> dict[str, tuple[str, ...]]:
    """`<code>/glossary.json`: term id → accepted forms (first is the preferred one)."""
    path = locales_dir(root) / code / "glossary.json"
    glossary: dict[str, tuple[str, ...]] = {}
    for term, forms in read_locale_file(path).items():
        if term.startswith("_"):
            continue
        forms = [forms] if isinstance(forms, str) else forms
        if not isinstance(forms, list) or not forms or not all(isinstance(f, str) and f for f in forms):
            raise LocaleError(f"{path}: [{term}] must be a term or a list of accepted forms")
        glossary[term] = tuple(forms)
    return glossary


def glossary_terms_in(text: str, source_glossary: dict[str, tuple[str, ...]]) -> set[str]:
    """Ids of the source-language terms a text uses; a term inside a longer one (保険証 in マイナ保険証) is not
    counted."""
    found: set[str] = set()
    forms = sorted(((form, term) for term, fs in source_glossary.items() for form in fs), key=lambda p: -len(p[0]))
    for form, term in forms:
        if form in text:
            found.add(term)
            text = text.replace(form, "\0")
    return found


def missing_glyphs(font: Path, text: str, face_index: int = 0) -> set[str]:
    """Characters of `text` the font has no glyph for (font-level tofu check; needs fontTools)."""
    from fontTools.ttLib import TTFont

    with TTFont(font, fontNumber=face_index, lazy=True) as ttf:
        cmap = ttf.getBestCmap()
    return {ch for ch in set(text) if ord(ch) not in cmap and not ch.isspace() and ord(ch) not in INVISIBLE}



# --- checks shared by tests/test_locales.py and `kiosk locales check` -----------------------------------------

ALWAYS_SHOWN = "0123456789 ()-:/.,"  # error codes and counts are filled into every locale's texts
SOURCE_RECORD = "source.json"  # <code>/source.json: fingerprints of the Japanese texts a translation follows
STAFF_ONLY_FILES = ("doctor.json", "staff.json", "homeassistant.json")  # staff/IT texts in ja and en only
# (kiosk doctor, reader faults, Home Assistant entity names)


def source_files(root: Path | None = None) -> list[str]:
    """The Japanese text files every translation mirrors (guidance.json, ui.json)."""
    folder = locales_dir(root) / SOURCE_LANG
    skipped = ("glossary.json", SOURCE_RECORD, *STAFF_ONLY_FILES)
    return sorted(p.name for p in folder.glob("*.json") if p.name not in skipped)


def texts_of(code: str, name: str, root: Path | None = None) -> dict[str, str]:
    path = locales_dir(root) / code / name
    return text_leaves(read_locale_file(path)) if path.exists() else {}


def completeness_problems(code: str, root: Path | None = None) -> list[str]:
    """Missing, empty and extra ids, and placeholders that differ from the Japanese source."""
    problems = []
    for name in source_files(root):
        source, translated = texts_of(SOURCE_LANG, name, root), texts_of(code, name, root)
        problems += [f"{code}/{name} [{key}] missing" for key in source if key not in translated]
        problems += [f"{code}/{name} [{key}] not in the Japanese source" for key in translated if key not in source]
        for key, text in translated.items():
            if key in source and not text.strip():
                problems.append(f"{code}/{name} [{key}] empty")
            elif key in source and placeholders(text) != placeholders(source[key]):
                problems.append(f"{code}/{name} [{key}] placeholders {sorted(placeholders(text))}, "
                                f"Japanese has {sorted(placeholders(source[key]))}")
    return problems


def glossary_problems(code: str, root: Path | None = None) -> list[str]:
    """Texts whose Japanese source uses an official term but whose translation uses none of its forms."""
    source_glossary, glossary = load_glossary(SOURCE_LANG, root), load_glossary(code, root)
    problems = [f"{code}/glossary.json [{term}] missing" for term in source_glossary if term not in glossary]
    for name in source_files(root):
        translated = texts_of(code, name, root)
        for key, source_text in texts_of(SOURCE_LANG, name, root).items():
            text = translated.get(key, "").casefold()
            for term in sorted(glossary_terms_in(source_text, source_glossary) & set(glossary)):
                if not any(form.casefold() in text for form in glossary[term]):
                    problems.append(f"{code}/{name} [{key}] {term}: expected {glossary[term][0]!r}")
    return problems


def font_problems(locale: Locale, root: Path | None = None) -> list[str]:
    """No font file, or characters of the locale's texts its font (and bold sibling) cannot draw."""
    font = locale.font_file()
    if font is None:
        return [f"{locale.code}: none of the fonts exists: {', '.join(map(str, locale.fonts))}"]
    shown = ALWAYS_SHOWN + locale.name
    for path in sorted((locales_dir(root) / locale.code).glob("*.json")):
        if path.name != SOURCE_RECORD:
            shown += "".join(text_leaves(read_locale_file(path)).values())
    problems = []
    for file in filter(None, (font, locale.bold_font_file())):
        missing = missing_glyphs(file, shown, locale.face_index)
        if missing:
            problems.append(f"{locale.code}: {file.name} lacks {''.join(sorted(missing))!r}")
    return problems


def fingerprint(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def stale_texts(code: str, root: Path | None = None) -> list[str]:
    """Ids whose Japanese text changed since the translation was last accepted (`<code>/source.json`)."""
    path = locales_dir(root) / code / SOURCE_RECORD
    if not path.exists():
        return [f"{code}: not tracked (no {SOURCE_RECORD}); once it is up to date: kiosk locales accept {code}"]
    recorded = read_locale_file(path)
    stale = []
    for name in source_files(root):
        seen = recorded.get(name, {})
        for key, text in texts_of(SOURCE_LANG, name, root).items():
            if key in texts_of(code, name, root) and seen.get(key) != fingerprint(text):
                stale.append(f"{code}/{name} [{key}]")
    return stale


def accept_translation(code: str, root: Path | None = None) -> Path:
    """Record that `code` follows the current Japanese texts (run after updating the translation)."""
    record = {name: {key: fingerprint(text) for key, text in texts_of(SOURCE_LANG, name, root).items()}
              for name in source_files(root)}
    path = locales_dir(root) / code / SOURCE_RECORD
    path.write_text(json.dumps(record, ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path
