"""UI strings: `catalogue/locales/<lang>/ui.json`, keyed by id, following each locale's fallback chain
(kiosk.locales) down to Japanese, and the staff screen's texts from the staff-only `staff.json` (ja and en,
kiosk.locales.STAFF_ONLY_FILES; an id may live in one of the two files, never both). Pure: no Kivy.

A string may hold `{name}` placeholders filled from the screen context (e.g. `{code}`); a missing
placeholder or id never crashes the kiosk: it is logged once and the id is shown, so the gap is visible.
"""

from __future__ import annotations

import logging
from pathlib import Path

from kiosk.locales import SOURCE_LANG, Locale, LocaleError, fallback_chain, load_locales, locales_dir, read_locale_file

FILES = ("ui.json", "staff.json")  # patient UI (every language), staff screen (ja, en)

log = logging.getLogger(__name__)


class UiTexts:
    """Every locale's ui.json, loaded once; `text(lang, id, **context)` never raises."""

    def __init__(self, root: Path | None = None) -> None:
        self.locales: dict[str, Locale] = load_locales(root)
        folder = locales_dir(root)
        self.by_lang: dict[str, dict[str, str]] = {}
        for code in self.locales:
            table: dict[str, str] = {}
            for path in (folder / code / name for name in FILES):
                if not path.exists():
                    continue
                data = read_locale_file(path)
                for key, value in data.items():
                    if not isinstance(value, str):
                        raise LocaleError(f"{path}: [{key}] must be a string, not {type(value).__name__}")
                    if key in table:
                        raise LocaleError(f"{path}: [{key}] is also in {FILES[0]} (one file per id)")
                table.update(data)
            if table:
                self.by_lang[code] = table
        if SOURCE_LANG not in self.by_lang:
            raise LocaleError(f"{folder / SOURCE_LANG / 'ui.json'}: missing (Japanese is the source language)")
        self._reported: set[tuple[str, str]] = set()

    @property
    def languages(self) -> list[str]:
        """Locales that have UI strings, in picker order."""
        return [code for code in self.locales if code in self.by_lang]

    def has(self, key: str) -> bool:
        return key in self.by_lang[SOURCE_LANG]

    def template(self, lang: str, key: str) -> str | None:
        """The unfilled text for `key` in `lang` or its fallbacks; None when no locale has it."""
        for code in fallback_chain(self.locales, lang):
            template = self.by_lang.get(code, {}).get(key)
            if template is not None:
                return template
        return None

    def text(self, lang: str, key: str, **context: object) -> str:
        """The text for `key` in `lang` (else its fallbacks, else the id itself), placeholders filled."""
        template = self.template(lang, key)
        if template is None:
            self._report(lang, key, "missing")
            return key
        try:
            return template.format_map(context)
        except (KeyError, IndexError, ValueError, AttributeError):
            self._report(lang, key, "placeholder not in context")
            return template

    def _report(self, lang: str, key: str, problem: str) -> None:
        if (lang, key) not in self._reported:
            self._reported.add((lang, key))
            log.warning("ui text %s/%s: %s", lang, key, problem)
