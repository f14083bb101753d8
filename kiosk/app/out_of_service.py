"""The out-of-service screen: what `kiosk run` shows when its configuration or data cannot be used.

Exiting instead would make systemd restart the kiosk every few seconds in front of patients, with a black
screen. This screen says, in Japanese and English at once (nobody can pick a language on it), that the kiosk
cannot be used and that patients should go to reception; below, for staff, what is wrong — the error as
the config/data readers word it, naming the file, the field and the value — and how to recover (fix, then
`sudo systemctl restart kiosk`).

The screen keeps systemd's watchdog fed (READY=1 with a STATUS naming the problem once the first frame is
drawn, then WATCHDOG=1 from Kivy's clock), so kiosk.service leaves it up until someone restarts it. When not
even this screen can be shown (no window can be opened, or its own texts, fonts or colours cannot be read),
`show` returns False and `kiosk run` exits with `kiosk.cli.run.EXIT_CONFIG`, which the unit's
RestartPreventExitStatus= keeps from being restarted.

Texts: `out_of_service.title` and `calling.desk.title` from `catalogue/locales/{ja,en}/ui.json` (read alone,
so a broken translation elsewhere cannot take this screen down too), `out_of_service.staff` and
`out_of_service.fix` from `catalogue/locales/{ja,en}/staff.json`.
"""

from __future__ import annotations

import logging
import os

# Read when Kivy is imported. Only SDL2 (what the kiosk uses; the display drop-ins set it too): a failed SDL
# window leaves `kivy.core.window.Window` None, where Kivy's X11 fallback would end the process without a word.
os.environ.setdefault("KIVY_WINDOW", "sdl2")
os.environ.setdefault("KIVY_NO_ARGS", "1")
os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kivy.app import App
from kivy.clock import Clock
from kivy.graphics import Color, Rectangle
from kivy.properties import DictProperty, NumericProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout

from kiosk.app.widgets import FitLabel
from kiosk.display import DisplayError, Look, load_display_modes
from kiosk.locales import Locale, LocaleError, load_locales, locales_dir, read_locale_file
from kiosk.sdnotify import Notifier, Watchdog

log = logging.getLogger(__name__)

LANGUAGES = ("ja", "en")
PATIENT_TEXTS = ("out_of_service.title", "calling.desk.title")  # ui.json: what it is, where to go
STAFF_TEXTS = ("out_of_service.staff", "out_of_service.fix")  # staff.json: what happened, how to recover
PROBLEM_LINES = 6  # lines of the error shown on screen; the journal has all of them
PROBLEM_LINE_CHARS = 240
TICK_SECONDS = 1.0  # READY once drawn, then the watchdog's pings (every half WatchdogSec)


@dataclass(frozen=True)
class OutOfService:
    """What the screen says. `patient[lang]` = (title, where to go); `staff[lang]` = (what happened, how to
    recover), for ja and en; `problem`: the error, at most PROBLEM_LINES lines of PROBLEM_LINE_CHARS."""

    patient: Mapping[str, tuple[str, str]]
    staff: Mapping[str, tuple[str, str]]
    problem: tuple[str, ...]

    @property
    def status(self) -> str:
        """systemd's STATUS= (shown by `systemctl status kiosk`): the first thing wrong."""
        return f"out of service: {self.problem[0]}" if self.problem else "out of service"


def problem_lines(problem: str) -> tuple[str, ...]:
    """The error's non-empty lines, at most PROBLEM_LINES, each cut to PROBLEM_LINE_CHARS."""
    lines = [line.strip() for line in problem.splitlines() if line.strip()][:PROBLEM_LINES]
    return tuple(line if len(line) <= PROBLEM_LINE_CHARS else line[:PROBLEM_LINE_CHARS - 1] + "…" for line in lines)


def out_of_service_texts(problem: str, root: Path | None = None) -> OutOfService:
    """The screen's texts for `problem` (an error message naming file, field and value). Raises LocaleError
    naming the file when its own texts cannot be read."""
    folder = locales_dir(root)
    patient: dict[str, tuple[str, str]] = {}
    staff: dict[str, tuple[str, str]] = {}
    for lang in LANGUAGES:
        for name, keys, into in (("ui.json", PATIENT_TEXTS, patient), ("staff.json", STAFF_TEXTS, staff)):
            path = folder / lang / name
            texts = read_locale_file(path)
            missing = [key for key in keys if not isinstance(texts.get(key), str) or not texts[key]]
            if missing:
                raise LocaleError(f"{path}: no text for {', '.join(missing)}")
            into[lang] = (texts[keys[0]], texts[keys[1]])
    return OutOfService(patient, staff, problem_lines(problem))


def show(problem: str, *, notifier: Notifier | None = None, fullscreen: bool = True) -> bool:
    """Show the out-of-service screen for `problem` until the process is stopped (SIGTERM/SIGINT: True);
    False at once when nothing can be shown (the reason is logged)."""
    try:
        texts = out_of_service_texts(problem)
        locales = load_locales()
        look = load_display_modes().look()
    except (LocaleError, DisplayError) as exc:
        log.error("the out-of-service screen cannot be shown either: %s", exc)
        return False
    from kivy.core.window import Window  # opens the window (None when it cannot be opened)

    if Window is None:
        log.error("the out-of-service screen cannot be shown: no window could be opened (see Kivy's log above)")
        return False
    app = OutOfServiceApp(texts, look, {code: locales[code] for code in LANGUAGES}, notifier=notifier,
                          fullscreen=fullscreen)
    for signum in (signal.SIGTERM, signal.SIGINT):  # systemd stops us with SIGTERM
        signal.signal(signum, lambda *_: app.stop())
    app.run()
    return True


