"""UI strings: `catalogue/locales/<lang>/ui.json`, keyed by id, Japanese as the fallback. Pure: no Kivy.

A string may hold `{name}` placeholders filled from the screen context (e.g. `{code}`); a missing
placeholder or id never crashes the kiosk: it is logged once and shown as the id, so the gap is visible.
"""

from __future__ import annotations

import json
import logging
import string
from pathlib import Path

from kiosk.paths import catalogue_root

log = logging.getLogger(__name__)

FALLBACK_LANG = "ja"


class UiTextError(Exception):
    """A ui.json that cannot be used; the message names the file and the problem."""


def load_ui_file(path: Path) -> dict[str, str]:
    """One locale's ui.json as {id: text}; raises UiTextError naming the file and the bad entry."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UiTextError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise UiTextError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UiTextError(f"{path}: expected an object of id → text")
    for key, value in data.items():
        if not isinstance(value, str):
            raise UiTextError(f"{path}: [{key}] must be a string, not {type(value).__name__}")
        try:
            list(string.Formatter().parse(value))
        except ValueError as exc:
            raise UiTextError(f"{path}: [{key}] bad placeholder: {exc}") from None
    return data


class UiTexts:
    """All locales' UI strings, loaded once; `text(lang, id, **context)` never raises."""

    def __init__(self, root: Path | None = None) -> None:
        locales = (root or catalogue_root()) / "locales"
        self.by_lang: dict[str, dict[str, str]] = {}
        for path in sorted(locales.glob("*/ui.json")):
            self.by_lang[path.parent.name] = load_ui_file(path)
        if FALLBACK_LANG not in self.by_lang:
            raise UiTextError(f"{locales}/{FALLBACK_LANG}/ui.json: missing (Japanese is the fallback language)")
        self._reported: set[tuple[str, str]] = set()

    @property
    def languages(self) -> list[str]:
        return list(self.by_lang)

    def text(self, lang: str, key: str, **context: object) -> str:
        """The text for `key` in `lang` (else Japanese, else the id itself), placeholders filled."""
        template = self.by_lang.get(lang, {}).get(key)
        if template is None:
            self._report(lang, key, "missing")
            template = self.by_lang[FALLBACK_LANG].get(key, key)
        try:
            return template.format_map(context)
        except (KeyError, IndexError, ValueError, AttributeError):
            self._report(lang, key, "placeholder not in context")
            return template

    def _report(self, lang: str, key: str, problem: str) -> None:
        if (lang, key) not in self._reported:
            self._reported.add((lang, key))
            log.warning("ui text %s/%s: %s", lang, key, problem)
