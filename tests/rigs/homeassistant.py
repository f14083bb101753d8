"""A real, current Home Assistant on 127.0.0.1, for the discovery tests. Slow (~4-5 min: debootstrap, pip, first
start); needs root, debootstrap, chroot and mosquitto, and PyPI + the Debian mirror.

Home Assistant's newest release needs a newer Python than this machine's, so it runs in a Debian sid root built
here, on a tmpfs mounted in pytest's temp dir (the disk if none can be mounted; nothing is cached anywhere
else; the ~1.1 GB root is gone with one umount instead of minutes of deleting files):
1. `debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates sid`, from the mirror this
   machine's apt uses; this machine's CA bundle is copied in (its network may intercept TLS).
2. A venv at /opt/ha with the newest `homeassistant` from PyPI and the requirements of the integrations the
   tests load (MQTT; the frontend, so a browser can show the device page and a dashboard; NO_WHEEL_AT_PIN).
3. A config dir with `configuration.yaml` (the api, the frontend with history and logbook, a YAML-mode
   dashboard DASHBOARD read from `dashboard_file`, automations from `automations.yaml`, which the config API
   writes) and pre-written `.storage`:
   - `http`: the server on 127.0.0.1 and a free port (Home Assistant keeps these settings in storage since
     2026.11; `http:` in YAML becomes a trial to confirm in the frontend, reverted with a restart after 5 min);
   - `core.config_entries`: the MQTT integration pointed at the test broker, discovery on;
   - `auth`: an owner with a login and a long-lived refresh token (access tokens are HS256 JWTs signed with its
     key, as homeassistant.auth issues them); `auth_provider.homeassistant`: the owner's username and bcrypt
     password hash (made by the root's own bcrypt);
   - `onboarding`: done, so the frontend opens on its login page.
4. `chroot ROOT /opt/ha/bin/python -m homeassistant --config /srv/ha`, stopped by PID (SIGTERM, then SIGKILL).
Home Assistant installs the requirements of the other integrations it loads on first start (PyPI, into the
venv); some fail here (no ffmpeg, no libturbojpeg) and log errors of their own, which concern no test.

Fixture: `home_assistant` (module scope) -> HomeAssistant (`.start()`/`.stop()` restart it, `.broker`, `.url`,
`.username`, `.password`,
`.states()`, `.state(entity_id)`, `.wait_for(entity_id, predicate)`, `.history(entity_id, since, predicate)`,
`.template(text)`, `.add_automation(id, config)`, `.automation(id)`, `.dashboard_file`, `.log()`, `.mqtt_problems()`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.rigs.mosquitto import DEFAULT_CONFIG, Broker, free_port

CONFIG_DIR = "/srv/ha"
VENV = "/opt/ha"
ROOT_SIZE = "4g"  # tmpfs limit for the root (it needs ~1.1 GB); pages are only used as files are written
INTEGRATIONS = ("mqtt", "frontend")  # their requirements are installed with Home Assistant, not at first start
# Pinned by assist_pipeline at releases without wheels for the root's Python (they need a C++ compiler; Home
# Assistant's own images build them). Its code is imported when the frontend asks for the service descriptions
# (the page stays on "loading" if that fails), so the newest releases (abi3 wheels, same API) are installed
# and Home Assistant is told not to replace them (--skip-pip-packages).
NO_WHEEL_AT_PIN = ("pymicro-vad", "pyspeex-noise")
STARTUP_SECONDS = 600
MQTT_LOGGERS = ("homeassistant.components.mqtt",)
DASHBOARD = "kiosk-wall"  # url path of the YAML-mode dashboard (Home Assistant wants a "-" in it)
USERNAME = "kiosk-tests"


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (deb822 `URIs:` or one-line `deb URL`), else deb.debian.org."""
    for path in [*Path("/etc/apt/sources.list.d").glob("*.sources"), *Path("/etc/apt/sources.list.d").glob("*.list"),
                 Path("/etc/apt/sources.list")]:
        if not path.exists():
            continue
        text = path.read_text(errors="replace")
        for match in re.finditer(r"^\s*(?:URIs:|deb)\s+(?:\[[^]]*\]\s+)?(\S+)", text, re.M):
            if "security" not in match.group(1):
                return match.group(1)
    return "http://deb.debian.org/debian"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def access_token(refresh_token_id: str, jwt_key: str, seconds: int = 86_400) -> str:
    """An access token for a refresh token: an HS256 JWT with `iss` = the refresh token's id (homeassistant.auth)."""
    now = int(time.time())
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps({"iss": refresh_token_id, "iat": now, "exp": now + seconds}).encode())
    signature = hmac.new(jwt_key.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(signature)}"


