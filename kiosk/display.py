"""Large-text and high-contrast modes as data (`kiosk/display.json`): a text scale and a colour palette. Pure.

The patient toggles either on the idle screen; both reset when the kiosk returns to idle. The UI asks
`look(large_text, high_contrast)` and uses `Look.scale` on every font size and `Look.rgba(name)` for every colour.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from kiosk.jsondata import load_json

DISPLAY_FILE = Path(__file__).resolve().parent / "display.json"


class DisplayError(Exception):
    """display.json that cannot be used; the message names the file, the field and the value."""


@dataclass(frozen=True)
class Look:
    scale: float
    palette: dict[str, str]  # name → "#RRGGBB"

    def rgba(self, name: str) -> tuple[float, float, float, float]:
        return hex_to_rgba(self.palette[name])


def hex_to_rgba(colour: str) -> tuple[float, float, float, float]:
    if len(colour) != 7 or colour[0] != "#":
        raise ValueError(f"{colour!r} is not #RRGGBB")
    red, green, blue = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return (red, green, blue, 1.0)


def contrast_ratio(foreground: str, background: str) -> float:
    """WCAG 2 contrast ratio of two #RRGGBB colours (1 … 21)."""

    def luminance(colour: str) -> float:
        channels = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in hex_to_rgba(colour)[:3]]
        return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]

    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


@dataclass(frozen=True)
class DisplayModes:
    text_scale: dict[str, float]
    minimum_contrast: dict[str, float]
    palettes: dict[str, dict[str, str]]
    pairs: tuple[tuple[str, str], ...]  # (text colour, background colour) drawn on top of each other

    def look(self, large_text: bool = False, high_contrast: bool = False) -> Look:
        palette = self.palettes["high_contrast" if high_contrast else "standard"]
        return Look(scale=self.text_scale["large" if large_text else "standard"], palette=palette)

    def contrast_problems(self) -> list[str]:
        """Every text/background pair below its palette's minimum contrast."""
        problems = []
        for name, palette in self.palettes.items():
            for foreground, background in self.pairs:
                ratio = contrast_ratio(palette[foreground], palette[background])
                if ratio < self.minimum_contrast[name]:
                    problems.append(f"{name}: {foreground} on {background} is {ratio:.1f}:1")
        return problems


Colour = Annotated[str, Field(pattern=r"^#[0-9A-Fa-f]{6}$")]  # #RRGGBB


class DisplayFile(BaseModel):
    """display.json as written."""

    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", alias="_note")  # for people editing the file
    text_scale: dict[str, float]  # "standard", "large"
    minimum_contrast: dict[str, float]  # palette name → WCAG 2 ratio its text/background pairs must reach
    palettes: dict[str, dict[str, Colour]]  # "standard", "high_contrast", …: colour name → #RRGGBB
    pairs: list[tuple[str, str]]  # (text colour, background colour)


def load_display_modes(path: Path = DISPLAY_FILE) -> DisplayModes:
    """Read and check display.json; raises DisplayError naming the file, field and value."""
    data = load_json(path, DisplayFile, DisplayError, "display modes")
    modes = DisplayModes(text_scale=data.text_scale, minimum_contrast=data.minimum_contrast,
                         palettes=data.palettes, pairs=tuple(data.pairs))
    for needed, table in (("standard", modes.text_scale), ("large", modes.text_scale),
                          ("standard", modes.palettes), ("high_contrast", modes.palettes)):
        if needed not in table:
            raise DisplayError(f"{path}: missing {needed!r}")
    names = set(modes.palettes["standard"])
    for name, palette in modes.palettes.items():
        if set(palette) != names:
            raise DisplayError(f"{path}: palette {name!r} must name the same colours as 'standard'")
        if name not in modes.minimum_contrast:
            raise DisplayError(f"{path}: minimum_contrast has no entry for palette {name!r}")
    for pair in modes.pairs:
        if not set(pair) <= names:
            raise DisplayError(f"{path}: pairs: {pair} names a colour no palette has")
    return modes
