"""Large-text and high-contrast data: readable in every mode (WCAG contrast), bad files named clearly."""

import json

import pytest

from kiosk.display import DISPLAY_FILE, DisplayError, contrast_ratio, load_display_modes

MODES = load_display_modes()


def test_every_text_colour_reaches_its_modes_minimum_contrast():
    assert MODES.contrast_problems() == []
    assert MODES.minimum_contrast["high_contrast"] >= 7.0  # WCAG AAA for the low-vision mode


def test_contrast_ratio_matches_wcag_reference_values():
    assert contrast_ratio("#000000", "#FFFFFF") == pytest.approx(21.0)
    assert contrast_ratio("#777777", "#FFFFFF") == pytest.approx(4.48, abs=0.01)


def test_toggles_combine_and_default_is_standard():
    assert MODES.look().scale == 1.0
    large_dark = MODES.look(large_text=True, high_contrast=True)
    assert large_dark.scale > 1.2
    assert large_dark.rgba("background") == (0.0, 0.0, 0.0, 1.0)
    assert MODES.look(high_contrast=False).palette != large_dark.palette


def test_a_low_contrast_palette_is_reported(tmp_path):
    data = json.loads(DISPLAY_FILE.read_text())
    data["palettes"]["high_contrast"]["tone_text"] = "#333333"
    path = tmp_path / "display.json"
    path.write_text(json.dumps(data))
    assert any("tone_text on tone.info" in p for p in load_display_modes(path).contrast_problems())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["palettes"]["standard"].update(text="black"), "palettes.standard.text"),
        (lambda d: d["palettes"]["high_contrast"].pop("panel"), "same colours"),
        (lambda d: d["text_scale"].pop("large"), "'large'"),
        (lambda d: d["pairs"].append(["text", "nowhere"]), "pairs"),
    ],
)
def test_bad_display_file_names_the_problem(tmp_path, change, message):
    data = json.loads(DISPLAY_FILE.read_text())
    change(data)
    path = tmp_path / "display.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DisplayError, match=message):
        load_display_modes(path)
