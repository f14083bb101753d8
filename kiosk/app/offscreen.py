"""Drive KioskApp without a display: SDL's offscreen video driver (EGL + Mesa), frame by frame.

Used by `kiosk demo` when there is no display (the screenshot tour), by tests and by the README screenshots.
Call `prepare_environment()` before anything imports Kivy.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kiosk.effects import ShowScreen

    SAMPLE_SCREENS: tuple[ShowScreen, ...]

# A sample of every screen (and the main pre-check outcomes) with a typical context, for tours and tests:
# SAMPLE_SCREENS, ShowScreen effects made on first use (module __getattr__), so that prepare_environment() alone
# imports nothing of the kiosk (bench/bench_ui.py's bare app imports only that).
_SAMPLES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("idle", {}),
    ("checking", {}),
    ("result", {"outcome": "mynumber_card", "code": None, "hints": (), "called": False, "failures": 0}),
    ("result", {"outcome": "smartphone_iphone", "code": None, "hints": ("choose_iphone",), "called": False,
                "failures": 0}),
    ("result", {"outcome": "smartphone_unreadable", "code": "021",
                "hints": ("out_of_case", "hold_slightly_away", "android_screen_sleep"), "called": False,
                "failures": 1}),
    ("result", {"outcome": "not_mynumber", "code": "002", "hints": ("transit_card_read",), "called": True,
                "failures": 0}),
    ("lookup", {"error": "unknown", "entered": "123", "nearest": ["103", "120", "023"]}),
    ("lookup_result", {"code": "001", "audience": "patient", "outage": False, "call_staff": False,
                       "called": False}),
    ("calling", {"reason": "staff_code", "code": "301"}),
    ("calling", {"reason": "patient_request", "code": None, "escalation": 1, "consoles_online": 1}),
    ("calling", {"reason": "repeated_failures", "code": "001", "escalation": 0, "consoles_online": 0}),
    ("calling", {"reason": "outage", "code": "950", "escalation": 2, "consoles_online": 2}),
    ("staff_coming", {"reason": "patient_request", "code": None}),
    ("outage", {"code": "950", "options": ("shikaku_kakuninsho", "mynaportal_screen", "moushitatesho")}),
    ("staff_pin", {"error": "wrong", "attempts_left": 4}),
    ("staff", {"reader": {"available": True, "detail": "", "cause": "ready", "params": {"reader": "RC-S300"}},
               "broker": {"connected": False, "pending": 3}, "lamp": "call",
               "last_events": [{"kind": "precheck", "code": "021", "time": "2026-11-30T01:01:02+00:00",
                                "params": {"outcome": "smartphone_unreadable"}},
                               {"kind": "call", "code": None, "time": "2026-11-30T01:01:09+00:00",
                                "params": {"reason": "patient_request"}},
                               {"kind": "lamp_status", "code": None, "time": "2026-11-30T01:01:09+00:00",
                                "params": {"pattern": "call"}}],
               "default_language": "ja", "languages": ("ja", "en"),
               "open_call": {"call_id": "c1", "reason": "patient_request", "code": None, "audience": "patient",
                             "since": "2026-11-30T01:01:09+00:00", "acknowledged": False}, "outage": False,
               "voice": {"available": True, "muted": False, "volume": 0.8}, "timezone": "Asia/Tokyo"}),
    ("staff", {"reader": {"available": False, "detail": "pcscd is not running", "cause": "service_down",
                          "params": {"path": "/run/pcscd/pcscd.comm"}},
               "broker": {"connected": True, "pending": 0}, "lamp": "reader_fault",
               "last_events": [{"kind": "reader_status", "code": None, "time": "2026-11-30T01:05:00+00:00",
                                "params": {"cause": "service_down", "path": "/run/pcscd/pcscd.comm"}}],
               "default_language": "ja", "languages": ("ja", "en"), "open_call": None, "outage": True,
               "voice": {"available": False}, "timezone": "Asia/Tokyo"}),
)
LAYOUTS: dict[str, tuple[int, int]] = {"800x480": (800, 480), "1280x720": (1280, 720), "720x1280": (720, 1280)}


def __getattr__(name: str) -> Any:
    if name == "SAMPLE_SCREENS":
        from kiosk.effects import ShowScreen

        screens = globals()["SAMPLE_SCREENS"] = tuple(ShowScreen(screen, "ja", context) for screen, context in _SAMPLES)
        return screens
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def prepare_environment(kivy_home: Path | None = None) -> None:
    """Environment Kivy reads at import: offscreen video, no argv parsing, no log files, a private KIVY_HOME."""
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")
    os.environ.setdefault("KIVY_NO_CONSOLELOG", "1")
    os.environ.setdefault("KIVY_NO_FILELOG", "1")
    os.environ.setdefault("KIVY_USE_DEFAULTCONFIG", "1")
    os.environ.setdefault("KIVY_HOME", str(kivy_home or tempfile.mkdtemp(prefix="kivy-home-")))
    os.environ["SDL_VIDEODRIVER"] = "offscreen"
    from kivy.config import Config

    # The offscreen surface keeps the size the window is created with: make it large enough for every layout.
    largest = max(max(size) for size in LAYOUTS.values())
    Config.set("graphics", "width", str(largest))
    Config.set("graphics", "height", str(largest))


class OffscreenKiosk:
    """A KioskApp prepared on the (offscreen) window, advanced one frame at a time by `settle()`."""

    def __init__(self, app, size: tuple[int, int] = (800, 480)) -> None:
        from kivy.base import EventLoop
        from kivy.core.window import Window

        self.app, self.window, self.loop = app, Window, EventLoop
        EventLoop.ensure_window()
        self.resize(size)
        app._run_prepare()  # build() and put the root on the window, as App.run() does before its loop
        self.settle()

    def resize(self, size: tuple[int, int]) -> None:
        self.window.size = size
        self.settle()

    def settle(self, frames: int = 3) -> None:
        """Run a few frames: clock callbacks (layout, label fitting), input and drawing."""
        for _ in range(frames):
            self.loop.idle()

    def wait_for(self, condition: Callable[[], bool], seconds: float) -> bool:
        """Run frames until `condition()` holds (True) or `seconds` pass (False)."""
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                return False
            self.loop.idle()
        return True

    def shoot(self, path: Path) -> Path:
        """Save the current frame as a PNG at `path` (Kivy's own call appends a counter: renamed)."""
        self.settle()
        path.parent.mkdir(parents=True, exist_ok=True)
        saved = Path(self.window.screenshot(name=str(path)))
        saved.replace(path)
        return path

    def close(self) -> None:
        """End the app as App.run() does at exit, but keep the window for the next one: on_stop (KioskApp
        shuts its runtime down; kv's `app` forgets this app) and the root taken off the window."""
        self.app.dispatch("on_stop")
        if self.app.root is not None:
            self.window.remove_widget(self.app.root)
        self.app.root = None
        self.app.built = False

