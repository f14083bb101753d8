"""The unit files, their display drop-ins and the Kivy config, checked with the real systemd-analyze and Kivy."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk.cli.run import EXIT_CONFIG

SYSTEMD = Path(__file__).resolve().parent.parent / "systemd"
# the highest exposure each may have
UNITS = {"kiosk.service": 2.5, "kiosk-console.service": 2.0, "kiosk-recorder.service": 2.0}
DROP_INS = ["kms.conf", "labwc.conf"]

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")


def _copy_with_existing_binary(unit: str, into: Path, drop_in: str | None = None) -> Path:
    """systemd-analyze verify fails when ExecStart's binary is missing: point it at one that exists."""
    text = (SYSTEMD / unit).read_text()
    assert "ExecStart=/opt/kiosk/venv/bin/kiosk " in text
    copy = into / unit
    copy.write_text(text.replace("ExecStart=/opt/kiosk/venv/bin/kiosk ", "ExecStart=/bin/true "))
    if drop_in:
        (into / f"{unit}.d").mkdir()
        text = (SYSTEMD / "display" / drop_in).read_text().replace("@KIOSK_UID@", "999")  # as install.sh does
        (into / f"{unit}.d" / "display.conf").write_text(text)
    return copy


def _verify(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["systemd-analyze", "verify", path.name], cwd=path.parent, capture_output=True, text=True, timeout=60
    )


def _exposure(path: Path) -> float:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(path)],
        capture_output=True, text=True, timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    return float(match.group(1))


@needs_analyze
@pytest.mark.parametrize("unit", sorted(UNITS))
def test_unit_verifies_without_any_output(unit, tmp_path):
    result = _verify(_copy_with_existing_binary(unit, tmp_path))
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@needs_analyze
@pytest.mark.parametrize("drop_in", DROP_INS)
def test_kiosk_unit_with_each_display_drop_in_verifies_and_stays_within_limit(drop_in, tmp_path):
    unit = _copy_with_existing_binary("kiosk.service", tmp_path, drop_in)
    result = _verify(unit)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    assert _exposure(unit) <= UNITS["kiosk.service"]


@needs_analyze
def test_verify_check_catches_a_bad_key(tmp_path):
    copy = _copy_with_existing_binary("kiosk.service", tmp_path)
    copy.write_text(copy.read_text().replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"))
    assert "Unknown key" in _verify(copy).stderr


@needs_analyze
@pytest.mark.parametrize("unit,limit", sorted(UNITS.items()))
def test_exposure_is_within_limit(unit, limit, tmp_path):
    assert _exposure(_copy_with_existing_binary(unit, tmp_path)) <= limit


@needs_analyze
def test_exposure_check_rejects_an_unhardened_unit(tmp_path):
    plain = tmp_path / "plain.service"
    plain.write_text("[Service]\nExecStart=/bin/true\n")
    assert _exposure(plain) > max(UNITS.values())


def _settings(unit: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in (SYSTEMD / unit).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def test_kiosk_unit_contract():
    """What kiosk.sdnotify and the installed layout rely on."""
    unit = _settings("kiosk.service")
    assert unit["Type"] == ["notify"] and unit["NotifyAccess"] == ["main"]
    assert unit["ExecStart"] == ["/opt/kiosk/venv/bin/kiosk run"]
    assert unit["Restart"] == ["always"] and int(unit["WatchdogSec"][0]) > 0
    assert unit["RestartPreventExitStatus"] == [str(EXIT_CONFIG)]  # a bad config is not retried every 3 s
    assert unit["User"] == ["kiosk"] and unit["StateDirectory"] == ["kiosk"]
    assert unit["ConfigurationDirectory"] == ["kiosk"] and unit["ProtectSystem"] == ["strict"]
    assert unit["DevicePolicy"] == ["closed"]
    allowed = {entry.split()[0] for entry in unit["DeviceAllow"]}
    assert {"char-gpiochip", "char-drm", "char-input"} <= allowed
    assert "MemoryDenyWriteExecute" not in unit  # breaks GL drivers that JIT (llvmpipe)


def test_console_unit_has_no_devices_and_no_kiosk_state():
    unit = _settings("kiosk-console.service")
    assert unit["ExecStart"] == ["/opt/kiosk/venv/bin/kiosk console"]
    assert unit["PrivateDevices"] == ["yes"] and "DeviceAllow" not in unit
    assert unit["InaccessiblePaths"] == ["-/var/lib/kiosk"]


def test_kivy_config_gives_one_input_provider_no_cursor_and_no_blanking(tmp_path):
    """Loaded by the real Kivy: one input provider (each tap once), and Kivy does not 'upgrade' it back."""
    shutil.copy(SYSTEMD / "display" / "kivy-config.ini", tmp_path / "config.ini")
    env = {k: v for k, v in os.environ.items() if k not in ("KIVY_USE_DEFAULTCONFIG", "KIVY_NO_CONFIG")}
    env.update(KIVY_HOME=str(tmp_path), KIVY_NO_ARGS="1", KIVY_NO_CONSOLELOG="1")
    probe = (
        "from kivy.config import Config, KIVY_CONFIG_VERSION as v\n"
        "print(dict(Config.items('input')))\n"
        "print(Config.get('kivy', 'config_version') == str(v), Config.get('graphics', 'show_cursor'),"
        " Config.get('graphics', 'allow_screensaver'), Config.get('kivy', 'exit_on_escape'))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    providers, flags = result.stdout.splitlines()[-2:]
    assert providers == "{'mouse': 'mouse,disable_multitouch'}"
    assert flags == "True 0 0 0"
