"""Line breaking as a typesetter would do it: by phrase, with Japanese kinsoku, filled greedily by measured width.

Pure: no Kivy. The width of a piece of text comes from an injected `measure(text) -> float` (px), so the same
rules serve the kiosk's labels (kiosk.app.widgets.FitLabel measures with Kivy's CoreLabel), the translators'
preview (`kiosk locales preview`) and the tests (any monotonic width function).

Sources of the rules:
- Phrases: BudouX (Google's phrase segmenter, the one behind CSS `word-break: auto-phrase`) for Japanese,
  Simplified and Traditional Chinese and Thai; spaces for every other language (and inside those, too).
- Kinsoku (JIS X 4051:2004 §6.1, W3C "Requirements for Japanese Text Layout" §3.1.7): closing brackets,
  full stops and commas, middle dots, iteration marks, the prolonged sound mark ー and small kana never start a
  line (`NO_START`); opening brackets never end one (`NO_END`).
- Unbreakable runs (UAX #14 classes AL/NU/IS as far as the kiosk needs them): letters of alphabetic scripts and
  digits, with `.,:/-'` between two of them (「021」, 10:42, e-Tax, 1,000), are never split; nor a grapheme
  cluster (combining marks, virama, ZWJ), a Thai leading vowel from its consonant, or a Myanmar syllable.

A phrase wider than the line is broken inside at the finest opportunity the same rules allow; only a run that
cannot fit even alone (a long word or number) is cut anywhere, and the result says so (`Typeset.forced`).
"""

from __future__ import annotations

import itertools
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

Measure = Callable[[str], float]

# JIS X 4051 / JLREQ classes cl-02 (closing brackets), cl-03 (hyphens), cl-04 (dividing punctuation),
# cl-05 (middle dots), cl-06 (full stops), cl-07 (commas), cl-09 (iteration marks), cl-10 (prolonged sound
# mark), cl-11 (small kana), plus their Chinese full-width forms and Thai ๆ ฯ: never at a line start.
NO_START = frozenset(
    "）〕］｝〉》」』】〙〗〟’”｠»)]}"
    "‐〜゠–"
    "？！‼⁇⁈⁉!?"
    "・：；:;"
    "。．."
    "、，,"
    "ヽヾゝゞ々〻"
    "ー"
    "ぁぃぅぇぉっゃゅょゎゕゖァィゥェォッャュョヮヵヶㇰㇱㇲㇳㇴㇵㇶㇷㇸㇹㇺㇻㇼㇽㇾㇿ"
    "ｧｨｩｪｫｯｬｭｮｰ｡､」"
    "ๆฯ"
    "%％°℃"
)
# cl-01 (opening brackets): never at a line end.
NO_END = frozenset("（〔［｛〈《「『【〘〖〝‘“｟«([{｢")

# Spaces a line may break after (UAX #14 class BA/SP); no-break spaces (NBSP, narrow NBSP, figure space) glue.
SPACES = " \t\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2008\u2009\u200a\u205f\u3000"
QUOTES = frozenset("\"'")  # opening or closing by what is beside them (UAX #14 class QU)
NO_BREAK = frozenset("\u00a0\u2007\u202f\u2060\ufeff\u200d")  # no-break spaces, word joiner, ZWJ: glue both sides
VIRAMAS = frozenset("\u094d\u09cd\u0e3a\u1039\u17d2")  # a consonant after one belongs to the same cluster
CONNECTORS = frozenset(".,:/-'’")  # between two letters or digits they keep the run whole (10:42, 1,000, e-Tax)
THAI_LEADING_VOWELS = frozenset("เแโใไ")  # written before the consonant they follow in speech
THAI_FOLLOWING_VOWELS = frozenset("ะาำๅ")  # spacing vowels (Lo) that belong to the syllable before them
MYANMAR_ENDINGS = frozenset("\u103a\u1039")  # asat / stacker after a consonant: it closes the syllable before
# Scripts written without spaces between words: their letters may be broken between (as a last step before
# cutting a word) — Han, kana, Hangul, Thai, Lao, Myanmar, Khmer, CJK symbols and half-width katakana.
SPACELESS_RANGES = ((0x0E00, 0x0EFF), (0x1000, 0x109F), (0x1100, 0x11FF), (0x1780, 0x17FF), (0x2E80, 0x303F),
                    (0x3040, 0x30FF), (0x3100, 0x31FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xA960, 0xA97F),
                    (0xAC00, 0xD7FF), (0xF900, 0xFAFF), (0xFF65, 0xFF9F), (0x20000, 0x3FFFF))

