"""Staff console with many kiosks and an event flood (issue 16): 5,000 kiosks and 10,000 events against the
50-kiosk baseline of bench/bench_console.py, both measured in the same run on the same machine.

For each case, a fresh mosquitto and `kiosk console` process ([console] max_kiosks raised to hold them):
1. the kiosks' retained statuses and `events` call events (every one with its own reason, codes spread over
   all 1,000) are published before the page opens;
2. time to first render: from submitting the login form to every kiosk row drawn in headless Chromium;
3. call-visible latency: while the same number of events floods in again, a kiosk raises `calls` real calls,
   one at a time, each open until it shows; from its retained `call` publish to the card in the page (p50/p95);
4. console server RSS at the end.
Prints both cases and the ratios flood / baseline.

    .venv/bin/python bench/bench_console_flood.py [--kiosks 5000] [--events 10000] [--calls 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_console import (
    SITE,
    SimKiosk,
    client,
    login_form,
    percentile,
    rss_kib,
    start_console,
    stop_console,
)
from kiosk import events
from tests.rigs.console import CHROMIUM, CHROMIUM_FLAGS

BASELINE_KIOSKS, BASELINE_EVENTS = 50, 100


@dataclass
class Result:
    kiosks: int
    events: int
    first_render_s: float
    call_p50_ms: float
    call_p95_ms: float
    missing: int
    rss_mib: float


def flood(port: int, kiosks: int, count: int, offset: int) -> None:
    """`count` call events from `kiosks` made-up kiosks, each with a reason of its own (QoS 1, not waited on)."""
    publisher = client(f"flood-{offset}", port)
    info = None
    for n in range(count):
        name = f"f{n % kiosks:05d}"
        payload = events.envelope("call", {"call_id": f"x{offset + n}", "reason": f"reason-{offset + n}",
                                           "code": f"{n % 1000:03d}", "audience": "staff"},
                                  kiosk=name, site=SITE, seq=offset + n, catalogue_version="bench")
        info = publisher.publish(f"kiosk/{SITE}/{name}/event/call", events.encode(payload), qos=1)
    if info is not None:
        info.wait_for_publish(120)
    publisher.disconnect()
    publisher.loop_stop()


def run_case(browser, kiosks: int, count: int, calls: int) -> Result:
    from playwright.sync_api import expect

    broker, console, url = start_console(Path(tempfile.mkdtemp(prefix="bench-flood-")),
                                         f"max_kiosks = {kiosks + 10}\n")
    try:
        statuses = client("statuses", broker.port)
        info = None
        for n in range(kiosks - 1):
            name = f"f{n:05d}"
            status = events.status_payload(True, kiosk=name, site=SITE, catalogue_version="bench")
            info = statuses.publish(f"kiosk/{SITE}/{name}/status", events.encode(status), qos=1, retain=True)
        if info is not None:
            info.wait_for_publish(120)
        caller = SimKiosk("caller", broker.port)  # the one real kiosk: the last row
        flood(broker.port, max(1, kiosks - 1), count, 0)
        time.sleep(1.0)  # the console has taken them in

        page = login_form(browser, url)
        started = time.monotonic()
        page.click("button[type=submit]")
        expect(page.locator("#kiosks tr[data-kiosk]")).to_have_count(kiosks, timeout=300_000)  # (CSP: no eval)
        first_render = time.monotonic() - started

        background = threading.Thread(target=flood, args=(broker.port, max(1, kiosks - 1), count, count))
        background.start()
        published: dict[str, float] = {}
        for n in range(calls):  # one call at a time, kept open until the page shows it (at most 120 s)
            call_id = f"probe{n}"
            published[call_id] = caller.raise_call(call_id, "011")
            deadline = time.monotonic() + 120
            while call_id not in page.evaluate("window.__seen") and time.monotonic() < deadline:
                page.wait_for_timeout(20)
            caller.resolve(call_id, "011")
            time.sleep(0.3)
        background.join()
        seen = page.evaluate("window.__seen")
        rss = rss_kib(console.pid) / 1024
        page.context.close()
        statuses.disconnect()
        statuses.loop_stop()
        caller.client.disconnect()
        caller.client.loop_stop()
    finally:
        stop_console(broker, console)
    latencies = [(seen[c] - t) * 1000 for c, t in published.items() if c in seen]
    return Result(kiosks, count, first_render, percentile(latencies, 50) if latencies else float("nan"),
                  percentile(latencies, 95) if latencies else float("nan"), len(published) - len(latencies), rss)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kiosks", type=int, default=5_000)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=10)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        base = run_case(browser, BASELINE_KIOSKS, BASELINE_EVENTS, args.calls)
        big = run_case(browser, args.kiosks, args.events, args.calls)
        browser.close()
    print(f"{'':32}{'kiosks':>8}{'events':>8}{'render s':>10}{'call p50':>10}{'call p95':>10}{'missed':>8}"
          f"{'RSS MiB':>9}")
    for name, r in (("baseline (bench_console size)", base), ("flood", big)):
        print(f"{name:32}{r.kiosks:>8}{r.events:>8}{r.first_render_s:>10.2f}{r.call_p50_ms:>10.0f}"
              f"{r.call_p95_ms:>10.0f}{r.missing:>8}{r.rss_mib:>9.0f}")
    print(f"ratios flood/baseline: first render ×{big.first_render_s / base.first_render_s:.1f}, "
          f"call p50 ×{big.call_p50_ms / base.call_p50_ms:.1f}, call p95 ×{big.call_p95_ms / base.call_p95_ms:.1f}, "
          f"RSS ×{big.rss_mib / base.rss_mib:.2f} (for {big.kiosks / base.kiosks:.0f}× the kiosks)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
