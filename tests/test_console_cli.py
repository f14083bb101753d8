"""`kiosk console` as a command: clear refusals of bad setups, --hash-password, serving over TLS."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from kiosk.passwords import verify_secret
from tests.rigs.console import ACCOUNT_PASSWORDS

REPO = Path(__file__).resolve().parent.parent


def kiosk(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kiosk", *args], input=stdin, capture_output=True, text=True,
                          timeout=60, cwd=REPO)


def config(tmp_path: Path, console: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[mqtt]\nurl = "mqtt://127.0.0.1:1"\n[console]\n{console}\n')
    return path


@pytest.mark.parametrize("console,message", [
    ("", "accounts_file is not set"),
    (f'accounts_file = "{REPO}/systemd/console-accounts.example.toml"', "not a password hash"),
    ('accounts_file = "/nonexistent/accounts.toml"', "accounts file not found"),
    ('listen = "everywhere"', "[console.listen]"),
    ('tls_cert_file = "/etc/hostname"', "tls_cert_file and tls_key_file go together"),
])
def test_bad_setups_exit_2_with_a_clear_message(tmp_path, console, message):
    result = kiosk("--config", str(config(tmp_path, console)), "console")
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_bad_broker_tls_files_exit_2_before_serving(tmp_path, console_accounts):
    path = tmp_path / "config.toml"
    path.write_text(f'[mqtt]\nurl = "mqtts://127.0.0.1:1"\nca_file = "{tmp_path}/missing-ca.pem"\n'
                    f'[console]\naccounts_file = "{console_accounts}"\n')
    result = kiosk("--config", str(path), "console")
    assert result.returncode == 2, result.stderr
    assert "[mqtt] TLS files" in result.stderr and "missing-ca.pem" in result.stderr
    assert "Traceback" not in result.stderr


def test_hash_password_prints_an_accounts_line(tmp_path):
    result = kiosk("console", "--hash-password", stdin="a long enough password\n")
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert line.startswith('password_hash = "scrypt$') and "a long enough password" not in line
    assert verify_secret("a long enough password", line.split('"')[1])
    short = kiosk("console", "--hash-password", stdin="short\n")
    assert short.returncode == 1 and "at least 8" in short.stderr


@pytest.mark.mqtt
def test_serves_https_with_certificate_paths(tmp_path, mosquitto, console_accounts, console_process):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "console.crt", tmp_path / "console.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    path = tmp_path / "tls.toml"
    path.write_text(f'[mqtt]\nurl = "{mosquitto.url}"\n[console]\naccounts_file = "{console_accounts}"\n'
                    f'tls_cert_file = "{cert}"\ntls_key_file = "{key}"\n')
    trust = ssl.create_default_context(cafile=str(cert))
    console = console_process(path, scheme="https", verify=trust)
    assert console.url.startswith("https://")
    with httpx.Client(base_url=console.url, verify=trust) as client:
        client.get("/login")
        response = client.post("/login", data={"name": "staff", "password": ACCOUNT_PASSWORDS["staff"],
                                               "csrf": client.cookies.get("console_login_csrf")})
        assert response.status_code == 303
        assert response.headers["strict-transport-security"] == "max-age=31536000"  # HSTS: served over TLS
        cookie = response.headers["set-cookie"]
        assert "console_session=" in cookie and "Secure" in cookie and "HttpOnly" in cookie
        assert client.get("/api/session").json()["name"] == "staff"