# BudouX models by language (BCP 47 primary subtag, script for Chinese).
BUDOUX_MODELS = {"ja": "ja", "th": "th", "zh-Hans": "zh-hans", "zh-Hant": "zh-hant"}


def budoux_model(lang: str) -> str | None:
    """The BudouX model for a BCP 47 tag (`ja-easy` → ja, `zh-TW`/`zh-HK` → zh-hant, `zh` → zh-hans), or None."""
    primary, _, rest = lang.partition("-")
    if primary == "zh":
        return "zh-hant" if rest.split("-")[0] in ("Hant", "TW", "HK", "MO") else "zh-hans"
    return BUDOUX_MODELS.get(primary)


@cache
def _parser(model: str) -> Any:
    import budoux

    return {
        "ja": budoux.load_default_japanese_parser,
        "zh-hans": budoux.load_default_simplified_chinese_parser,
        "zh-hant": budoux.load_default_traditional_chinese_parser,
        "th": budoux.load_default_thai_parser,
    }[model]()


def _spaceless(ch: str) -> bool:
    code = ord(ch)
    return any(low <= code <= high for low, high in SPACELESS_RANGES)


def _in_word(ch: str) -> bool:
    """A letter, digit or mark of a run that is never split: digits anywhere, letters of spaced scripts."""
    category = unicodedata.category(ch)
    return category[0] == "N" or (category[0] in "LM" and not _spaceless(ch))


def _cluster_boundary(text: str, i: int) -> bool:
    """May a line end between text[i-1] and text[i] without tearing a grapheme cluster or a syllable apart?"""
    before, after = text[i - 1], text[i]
    if unicodedata.category(after)[0] == "M" or after in NO_BREAK or before in NO_BREAK or before in VIRAMAS:
        return False
    if "\ufe00" <= after <= "\ufe0f" or after in THAI_FOLLOWING_VOWELS or before in THAI_LEADING_VOWELS:
        return False
    if "\u1000" <= before <= "\u109f" or "\u1000" <= after <= "\u109f":  # Myanmar: only before a syllable
        following = text[i + 1] if i + 1 < len(text) else ""
        return ("\u1000" <= after <= "\u102a" or after == "\u103f") and following not in MYANMAR_ENDINGS
    return True


def _opening_quote(line: str) -> bool:
    """Does `line` end with an ASCII quote that opens (UAX #14 class QU: after a space, a bracket or nothing)?"""
    return line[-1:] in QUOTES and (len(line) == 1 or line[-2] in SPACES or line[-2] in NO_END)


def _closing_quote(rest: str) -> bool:
    """Does `rest` start with an ASCII quote that closes (before a space, a closing mark or the end)?"""
    return rest[:1] in QUOTES and (len(rest) == 1 or rest[1] in SPACES or rest[1] in NO_START)


def bad_line_end(line: str) -> bool:
    """Kinsoku: `line` (not the paragraph's last) ends with an opening bracket or opening quote."""
    line = line.rstrip(SPACES)
    return line[-1:] in NO_END or _opening_quote(line)


def bad_line_start(line: str) -> bool:
    """Kinsoku: `line` (not the paragraph's first) starts with closing punctuation, small kana, ー, a closing
    quote …"""
    return line[:1] in NO_START or _closing_quote(line)


def _kinsoku_ok(text: str, i: int) -> bool:
    """Kinsoku and unbreakable runs at a break between text[i-1] and text[i] (text[i] not a space)."""
    if bad_line_start(text[i:]) or bad_line_end(text[:i]):
        return False
    before, after = text[i - 1], text[i]
    if _in_word(before) and _in_word(after):
        return False
    if before in CONNECTORS and i >= 2 and _in_word(text[i - 2]) and _in_word(after):
        return False
    return not (after in CONNECTORS and _in_word(before) and i + 1 < len(text) and _in_word(text[i + 1]))


