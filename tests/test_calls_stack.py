"""Issue 18 on the real stack: real mosquitto, the kiosk runtime with its real EventLink (headless loop, screens
recorded), `kiosk console` as a process, headless Chromium.

Nobody listening → the call says `consoles_online` 0 and the patient is sent to the desk, and the retained
call's `since` is the call event's `time`; a console started later with no browser open still hears nothing;
its staff page, once open, counts (the presence's `listeners`) and sees the call and its true age; the browser
shows the wait, turns it urgent and rings again until it is acknowledged (page clock, no long waits);
escalation once per threshold (short configured thresholds), none after acknowledgement; a hidden page (Page
Visibility API), one whose keep-alive no longer arrives (server-side expiry) and a closed one stop counting and
the kiosk sends the patient to the desk again; a console killed with SIGKILL goes offline through its Last Will
and the kiosk notices.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from datetime import datetime

import pytest

from kiosk.app.texts import UiTexts
from kiosk.app.views import build_view
from kiosk.catalogue import load_catalogue
from kiosk.config import Config
from kiosk.link import EventLink
from kiosk.messages import CallButton
from kiosk.runtime import Runtime
from kiosk.vocabulary import CALLING, IDLE, STAFF_COMING
from tests.rigs.console import ACCOUNT_PASSWORDS, LinkKiosk
from tests.test_console_browser import RECORDER
from tests.test_runtime import RecordingScreen

pytestmark = [pytest.mark.browser, pytest.mark.mqtt, pytest.mark.slow]
SITE = "site-1"
ESCALATE, DESK = 3.0, 6.0  # [calls] thresholds of this test's kiosk (seconds)


class IdleReader:
    """No card is presented in this test: a reader that only waits (and beats)."""

    def run(self, post, stop, heartbeat=lambda: None):
        while not stop.wait(0.2):
            heartbeat()


def payloads(listener, topic):
    return [json.loads(m.payload) for m in listener.on(topic) if m.payload]


def statuses(listener):
    return [p["details"] for p in payloads(listener, f"kiosk/{SITE}/k1/status") if p["state"] == "online"]


@pytest.fixture
def kiosk(tmp_path, mosquitto):
    config = Config.model_validate({
        "kiosk": {"id": "k1", "site": SITE, "state_dir": str(tmp_path / "kiosk")},
        "mqtt": {"url": mosquitto.url},
        "calls": {"escalate_seconds": ESCALATE, "desk_seconds": DESK},
        "gpio": {"lamp": None, "buzzer": None, "call_button": None, "reset_button": None},
    })
    screen = RecordingScreen()
    runtime = Runtime(config, reader=IdleReader(), catalogue_loader=load_catalogue, screen=screen,
                      link_factory=lambda version, post, on_turn: EventLink(config, version, post, on_turn=on_turn))
    thread = threading.Thread(target=runtime.run, name="kiosk-main")
    thread.start()
    yield runtime, screen
    runtime.stop()
    thread.join(15)
    assert not thread.is_alive()


def open_console(browser, url: str, account: str = "staff"):
    """A console page with the page clock installed (re-alerts are checked by moving it, not by waiting)."""
    context = browser.new_context(locale="ja-JP", viewport={"width": 1366, "height": 900})
    context.add_init_script(RECORDER)
    page = context.new_page()
    page.clock.install()
    page.goto(f"{url}/login?lang=ja")
    page.fill("input[name=name]", account)
    page.fill("input[name=password]", ACCOUNT_PASSWORDS[account])
    page.click("button[type=submit]")
    page.wait_for_selector("#kiosks-title")
    page.click("#sound")
    return page


def until(page, expression: str, timeout: float = 10.0) -> None:
    """Poll a page expression (the console's CSP forbids the eval that page.wait_for_function needs)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"never true: {expression}"
        time.sleep(0.05)


def presences(listener):
    return [json.loads(m.payload) for m in listener.messages if "/console/" in m.topic and m.payload]


def counted(listener, runtime, count: int) -> None:
    """The console's presence says `count` listeners and the kiosk's status follows (consoles_online 0 or 1)."""
    listener.wait(lambda ms: presences(listener) and presences(listener)[-1].get("listeners") == count)
    listener.wait(lambda ms: statuses(listener)[-1].get("consoles_online") == min(count, 1))
    assert runtime.flow.consoles_online == min(count, 1)


def set_visibility(page, state: str) -> None:
    """What the browser does when the tab is hidden or shown again (the Page Visibility API), emulated."""
    page.evaluate("""state => {
        Object.defineProperty(document, "visibilityState", {configurable: true, get: () => state});
        Object.defineProperty(document, "hidden", {configurable: true, get: () => state === "hidden"});
        document.dispatchEvent(new Event("visibilitychange"));
    }""", state)


def notifications(page, kiosk: str) -> list[str]:
    return [n["title"] for n in page.evaluate("window.__notifications") if f"{kiosk}" in n["title"]]


def test_nobody_listening_late_console_wait_realert_escalation_and_killed_console(
        tmp_path, kiosk, mosquitto, mqtt_listener, console_accounts, console_process, chromium):
    runtime, screen = kiosk
    texts = UiTexts()
    listener = mqtt_listener(mosquitto, f"kiosk/{SITE}/k1/#", f"kiosk/{SITE}/console/+/status")

    # 1. Nobody listening: the status says so, the call carries 0, the patient is sent to the desk.
    listener.wait(lambda ms: any(d.get("consoles_online") == 0 for d in statuses(listener)))
    assert runtime.lamp.pattern == "no_console"
    runtime.post(CallButton())
    listener.wait(lambda ms: payloads(listener, f"kiosk/{SITE}/k1/event/call"))
    [call_event] = payloads(listener, f"kiosk/{SITE}/k1/event/call")
    assert call_event["data"]["consoles_online"] == 0
    shown = screen.shown.wait_for(lambda s: s.name == CALLING)
    view = build_view(shown.name, shown.lang, shown.context, texts, None, ("ja", "en"))
    assert (view.title, view.banner) == (texts.text("ja", "calling.desk.title"),
                                         texts.text("ja", "calling.desk.no_console"))
    assert runtime.lamp.pattern == "no_console"
    listener.wait(lambda ms: payloads(listener, f"kiosk/{SITE}/k1/call"))
    call = payloads(listener, f"kiosk/{SITE}/k1/call")[-1]
    assert call["since"] == call_event["time"]  # one moment, to the millisecond: reports and console agree
    since = datetime.fromisoformat(call["since"]).timestamp()

    # 2. A console started later: the kiosk counts it, the patient hears staff are being called.
    config = tmp_path / "console.toml"
    config.write_text(f"""
[kiosk]
site = "{SITE}"
state_dir = "{tmp_path / 'console-state'}"
[mqtt]
url = "{mosquitto.url}"
console_keepalive_seconds = 2
[console]
accounts_file = "{console_accounts}"
urgent_seconds = 1
realert_seconds = 5
listener_expiry_seconds = 3
[recorder]
in_console = false
""")
    console = console_process(config)
    # With no browser open nobody hears it: online, no listeners, still 0 (as on a Pi with the console alone).
    listener.wait(lambda ms: presences(listener) and presences(listener)[-1]["state"] == "online")
    assert presences(listener)[-1]["listeners"] == 0
    time.sleep(1.0)  # the kiosk has read it (a retained presence is counted 0.5 s after it arrives)
    assert runtime.flow.consoles_online == 0 and all(d.get("consoles_online") in (None, 0) for d in statuses(listener))

    # A staff page opens: it counts, the patient hears staff are being called ...
    page = open_console(chromium, console.url)
    counted(listener, runtime, 1)
    screen.shown.wait_for(lambda s: s.name == CALLING and s.context.get("consoles_online") == 1)
    assert page.inner_text("#listeners") == "ここで待機中のスタッフ画面: 1"
    # A display-account wall screen shows it but never counts (it cannot acknowledge): its beats are refused.
    wall = open_console(chromium, console.url, "wall")
    until(wall, "document.getElementById('listeners').dataset.count === '1'")
    forged = wall.evaluate("""() => fetch("/api/listening", {method: "POST", headers: {"Content-Type":
        "application/json", "X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content},
        body: JSON.stringify({listener: "x", visible: true})}).then(r => r.status)""")
    assert forged == 403 and presences(listener)[-1]["listeners"] == 1
    wall.context.close()

    # ... and sees the call with its true age, urgent, and rings for it until someone acknowledges.
    card = page.wait_for_selector(f"article.call[data-call-id='{call['call_id']}']")
    assert int(card.get_attribute("data-since")) == int(since * 1000)
    until(page, "document.querySelector('article.call').dataset.waited !== undefined")
    waited = int(card.get_attribute("data-waited"))
    assert waited >= int(time.time() - since) - 2, "the wait counts from the kiosk's call, not the page load"
    page.wait_for_selector("article.call.urgent")
    until(page, "window.__notifications.length >= 1")  # an open call found at start rings at once
    rang = len(notifications(page, "k1"))
    page.clock.fast_forward(6_000)
    until(page, f"window.__notifications.filter(n => n.title.includes('k1')).length > {rang}")
    assert "まだ応答がありません" in notifications(page, "k1")[-1]

    # Longest wait first: a newer call from a second kiosk goes below.
    other = LinkKiosk(mosquitto.url, tmp_path / "k2", kiosk="k2", site=SITE).start()
    try:
        other.raise_call(code=None, reason="patient_request", call_id="call-k2")
        page.wait_for_selector("article.call[data-kiosk='k2']")
        assert page.eval_on_selector_all("#calls article.call", "cards => cards.map(c => c.dataset.kiosk)") \
            == ["k1", "k2"]

        # 3. Escalation: once per threshold (the kiosk's own clock), shown on the card and to the patient.
        escalated = f"kiosk/{SITE}/k1/event/call_escalated"
        listener.wait(lambda ms: len(payloads(listener, escalated)) >= 2, timeout=DESK + 10)
        assert [p["data"]["level"] for p in payloads(listener, escalated)] == [1, 2]
        # (each says how many consoles heard it then: 0 or 1 here, as the page opens while the call waits)
        assert all(p["data"]["consoles_online"] in (0, 1) for p in payloads(listener, escalated))
        assert all(p["data"]["call_id"] == call["call_id"] for p in payloads(listener, escalated))
        page.wait_for_selector("article.call[data-kiosk='k1'][data-escalation='2']")
        assert "受付へご案内しました" in page.inner_text("article.call[data-kiosk='k1']")
        shown = screen.shown.wait_for(lambda s: s.name == CALLING and s.context.get("escalation") == 2
                                      and s.context.get("consoles_online") == 1)
        assert build_view(shown.name, "ja", shown.context, texts, None, ("ja", "en")).banner == \
            texts.text("ja", "calling.desk.waited")
        assert runtime.lamp.pattern == "escalated"

        # Acknowledged: no more ringing for it, no more escalation, unacknowledged calls first.
        page.click("article.call[data-kiosk='k1'] button.ack")
        page.wait_for_selector("article.call[data-kiosk='k1'].acknowledged")
        screen.shown.wait_for(lambda s: s.name == STAFF_COMING)
        assert page.eval_on_selector_all("#calls article.call", "cards => cards.map(c => c.dataset.kiosk)") \
            == ["k2", "k1"]
        assert not page.query_selector("article.call[data-kiosk='k1'].urgent")
        rang = len(notifications(page, "k1"))
        page.clock.fast_forward(30_000)
        until(page, "window.__notifications.filter(n => n.title.includes('k2')).length >= 2")
        assert len(notifications(page, "k1")) == rang
        time.sleep(1.0)
        assert len(payloads(listener, escalated)) == 2
    finally:
        other.stop()

    # 4. A page nobody can see stops counting: hidden or its keep-alive lost (after the expiry), closed (its
    # stream ends: after a short grace). Meanwhile a new call sends the patient to the desk again.
    mark = len(screen.shown.items)
    page.click("article.call[data-kiosk='k1'] button.resolve")
    screen.shown.wait_for(lambda s: s.name == IDLE, after=mark)
    mark = len(screen.shown.items)
    runtime.post(CallButton())
    screen.shown.wait_for(lambda s: s.name == CALLING and s.context.get("consoles_online") == 1, after=mark)
    mark = len(screen.shown.items)
    set_visibility(page, "hidden")
    counted(listener, runtime, 0)
    shown = screen.shown.wait_for(lambda s: s.name == CALLING and s.context.get("consoles_online") == 0,
                                  after=mark)
    assert build_view(shown.name, "ja", shown.context, texts, None, ("ja", "en")).banner == \
        texts.text("ja", "calling.desk.no_console")
    set_visibility(page, "visible")
    counted(listener, runtime, 1)
    # its keep-alive no longer arrives (the PC slept or was switched off, the network is gone: its stream may
    # still look open to the server for minutes): it stops counting after [console] listener_expiry_seconds
    page.route("**/api/listening", lambda route: route.abort())
    counted(listener, runtime, 0)
    page.unroute("**/api/listening")
    counted(listener, runtime, 1)
    page.context.close()
    counted(listener, runtime, 0)

    # 5. The console is killed while a page listens: its Last Will says offline and the kiosk notices.
    page = open_console(chromium, console.url)
    counted(listener, runtime, 1)
    os.kill(console.proc.pid, signal.SIGKILL)
    console.proc.wait()
    listener.wait(lambda ms: statuses(listener)[-1].get("consoles_online") == 0, timeout=20)
    assert presences(listener)[-1]["state"] == "offline" and presences(listener)[-1]["role"] == "console"
    assert runtime.flow.consoles_online == 0 and runtime.lamp.pattern == "escalated"
    page.context.close()
