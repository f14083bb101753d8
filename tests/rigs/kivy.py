"""Offscreen Kivy rig: one real GL window (SDL offscreen video driver, EGL + Mesa) for the whole test run.

- The environment is set before anything imports Kivy (KIVY_HOME in a temp dir, SDL_VIDEODRIVER=offscreen).
  Never KIVY_GL_BACKEND=mock or SDL_VIDEODRIVER=dummy (see test-rigs.md).
- `kiosk_ui`: a KioskApp over a real Runtime (sim reader, catalogue, flow, MockFactory lamp), driven frame by
  frame; `tap(widget)` goes through Kivy's real input pipeline (UnitTestTouch → EventLoop → Window → widgets).
- `screen_problems(root)`: the "no tofu" glyph check, the text-overflow check and the line-breaking check
  (kiosk.app.preview.typeset_problems: kinsoku, phrases, as `kiosk locales preview` reports) over every
  visible label.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from kiosk.app.offscreen import prepare_environment

prepare_environment(Path(tempfile.mkdtemp(prefix="kivy-home-test-")))

NOT_A_GLYPH = "\U000F0000"  # Supplementary Private Use Area-A: in none of the fonts we ship
MARKUP = re.compile(r"\[/?(?:b|i|u|s|color|size|font|sub|sup|ref|anchor)(?:=[^\]]*)?\]")
STAFF_PIN = "2468"


@cache
def _rendering(font_name: str, char: str) -> tuple[tuple[int, int], bytes]:
    from kivy.core.text import Label as CoreLabel

    label = CoreLabel(text=char, font_name=font_name, font_size=32)
    label.refresh()
    return tuple(label.texture.size), bytes(label.texture.pixels)


def missing_glyphs(font_name: str, text: str) -> set[str]:
    """Characters the font draws as its "missing glyph" box: same pixels as a code point it surely lacks."""
    notdef = _rendering(font_name, NOT_A_GLYPH)
    return {ch for ch in set(text) if not ch.isspace() and _rendering(font_name, ch) == notdef}


def _shown(widget) -> bool:
    while widget is not None:
        if widget.opacity == 0:
            return False
        widget = widget.parent if widget.parent is not widget else None
    return True


def on_window(window) -> Iterator:
    """Every widget on the window (the app's root and any open modal view)."""
    for top in list(window.children):
        yield from top.walk(restrict=True)


def screen_problems(window) -> list[str]:
    """Tofu, text overflowing its box, lines broken against kinsoku or inside a phrase that fits a line, and
    widgets outside the window, for every visible label on the window."""
    from kivy.uix.label import Label

    from kiosk.app.preview import typeset_problems
    from kiosk.app.widgets import FitLabel

    problems = []
    for widget in on_window(window):
        if not isinstance(widget, Label) or not widget.text or not _shown(widget):
            continue
        text = MARKUP.sub("", widget.text) if widget.markup else widget.text
        name = f"{type(widget).__name__} {text[:30]!r}"
        tofu = missing_glyphs(widget.font_name, text)
        if tofu:
            problems.append(f"{name}: no glyph in {widget.font_name} for {''.join(sorted(tofu))!r}")
        if isinstance(widget, FitLabel):
            problems += [f"{name}: {problem}" for problem in typeset_problems(widget)]
        tw, th = widget.texture_size
        if tw > widget.width + 1 or th > widget.height + 1:
            problems.append(f"{name}: text {tw}x{th} overflows its box {widget.width:.0f}x{widget.height:.0f}")
        x, y = widget.to_window(widget.x, widget.y)
        if x < -1 or y < -1 or x + widget.width > window.width + 1 or y + widget.height > window.height + 1:
            problems.append(f"{name}: box at {x:.0f},{y:.0f} {widget.width:.0f}x{widget.height:.0f} "
                            f"is outside the {window.width}x{window.height} window")
    return problems


@dataclass
class KioskUi:
    """A running KioskApp on the offscreen window, with the runtime behind it."""

    app: object
    runtime: object
    reader: object
    offscreen: object
    pins: object

    @property
    def screen(self) -> str:
        return self.app.view.screen if self.app.view else ""

    def settle(self, frames: int = 3) -> None:
        self.offscreen.settle(frames)

    def run_for(self, seconds: float) -> None:
        """Keep the app running (frames, clock, runtime) for `seconds`."""
        deadline = time.monotonic() + seconds
        self.offscreen.wait_for(lambda: time.monotonic() >= deadline, seconds + 1)

    def wait_screen(self, name: str, seconds: float = 10.0) -> None:
        assert self.offscreen.wait_for(lambda: self.screen == name, seconds), (
            f"expected screen {name!r}, still on {self.screen!r}")

    def buttons(self, target: str | None = None) -> list:
        from kiosk.app.widgets import FitButton

        found = [w for w in on_window(self.offscreen.window) if isinstance(w, FitButton) and _shown(w)]
        return [b for b in found if target is None or b.target == target or (not b.target and b.text == target)]

    def tap(self, widget) -> None:
        """Touch down and up at the widget's centre through Kivy's input pipeline."""
        from kivy.tests.common import UnitTestTouch

        x, y = widget.to_window(*widget.center)
        touch = UnitTestTouch(x, y)
        touch.touch_down()
        self.settle(1)
        touch.touch_up()
        self.settle(2)

    def tap_target(self, target: str) -> None:
        buttons = self.buttons(target)
        assert buttons, f"no visible button for {target!r} on {self.screen!r}"
        self.tap(buttons[0])


@pytest.fixture(scope="session")
def kivy_window():
    from kivy.base import EventLoop

    EventLoop.ensure_window()
    return EventLoop.window


@pytest.fixture
def kiosk_ui_factory(kivy_window, tmp_path) -> Iterator[Callable[..., KioskUi]]:
    """Make a KioskApp over a real Runtime (the shipped catalogue, the flow, the lamp on MockFactory);
    `make(config=None, reader=None, link=False)`: a sim reader and no MQTT unless given. Stopped at teardown."""
    from gpiozero.pins.mock import MockFactory

    from hardware.readers.sim import SimReader
    from hardware.signals import Signals
    from kiosk.app.kioskapp import KioskApp
    from kiosk.app.offscreen import OffscreenKiosk
    from kiosk.catalogue import load_catalogue
    from kiosk.config import Config
    from kiosk.link import EventLink
    from kiosk.messages import CallButton, ResetButton
    from kiosk.passwords import hash_secret
    from kiosk.runtime import Runtime

    made: list[KioskUi] = []

    def make(config: Config | None = None, reader=None, link: bool = False) -> KioskUi:
        config = config or Config.model_validate({
            "kiosk": {"state_dir": str(tmp_path / "state")},
            "reader": {"backend": "sim"},
            "ui": {"checking_seconds": 0.1},
        })
        config.staff.pin_hash = config.staff.pin_hash or hash_secret(STAFF_PIN)
        pins = MockFactory()
        reader = reader or SimReader()
        runtime = Runtime(
            config, reader=reader, catalogue_loader=load_catalogue, languages=("ja", "en"),
            signals_factory=lambda post: Signals(config.gpio.pins(), on_call=lambda: post(CallButton()),
                                                 on_reset=lambda: post(ResetButton()), pin_factory=pins),
            link_factory=(lambda version, post, on_turn: EventLink(config, version, post, on_turn=on_turn))
            if link else None)
        app = KioskApp(runtime)
        ui = KioskUi(app, runtime, reader, OffscreenKiosk(app, (800, 480)), pins)
        made.append(ui)
        ui.wait_screen("idle")
        return ui

    yield make
    for ui in made:
        ui.offscreen.close()  # on_stop: the runtime shuts down
        ui.pins.close()


@pytest.fixture
def kiosk_ui(kiosk_ui_factory) -> KioskUi:
    """KioskApp over a real Runtime: sim reader, the shipped catalogue, the flow, the lamp on MockFactory."""
    return kiosk_ui_factory()
