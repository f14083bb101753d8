"""Staff console over HTTP against a real mosquitto and a kiosk on the real kiosk.link.EventLink.

Login, sessions, CSRF, the throttle and every refusal of a command, each with its clear message; the
command round trip and the live stream (Server-Sent Events).
"""

from __future__ import annotations

import json
import re
import threading
import time

import httpx
import pytest

from kiosk.config import config_from_dict
from tests.rigs.console import ACCOUNT_PASSWORDS, FakeClock, LinkKiosk

pytestmark = pytest.mark.mqtt
SITE = "site-1"


class Stream:
    """Reads /api/stream in a thread like a browser's EventSource, collecting every update."""

    def __init__(self, client: httpx.Client):
        self.updates: list[dict] = []
        self.cond = threading.Condition()
        self._client = client
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            with self._client.stream("GET", "/api/stream", timeout=None) as response:
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        with self.cond:
                            self.updates.append(json.loads(line[6:]))
                            self.cond.notify_all()
        except httpx.HTTPError:
            pass

    def wait(self, pred, timeout: float = 10.0) -> dict:
        with self.cond:
            found = []
            ok = self.cond.wait_for(lambda: found.extend(u for u in self.updates if pred(u)) or found, timeout)
            assert ok, f"no matching update in {len(self.updates)}: {self.updates[-5:]}"
            return found[0]


def console_config(broker, **console) -> object:
    return config_from_dict({"kiosk": {"site": SITE}, "mqtt": {"url": broker.url},
                             "console": {"session_minutes": 60, "max_failed_logins": 3, **console}})


def login(url: str, name: str = "staff", password: str | None = None) -> tuple[httpx.Client, httpx.Response]:
    client = httpx.Client(base_url=url, follow_redirects=False, timeout=10)
    client.get("/login")
    response = client.post("/login", data={"name": name, "password": password or ACCOUNT_PASSWORDS.get(name, ""),
                                           "csrf": client.cookies.get("console_login_csrf")})
    return client, response


def csrf_of(client: httpx.Client) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").text).group(1)


def command(client, csrf, kiosk="k1", name="acknowledge", call_id="call-1", site=SITE, **headers):
    hdrs = {"X-CSRF-Token": csrf} if csrf else {}
    return client.post("/api/command", json={"site": site, "kiosk": kiosk, "name": name, "call_id": call_id},
                       headers={**hdrs, **headers})


@pytest.fixture
def kiosks(mosquitto, tmp_path):
    started = []

    def start(kiosk="k1", **kwargs) -> LinkKiosk:
        k = LinkKiosk(mosquitto.url, tmp_path / kiosk, kiosk=kiosk, site=kwargs.pop("site", SITE), **kwargs).start()
        started.append(k)
        return k

    yield start
    for k in started:
        k.stop()


def test_login_refusals_and_lockout_each_say_why(mosquitto, console_server):
    clock = FakeClock()
    console = console_server(console_config(mosquitto), clock=clock)
    client = httpx.Client(base_url=console.url)
    page = client.get("/login")
    assert page.status_code == 200 and 'name="csrf"' in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]

    no_token = httpx.post(console.url + "/login", data={"name": "staff", "password": ACCOUNT_PASSWORDS["staff"]})
    assert no_token.status_code == 403 and "再読み込み" in no_token.text

    _, wrong = login(console.url, password="not the password")
    assert wrong.status_code == 401 and "ユーザー名またはパスワードが違います" in wrong.text
    assert "console_session" not in wrong.cookies

    for _ in range(2):
        login(console.url, password="still wrong")
    _, locked = login(console.url)  # the right password, but the account is locked for now
    assert locked.status_code == 429 and "約15分後" in locked.text

    clock.advance(15 * 60 + 1)
    _, ok = login(console.url)
    assert ok.status_code == 303 and ok.headers["location"] == "/" and ok.cookies.get("console_session")

    english = httpx.Client(base_url=console.url)
    english.get("/login?lang=en")
    bad = english.post("/login", data={"name": "staff", "password": "nope",
                                       "csrf": english.cookies.get("console_login_csrf")})
    assert "Wrong user name or password." in bad.text


