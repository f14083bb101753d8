"""End to end in headless Chromium: `kiosk console` and `kiosk run --headless` (simulated reader) as real
processes over a real mosquitto. A call appears in the browser within a second; acknowledge changes the
kiosk's lamp and call state; resolve clears it everywhere; a console started later still shows an open
call; a killed kiosk turns offline; the outage banner; the bad-login and display-only pages.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.rigs.console import ACCOUNT_PASSWORDS, LinkKiosk

pytestmark = [pytest.mark.browser, pytest.mark.mqtt, pytest.mark.slow]
SITE = "site-1"

# Runs before the page's own script: records when each call card appears, and every browser notification.
RECORDER = """
window.__seen = {};
window.__notifications = [];
window.Notification = class {
  constructor(title, options) { window.__notifications.push({title, body: options.body}); }
};
window.Notification.permission = "granted";
window.Notification.requestPermission = async () => "granted";
window.__chimes = 0;
window.AudioContext = class {
  constructor() { this.currentTime = 0; this.destination = {}; }
  resume() {}
  createGain() { return {gain: {setValueAtTime() {}, exponentialRampToValueAtTime() {}}, connect: (x) => x}; }
  createOscillator() { return {frequency: {}, connect: (x) => x, start() { window.__chimes += 1; }, stop() {}}; }
};
new MutationObserver(() => {
  for (const card of document.querySelectorAll("article.call")) {
    const id = card.dataset.callId;
    if (id && !(id in window.__seen)) window.__seen[id] = Date.now() / 1000;
  }
}).observe(document, {subtree: true, childList: true, attributes: true, attributeFilter: ["data-call-id"]});
"""

UNREADABLE_ONCE = """
description = "one unreadable card (a call, as failures_before_call = 1), then nothing"
[[steps]]
present = "silent"
hold = 1.0
wait = 600.0
"""


def write_config(path: Path, broker, accounts: Path, **extra: str) -> Path:
    path.write_text(f"""
