"""Staff console rigs: accounts, an in-process console server, `kiosk console` as a process, headless Chromium.

Fixtures:
- `console_accounts`: an accounts file with `staff` / `display` accounts (passwords in ACCOUNT_PASSWORDS).
- `console_server(config, clock=..., **create_app options)`: the console app served by uvicorn in a thread
  on a free port (e.g. `history=store` for the reports pages).
- `console_process(config_path)`: `kiosk console` as a real process, stopped by PID.
- `chromium`: Debian's /usr/bin/chromium driven by Playwright (never a downloaded browser).
- `FakeClock`: a monotonic clock tests move forward (session expiry, login lockout).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.rigs.mosquitto import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
ACCOUNT_PASSWORDS = {"staff": "reception-pass-1", "wall": "wall-screen-pass"}


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="session")
def console_accounts(tmp_path_factory) -> Path:
    from kiosk.passwords import hash_secret

    path = tmp_path_factory.mktemp("console") / "accounts.toml"
    path.write_text(
        "[[account]]\n"
        f'name = "staff"\npassword_hash = "{hash_secret(ACCOUNT_PASSWORDS["staff"])}"\nrole = "staff"\n\n'
        "[[account]]\n"
        f'name = "wall"\npassword_hash = "{hash_secret(ACCOUNT_PASSWORDS["wall"])}"\nrole = "display"\n')
    return path


@dataclass
class RunningConsole:
    url: str
    app: object
    stop: Callable[[], None]


@pytest.fixture
def console_server(console_accounts) -> Iterator[Callable[..., RunningConsole]]:
    import uvicorn

    from kiosk.catalogue import load_catalogue
    from kiosk.console.auth import load_accounts
    from kiosk.console.codes import code_info_for
    from kiosk.console.server import create_app

    servers: list[uvicorn.Server] = []

    def start(config, clock: Callable[[], float] = time.monotonic, **app_options) -> RunningConsole:
        app = create_app(config, load_accounts(console_accounts), clock=clock,
                         code_info=code_info_for(load_catalogue(), config.facility), **app_options)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                               access_log=False, lifespan="on"))
        thread = threading.Thread(target=server.run, name="console-server", daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the console server did not start")
            time.sleep(0.02)
        servers.append(server)

        def stop() -> None:
            server.should_exit = True
            thread.join(10)

        return RunningConsole(f"http://127.0.0.1:{port}", app, stop)

    yield start
    for server in servers:
        server.should_exit = True


@dataclass
class ConsoleProcess:
    url: str
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def console_process(tmp_path) -> Iterator[Callable[[Path], ConsoleProcess]]:
    procs: list[subprocess.Popen] = []

    def start(config_path: Path, scheme: str = "http", verify=True) -> ConsoleProcess:
        import httpx

        port = free_port()
        log_path = tmp_path / f"console-{port}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "kiosk", "--config", str(config_path), "console",
                                     "--listen", f"127.0.0.1:{port}"], stdout=log, stderr=log)
        procs.append(proc)
        url = f"{scheme}://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"kiosk console exited {proc.returncode}:\n{log_path.read_text()}")
            try:
                httpx.get(url + "/login", timeout=1, verify=verify)
                return ConsoleProcess(url, proc, log_path)
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"kiosk console did not answer:\n{log_path.read_text()}") from None
                time.sleep(0.1)

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="session")
def chromium():
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright (python) is not installed")
    with sync_playwright() as playwright:  # Playwright gives every launch a fresh, empty user-data-dir
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


class LinkKiosk:
    """The kiosk side over the real kiosk.link.EventLink, with a minimal main loop answering commands.

    `answer` decides how commands are met: "yes" (acknowledge/resolve the matching open call), "no" (refuse),
    "silent" (never reply). For tests that need many kiosks or kiosks that misbehave; the end-to-end test
    runs the real `kiosk run --headless`.
    """

    def __init__(self, broker_url: str, state_dir: Path, kiosk: str = "k1", site: str = "site-1",
                 answer: str = "yes"):
        import queue

        from kiosk.config import config_from_dict
        from kiosk.link import EventLink

        self.kiosk, self.site, self.answer = kiosk, site, answer
        config = config_from_dict({"kiosk": {"id": kiosk, "site": site, "state_dir": str(state_dir)},
                                   "mqtt": {"url": broker_url}})
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.link = EventLink(config, "test", self.inbox.put)
        self.call: dict | None = None
        self.lamp = "off"
        self.commands: list[tuple[str, dict]] = []
        self._thread = threading.Thread(target=self._loop, name=f"kiosk-{kiosk}", daemon=True)

    def start(self) -> LinkKiosk:
        self.link.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self.inbox.put(None)
        self._thread.join(5)
        self.link.stop()

    def raise_call(self, code: str | None = "011", reason: str = "staff_code", call_id: str = "call-1") -> dict:
        self.inbox.put(("raise", {"call_id": call_id, "reason": reason, "code": code, "audience": "staff",
                                  "since": _now_iso(), "acknowledged": False}))
        return {"call_id": call_id, "code": code}

    def _loop(self) -> None:
        while (message := self.inbox.get()) is not None:
            if isinstance(message, tuple) and message[0] == "raise":
                self.call = message[1]
                self.link.set_call(self.call)
                self.link.emit("call", {k: self.call[k] for k in ("call_id", "reason", "code", "audience")})
                self._lamp("call")
            elif hasattr(message, "reply"):
                self._command(message)

    def _command(self, command) -> None:
        from kiosk.messages import Answer

        self.commands.append((command.name, command.args))
        if self.answer == "silent":
            return
        if self.answer == "no" or self.call is None or command.args.get("call_id") != self.call["call_id"]:
            command.reply(Answer(False, "not_open_call", "no such open call"))
            return
        facts = {k: self.call[k] for k in ("call_id", "reason", "code", "audience")}
        if command.name == "acknowledge":
            self.call = {**self.call, "acknowledged": True}
            self.link.set_call(self.call)
            self.link.emit("call_acknowledged", facts)
            self._lamp("acknowledged")
        else:
            self.call = None
            self.link.set_call(None)
            self.link.emit("call_resolved", {**facts, "by": "console"})
            self._lamp("off")
        command.reply(Answer(True, "acknowledged" if command.name == "acknowledge" else "resolved", command.name))

    def _lamp(self, pattern: str) -> None:
        self.lamp = pattern
        self.link.emit("lamp_status", {"pattern": pattern})


def _now_iso() -> str:
    from kiosk import events

    return events.timestamp()
