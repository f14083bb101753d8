"""Which font renders which language: data, so a new locale adds a line, not code.

`catalogue/locales/languages.json`, when present, maps a language code to font candidates, e.g.
``{"th": {"fonts": ["/usr/share/fonts/truetype/noto/NotoSansThai-Regular.ttf"]}}``; the first file that exists
wins. Languages it does not name use the built-in table below. Pure: no Kivy import.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from kiosk.paths import catalogue_root

log = logging.getLogger(__name__)

NOTO_CJK = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"

# Noto Sans CJK carries Latin too, so English shares it and mixed ja/en screens look of a piece.
BUILTIN_FONTS: dict[str, tuple[str, ...]] = {
    "ja": (NOTO_CJK, "/usr/share/fonts/opentype/noto/NotoSansCJKjp-Regular.otf"),
    "en": (NOTO_CJK, "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
}
FALLBACK_FONT = "Roboto"  # Kivy's bundled default: Latin only (Japanese would show tofu)


@dataclass(frozen=True)
class FontChoice:
    """The font registered for a language: `name` goes into Label.font_name, `path` is the file (or None).

    `bold_path` is the sibling "...-Bold..." file when the family ships one (titles use it)."""

    name: str
    path: str | None
    bold_path: str | None = None


def languages_file(root: Path | None = None) -> Path:
    return (root or catalogue_root()) / "locales" / "languages.json"


def font_candidates(lang: str, root: Path | None = None) -> tuple[str, ...]:
    """Font files to try for `lang`: languages.json first, then the built-in table, then Japanese's."""
    path = languages_file(root)
    if path.exists():
        try:
            table = json.loads(path.read_text(encoding="utf-8"))
            fonts = table.get(lang, {}).get("fonts", []) if isinstance(table, dict) else []
            if isinstance(fonts, list) and fonts:
                return tuple(str(f) for f in fonts)
        except (OSError, ValueError, AttributeError) as exc:
            log.warning("%s: cannot use font table (%s); using built-in fonts", path, exc)
    return BUILTIN_FONTS.get(lang, BUILTIN_FONTS["ja"])


def choose_font(lang: str, root: Path | None = None) -> FontChoice:
    """The first existing candidate for `lang`, or Kivy's bundled font (with a warning) if none exists."""
    for candidate in font_candidates(lang, root):
        if Path(candidate).is_file():
            bold = candidate.replace("Regular", "Bold")
            return FontChoice(f"kiosk-{lang}", candidate, bold if bold != candidate and Path(bold).is_file() else None)
    log.warning("no font file found for language %r; text may show as empty boxes", lang)
    return FontChoice(name=FALLBACK_FONT, path=None)
