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


def test_the_reader_starts_after_the_first_frame_and_ready_follows_it(kivy_window, tmp_path):
    """attach_kivy shows the idle screen at once; the reader thread and READY=1 wait for the window's first frame."""
    from kivy.base import EventLoop

    from hardware.readers.sim import SimReader
    from kiosk.catalogue import load_catalogue
    from kiosk.config import Config
    from kiosk.runtime import Runtime
    from kiosk.sdnotify import Notifier

    readies: list[str] = []

    class RecordingNotifier(Notifier):
        def ready(self, status: str = "") -> bool:
            readies.append(status)
            return True

    notifier = RecordingNotifier(None)
    config = Config.model_validate({"kiosk": {"state_dir": str(tmp_path)}, "reader": {"backend": "sim"}})
    runtime = Runtime(config, reader=SimReader(), catalogue_loader=load_catalogue, languages=("ja", "en"),
                      notifier=notifier)
    try:
        runtime.attach_kivy()
        assert runtime.flow.screen == "idle"
        assert runtime._reader_thread is None and readies == [], "nothing starts before the first frame"
        for _ in range(3):
            EventLoop.idle()  # a frame, then the clock tick after it
        assert runtime._reader_thread is not None and runtime._reader_thread.is_alive()
        assert readies == ["kiosk running"]
    finally:
        runtime.shutdown()
