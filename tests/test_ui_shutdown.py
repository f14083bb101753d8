"""The kiosk app stopped (SIGTERM from systemd) before its window drew a frame: late callbacks draw nothing."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.ui


def test_a_kiosk_stopped_before_its_first_frame_draws_nothing_and_does_not_crash(kivy_window, tmp_path):
    """`kiosk run`'s SIGTERM handler calls App.stop(); when that lands before the first flip, the flip (and the
    runtime's last screens) come after the app stopped, when kiosk.kv's `app` is None: they must be no-ops."""
    from kivy.base import EventLoop

    from hardware.readers.sim import SimReader
    from kiosk.app.kioskapp import KioskApp
    from kiosk.catalogue import load_catalogue
    from kiosk.config import Config
    from kiosk.effects import ShowScreen
    from kiosk.runtime import Runtime

    config = Config.model_validate({"kiosk": {"state_dir": str(tmp_path)}, "reader": {"backend": "sim"}})
    runtime = Runtime(config, reader=SimReader(), catalogue_loader=load_catalogue, languages=("ja", "en"))
    app = KioskApp(runtime)
    app._run_prepare()  # build(), the root on the window and on_start, as App.run() does before its first frame
    assert not app.window_ready and app.view is not None and app.view.screen == "idle"
    try:
        app.stop()  # what the SIGTERM handler does, before the first frame
        app.show(ShowScreen("calling", "ja", {"reason": "patient_request", "code": None}))  # a late screen
        for _ in range(3):
            EventLoop.idle()  # frames: the first flip comes now
        assert app.kiosk.ids.actions.children == [], "nothing was rendered after the stop"
        assert app.view.screen == "idle"
        assert app.root not in kivy_window.children
    finally:
        # The rig's event loop is never 'started', so stopTouchApp() only flagged it as stopping: unflag it for
        # the tests that follow on this window.
        EventLoop.stopping = False