def test_expired_session_is_refused_everywhere_with_a_clear_message(mosquitto, console_server, kiosks):
    clock = FakeClock()
    console = console_server(console_config(mosquitto, session_minutes=10), clock=clock)
    kiosks().raise_call()
    client, _ = login(console.url)
    csrf = csrf_of(client)
    assert client.get("/api/session").json()["role"] == "staff"

    clock.advance(10 * 60 + 1)
    refused = command(client, csrf)
    assert refused.status_code == 401 and refused.json()["error"] == "session_expired"
    assert "有効期限が切れました" in refused.json()["message"]
    assert client.get("/api/stream").status_code == 401
    page = client.get("/")
    assert page.status_code == 303 and page.headers["location"] == "/login?why=expired"
    assert "有効期限が切れました" in client.get(page.headers["location"]).text


def test_commands_without_csrf_for_other_kiosks_or_by_display_accounts_are_refused(
        mosquitto, console_server, kiosks, mqtt_listener):
    console = console_server(console_config(mosquitto))
    k1, k2 = kiosks("k1"), kiosks("k2")
    k1.raise_call(call_id="call-1")
    k2.raise_call(call_id="call-2")
    kiosks("k9", site="site-2").raise_call(call_id="call-9")
    client, _ = login(console.url)
    stream = Stream(client)
    stream.wait(lambda u: u["type"] in ("snapshot", "call") and "call-2" in json.dumps(u))
    csrf = csrf_of(client)
    cmds = mqtt_listener(mosquitto, "kiosk/+/+/cmd")

    expectations = [
        (command(client, None), 403, "csrf"),
        (command(client, "forged-token"), 403, "csrf"),
        (command(client, csrf, kiosk="k2", call_id="call-1"), 409, "call_not_open"),  # k1's call, sent to k2
        (command(client, csrf, kiosk="k9", call_id="call-9", site="site-2"), 403, "other_site"),
        (command(client, csrf, kiosk="k7"), 404, "unknown_kiosk"),
        (command(client, csrf, name="lamp_test"), 400, "bad_command"),
        (client.post("/api/command", content=b"{not json", headers={"X-CSRF-Token": csrf}), 400, "bad_command"),
    ]
    for response, status, error in expectations:
        assert (response.status_code, response.json()["error"]) == (status, error)
        assert response.json()["message"]

    wall, _ = login(console.url, name="wall")
    refused = command(wall, csrf_of(wall))
    assert (refused.status_code, refused.json()["error"]) == (403, "display_only")
    assert "表示専用" in refused.json()["message"]
    assert 'class="ack"' in wall.get("/").text and "role-display" in wall.get("/").text

    time.sleep(0.3)
    assert cmds.messages == [] and k1.commands == [] and k2.commands == []  # nothing refused reached a kiosk


def test_acknowledge_and_resolve_reach_the_kiosk_and_its_answer_comes_back(mosquitto, console_server, kiosks):
    console = console_server(console_config(mosquitto))
    kiosk = kiosks()
    client, _ = login(console.url)
    stream = Stream(client)
    stream.wait(lambda u: u["type"] == "snapshot")
    kiosk.raise_call(code="011")
    stream.wait(lambda u: u["type"] == "call" and u["call"]["call_id"] == "call-1")
    info = stream.wait(lambda u: u["type"] == "code" and u["code"] == "011")["info"]
    assert info["known"] and info["conditions"][0]["steps"]
    csrf = csrf_of(client)

    answer = command(client, csrf)
    assert answer.status_code == 200 and answer.json() == {"ok": True, "error": None, "detail": "acknowledge",
                                                           "detail_id": "acknowledged", "params": {}}
    stream.wait(lambda u: u["type"] == "call" and u["call"]["acknowledged"])
    stream.wait(lambda u: u["type"] == "kiosk" and u["kiosk"]["lamp"] == "acknowledged")

    answer = command(client, csrf, name="resolve")
    assert answer.json()["ok"] is True and kiosk.call is None and kiosk.lamp == "off"
    stream.wait(lambda u: u["type"] == "call_cleared" and u["call_id"] == "call-1")
    stream.wait(lambda u: u["type"] == "history" and u["entry"]["kind"] == "call_resolved")
    counted = stream.wait(lambda u: u["type"] == "history" and u["entry"]["kind"] == "call")
    assert counted["count"] == {"code": "011", "lookups": 0, "calls": 1}  # a delta: only the row that changed
    assert [name for name, _ in kiosk.commands] == ["acknowledge", "resolve"]


