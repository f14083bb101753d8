"""Staff console under load: 50 simulated kiosks raising and resolving calls continuously.

Measures, in the same run and on the same clock:
- raw MQTT delivery: kiosk publishes its retained `call` -> a bare paho subscriber receives it (baseline);
- browser: the same publish -> the call card is in the page of a logged-in headless Chromium;
- console server RSS (`kiosk console` process) after start and at the end.
Prints p50/p95 of both, the difference against the target (browser p95 <= raw p95 + 250 ms) and RSS growth
(target <= 10 %).

    .venv/bin/python bench/bench_console.py [--kiosks 50] [--seconds 60]
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiosk import events
from kiosk.passwords import hash_secret
from tests.rigs.console import CHROMIUM, CHROMIUM_FLAGS
from tests.rigs.mosquitto import DEFAULT_CONFIG, Broker, free_port

SITE = "bench"
PASSWORD = "bench-password-1"
# When each call card appears. Watches the call list only: an observer of the whole document would scan every
# kiosk row on each update and slow the page it measures (thousands of rows in bench_console_flood).
SEEN_RECORDER = """
window.__seen = {};
document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("calls");
  if (!box) return;
  new MutationObserver(() => {
    for (const card of box.querySelectorAll("article.call")) {
      const id = card.dataset.callId;
      if (id && !(id in window.__seen)) window.__seen[id] = Date.now() / 1000;
    }
  }).observe(box, {subtree: true, childList: true, attributes: true, attributeFilter: ["data-call-id"]});
});
"""


def login_form(browser, url: str):
    """A page of a new 1366x900 browser context with SEEN_RECORDER, on the console's login form filled in for the
    bench account; the caller clicks submit (and may time from there)."""
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    context.add_init_script(SEEN_RECORDER)
    page = context.new_page()
    page.goto(url + "/login")
    page.fill("input[name=name]", "bench")
    page.fill("input[name=password]", PASSWORD)
    return page


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def client(name: str, port: int) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTProtocolVersion.MQTTv5)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


class SimKiosk:
    """A kiosk reduced to its MQTT contract: status, retained call, call/lamp events (kiosk.events builders)."""

    def __init__(self, name: str, port: int):
        self.name = name
        self.topics = events.Topics("kiosk", SITE, name)
        self.seq = 0
        self.client = client(f"sim-{name}", port)
        status = events.status_payload(True, kiosk=name, site=SITE, catalogue_version="bench")
        self.client.publish(self.topics.status, events.encode(status), qos=1, retain=True)

    def _event(self, kind: str, data: dict) -> None:
        self.seq += 1
        payload = events.envelope(kind, data, kiosk=self.name, site=SITE, seq=self.seq, catalogue_version="bench")
        self.client.publish(self.topics.event(kind), events.encode(payload), qos=1)

    def raise_call(self, call_id: str, code: str) -> float:
        call = {"call_id": call_id, "reason": "staff_code", "code": code, "audience": "staff",
                "since": events.timestamp(), "acknowledged": False}
        published = time.time()
        self.client.publish(self.topics.call, events.encode(events.call_payload(call, kiosk=self.name, site=SITE)),
                            qos=1, retain=True)
        self._event("call", {k: call[k] for k in ("call_id", "reason", "code", "audience")})
        self._event("lamp_status", {"pattern": "call"})
        return published

    def resolve(self, call_id: str, code: str) -> None:
        self.client.publish(self.topics.call, b"", qos=1, retain=True)
        self._event("call_resolved", {"call_id": call_id, "reason": "staff_code", "code": code,
                                      "audience": "staff", "by": "bench"})
        self._event("lamp_status", {"pattern": "off"})


def start_console(work: Path, console_options: str = "") -> tuple[Broker, subprocess.Popen, str]:
    """A fresh mosquitto and `kiosk console` (account "bench", site SITE, extra `[console]` lines) in `work`;
    returns them and the console's URL once it answers."""
    broker = Broker(work / "mosquitto", DEFAULT_CONFIG).start()
    accounts = work / "accounts.toml"
    accounts.write_text(f'[[account]]\nname = "bench"\npassword_hash = "{hash_secret(PASSWORD)}"\n')
    port = free_port()
    config = work / "console.toml"
    config.write_text(f'[kiosk]\nsite = "{SITE}"\n[mqtt]\nurl = "{broker.url}"\n'
                      f'[console]\naccounts_file = "{accounts}"\nlisten = "127.0.0.1:{port}"\n{console_options}')
    console = subprocess.Popen([sys.executable, "-m", "kiosk", "--config", str(config), "console"],
                               stdout=subprocess.DEVNULL, stderr=(work / "console.log").open("wb"))
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(url + "/login", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    return broker, console, url


def stop_console(broker: Broker, console: subprocess.Popen) -> None:
    console.terminate()  # the recorder inside the console writes out what it took in first
    try:
        console.wait(120)
    except subprocess.TimeoutExpired:
        console.kill()
        console.wait()
    broker.stop()


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kiosks", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--call-every", type=float, default=2.0, help="seconds between calls of one kiosk")
    args = parser.parse_args()
    from playwright.sync_api import expect, sync_playwright

    broker, console, url = start_console(Path(tempfile.mkdtemp(prefix="bench-console-")))
    try:
        raw: dict[str, float] = {}
        raw_lock = threading.Lock()
        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTProtocolVersion.MQTTv5)

        def on_message(_c, _u, msg):
            if msg.payload:
                now = time.time()
                call_id = msg.payload.split(b'"call_id":"', 1)[1].split(b'"', 1)[0].decode()
                with raw_lock:
                    raw.setdefault(call_id, now)

        sub.on_message = on_message
        sub.connect("127.0.0.1", broker.port)
        sub.subscribe(f"kiosk/{SITE}/+/call", qos=1)
        sub.loop_start()

        kiosks = [SimKiosk(f"k{i:02d}", broker.port) for i in range(1, args.kiosks + 1)]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            page = login_form(browser, url)
            page.click("button[type=submit]")
            expect(page.locator("#kiosks tr")).to_have_count(args.kiosks, timeout=30_000)
            time.sleep(1.0)
            rss_start = rss_kib(console.pid)

            published: dict[str, float] = {}
            rng = random.Random(1)
            codes = ["001", "008", "011", "021", "101", "901"]
            schedule = [(rng.uniform(0, args.call_every), k) for k in kiosks]
            open_calls: dict[str, tuple[SimKiosk, str, str, float]] = {}
            start = time.monotonic()
            n = 0
            while time.monotonic() - start < args.seconds:
                now = time.monotonic() - start
                for i, (due, kiosk) in enumerate(schedule):
                    if due > now:
                        continue
                    if kiosk.name in open_calls:
                        _, call_id, code, _ = open_calls.pop(kiosk.name)
                        kiosk.resolve(call_id, code)
                        schedule[i] = (now + rng.uniform(0.2, args.call_every / 2), kiosk)
                    else:
                        n += 1
                        call_id, code = f"c{n}", rng.choice(codes)
                        published[call_id] = kiosk.raise_call(call_id, code)
                        open_calls[kiosk.name] = (kiosk, call_id, code, now)
                        schedule[i] = (now + rng.uniform(0.5, args.call_every), kiosk)
                time.sleep(0.005)
            time.sleep(2.0)  # let the last ones arrive
            seen = page.evaluate("window.__seen")
            rss_end = rss_kib(console.pid)
            browser.close()
        for k in kiosks:
            k.client.disconnect()
            k.client.loop_stop()
        sub.loop_stop()
    finally:
        stop_console(broker, console)

    raw_ms = [(raw[c] - t) * 1000 for c, t in published.items() if c in raw]
    browser_ms = [(seen[c] - t) * 1000 for c, t in published.items() if c in seen]
    missing = len(published) - len(browser_ms)
    raw_p50, raw_p95 = percentile(raw_ms, 50), percentile(raw_ms, 95)
    br_p50, br_p95 = percentile(browser_ms, 50), percentile(browser_ms, 95)
    growth = (rss_end - rss_start) / rss_start * 100
    print(f"console bench: {args.kiosks} kiosks, {args.seconds:.0f} s, {len(published)} calls raised "
          f"({len(published) / args.seconds:.1f}/s), {missing} never seen in the browser")
    print(f"{'':28}{'p50 ms':>10}{'p95 ms':>10}")
    print(f"{'raw MQTT (baseline)':28}{raw_p50:>10.1f}{raw_p95:>10.1f}")
    print(f"{'browser (console + SSE)':28}{br_p50:>10.1f}{br_p95:>10.1f}")
    print(f"browser p95 - raw p95 = {br_p95 - raw_p95:.1f} ms (target <= 250 ms: "
          f"{'met' if br_p95 - raw_p95 <= 250 else 'MISSED'}); browser/raw p95 ratio {br_p95 / raw_p95:.1f}x")
    print(f"console RSS: start {rss_start / 1024:.1f} MiB, end {rss_end / 1024:.1f} MiB, growth {growth:+.1f} % "
          f"(target <= 10 %: {'met' if growth <= 10 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
