"""A config or data file the kiosk cannot use: the out-of-service screen (ja + en: go to reception; for staff:
file, field, value and how to recover), systemd's watchdog kept fed, and EXIT_CONFIG only when nothing can
be shown. On the Kivy offscreen rig (every layout, the glyph/overflow/line-breaking checks) and as real
`kiosk run` processes with a notify socket standing in for systemd."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk.app.offscreen import LAYOUTS
from kiosk.cli.run import EXIT_CONFIG
from kiosk.locales import LocaleError, locales_dir
from kiosk.sdnotify import Notifier
from tests.rigs.kivy import screen_problems
from tests.test_systemd_service import NotifySocket

BAD_CONFIG = '[ui]\nfailures_before_call = 0\n'  # ge=1: "[ui.failures_before_call] … (value: 0)"


def ui_text(lang: str, key: str, name: str = "ui.json") -> str:
    return json.loads((locales_dir() / lang / name).read_text(encoding="utf-8"))[key]


def problem_of(tmp_path: Path) -> str:
    from kiosk.config import ConfigError, load_config

    path = tmp_path / "config.toml"
    path.write_text(BAD_CONFIG)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return str(caught.value)


@pytest.mark.ui
def test_the_screen_tells_patients_to_go_to_reception_and_staff_what_is_wrong(kivy_window, tmp_path):
    from kiosk.app.offscreen import OffscreenKiosk
    from kiosk.app.out_of_service import OutOfServiceApp, out_of_service_texts
    from kiosk.display import load_display_modes
    from kiosk.locales import load_locales

    problem = problem_of(tmp_path)
    notify = NotifySocket(tmp_path / "notify")
    notifier = Notifier(str(notify.path), watchdog_seconds=0.5)  # pings every 0.25 s, at each 1 s tick
    locales = load_locales()
    app = OutOfServiceApp(out_of_service_texts(problem), load_display_modes().look(),
                          {code: locales[code] for code in ("ja", "en")}, notifier=notifier)
    screen = OffscreenKiosk(app, LAYOUTS["800x480"])
    try:
        shown = {part: label.text for part, label in app.labels.items()}
        assert shown["title"] == ui_text("ja", "out_of_service.title")
        assert shown["patient_ja"] == ui_text("ja", "calling.desk.title")  # 受付までお越しください
        assert ui_text("en", "calling.desk.title") in shown["patient_en"]
        assert ui_text("en", "out_of_service.title") in shown["patient_en"]
        assert ui_text("ja", "out_of_service.fix", "staff.json") in shown["staff_ja"]
        assert ui_text("en", "out_of_service.staff", "staff.json") in shown["staff_en"]
        assert "config.toml" in shown["problem"] and "[ui.failures_before_call]" in shown["problem"]
        assert "(value: 0)" in shown["problem"]  # file, field and value
        for layout, size in LAYOUTS.items():
            screen.resize(size)
            screen.settle(6)
            assert screen_problems(kivy_window) == [], layout

        first = notify.wait_for("READY=1", timeout=10)
        assert any(f"STATUS=out of service: {problem.splitlines()[0]}" in m for _, m in notify.messages)
        notify.wait_for("WATCHDOG=1", timeout=10)
        assert screen.wait_for(lambda: False, 2.2) is False  # frames (and the Clock) for 2.2 s
        notify.wait_for("WATCHDOG=1", timeout=20, after=first + 1.5)  # still fed while the screen runs
    finally:
        screen.close()
    notify.wait_for("STOPPING=1", timeout=5)


def test_its_own_texts_missing_is_a_locale_error_naming_the_file(tmp_path):
    from kiosk.app.out_of_service import out_of_service_texts, problem_lines

    root = tmp_path / "catalogue"
    for lang in ("ja", "en"):
        folder = root / "locales" / lang
        folder.mkdir(parents=True)
        (folder / "ui.json").write_text(json.dumps({"out_of_service.title": "x", "calling.desk.title": "y"}))
        (folder / "staff.json").write_text(json.dumps({"out_of_service.staff": "s"}))
    with pytest.raises(LocaleError, match=r"ja/staff\.json: no text for out_of_service\.fix"):
        out_of_service_texts("p", root)
    lines = problem_lines("\n".join(f"file: [f{i}] bad" + "x" * 300 for i in range(10)))
    assert len(lines) == 6 and all(len(line) <= 240 for line in lines) and lines[0].endswith("…")


def received(notify: NotifySocket) -> list[str]:
    """Every datagram the process sent (it has exited: nothing more comes)."""
    notify.sock.settimeout(0.2)
    try:
        while True:
            notify.messages.append((0.0, notify.sock.recv(4096).decode()))
    except TimeoutError:
        return [message for _, message in notify.messages]


def run_kiosk(tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.Popen, NotifySocket]:
    config = tmp_path / "config.toml"
    config.write_text(BAD_CONFIG)
    notify = NotifySocket(tmp_path / "notify")
    environ = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "KIVY_WINDOW")}
    environ.update(NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC="2000000", KIVY_HOME=str(tmp_path / "kivy"),
                   PYTHONUNBUFFERED="1", **env)
    process = subprocess.Popen([sys.executable, "-m", "kiosk", "--config", str(config), "run", *args],
                               cwd=tmp_path, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return process, notify


@pytest.mark.ui
@pytest.mark.slow
def test_kiosk_run_with_a_bad_config_shows_the_screen_and_keeps_the_watchdog_fed(tmp_path):
    process, notify = run_kiosk(tmp_path, SDL_VIDEODRIVER="offscreen")
    try:
        ready = notify.wait_for("READY=1", timeout=60)
        status = next(m for _, m in notify.messages if "READY=1" in m.splitlines())
        assert "STATUS=out of service:" in status and "failures_before_call" in status
        notify.wait_for("WATCHDOG=1", timeout=20, after=ready)
        notify.wait_for("WATCHDOG=1", timeout=20, after=ready + 2.5)  # past WatchdogSec: still fed
        assert process.poll() is None  # neither exited nor restarting
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err[-3000:]
    assert "failures_before_call" in err and "config.toml" in err and "Traceback" not in err


def test_kiosk_run_headless_with_a_bad_config_exits_with_exit_config_and_never_says_ready(tmp_path):
    process, notify = run_kiosk(tmp_path, "--headless")
    process.communicate(timeout=60)
    assert process.returncode == EXIT_CONFIG == 78  # sysexits.h EX_CONFIG (tests/test_e2e_kiosk.py: the message)
    assert not any("READY=1" in m for m in received(notify))


@pytest.mark.ui
def test_kiosk_run_that_can_open_no_window_exits_with_exit_config(tmp_path):
    """SDL cannot start any video driver (a name SDL does not have: as on a Pi whose display is missing)."""
    process, notify = run_kiosk(tmp_path, SDL_VIDEODRIVER="no-such-driver")
    _, err = process.communicate(timeout=60)
    assert process.returncode == EXIT_CONFIG, err[-3000:]
    assert "failures_before_call" in err and "no window could be opened" in err
    assert not any("READY=1" in m for m in received(notify))