def test_offline_silent_and_refusing_kiosks_give_clear_failures(mosquitto, console_server, kiosks):
    console = console_server(console_config(mosquitto, command_timeout_seconds=1))
    silent, refusing, leaving = kiosks("k1", answer="silent"), kiosks("k2", answer="no"), kiosks("k3")
    for k in (silent, refusing, leaving):
        k.raise_call(call_id=f"call-{k.kiosk}")
    client, _ = login(console.url)
    stream = Stream(client)
    stream.wait(lambda u: "call-k3" in json.dumps(u))
    csrf = csrf_of(client)

    timeout = command(client, csrf, kiosk="k1", call_id="call-k1")
    assert (timeout.status_code, timeout.json()["error"]) == (504, "no_answer")
    assert "1秒以内に応答がありませんでした" in timeout.json()["message"]

    refused = command(client, csrf, kiosk="k2", call_id="call-k2")
    assert refused.status_code == 200 and refused.json()["ok"] is False and refused.json()["detail"]

    leaving.stop()
    stream.wait(lambda u: u["type"] == "kiosk" and u["kiosk"]["kiosk"] == "k3" and not u["kiosk"]["online"])
    offline = command(client, csrf, kiosk="k3", call_id="call-k3")
    assert (offline.status_code, offline.json()["error"]) == (409, "kiosk_offline")
    assert "オフライン" in offline.json()["message"]


def test_stream_survives_garbage_on_the_kiosk_topics(mosquitto, console_server, kiosks):
    import paho.mqtt.client as mqtt

    console = console_server(console_config(mosquitto))
    client, _ = login(console.url)
    stream = Stream(client)
    stream.wait(lambda u: u["type"] == "snapshot")
    vandal = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTProtocolVersion.MQTTv5)
    vandal.connect(mosquitto.host, mosquitto.port)
    vandal.loop_start()
    for topic, payload in [(f"kiosk/{SITE}/k1/status", b"\x00\xff"), (f"kiosk/{SITE}/k1/call", b"{}"),
                           (f"kiosk/{SITE}/k1/event/call", b"[]"), (f"kiosk/{SITE}/reply/x", b"{")]:
        vandal.publish(topic, payload, qos=1).wait_for_publish()
    vandal.disconnect()
    vandal.loop_stop()
    kiosks().raise_call()
    stream.wait(lambda u: u["type"] == "call")  # still alive and serving
    assert not any(u["type"] == "kiosk" and u["kiosk"]["online"] is False for u in stream.updates)


def test_broker_restart_is_shown_and_the_console_resubscribes(mosquitto, console_server, kiosks):
    console = console_server(console_config(mosquitto))
    kiosk = kiosks()
    client, _ = login(console.url)
    stream = Stream(client)
    stream.wait(lambda u: any(k["online"] for k in u.get("kiosks", [u.get("kiosk") or {"online": False}])))
    mosquitto.stop()
    stream.wait(lambda u: u == {"type": "link", "connected": False})
    csrf = csrf_of(client)
    kiosk.raise_call(call_id="during-outage")  # kept in the kiosk's outbox until the broker is back
    time.sleep(0.2)
    down = command(client, csrf, call_id="during-outage")
    assert down.status_code in (409, 503) and down.json()["message"]  # no such call seen yet, or broker down
    mosquitto.start()
    stream.wait(lambda u: u == {"type": "link", "connected": True}, timeout=20)
    stream.wait(lambda u: u["type"] == "call" and u["call"]["call_id"] == "during-outage", timeout=20)
    assert command(client, csrf, call_id="during-outage").json()["ok"] is True
