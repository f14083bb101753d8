"""Every text of every screen as the kiosk lays it out: lines, font size, overflow and kinsoku problems.

Used by `kiosk locales preview` (translators check a change without a Pi) and by tests/test_ui_screens.py (the
same function over every screen, language and layout). Runs the real KioskApp on SDL's offscreen window, so the
lines are the ones FitLabel hands Kivy, measured with the same fonts. Call
`kiosk.app.offscreen.prepare_environment()` before anything imports Kivy.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from kiosk import typeset
from kiosk.app.offscreen import LAYOUTS, SAMPLE_SCREENS, OffscreenKiosk
from kiosk.effects import ShowScreen

# The sample screens plus the remaining pre-check outcomes' result screens.
PREVIEW_SCREENS: tuple[ShowScreen, ...] = SAMPLE_SCREENS + tuple(
    ShowScreen("result", "ja", {"outcome": outcome, "code": "001", "hints": (), "called": False})
    for outcome in ("nothing", "smartphone_android", "unreadable_card", "smartphone_mismatch"))


@dataclass(frozen=True)
class LabelLayout:
    """One label as shown: what it is (`role`), its lines, font size (px), box (px) and what is wrong."""

    role: str
    lines: tuple[str, ...]
    font_size: float
    box: tuple[float, float]
    problems: tuple[str, ...] = field(default=())


def _shown(widget: Any) -> bool:
    while widget is not None:
        if widget.opacity == 0:
            return False
        widget = widget.parent if widget.parent is not widget else None
    return True


def _role(widget: Any, names: dict[int, str]) -> str:
    if getattr(widget, "target", ""):
        return f"button {widget.target}"
    if id(widget.proxy_ref) in names:  # a root's ids hold each widget's (one, cached) weak proxy
        return names[id(widget.proxy_ref)]
    return "button" if hasattr(widget, "target") else "label"


def typeset_problems(widget: Any) -> list[str]:
    """kiosk.typeset.problems for the lines a FitLabel shows: a line wider than its line width, kinsoku, a break
    inside a phrase that fits a line, a phrase pushed to the next line although it fitted."""
    width = widget.line_width()
    if width is None or widget.typeset is None or widget.markup:
        return []
    return typeset.problems(widget.text, widget.typeset.lines, widget.lang, width, widget.measure)


def label_layout(widget: Any, role: str = "label") -> LabelLayout:
    """A FitLabel's lines and font size, with its problems: overflowing its box, and `typeset_problems`."""
    lines = widget.typeset.lines if widget.typeset is not None else tuple(widget.text.split("\n"))
    problems = []
    tw, th = widget.texture_size
    if tw > widget.width + 1 or th > widget.height + 1:
        problems.append(f"overflow: text {tw}x{th} px, box {widget.width:.0f}x{widget.height:.0f} px")
    problems += typeset_problems(widget)
    return LabelLayout(role, lines, float(widget.font_size), (float(widget.width), float(widget.height)),
                       tuple(problems))


def window_layouts(window: Any, ids: dict[str, Any] | None = None) -> list[LabelLayout]:
    """Every visible FitLabel with text on the window (the app's root and any open modal view), in tree order;
    `ids` (a root's `ids`) names the labels that have one."""
    from kiosk.app.widgets import FitLabel

    names = {id(widget): name for name, widget in (ids or {}).items()}
    found = []
    for top in list(window.children)[::-1]:
        for widget in top.walk(restrict=True):
            if isinstance(widget, FitLabel) and widget.text and _shown(widget):
                found.append(label_layout(widget, _role(widget, names)))
    return found


def preview(langs: Sequence[str], layouts: Sequence[str], screens: Sequence[str] | None = None,
            large_text: bool = False) -> Iterator[tuple[str, str, str, list[LabelLayout]]]:
    """(layout, lang, screen label, labels) for each layout, language and sample screen (`screens`: names to
    keep), rendered by a KioskApp over a runtime with a simulated reader and no network."""
    from hardware.readers.sim import SimReader
    from kiosk.app.kioskapp import KioskApp
    from kiosk.catalogue import load_catalogue
    from kiosk.config import Config
    from kiosk.runtime import Runtime

    config = Config.model_validate({"kiosk": {"state_dir": tempfile.mkdtemp(prefix="kiosk-preview-")}})
    runtime = Runtime(config, reader=SimReader(), catalogue_loader=load_catalogue, languages=tuple(langs))
    app = KioskApp(runtime)
    kiosk = OffscreenKiosk(app, LAYOUTS[layouts[0]])
    try:
        for layout in layouts:
            kiosk.resize(LAYOUTS[layout])
            for lang in langs:
                for n, screen in enumerate(PREVIEW_SCREENS):
                    if screens and screen.name not in screens:
                        continue
                    app.show(ShowScreen(screen.name, lang, screen.context, large_text=large_text))
                    kiosk.settle()
                    ids = app.kiosk.ids if app.kiosk is not None else None
                    yield layout, lang, f"{screen.name}#{n}", window_layouts(kiosk.window, ids)
    finally:
        kiosk.close()


def format_labels(labels: Sequence[LabelLayout]) -> list[str]:
    """Text lines for a terminal: role and font size, then one line per line, then the problems (`!`)."""
    out = []
    for label in labels:
        head = f"  {label.role:<28} {label.font_size:4.0f}px │ "
        out += [(head if n == 0 else " " * (len(head) - 2) + "│ ") + line for n, line in enumerate(label.lines)]
        out += [f"  ! {problem}" for problem in label.problems]
    return out