[kiosk]
id = "{extra.get('kiosk', 'k1')}"
site = "{SITE}"
state_dir = "{path.parent / ('state-' + path.stem)}"
[facility]
type = "pharmacy"
e_prescription = true
[reader]
backend = "sim:{extra.get('scenario', '')}"
[mqtt]
url = "{broker.url}"
[ui]
failures_before_call = 1
[console]
accounts_file = "{accounts}"
""")
    return path


@pytest.fixture
def headless_kiosk(tmp_path):
    procs = []

    def start(config: Path) -> subprocess.Popen:
        log = (tmp_path / "kiosk.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "kiosk", "--config", str(config), "run", "--headless"],
                                stdout=log, stderr=log)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(10)


def open_console(browser, url: str, account: str = "staff", lang: str = "ja"):
    context = browser.new_context(locale="ja-JP" if lang == "ja" else "en-GB", viewport={"width": 1366, "height": 900})
    context.add_init_script(RECORDER)
    page = context.new_page()
    page.goto(f"{url}/login?lang={lang}")
    page.fill("input[name=name]", account)
    page.fill("input[name=password]", ACCOUNT_PASSWORDS[account])
    page.click("button[type=submit]")
    page.wait_for_selector("#kiosks-title")
    return page


def assert_no_raw_ids(page, lang: str) -> None:
    """Nothing on the page is a raw id (lamp_status, patient_request ...) or an ISO 8601 timestamp: kiosks send
    ids, the page renders them in the viewer's language; times are the facility's clock time."""
    from tests.rigs.staff_text import raw_ids

    assert raw_ids(page.inner_text("body"), lang) == []


def test_call_acknowledge_resolve_late_console_and_killed_kiosk(
        tmp_path, mosquitto, mqtt_listener, console_accounts, console_process, headless_kiosk, chromium):
    scenario = tmp_path / "unreadable.toml"
    scenario.write_text(UNREADABLE_ONCE)
    console = console_process(write_config(tmp_path / "console.toml", mosquitto, console_accounts))
    listener = mqtt_listener(mosquitto, f"kiosk/{SITE}/k1/#")
    page = open_console(chromium, console.url)
    page.click("#sound")  # the chime and notifications need one click by staff

    kiosk = headless_kiosk(write_config(tmp_path / "kiosk.toml", mosquitto, console_accounts, scenario=scenario))
    call_topic = f"kiosk/{SITE}/k1/call"
    listener.wait(lambda ms: any(m.topic == call_topic and m.payload for m in ms))
    arrived = time.time()
    call = json.loads(next(m.payload for m in listener.on(call_topic) if m.payload))
    card = page.wait_for_selector(f"article.call[data-call-id='{call['call_id']}']", timeout=5000)
    seen = page.evaluate("window.__seen")[call["call_id"]]
    assert seen - arrived < 1.0, f"the call took {seen - arrived:.3f} s from MQTT to the browser"

    # What staff see: the code, its official title, what to check and this pharmacy's steps.
    assert card.query_selector(".code").inner_text() == call["code"] == "001"
    assert "マイナンバーカードの認識不可" in card.query_selector(".title").inner_text()
    info = card.query_selector(".info").inner_text()
    assert "お調べください" in info and "電子処方箋に基づく調剤を希望しているか" in info  # pharmacy e-prescription
    assert "処方箋の発行方法を確認" not in info  # the clinic-only step is filtered out
    assert "読み取りの失敗が続いています" in card.inner_text()
    assert page.evaluate("window.__notifications")[0]["title"] == "スタッフ呼び出し（k1）"
    assert page.evaluate("window.__chimes") > 0  # the two-tone chime played

    # Acknowledge: the kiosk answers, its lamp goes steady and its retained call says acknowledged.
    card.query_selector("button.ack").click()
    expect(page.locator("article.call .answer")).to_have_text("端末の応答: 対応中にしました")  # its reply, in ja
    listener.wait(lambda ms: any(m.topic.endswith("/event/lamp_status") and b'"acknowledged"' in m.payload for m in ms))
    listener.wait(lambda ms: any(m.topic == call_topic and b'"acknowledged":true' in m.payload for m in ms))
    page.wait_for_selector("article.call.acknowledged")
    page.wait_for_selector("tr[data-kiosk='site-1/k1'][data-lamp='acknowledged']")
    assert_no_raw_ids(page, "ja")
    assert re.fullmatch(r"呼び出し時刻 \d{2}:\d{2}", card.query_selector(".since").inner_text())  # clock time
    row = page.inner_text("tr[data-kiosk='site-1/k1']")
    assert "対応中（点灯）" in row and "たった今" in row  # the lamp pattern named, last seen as people say it

    # A console started after the call still shows it (retained), in English this time.
    late = console_process(write_config(tmp_path / "late.toml", mosquitto, console_accounts))
    late_page = open_console(chromium, late.url, lang="en")
    late_card = late_page.wait_for_selector(f"article.call[data-call-id='{call['call_id']}']")
    assert "Being handled" in late_card.inner_text()
    assert "the official text below is in Japanese" in late_card.inner_text()
    late_page.click("#sound")
    assert late_page.evaluate("window.__notifications") == []  # nothing for a call that was already open
    assert late_page.evaluate("window.__chimes") == 0
    assert_no_raw_ids(late_page, "en")
    # Two consoles acknowledging at once: the second one's answer comes from the kiosk, in English here.
    late_card.eval_on_selector("button.ack", "button => { button.hidden = false; }")
    late_card.query_selector("button.ack").click()
    expect(late_page.locator("article.call .answer")).to_have_text("Kiosk answered: Already being handled")

    # Resolve: the call clears on the kiosk, on the broker and in every console.
    before = len(listener.messages)
    card.query_selector("button.resolve").click()
    page.wait_for_selector("article.call", state="detached")
    late_page.wait_for_selector("article.call", state="detached")
    listener.wait(lambda ms: any(m.topic == call_topic and m.payload == b"" for m in ms[before:]))
    listener.wait(lambda ms: any(m.topic.endswith("/lamp_status") and b'"off"' in m.payload for m in ms[before:]))
    assert page.inner_text("#no-calls") == "呼び出しはありません。"
    counts = page.inner_text("#counts")
    assert "001" in counts
    history = page.inner_text("#history")
    assert "呼び出し" in history and "完了" in history

    # A killed kiosk (no goodbye) is shown offline once the broker gives up on it (Last Will).
    os.kill(kiosk.pid, signal.SIGKILL)
    kiosk.wait()
    page.wait_for_selector("tr[data-kiosk='site-1/k1'][data-online='false']", timeout=70_000)
    expect(page.locator("#online-count")).to_have_text("オンライン 0 / 1")
    assert "オフライン" in page.inner_text("tr[data-kiosk='site-1/k1']")


def test_outage_banner_display_account_and_bad_login(tmp_path, mosquitto, console_accounts, console_process,
                                                      chromium):
    console = console_process(write_config(tmp_path / "console.toml", mosquitto, console_accounts))
    kiosk = LinkKiosk(mosquitto.url, tmp_path / "k2", kiosk="k2", site=SITE).start()
    try:
        kiosk.link.emit("outage_entered", {"code": "901", "source": "lookup"})
        kiosk.raise_call(code="901", reason="outage")
        wall = open_console(chromium, console.url, account="wall")
        wall.wait_for_selector("#outage:not([hidden])")
        banner = wall.inner_text("#outage")
        assert "障害発生中" in banner and "被保険者資格申立書" in banner and "k2" in banner
        assert "オンライン資格確認等システムの障害発生" in banner  # the outage code's own steps
        card = wall.wait_for_selector("article.call")
        assert not card.query_selector("button.ack").is_visible()
        assert not card.query_selector("button.resolve").is_visible()
        assert "表示専用" in wall.inner_text("header")

        kiosk.link.emit("outage_left", {"source": "command"})
        wall.wait_for_selector("#outage[hidden]", state="attached")
    finally:
        kiosk.stop()

    page = chromium.new_page()
    page.goto(console.url + "/login?lang=en")
    page.fill("input[name=name]", "staff")
    page.fill("input[name=password]", "wrong password")
    page.click("button[type=submit]")
    assert page.inner_text("#login-error") == "Wrong user name or password."
    page.close()


def test_a_console_started_later_shows_reader_lamp_and_outage_from_the_retained_status(
        tmp_path, mosquitto, mqtt_listener, console_accounts, console_process, headless_kiosk, chromium):
    """No reader/lamp/outage event after the console starts: all it knows comes from the retained `status`."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from kiosk import events
    from tests.rigs import contract

    scenario = tmp_path / "unplugged.toml"
    scenario.write_text('description = "the reader is unplugged and stays away"\n[[steps]]\nunplug = 600.0\n')
    topics = events.Topics("kiosk", SITE, "k3")
    listener = mqtt_listener(mosquitto, f"kiosk/{SITE}/#")
    headless_kiosk(write_config(tmp_path / "kiosk.toml", mosquitto, console_accounts, kiosk="k3",
                                scenario=scenario))
    listener.wait(lambda ms: any(m.topic == topics.event("reader_status") for m in ms), timeout=30)

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTProtocolVersion.MQTTv5)
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    properties = Properties(PacketTypes.PUBLISH)
    properties.ResponseTopic = events.reply_topic("kiosk", SITE, "test")
    properties.CorrelationData = b"outage"
    command = events.command_payload("outage_enter", {"code": "950"}, kiosk="k3")
    client.publish(topics.cmd, events.encode(command), qos=1, properties=properties).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()

    def latest_status():
        statuses = [json.loads(m.payload) for m in listener.on(topics.status) if m.payload]
        return statuses[-1] if statuses else {}

    listener.wait(lambda ms: latest_status().get("details", {}).get("outage", {}).get("active"), timeout=15)
    late_subscriber = mqtt_listener(mosquitto, topics.status).wait(lambda ms: len(ms) >= 1)[0]
    status = json.loads(late_subscriber.payload)
    contract.validate("Status", status)
    assert late_subscriber.retain and status["state"] == "online"
    assert status["details"]["reader"] == {"available": False, "detail": "simulated unplug",
                                           "cause": "simulated_unplug", "params": {"reader": "simulated reader"}}
    assert status["details"]["lamp"] == "outage"
    assert status["details"]["outage"] == {"active": True, "code": "950"}

    console = console_process(write_config(tmp_path / "console.toml", mosquitto, console_accounts))
    page = open_console(chromium, console.url, lang="en")
    page.wait_for_selector("tr[data-kiosk='site-1/k3'][data-lamp='outage']")
    row = page.inner_text("tr[data-kiosk='site-1/k3']")
    assert "FAULT" in row and "unknown" not in row
    assert "FAULT\nthe simulated reader was unplugged (demo)" in row  # why, from the kiosk's cause id
    fix = page.get_attribute("tr[data-kiosk='site-1/k3'] td.bad[title]", "title")
    assert fix == "Plug it back in from the demo panel"  # and what to do, on hover
    assert_no_raw_ids(page, "en")
    page.wait_for_selector("#outage:not([hidden])")
    assert "k3" in page.inner_text("#outage")
