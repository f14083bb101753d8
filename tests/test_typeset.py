"""kiosk.typeset: phrase breaks (BudouX, spaces), JIS X 4051 kinsoku, unbreakable numbers and words, greedy filling,
and the checker the preview and the UI tests use — with its negatives. Pure: a width function stands in for Kivy."""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.typeset import NO_END, NO_START, budoux_model, phrase_breaks, problems, typeset


def cells(text: str) -> float:
    """Width in cells: East Asian wide/fullwidth characters 2, combining marks 0, the rest 1."""
    return sum(0 if unicodedata.category(ch)[0] == "M" else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
               for ch in text)


def lines(text: str, lang: str, width: float) -> tuple[str, ...]:
    shown = typeset(text, lang, width, cells)
    assert problems(text, shown.lines, lang, width, cells) == []
    return shown.lines


def test_japanese_breaks_between_phrases_not_inside_words():
    assert lines("本体の動作中は、カードを動かさないでください。", "ja", 24) == (
        "本体の動作中は、カードを", "動かさないでください。")
    assert lines("コード「021」を調べる", "ja", 12) == ("コード", "「021」を", "調べる")


def test_a_full_stop_never_starts_a_line_and_an_opening_bracket_never_ends_one():
    # 「。」 alone would fit after 「ください」 only by overflowing: it takes the last character with it
    assert lines("動かさないでください。", "ja", 20) == ("動かさないでくださ", "い。")
    for text in ("スマートフォンを「iPhone」にする", "ちょっと（少し）まってね", "ビューアー、ショップ"):
        for width in range(6, 30):  # kinsoku holds even where a word must be cut (「iPhone」 at 6 cells)
            shown = typeset(text, "ja", width, cells).lines
            assert not any(line[:1] in NO_START for line in shown[1:]), shown
            assert not any(line[-1:] in NO_END for line in shown[:-1]), shown


def test_codes_numbers_and_latin_words_are_never_split():
    for width in (12, 14, 16, 20):
        shown = lines("エラー「021」は10:42にiPhoneで出ました", "ja", width)
        joined = "|".join(shown)
        for word in ("021", "10:42", "iPhone"):
            assert word in joined, shown
    assert lines("Please take the card out of its case.", "en", 16) == ("Please take the", "card out of its", "case.")


def test_a_phrase_wider_than_the_line_breaks_inside_by_the_same_rules():
    shown = typeset("スマートフォンとマイナンバーカード", "ja", 8, cells)
    assert not shown.forced and all(cells(line) <= 8 for line in shown.lines)
    assert "".join(shown.lines) == "スマートフォンとマイナンバーカード"
    assert not any(line[:1] in NO_START for line in shown.lines[1:])


def test_a_word_wider_than_the_line_is_cut_and_says_so():
    shown = typeset("Identification", "en", 5, cells)
    assert shown.forced and all(cells(line) <= 5 for line in shown.lines)


def test_thai_breaks_without_spaces_and_keeps_its_vowels_with_their_consonants():
    text = "กรุณานำบัตรหรือสมาร์ทโฟนมาแตะที่จุดอ่านด้านล่าง"
    shown = lines(text, "th", 14)
    assert len(shown) > 1 and "".join(shown) == text
    for line in shown:
        assert unicodedata.category(line[0])[0] != "M" and line[0] not in "ะาำ" and line[-1] not in "เแโใไ"


def test_newlines_are_kept_and_spaces_at_a_break_are_dropped():
    assert lines("one two\nthree", "en", 5) == ("one", "two", "three")
    assert typeset("1.\u00a0カードを出して", "ja", 12, cells).lines[0].startswith("1.\u00a0")


def test_budoux_covers_japanese_chinese_and_thai_only():
    assert [budoux_model(code) for code in ("ja", "ja-easy", "zh-Hans", "zh-Hant", "zh-TW", "th", "ko", "en")] == [
        "ja", "ja", "zh-hans", "zh-hant", "zh-hant", "th", None, None]
    assert phrase_breaks("本体の動作中は", "ja") == (3,)
    assert phrase_breaks("本体の動作中は", "en") == ()


def test_the_checker_reports_kinsoku_overflow_and_needless_breaks():
    text = "動かさないでください。コード「021」"

    def found(lines: list[str], width: float, what: str, source: str = text) -> bool:
        return any(what in problem for problem in problems(source, lines, "ja", width, cells))

    assert found(["動かさないでください", "。コード「021」"], 30, "kinsoku: line starts with '。'")
    assert found(["動かさないでください。コード「", "021」"], 40, "kinsoku: line ends with '「'")
    assert found([text], 10, "overflow")
    # 「動かさないでください。」 fits a 30-cell line whole: breaking inside it is wrong
    assert found(["動かさない", "でください。コード「021」"], 30, "break inside the phrase")
    # 「コード」 fitted on the first line
    assert found(["カードを出して", "コード"], 30, "early break", "カードを出して コード")
    assert found(["別の文"], 30, "do not spell")


CHARACTERS = "あいうえおかきくけこカードをスマホ。、「」（）ーっゃ 0123456789abcXYZ:.\u00a0"
TEXT = st.text(alphabet=st.sampled_from(list(CHARACTERS)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(text=TEXT, width=st.integers(min_value=1, max_value=40), lang=st.sampled_from(["ja", "en", "zh-Hans"]))
def test_any_text_at_any_width_is_typeset_without_problems_unless_a_cut_was_forced(text, width, lang):
    shown = typeset(text, lang, width, cells)
    assert "".join(shown.lines).replace(" ", "") == text.replace(" ", "").replace("\n", "")
    if not shown.forced:
        assert problems(text, shown.lines, lang, width, cells) == []
