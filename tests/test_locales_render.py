"""The `script` of languages.json is what makes Kivy (SDL_ttf + HarfBuzz) shape Devanagari and Myanmar."""

import pytest

from kiosk.locales import load_locales

pytestmark = pytest.mark.ui
LOCALES = load_locales()
# Devanagari: the short i sign is written before its consonant and र् + म becomes a reph;
# Myanmar: the e sign ေ is drawn before its consonant. Without shaping both come out wrong.
NEEDS_SHAPING = {"ne": "कर्मचारी किन", "my": "ဖော်ပြ မြို့ရုံး"}


@pytest.fixture(autouse=True)
def _window(kivy_window):
    """Kivy renders text only once a GL window exists (the rig's one offscreen window)."""


def render(code: str, text: str, script: str) -> bytes:
    from kivy.core.text import Label as CoreLabel

    label = CoreLabel(text=text, font_name=str(LOCALES[code].font_file()), font_size=32,
                      font_script_name=script, font_direction="ltr")
    label.refresh()
    return bytes(label.texture.pixels)


@pytest.mark.parametrize("code", sorted(NEEDS_SHAPING))
def test_complex_scripts_are_shaped_only_with_their_script_tag(code):
    text = NEEDS_SHAPING[code]
    assert LOCALES[code].script != "Zyyy"
    assert render(code, text, LOCALES[code].script) != render(code, text, "Zyyy")


@pytest.mark.parametrize("code", ["ja", "zh-Hans", "ko", "vi", "mn", "th"])
def test_script_tag_is_harmless_where_no_reordering_is_needed(code):
    text = LOCALES[code].name + " 123"
    assert render(code, text, LOCALES[code].script) == render(code, text, "Zyyy")
