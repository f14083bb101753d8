"""The runtime driven from Kivy's Clock: after shutdown() Kivy calls nothing of it any more."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.ui


def test_shutdown_cancels_the_kivy_timers(kivy_window, tmp_path):
    """attach_kivy's once-a-second housekeeping (and the flow's deadline timer) stop with the runtime: a stopped
    kiosk must not go on turning a flow whose reader, link and lamp are closed."""
    from kivy.clock import Clock

    from hardware.readers.sim import SimReader
    from kiosk.catalogue import load_catalogue
    from kiosk.config import Config
    from kiosk.runtime import HOUSEKEEPING_SECONDS, Runtime

    config = Config.model_validate({"kiosk": {"state_dir": str(tmp_path)}, "reader": {"backend": "sim"}})
    runtime = Runtime(config, reader=SimReader(), catalogue_loader=load_catalogue, languages=("ja", "en"))
    runtime.attach_kivy()
    runtime.shutdown()
    turns: list[float] = []
    runtime.pump = lambda: turns.append(time.monotonic())  # what the Clock callbacks call
    deadline = time.monotonic() + 2.5 * HOUSEKEEPING_SECONDS
    while time.monotonic() < deadline:
        Clock.tick()
        time.sleep(0.05)
    assert turns == [], "Kivy still pumps the runtime after shutdown"