class HomeAssistant:
    def __init__(self, root: Path, broker: Broker):
        self.root, self.broker = root, broker
        self.config = root / CONFIG_DIR.lstrip("/")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.username, self.password = USERNAME, secrets.token_urlsafe(12)
        self.dashboard_file = self.config / f"{DASHBOARD}.yaml"
        self.proc: subprocess.Popen | None = None
        self._earlier_log = ""
        self._write_config()

    # --- set-up ----------------------------------------------------------------------------------------------

    def _write_config(self) -> None:
        storage = self.config / ".storage"
        storage.mkdir(parents=True)
        (self.config / "configuration.yaml").write_text(f"""
homeassistant:
  name: Kiosk test
  latitude: 35.68
  longitude: 139.77
  elevation: 0
  unit_system: metric
  time_zone: Asia/Tokyo
  country: JP
  currency: JPY
  language: ja
api:
frontend:
history:
logbook:
automation: !include automations.yaml
lovelace:
  dashboards:
    {DASHBOARD}:
      mode: yaml
      filename: {self.dashboard_file.name}
      title: Kiosk wall
      show_in_sidebar: true
logger:
  default: info
""")
        self.dashboard_file.write_text("views: []\n")
        (self.config / "automations.yaml").write_text("[]\n")  # filled through the config API (add_automation)
        now = datetime.now(UTC).isoformat()
        entry = {"entry_id": secrets.token_hex(13).upper(), "version": 2, "minor_version": 1, "domain": "mqtt",
                 "title": "127.0.0.1", "data": {"broker": self.broker.host, "port": self.broker.port},
                 "options": {"discovery": True, "discovery_prefix": "homeassistant"}, "source": "user",
                 "unique_id": None, "disabled_by": None, "pref_disable_new_entities": False,
                 "pref_disable_polling": False}
        self._store(storage / "core.config_entries", "core.config_entries", {"entries": [entry]})
        # The HTTP server's settings live in storage since 2026.11; YAML (`http:`) is migrated into a *pending*
        # trial that asks for confirmation in the frontend and reverts, restarting Home Assistant, after 5 min.
        http = {"server_host": ["127.0.0.1"], "server_port": self.port, "cors_allowed_origins": [],
                "login_attempts_threshold": -1, "ip_ban_enabled": False, "ssl_profile": "intermediate_v6",
                "use_x_frame_options": True, "created_at": now, "error": None, "error_message": None}
        self._store(storage / "http", "http", {"stable": http, "pending": None, "yaml_migration_done": True},
                    version=3)
        user_id, self._refresh_id, self._jwt_key = secrets.token_hex(16), secrets.token_hex(16), secrets.token_hex(64)
        self._store(storage / "auth", "auth", {
            "users": [{"id": user_id, "group_ids": ["system-admin"], "is_owner": True, "is_active": True,
                       "name": "kiosk tests", "system_generated": False, "local_only": False}],
            "groups": [{"id": "system-admin", "name": "Administrators"}, {"id": "system-users", "name": "Users"},
                       {"id": "system-read-only", "name": "Read Only"}],
            "credentials": [{"id": secrets.token_hex(16), "user_id": user_id, "auth_provider_type": "homeassistant",
                             "auth_provider_id": None, "data": {"username": self.username}}],
            "refresh_tokens": [{"id": self._refresh_id, "user_id": user_id, "client_id": None,
                                "client_name": "kiosk tests", "client_icon": None,
                                "token_type": "long_lived_access_token", "created_at": now,
                                "access_token_expiration": 86_400.0, "token": secrets.token_hex(64),
                                "jwt_key": self._jwt_key, "last_used_at": None, "last_used_ip": None,
                                "expire_at": None, "credential_id": None, "version": None}]})
        self._store(storage / "auth_provider.homeassistant", "auth_provider.homeassistant", {
            "users": [{"username": self.username, "password": self._password_hash()}]})
        self._store(storage / "onboarding", "onboarding", {"done": ["user", "core_config", "analytics",
                                                                    "integration"]}, version=4)

    def _password_hash(self) -> str:
        """base64 of the bcrypt hash of the password, as homeassistant.auth.providers.homeassistant stores it
        (made by the root's own bcrypt, a dependency of Home Assistant)."""
        script = ("import base64, bcrypt, sys; sys.stdout.write(base64.b64encode(bcrypt.hashpw("
                  "sys.stdin.read().encode(), bcrypt.gensalt(rounds=10))).decode())")
        return _run(self.root, f"{VENV}/bin/python", "-c", script, stdin=self.password)

    @staticmethod
    def _store(path: Path, key: str, data: dict[str, Any], version: int = 1) -> None:
        path.write_text(json.dumps({"version": version, "minor_version": 1, "key": key, "data": data}))
        path.chmod(0o600)

    @property
    def token(self) -> str:
        return access_token(self._refresh_id, self._jwt_key)

    # --- running ---------------------------------------------------------------------------------------------

    def start(self) -> HomeAssistant:
        """Start (or restart) Home Assistant; returns once its MQTT integration is loaded. The log of an earlier
        run is kept (Home Assistant moves it aside on start) so `log()` covers every run."""
        self._earlier_log += self.log()
        out = (self.root / "ha.out").open("ab")
        self.proc = subprocess.Popen(
            ["chroot", str(self.root), f"{VENV}/bin/python", "-m", "homeassistant", "--config", CONFIG_DIR,
             "--skip-pip-packages", ",".join(NO_WHEEL_AT_PIN)],
            env=_chroot_env(), stdout=out, stderr=out)
        out.close()
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Home Assistant exited {self.proc.returncode}:\n{self.log()[-5000:]}")
            try:
                entries = self.get("/api/config/config_entries/entry")
                if any(e["domain"] == "mqtt" and e["state"] == "loaded" for e in entries):
                    return self
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(1)
        raise RuntimeError(f"Home Assistant's MQTT integration did not load:\n{self.log()[-5000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    # --- asking it -------------------------------------------------------------------------------------------

    def get(self, path: str) -> Any:
        response = httpx.get(self.url + path, headers={"Authorization": f"Bearer {self.token}"}, timeout=10)
        response.raise_for_status()
        return response.json()

    def add_automation(self, automation_id: str, config: dict[str, Any]) -> None:
        """Create an automation through Home Assistant's config API (the automation editor's own call); Home
        Assistant validates it (HTTP 400 names the problem) and reloads its automations."""
        response = httpx.post(f"{self.url}/api/config/automation/config/{automation_id}",
                              headers={"Authorization": f"Bearer {self.token}"}, json=config, timeout=30)
        assert response.status_code == 200, f"automation {automation_id} refused: {response.text}"

    def automation(self, automation_id: str) -> dict[str, Any] | None:
        """The state of the automation created as `automation_id` (its entity id comes from its alias)."""
        return next((s for s in self.states().values()
                     if s["entity_id"].startswith("automation.") and s["attributes"].get("id") == automation_id), None)

    def template(self, text: str) -> str:
        """`text` rendered by Home Assistant's template engine (POST /api/template), e.g. device_id(entity)."""
        response = httpx.post(self.url + "/api/template", headers={"Authorization": f"Bearer {self.token}"},
                              json={"template": text}, timeout=10)
        response.raise_for_status()
        return response.text

    def states(self) -> dict[str, dict[str, Any]]:
        return {s["entity_id"]: s for s in self.get("/api/states")}

    def state(self, entity_id: str) -> dict[str, Any] | None:
        return self.states().get(entity_id)

    def wait_for(self, entity_id: str, predicate: Callable[[dict[str, Any]], bool],
                 timeout: float = 30.0) -> dict[str, Any]:
        """Poll the REST API until `entity_id`'s state object satisfies `predicate`; returns it."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.state(entity_id)
            if last is not None and predicate(last):
                return last
            time.sleep(0.2)
        raise AssertionError(f"{entity_id} never matched; last: {last}")

    def history(self, entity_id: str, since: str, predicate: Callable[[list[dict[str, Any]]], bool],
                timeout: float = 30.0) -> list[dict[str, Any]]:
        """The states `entity_id` took since `since` (ISO 8601), from Home Assistant's recorder (the history API),
        polled until `predicate(states)`; the state it had at `since` is left out."""
        deadline = time.monotonic() + timeout
        states: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            found = self.get(f"/api/history/period/{quote(since)}?filter_entity_id={entity_id}")
            states = [s for s in (found[0] if found else []) if s["last_changed"] > since]
            if predicate(states):
                return states
            time.sleep(0.5)
        raise AssertionError(f"{entity_id}'s history never matched; last: {states}")

    def log(self) -> str:
        """Home Assistant's log of this run, after those of the runs before (restarts)."""
        path = self.config / "home-assistant.log"
        return self._earlier_log + (path.read_text(errors="replace") if path.exists() else "")

    def mqtt_problems(self) -> list[str]:
        """WARNING/ERROR lines of the MQTT integration, and template warnings (they name our templates)."""
        lines = re.findall(r"^\S+ \S+ (?:WARNING|ERROR|CRITICAL) \([^)]*\) \[([^\]]+)\] (.*)$", self.log(), re.M)
        return [f"[{logger}] {text}" for logger, text in lines
                if logger.startswith(MQTT_LOGGERS) or (logger.startswith("homeassistant.helpers.template")
                                                       and "value_json" in text)]


def _chroot_env() -> dict[str, str]:
    bundle = "/etc/ssl/certs/ca-certificates.crt"  # this machine's CAs (copied in): pip, uv, aiohttp
    return {"PATH": f"{VENV}/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
            "PIP_CERT": bundle, "SSL_CERT_FILE": bundle, "UV_NATIVE_TLS": "1",
            "PIP_DEFAULT_TIMEOUT": os.environ.get("PIP_DEFAULT_TIMEOUT", "60")}


def _run(root: Path, *command: str, timeout: float = 900, stdin: str | None = None) -> str:
    result = subprocess.run(["chroot", str(root), *command], env=_chroot_env(), capture_output=True, text=True,
                            timeout=timeout, input=stdin)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def build_root(root: Path) -> None:
    """A Debian sid root with Home Assistant's venv (see the module docstring)."""
    subprocess.run(["debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates", "sid",
                    str(root), debian_mirror()], check=True, capture_output=True, timeout=900)
    shutil.copy("/etc/resolv.conf", root / "etc" / "resolv.conf")
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", root / "etc" / "ssl" / "certs" / "ca-certificates.crt")
    _run(root, "python3", "-m", "venv", VENV)
    # No bytecode for the ~1 GB installed: Python compiles what Home Assistant imports, when it imports it.
    pip = (f"{VENV}/bin/pip", "install", "--no-cache-dir", "--no-compile")
    _run(root, *pip, "--upgrade", "pip", "homeassistant")
    components = next((root / VENV.lstrip("/")).glob("lib/python3*/site-packages/homeassistant/components"))
    requirements = [r for name in INTEGRATIONS
                    for r in json.loads((components / name / "manifest.json").read_text())["requirements"]]
    _run(root, *pip, *requirements)
    _run(root, *pip, "--only-binary", ":all:", *NO_WHEEL_AT_PIN)


def _mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path`, deepest first (debootstrap mounts proc and sys while it works)."""
    points = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    return sorted((p for p in points if p == str(path) or p.startswith(f"{path}/")), key=len, reverse=True)


def unmount_all(path: Path) -> bool:
    """Unmount everything at or below `path` (lazily if busy); True when nothing is mounted there any more."""
    for point in _mounts_under(path):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True)
    return not _mounts_under(path)


@pytest.fixture(scope="module")
def home_assistant(tmp_path_factory) -> Iterator[HomeAssistant]:
    if os.geteuid() != 0:
        pytest.skip("needs root (debootstrap, chroot)")
    for tool, package in (("debootstrap", "debootstrap"), ("mosquitto", "mosquitto")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian package {package})")
    work = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp(), prefix="homeassistant-"))
    root, proc = work / "root", work / "root" / "proc"
    root.mkdir()
    broker = Broker(work / "mosquitto", DEFAULT_CONFIG)
    ha = None
    try:
        # A tmpfs when the kernel lets us (else the disk: the same root, only slower to delete).
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={ROOT_SIZE},mode=0755", "homeassistant-root",
                        str(root)], capture_output=True)
        build_root(root)
        subprocess.run(["mount", "-t", "proc", "proc", str(proc)], check=True)
        broker.start()
        ha = HomeAssistant(root, broker)
        yield ha.start()
    finally:
        if ha is not None:
            ha.stop()
        broker.stop()
        if unmount_all(root):  # the tmpfs takes the whole root with it; never delete through a mount
            shutil.rmtree(work, ignore_errors=True)
