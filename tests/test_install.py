"""systemd/install.sh for real in a fresh Debian 12 chroot: install, re-run (upgrade in place), switch display
mode, --uninstall, --uninstall --purge. Slow (~2-4 min: debootstrap, apt, pip); needs root and debootstrap."""

import os
import re
import shutil
import sqlite3
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from kiosk.config import load_config
from kiosk.console.auth import load_accounts
from kiosk.passwords import verify_secret
from tests.rigs.debootstrap import REPO, debian_root


def needs_chroot(test):
    test = pytest.mark.slow(test)
    test = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (debootstrap, chroot)")(test)
    return pytest.mark.skipif(shutil.which("debootstrap") is None, reason="debootstrap not installed")(test)


def test_install_sh_is_shellcheck_clean():
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed")
    result = subprocess.run(["shellcheck", str(REPO / "systemd" / "install.sh")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.fixture(scope="module")
def chroot(tmp_path_factory):
    with debian_root(Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp(), prefix="debian12-"))) as root:
        yield root


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _queue_events(db: Path, count: int) -> None:
    """Stand-in for the outbox: a WAL-mode SQLite file in the state dir, owned by the kiosk."""
    with sqlite3.connect(db) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE IF NOT EXISTS queued (id INTEGER PRIMARY KEY, body TEXT)")
        connection.executemany("INSERT INTO queued (body) VALUES (?)", [("event",)] * count)
    connection.close()


def _count_events(db: Path) -> int:
    with sqlite3.connect(db) as connection:
        (count,) = connection.execute("SELECT COUNT(*) FROM queued").fetchone()
    connection.close()
    return count