class OutOfServiceApp(App):
    """The Kivy app of the screen. Offers the properties kiosk.kv's FitLabel rule reads (font, font_script,
    lang, u, text_scale, min_text_scale, palette), so it renders alike whether or not kiosk.kv is loaded."""

    title = "kiosk"
    font = StringProperty("Roboto")
    font_script = StringProperty("Zyyy")
    lang = StringProperty("ja")
    u = NumericProperty(1.0)
    text_scale = NumericProperty(1.0)
    min_text_scale = NumericProperty(1.0)
    palette = DictProperty()

    def __init__(self, texts: OutOfService, look: Look, locales: Mapping[str, Locale], *,
                 notifier: Notifier | None = None, fullscreen: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.texts = texts
        self.locales = locales
        self.palette = {name: look.rgba(name) for name in look.palette}
        self.notifier = notifier or Notifier(None)
        self.watchdog = Watchdog(self.notifier, workers=())  # only the UI thread: pings while its clock runs
        self.fullscreen = fullscreen
        self.drawn = False  # the first frame is on the screen
        self.labels: dict[str, Any] = {}  # part → FitLabel: title, patient_ja, patient_en, staff_ja, staff_en, problem
        self._ticker: Any = None

    # --- building ----------------------------------------------------------------------------------------

    def build(self) -> Any:
        from kivy.core.window import Window

        from kiosk.app.kioskapp import (
            BASE_SHORT_SIDE,
            DENSE_MIN_FONT,
            PATIENT_MIN_FONT,
            register_fonts,
            shaping_scripts,
        )

        self._sizes = BASE_SHORT_SIDE, PATIENT_MIN_FONT, DENSE_MIN_FONT
        fonts, scripts = register_fonts(self.locales), shaping_scripts(self.locales)
        self.font, self.font_script = fonts["ja"], scripts["ja"]  # the CJK font draws the English too
        if self.fullscreen:
            Window.fullscreen = "auto"
            Window.show_cursor = False
        t = self.texts
        root = self._box("background", orientation="vertical")
        bar = self._box("tone.alert", size_hint_y=None)
        bar.add_widget(self._label("title", t.patient["ja"][0], "ja", "tone_text", bold=True))
        root.add_widget(bar)
        body = BoxLayout(orientation="vertical", size_hint_y=0.6)  # the staff part gets the larger share
        body.add_widget(self._label("patient_ja", t.patient["ja"][1], "ja", "text", bold=True))
        body.add_widget(self._label("patient_en", "\n".join(t.patient["en"]), "en", "text"))
        root.add_widget(body)
        staff = self._box("panel", orientation="vertical")
        staff.add_widget(self._label("staff_ja", "\n".join(t.staff["ja"]), "ja", "text"))
        staff.add_widget(self._label("staff_en", "\n".join(t.staff["en"]), "en", "text"))
        staff.add_widget(self._label("problem", "\n".join(t.problem), "en", "text", size_hint_y=1.4))
        root.add_widget(staff)
        self._bar, self._body, self._staff = bar, body, staff
        Window.bind(size=self._resized, on_flip=self._first_frame)
        self._resized(Window, Window.size)
        return root

    def _box(self, colour: str, **kwargs: Any) -> Any:
        box = BoxLayout(**kwargs)
        with box.canvas.before:
            Color(rgba=self.palette[colour])
            rect = Rectangle(pos=box.pos, size=box.size)
        box.bind(pos=lambda w, v: setattr(rect, "pos", v), size=lambda w, v: setattr(rect, "size", v))
        return box

    def _label(self, part: str, text: str, lang: str, colour: str, bold: bool = False, **kwargs: Any) -> Any:
        label = FitLabel(**kwargs)
        # set after construction: kiosk.kv's FitLabel rule (when loaded) would override constructor arguments
        label.font_name, label.font_script_name, label.font_direction = self.font, self.font_script, "ltr"
        label.lang, label.text, label.bold = lang, text, bold
        label.color = self.palette[colour]
        label.halign, label.valign = "left", "middle"
        self.labels[part] = label
        return label

    def _resized(self, window: Any, size: tuple[int, int]) -> None:
        """Sizes in units of u = short side / 480 px, as on every kiosk screen (kiosk.kv)."""
        base, patient_min, dense_min = self._sizes
        u = self.u = max(0.5, min(size) / base)
        self._bar.height = u * 76
        self._bar.padding = self._body.padding = self._staff.padding = u * 12
        self._body.spacing = self._staff.spacing = u * 6
        maxima = {"title": 30, "patient_ja": 44, "patient_en": 28, "staff_ja": 18, "staff_en": 18, "problem": 18}
        for part, label in self.labels.items():
            label.max_font_size = u * maxima[part]
            label.min_font_size = u * (patient_min if part.startswith(("title", "patient")) else dense_min)

    # --- systemd -----------------------------------------------------------------------------------------

    def on_start(self) -> None:
        log.error("out of service (%s)", self.texts.status)
        self._ticker = Clock.schedule_interval(self._tick, TICK_SECONDS)

    def _first_frame(self, window: Any) -> None:
        window.unbind(on_flip=self._first_frame)
        self.drawn = True
        self._tick()

    def _tick(self, *args: Any) -> None:
        """READY=1 (with the problem as STATUS) once the screen is drawn, then WATCHDOG=1 while this clock runs:
        a hung UI stops the pings and systemd restarts the kiosk, as it would the running kiosk."""
        if self.drawn:
            self.notifier.ready(self.texts.status)
            self.watchdog.tick()

    def on_stop(self) -> None:
        from kivy.core.window import Window

        if self._ticker is not None:
            self._ticker.cancel()
        Window.unbind(size=self._resized, on_flip=self._first_frame)
        self.notifier.stopping()
