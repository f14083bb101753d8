"""The scripted demo tour: `kiosk demo` with no display plays the patient's and staff's paths through the real
runtime (simulated reader, mock GPIO), offscreen, and saves a screenshot of every screen in each language.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kiosk.app.offscreen import OffscreenKiosk, prepare_environment
from kiosk.vocabulary import STAFF, STAFF_PIN

log = logging.getLogger(__name__)

WAIT_SECONDS = 10.0  # longest wait for a screen (checking → result takes ~1 s)
DEMO_PIN = "0000"  # the demo's staff PIN (`kiosk demo` prints it); a real kiosk's PIN hash comes from its config


def _script(reader, pin: str) -> list[tuple[str, Callable[[], Any] | None, str, bool]]:
    """(label, action, screen to wait for, screenshot?) in order; actions post what a patient or staff would."""
    from kiosk.messages import Answer, Command, LookupEntered, PinEntered, Tap

    def ignore(answer: Answer) -> None:
        """The tour's commands need no answer: the screen it waits for shows the outcome."""

    def command(name: str) -> Command:
        return Command(id=f"tour-{name}", name=name, args={}, reply=ignore)

    steps: list[tuple[str, Callable[[], Any] | None, str, bool]] = [("idle", None, "idle", True)]
    for preset in ("mynumber_card", "iphone", "android", "transit_card", "silent"):
        steps += [
            (f"present {preset}", functools.partial(reader.present, preset), "checking", preset == "mynumber_card"),
            (f"result {preset}", None, "result", True),
            ("remove", reader.remove, "result", False),
            ("done", lambda: Tap("done"), "idle", False),
        ]
    steps += [
        ("lookup", lambda: Tap("lookup"), "lookup", True),
        ("unknown code", lambda: LookupEntered("999"), "lookup", True),
        ("code 021", lambda: LookupEntered("021"), "lookup_result", True),
        ("done", lambda: Tap("done"), "idle", False),
        ("call", lambda: Tap("call"), "calling", True),
        ("acknowledge", lambda: command("acknowledge"), "staff_coming", True),
        ("resolve", lambda: command("resolve"), "idle", False),
        ("outage", lambda: command("outage_enter"), "outage", True),
        ("outage over", lambda: command("outage_leave"), "idle", False),
        ("staff gesture", lambda: Tap("staff_gesture"), "staff_pin", True),
        ("staff pin", lambda: PinEntered(pin), "staff", True),
        ("close staff", lambda: Tap("done"), "idle", False),
    ]
    return steps


def play(runtime, reader, out_dir: Path, languages: tuple[str, ...] = ("ja", "en"),
         size: tuple[int, int] = (800, 480)) -> list[Path]:
    """Play the tour in each language; returns the screenshots (`<nn>-<lang>-<screen>.png` in `out_dir`)."""
    prepare_environment()
    from kiosk.app.kioskapp import KioskApp
    from kiosk.messages import Tap

    app = KioskApp(runtime)
    kiosk = OffscreenKiosk(app, size)  # on_start attaches and starts the runtime
    shots: list[Path] = []
    try:
        for lang in languages:
            for label, action, screen, shoot in _script(reader, DEMO_PIN):
                if runtime.flow.lang != lang and runtime.flow.screen not in (STAFF, STAFF_PIN):
                    runtime.post(Tap(f"lang:{lang}"))
                message = action() if action is not None else None
                if message is not None:
                    runtime.post(message)
                # a shot must be in its language (staff screens have none); going home resets the language
                in_lang = not shoot or screen in (STAFF, STAFF_PIN)
                def arrived(screen: str = screen, in_lang: bool = in_lang, lang: str = lang) -> bool:
                    return app.view is not None and app.view.screen == screen and (in_lang or app.lang == lang)

                if not kiosk.wait_for(arrived, WAIT_SECONDS):
                    log.warning("tour: %s did not reach %s in %s s", label, screen, WAIT_SECONDS)
                    continue
                if shoot:
                    shots.append(kiosk.shoot(out_dir / f"{len(shots) + 1:02d}-{lang}-{screen}.png"))
    finally:
        kiosk.close()
    return shots
