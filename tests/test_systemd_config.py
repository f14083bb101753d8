"""systemd/config.example.toml (what install.sh writes to /etc/kiosk/config.toml) is a valid Config."""

from pathlib import Path

from kiosk.config import load_config
from kiosk.passwords import hash_secret

EXAMPLE = Path(__file__).resolve().parent.parent / "systemd" / "config.example.toml"


def test_example_config_validates_and_matches_the_installed_layout():
    config = load_config(EXAMPLE)
    assert config.mqtt.password_file == Path("/etc/kiosk/mqtt-password")
    assert config.console.accounts_file == Path("/etc/kiosk/console-accounts.toml")
    assert config.kiosk.state_dir == Path("/var/lib/kiosk")  # the unit's StateDirectory=kiosk
    assert (config.gpio.lamp, config.gpio.call_button, config.gpio.reset_button) == (17, 27, 22)
    assert config.staff.pin_hash == ""  # filled in by install.sh


def test_example_config_stays_valid_with_a_generated_pin_hash(tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8")
    assert text.count('pin_hash = ""') == 1  # the line install.sh replaces
    stored = hash_secret("123456")
    written = tmp_path / "config.toml"
    written.write_text(text.replace('pin_hash = ""', f'pin_hash = "{stored}"'), encoding="utf-8")
    assert load_config(written).staff.pin_hash == stored