def _allowed(text: str, i: int) -> bool:
    """The rules every break obeys: never before a space (a line ends after its spaces), kinsoku, clusters."""
    if not 0 < i < len(text) or text[i] in SPACES or not text[:i].strip(SPACES):
        return False
    return _kinsoku_ok(text, i) and (text[i - 1] in SPACES or _cluster_boundary(text, i))


@lru_cache(maxsize=4096)
def phrase_breaks(text: str, lang: str) -> tuple[int, ...]:
    """Positions (0 < i < len) where `text` (one paragraph) may break between phrases: BudouX's phrase ends
    for the languages it models, after every run of spaces in all languages; minus what kinsoku forbids."""
    candidates = {i for i in range(1, len(text)) if text[i - 1] in SPACES}
    model = budoux_model(lang)
    if model is not None and text.strip(SPACES):
        end = 0
        for chunk in _parser(model).parse(text):
            end += len(chunk)
            candidates.add(end)
    return tuple(sorted(i for i in candidates if _allowed(text, i)))


@lru_cache(maxsize=1024)
def inner_breaks(text: str) -> tuple[int, ...]:
    """Every position a line may break at when a phrase is wider than the line (same rules, finer grain)."""
    return tuple(i for i in range(1, len(text)) if _allowed(text, i))


def _cuts(text: str) -> tuple[list[int], list[int]]:
    """Last resorts for a run wider than the line: cluster boundaries that keep kinsoku (splitting a word or
    number), then any grapheme-cluster boundary."""
    clusters = [i for i in range(1, len(text)) if text[i] not in SPACES and _cluster_boundary(text, i)]
    return [i for i in clusters if not bad_line_start(text[i:]) and not bad_line_end(text[:i])], clusters


@dataclass(frozen=True)
class Typeset:
    """A text broken into lines: one tuple of lines per paragraph (the text's own newlines)."""

    paragraphs: tuple[tuple[str, ...], ...]
    forced: bool = False  # a word or number wider than the line had to be cut where no rule allows it

    @property
    def lines(self) -> tuple[str, ...]:
        return tuple(line for paragraph in self.paragraphs for line in paragraph)

    @property
    def text(self) -> str:
        """The lines joined with newlines: what a label that breaks only at newlines must be given."""
        return "\n".join(self.lines)


def typeset(text: str, lang: str, width: float, measure: Measure) -> Typeset:
    """Break `text` into lines no wider than `width` (as `measure` reports, px) by phrase, kinsoku applied.

    Greedy (first fit, as JIS X 4051 line composition): each line takes as many whole phrases as fit; a
    phrase that does not fit starts the next line; one wider than a whole line is broken inside it. Newlines
    in `text` are kept (paragraphs); spaces at a break are dropped. Never raises for any text or width."""
    paragraphs = []
    forced = False
    for paragraph in text.split("\n"):
        lines, cut = _fill(paragraph, lang, width, measure)
        paragraphs.append(tuple(lines))
        forced = forced or cut
    return Typeset(tuple(paragraphs), forced)


def _fill(paragraph: str, lang: str, width: float, measure: Measure) -> tuple[list[str], bool]:
    bounds = [0, *phrase_breaks(paragraph, lang), len(paragraph)]
    lines: list[str] = []
    line = ""
    forced = False
    for start, end in itertools.pairwise(bounds):
        phrase = paragraph[start:end]
        if line and measure((line + phrase).rstrip(SPACES)) <= width:
            line += phrase
            continue
        if line:
            lines.append(line.rstrip(SPACES))
        if measure(phrase.rstrip(SPACES)) <= width:
            line = phrase
            continue
        pieces, cut = _break_inside(paragraph, start, end, width, measure)
        forced = forced or cut
        lines += pieces[:-1]
        line = pieces[-1]
    lines.append(line.rstrip(SPACES))
    return lines, forced