@needs_chroot
def test_install_upgrade_switch_display_and_uninstall(chroot):
    # --- first install ---
    output = chroot.install("--display", "kms")
    pins = re.findall(r"staff PIN for the kiosk's staff mode: (\d{6})\b", output)
    assert len(pins) == 1, output
    assert "broker account 'kiosk', password" in output
    console_password = re.search(r"staff console account 'reception', password: (\S+)", output).group(1)

    user = chroot.passwd("kiosk")
    assert user is not None and user[5] == "/var/lib/kiosk" and user[6] == "/usr/sbin/nologin"
    assert {"gpio", "video", "plugdev", "audio"} <= chroot.groups_of("kiosk")
    kiosk_uid = int(user[2])

    config_path = chroot.path("/etc/kiosk/config.toml")
    broker_password = chroot.path("/etc/kiosk/mqtt-password")
    for secret in (config_path, broker_password):
        assert _mode(secret) == 0o600 and secret.stat().st_uid == kiosk_uid
    assert _mode(chroot.path("/etc/kiosk")) == 0o750
    config = load_config(config_path)
    assert verify_secret(pins[0], config.staff.pin_hash)
    accounts_path = chroot.path(str(config.console.accounts_file))
    assert _mode(accounts_path) == 0o600 and accounts_path.stat().st_uid == kiosk_uid
    assert verify_secret(console_password, load_accounts(accounts_path)["reception"].password_hash)
    assert len(broker_password.read_text().strip()) >= 24
    assert chroot.path("/etc/mosquitto/kiosk.passwd").read_text().startswith("kiosk:")
    assert chroot.path("/etc/mosquitto/conf.d/kiosk.conf").is_file()
    assert chroot.path("/etc/mosquitto/kiosk.acl").is_file()

    assert chroot.run("/opt/kiosk/venv/bin/kiosk", "--help").returncode == 0
    for installed in (
        "/etc/systemd/system/kiosk.service",
        "/etc/systemd/system/kiosk-console.service",
        "/etc/polkit-1/rules.d/50-kiosk.rules",
        "/etc/udev/rules.d/60-kiosk-readers.rules",
        "/etc/udev/rules.d/60-kiosk-gpio.rules",
        "/etc/modprobe.d/kiosk-nfc-blacklist.conf",
        "/opt/kiosk/docs/appliance.md",
    ):
        assert chroot.path(installed).is_file(), installed
    assert "SDL_VIDEODRIVER=kmsdrm" in chroot.path("/etc/systemd/system/kiosk.service.d/display.conf").read_text()
    assert _mode(chroot.path("/var/lib/kiosk/kivy/config.ini")) == 0o600
    assert _mode(chroot.path("/var/lib/kiosk")) == 0o700
    clips = list(chroot.path("/var/lib/kiosk/voice").glob("*.wav"))
    assert clips and all(clip.stat().st_uid == kiosk_uid for clip in clips), output
    wants = chroot.path("/etc/systemd/system/multi-user.target.wants")
    assert (wants / "kiosk.service").is_symlink() and (wants / "kiosk-console.service").is_symlink()

    # --- re-run with queued events and a newer program: upgrade in place, keep config, secrets and outbox ---
    outbox = chroot.path("/var/lib/kiosk/outbox.sqlite")
    _queue_events(outbox, 25)
    os.chown(outbox, kiosk_uid, kiosk_uid)
    secrets = (config_path, broker_password, accounts_path, chroot.path("/etc/mosquitto/kiosk.passwd"))
    kept = {path: path.read_bytes() for path in secrets}
    package = chroot.path("/usr/src/kiosk/kiosk/__init__.py")
    package.write_text(package.read_text() + "\nUPGRADE_MARKER = 1\n")
    chroot.path("/root/wheelhouse").mkdir()  # an (empty) offline wheelhouse: pip still uses the index
    output = chroot.install("--find-links", "/root/wheelhouse")
    assert "staff PIN" not in output and "password" not in output
    assert "keeping /etc/kiosk/config.toml" in output
    assert all(path.read_bytes() == content for path, content in kept.items())
    assert _count_events(outbox) == 25
    upgraded = chroot.run("/opt/kiosk/venv/bin/python", "-c", "import kiosk; print(kiosk.UPGRADE_MARKER)")
    assert upgraded.stdout.strip() == "1", upgraded.stderr
    assert "SDL_VIDEODRIVER=kmsdrm" in chroot.path("/etc/systemd/system/kiosk.service.d/display.conf").read_text()

    # --- desktop (labwc) mode, remembered on re-run, then back to KMS ---
    chroot.install("--display", "labwc")
    chroot.install()
    drop_in = chroot.path("/etc/systemd/system/kiosk.service.d/display.conf").read_text()
    assert "SDL_VIDEODRIVER=wayland" in drop_in and f"XDG_RUNTIME_DIR=/run/user/{kiosk_uid}" in drop_in
    assert "kiosk.service" in chroot.path("/var/lib/kiosk/.config/labwc/autostart").read_text()
    assert "autologin-user=kiosk" in chroot.path("/etc/lightdm/lightdm.conf.d/50-kiosk.conf").read_text()
    assert not (wants / "kiosk.service").exists()  # started by the labwc autostart, not at boot
    chroot.install("--display", "kms")
    assert not chroot.path("/etc/lightdm/lightdm.conf.d/50-kiosk.conf").exists()
    assert (wants / "kiosk.service").is_symlink()
    assert chroot.passwd("kiosk")[6] == "/usr/sbin/nologin"

    # --- uninstall keeps config, state and the user; --purge removes them ---
    chroot.install("--uninstall")
    for removed in (
        "/opt/kiosk",
        "/etc/systemd/system/kiosk.service",
        "/etc/systemd/system/kiosk.service.d",
        "/etc/polkit-1/rules.d/50-kiosk.rules",
        "/etc/udev/rules.d/60-kiosk-readers.rules",
        "/etc/mosquitto/conf.d/kiosk.conf",
        "/etc/mosquitto/kiosk.passwd",
    ):
        assert not chroot.path(removed).exists(), removed
    assert not (wants / "kiosk.service").is_symlink()
    assert config_path.read_bytes() == kept[config_path] and _count_events(outbox) == 25
    assert chroot.passwd("kiosk") is not None

    chroot.install("--uninstall", "--purge")
    assert not chroot.path("/etc/kiosk").exists() and not chroot.path("/var/lib/kiosk").exists()
    assert chroot.passwd("kiosk") is None


@needs_chroot
def test_bad_options_are_refused_with_a_clear_message(chroot):
    result = chroot.run("/usr/src/kiosk/systemd/install.sh", "--display", "x11")
    assert result.returncode != 0 and "--display must be kms or labwc" in result.stderr
    result = chroot.run("/usr/src/kiosk/systemd/install.sh", "--purge")
    assert result.returncode != 0 and "--purge only goes with --uninstall" in result.stderr
