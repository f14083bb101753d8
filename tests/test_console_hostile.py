"""Hostile and broken input against the real `kiosk console` process (real mosquitto, a logged-in Chromium):
hypothesis-generated statuses, calls, events, replies and presences under made-up kiosk ids; floods of events
(distinct reasons and codes) and of retained statuses; parallel login races; oversize request bodies.

After each: a real call from a kiosk on the real EventLink reaches the browser (`Stack.call_reaches_the_page`)
and the console's memory (RSS) stays within a bound of what it used before the attack.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import re
import socket
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from kiosk import events
from tests.rigs.console import ACCOUNT_PASSWORDS, LinkKiosk

pytestmark = [pytest.mark.mqtt, pytest.mark.browser, pytest.mark.slow]
SITE = "site-1"
MEMORY_BOUND_MB = 150  # growth allowed over the console's RSS before the attack (it grew by ~470 MB unfixed)


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


def write_config(path: Path, broker, accounts: Path, **console: str) -> Path:
    extra = "".join(f"{key} = {value}\n" for key, value in console.items())
    path.write_text(f'[kiosk]\nsite = "{SITE}"\n[mqtt]\nurl = "{broker.url}"\n'
                    f'[console]\naccounts_file = "{accounts}"\nmax_failed_logins = 3\n{extra}')
    return path


class Stack:
    """The console process, one well-behaved kiosk and a staff page in Chromium."""

    def __init__(self, console, kiosk: LinkKiosk, page, broker):
        self.console, self.kiosk, self.page = console, kiosk, page
        self.calls = 0
        self.attacker = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTProtocolVersion.MQTTv5)
        self.attacker.reconnect_delay_set(0.1, 0.5)
        self.attacker.connect(broker.host, broker.port)
        self.attacker.loop_start()
        self.baseline_mb = 0.0
        self.console_id = ""

    def publish(self, topic: str, payload: bytes, retain: bool = False, properties=None, wait: bool = True):
        info = self.attacker.publish(topic, payload, qos=1, retain=retain, properties=properties)
        if wait:
            info.wait_for_publish(10)
        return info

    def call_reaches_the_page(self) -> None:
        """A real call (kiosk k1, the real EventLink) appears in the browser, then is cleared."""
        self.calls += 1
        call_id = f"probe-{self.calls}"
        self.kiosk.raise_call(code="011", call_id=call_id)
        self.page.wait_for_selector(f'article.call[data-call-id="{call_id}"]', timeout=20_000)
        self.kiosk.call = None
        self.kiosk.link.set_call(None)
        self.page.wait_for_selector(f'article.call[data-call-id="{call_id}"]', state="detached", timeout=20_000)

    def memory_within_bound(self) -> float:
        used = rss_mb(self.console.proc.pid)
        assert used <= self.baseline_mb + MEMORY_BOUND_MB, f"console RSS {used:.0f} MB, " \
                                                            f"{self.baseline_mb:.0f} MB before the attack"
        return used


@pytest.fixture
def stack(tmp_path, mosquitto, mqtt_listener, console_accounts, console_process, chromium):
    console = console_process(write_config(tmp_path / "console.toml", mosquitto, console_accounts,
                                           max_kiosks="1000"))
    kiosk = LinkKiosk(mosquitto.url, tmp_path / "k1", kiosk="k1", site=SITE).start()
    context = chromium.new_context(locale="en-GB", viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.goto(f"{console.url}/login?lang=en")
    page.fill("input[name=name]", "staff")
    page.fill("input[name=password]", ACCOUNT_PASSWORDS["staff"])
    page.click("button[type=submit]")
    page.wait_for_selector("#kiosks-title")
    stack = Stack(console, kiosk, page, mosquitto)
    presence = mqtt_listener(mosquitto, f"kiosk/{SITE}/console/+/status").wait(lambda ms: ms)[0]
    stack.console_id = presence.topic.split("/")[3]  # where the console takes command responses
    stack.call_reaches_the_page()  # warmed up: the page, the stream, the code's catalogue text
    stack.baseline_mb = rss_mb(console.proc.pid)
    yield stack
    stack.attacker.disconnect()
    stack.attacker.loop_stop()
    kiosk.stop()
    context.close()
    assert "Traceback" not in console.log()


# --- generated messages ----------------------------------------------------------------------------------

TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cn", "Co")), max_size=30)
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                    max_leaves=10)
HUGE = st.integers(1, 200_000).map(lambda n: "x" * n)
KIOSK_IDS = st.sampled_from(["k1", "k2", "reply", "console", "a" * 64, "a" * 65]) \
    | st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cn", "Co"), blacklist_characters="/+#"),
              min_size=1, max_size=20)
VALUE = JSON | HUGE | st.sampled_from(["0", "011", "99", "9999", "patient_request", "reason-x", "call"])
STATUS = st.fixed_dictionaries({"state": st.sampled_from(["online", "offline"]) | JSON},
                               optional={"details": JSON | st.fixed_dictionaries(
                                   {}, optional={"lamp": VALUE, "reader": JSON, "outage": JSON,
                                                 "outbox": JSON})})
CALL = st.fixed_dictionaries({"call_id": st.sampled_from(["c1", "../x"]) | VALUE, "reason": VALUE,
                              "code": VALUE}, optional={"since": VALUE, "acknowledged": JSON, "audience": VALUE,
                                                        "escalation": VALUE})
EVENT = st.fixed_dictionaries({"id": VALUE, "kind": st.sampled_from(events.EVENT_KINDS) | TEXT, "time": VALUE,
                               "data": JSON | st.fixed_dictionaries({}, optional={
                                   "code": VALUE, "reason": VALUE, "pattern": VALUE, "available": JSON,
                                   "outbox": JSON})})
REPLY = st.fixed_dictionaries({"ok": JSON}, optional={"error": VALUE, "detail": VALUE, "detail_id": VALUE,
                                                      "params": JSON})
NESTED = st.integers(17, 20_000).map(lambda n: ("[" * n + "]" * n).encode())
RAW = NESTED | st.binary(max_size=200) | HUGE.map(str.encode)


def topic_and_payload(console_id: str):
    def for_kiosk(kid: str):
        base = f"kiosk/{SITE}/{kid}"
        return st.one_of(
            st.tuples(st.just(f"{base}/status"), STATUS.map(json.dumps).map(str.encode) | RAW),
            st.tuples(st.just(f"{base}/call"), CALL.map(json.dumps).map(str.encode) | RAW | st.just(b"")),
            st.tuples(st.sampled_from([f"{base}/event/{k}" for k in events.EVENT_KINDS]),
                      EVENT.map(json.dumps).map(str.encode) | RAW),
            st.tuples(st.just(f"kiosk/{SITE}/reply/to/{console_id}"), REPLY.map(json.dumps).map(str.encode) | RAW),
            st.tuples(st.just(f"kiosk/{SITE}/console/{kid}/status"), JSON.map(json.dumps).map(str.encode) | RAW),
        )
    return KIOSK_IDS.flatmap(for_kiosk)


@settings(max_examples=20, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_no_generated_message_silences_the_console_or_grows_it(stack, data):
    batch = data.draw(st.lists(st.tuples(topic_and_payload(stack.console_id), st.booleans(), st.none() | st.binary(
        max_size=300)), min_size=1, max_size=25))
    for (topic, payload), retain, correlation in batch:
        properties = None
        if correlation is not None:
            properties = Properties(PacketTypes.PUBLISH)
            properties.CorrelationData = correlation
        stack.publish(topic, payload, retain=retain, properties=properties, wait=False)
    stack.publish(f"kiosk/{SITE}/zz-marker/status", b"{}").wait_for_publish(10)  # the batch reached the broker
    stack.call_reaches_the_page()
    stack.memory_within_bound()


def test_floods_of_events_and_statuses_keep_the_console_flat_and_calls_prompt(stack):
    infos = []
    for n in range(4_000):  # distinct reasons and codes: counts are keyed by contract values only
        event = events.envelope("call", {"call_id": f"c{n}", "reason": f"reason-{n}", "code": f"{n % 1000:03d}",
                                         "audience": "staff"}, kiosk=f"f{n % 50}", site=SITE, seq=n,
                                catalogue_version="x")
        infos.append(stack.publish(f"kiosk/{SITE}/f{n % 50}/event/call", events.encode(event), wait=False))
    for n in range(2_500):  # made-up kiosks past [console] max_kiosks = 1000, retained (the bench: 10,000/5,000)
        status = events.status_payload(True, kiosk=f"fake-{n}", site=SITE, catalogue_version="x", details={})
        infos.append(stack.publish(f"kiosk/{SITE}/fake-{n}/status", events.encode(status), retain=True,
                                   wait=False))
    infos[-1].wait_for_publish(60)
    stack.call_reaches_the_page()
    stack.memory_within_bound()
    rows = stack.page.locator("tr[data-kiosk]").count()
    assert rows <= 1000  # the cap
    caps = [line for line in stack.console.log().splitlines() if "raise [console] max_kiosks" in line]
    assert 1 <= len(caps) <= 2  # said once (a minute), not once per ignored kiosk
    stack.page.reload()  # a page loaded now draws the capped table at once
    stack.page.wait_for_selector("#kiosks-title")
    stack.call_reaches_the_page()


# --- logins and request bodies (no browser needed beyond the stack's own) ----------------------------------

async def _bad_logins(url: str, name: str, count: int, local_address: str = "127.0.0.1") -> list[int]:
    async def one(n: int) -> int:
        transport = httpx.AsyncHTTPTransport(local_address=local_address)  # a client closes its transport
        async with httpx.AsyncClient(base_url=url, transport=transport, timeout=60) as client:
            await client.get("/login")
            response = await client.post("/login", data={"name": name, "password": f"wrong-{n}",
                                                         "csrf": client.cookies.get("console_login_csrf")})
            return response.status_code

    return list(await asyncio.gather(*(one(n) for n in range(count))))


def _run(coroutine):
    """Run `coroutine` on its own loop in another thread (Playwright's sync API holds this thread's loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _login(url: str, local_address: str) -> int:
    with httpx.Client(base_url=url, transport=httpx.HTTPTransport(local_address=local_address),
                      timeout=30) as client:
        client.get("/login")
        return client.post("/login", data={"name": "staff", "password": ACCOUNT_PASSWORDS["staff"],
                                           "csrf": client.cookies.get("console_login_csrf")}).status_code


def test_login_races_and_oversize_bodies_neither_lock_reception_out_nor_grow_the_console(stack):
    url = stack.console.url
    assert _login(url, "127.0.0.2") == 303  # reception's PC (127.0.0.2) has logged in before
    statuses = _run(_bad_logins(url, "staff", 60))  # 60 at once, one account, one address
    assert statuses.count(401) <= 3 and set(statuses) <= {401, 429, 503}  # max_failed_logins = 3 checked
    sprayed = _run(_bad_logins(url, "nobody", 60, "127.0.0.3"))  # another 60 at once: a bounded queue
    assert sprayed.count(401) <= 3 * 3 and set(sprayed) <= {401, 429, 503}
    assert _login(url, "127.0.0.2") == 303  # reception still gets in ...
    assert _login(url, "127.0.0.1") == 429  # ... the attacking address does not
    stack.memory_within_bound()  # at most 2 scrypt hashes (16 MB each) at once

    with httpx.Client(base_url=url, timeout=30) as client:
        client.get("/login")
        form = {"name": "staff", "password": "x", "csrf": client.cookies.get("console_login_csrf"),
                **{f"f{n}": "y" * 1024 for n in range(8)}}
        assert client.post("/login", data=form).status_code == 413

        assert client.post("/api/command", content=b"{" + b" " * 2048 + b"}",
                           headers={"Content-Type": "application/json"}).status_code == 413
        assert client.get("/login").status_code == 200
        assert "strict-transport-security" not in client.get("/login").headers  # plain HTTP: no HSTS
    # 1,000 fields × 1 MB announced: refused by its length alone, before a byte of it is read ...
    assert _raw_post(url, b"Content-Length: 1048576000\r\n", b"a=" + b"b" * 65_536).startswith(b"HTTP/1.1 413")
    # ... and a chunked body without a length once more than 4 KB came in
    chunks = b"".join(b"400\r\n" + b"z" * 1024 + b"\r\n" for _ in range(16))
    assert _raw_post(url, b"Transfer-Encoding: chunked\r\n", chunks).startswith(b"HTTP/1.1 413")
    stack.memory_within_bound()
    stack.call_reaches_the_page()


def _raw_post(url: str, header: bytes, body: bytes) -> bytes:
    """POST /login over a plain socket (a client that keeps sending): the status line the console answers."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                     + header + b"\r\n")
        with contextlib.suppress(OSError):  # the console may close the connection while we still send
            sock.sendall(body)
        return sock.recv(200)