def _break_inside(paragraph: str, start: int, end: int, width: float, measure: Measure) -> tuple[list[str], bool]:
    """A phrase (paragraph[start:end]) wider than the line, broken greedily at the inner opportunities; a run
    that does not fit even so is cut (kinsoku kept where it can be)."""
    tiers = [[i for i in breaks if start < i < end] for breaks in (inner_breaks(paragraph), *_cuts(paragraph))]
    pieces, forced, at = [], False, start
    while measure(paragraph[at:end].rstrip(SPACES)) > width:
        fitting = None
        for tier, breaks in enumerate(tiers):
            fitting = _farthest(paragraph, at, [i for i in breaks if i > at], width, measure)
            if fitting is not None:
                forced = forced or tier > 0
                break
        if fitting is None:  # not even one character fits: one cluster a line
            forced = True
            fitting = next((i for i in tiers[-1] if i > at), end)
        if fitting >= end:
            break
        pieces.append(paragraph[at:fitting].rstrip(SPACES))
        at = fitting
    pieces.append(paragraph[at:end])
    return pieces, forced


def _farthest(text: str, at: int, breaks: list[int], width: float, measure: Measure) -> int | None:
    """The last break b in `breaks` (ascending) with text[at:b] fitting `width` (binary search: widths grow)."""
    low, high, found = 0, len(breaks) - 1, None
    while low <= high:
        middle = (low + high) // 2
        if measure(text[at:breaks[middle]].rstrip(SPACES)) <= width:
            found, low = breaks[middle], middle + 1
        else:
            high = middle - 1
    return found


# --- checking what a label shows (the preview and the tests) ----------------------------------------------

def line_starts(paragraph: str, lines: Sequence[str]) -> list[int] | None:
    """Where each line after the first starts in `paragraph`, or None if the lines are not that paragraph."""
    starts, at = [], 0
    for n, line in enumerate(lines):
        while n and at < len(paragraph) and paragraph[at] in SPACES and line[:1] not in SPACES:
            at += 1
        if not paragraph.startswith(line, at):
            return None
        if n:
            starts.append(at)
        at += len(line)
    return starts if not paragraph[at:].strip(SPACES) else None


def problems(text: str, lines: Sequence[str], lang: str, width: float, measure: Measure) -> list[str]:
    """What is wrong with showing `text` as `lines` in a box `width` px wide (empty: typeset as it should be).

    Reports: a line wider than the box (overflow), a line starting with a NO_START or ending with a NO_END
    character (kinsoku), a break inside a phrase that would have fit whole on the next line, a phrase pushed to
    the next line although it fitted on the line before, and lines that do not spell the text."""
    found: list[str] = []
    at = 0
    for paragraph in text.split("\n"):
        count = _lines_of(paragraph, lines[at:])
        if count is None:
            return [*found, f"lines do not spell the text: {list(lines)!r}"]
        ours, at = lines[at:at + count], at + count
        begins = [0, *(line_starts(paragraph, ours) or [])]
        phrases = [0, *phrase_breaks(paragraph, lang), len(paragraph)]
        for n, line in enumerate(ours):
            if measure(line) > width + 0.5:
                found.append(f"overflow: {line!r} is {measure(line):.0f} px, the box {width:.0f} px")
            if n and bad_line_start(line):
                found.append(f"kinsoku: line starts with {line[:1]!r}: {line!r}")
            if n + 1 < len(ours) and bad_line_end(line):
                found.append(f"kinsoku: line ends with {line[-1:]!r}: {line!r}")
        for n, start in enumerate(begins[1:]):
            following = min(p for p in phrases if p > start)
            if start in phrases:
                if measure(paragraph[begins[n]:following].rstrip(SPACES)) <= width:
                    found.append(f"early break: {paragraph[start:following].strip(SPACES)!r} fitted after {ours[n]!r}")
                continue
            phrase = paragraph[max(p for p in phrases if p < start):following].strip(SPACES)
            if measure(phrase) <= width:
                found.append(f"break inside the phrase {phrase!r}, which fits on a line")
    if at != len(lines):
        found.append(f"lines do not spell the text: {list(lines)!r}")
    return found


def _lines_of(paragraph: str, lines: Sequence[str]) -> int | None:
    """How many of `lines` spell `paragraph` (breaks at spaces drop the spaces), or None."""
    for count in range(1, len(lines) + 1):
        if line_starts(paragraph, lines[:count]) is not None:
            return count
    return None
