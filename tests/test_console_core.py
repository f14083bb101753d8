"""Staff console, pure parts: decoding MQTT messages, the console state, accounts, sessions, login throttle."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk import events
from kiosk.console.auth import (
    Account,
    AccountsError,
    LoginThrottle,
    SessionStore,
    authenticate,
    load_accounts,
)
from kiosk.console.messages import CallMessage, EventMessage, ReplyMessage, StatusMessage, decode
from kiosk.console.server import load_strings
from kiosk.console.state import HISTORY_KEEP, ConsoleState
from kiosk.passwords import hash_secret
from tests.rigs import contract
from tests.rigs.console import FakeClock

PREFIX, SITE, KIOSK = "kiosk", "site-1", "k1"
T = events.Topics(PREFIX, SITE, KIOSK)
REPLY = events.reply_topic(PREFIX, SITE, "console-x")
JST = timezone(timedelta(hours=9))
NOON = datetime(2026, 11, 25, 12, 0, tzinfo=JST)


def call_dict(call_id="c1", code="011", acknowledged=False, reason="staff_code", escalation=0):
    return {"call_id": call_id, "reason": reason, "code": code, "audience": "staff",
            "since": "2026-11-25T12:00:00.000+09:00", "acknowledged": acknowledged, "escalation": escalation}


def event(kind, data, event_id=None):
    return events.encode(events.envelope(kind, data, kiosk=KIOSK, site=SITE, seq=1, catalogue_version="v",
                                         event_id=event_id, time="2026-11-25T12:00:01.000+09:00"))


def dec(topic, payload, correlation=None):
    return decode(PREFIX, topic, payload, correlation, REPLY)


# --- decoding ---------------------------------------------------------------------------------------------

def test_decodes_the_contract_payloads_built_by_kiosk_events():
    kiosk_state = events.kiosk_state(reader_available=False, reader_detail="no card reader found", lamp="outage",
                                     outage=True, outage_code="950", reader_cause="reader_missing",
                                     reader_params={"readers": "none"})
    status = events.status_payload(True, kiosk=KIOSK, site=SITE, catalogue_version="v", details={
        "outbox": {"backlog": 7, "dropped": 0, "refused": 0, "last_error": None}, **kiosk_state})
    contract.validate("Status", status)
    assert dec(T.status, events.encode(status)) == StatusMessage(SITE, KIOSK, {
        "online": True, "backlog": 7, "reader_ok": False, "reader_cause": "reader_missing",
        "reader_params": {"readers": "none"}, "lamp": "outage", "outage": True, "outage_code": "950"})
    lwt = events.status_payload(False, kiosk=KIOSK, site=SITE, catalogue_version="v", details={"reason": "lost"})
    assert dec(T.status, events.encode(lwt)) == StatusMessage(SITE, KIOSK, {
        "online": False, "backlog": None, "reader_ok": None, "reader_cause": None, "reader_params": {},
        "lamp": None, "outage": None, "outage_code": None})
    call = events.encode(events.call_payload(call_dict(), kiosk=KIOSK, site=SITE))
    assert dec(T.call, call) == CallMessage(SITE, KIOSK, call_dict())
    assert dec(T.call, b"") == CallMessage(SITE, KIOSK, None)
    decoded = dec(T.event("lamp_status"), event("lamp_status", {"pattern": "call"}, "e1"))
    assert isinstance(decoded, EventMessage) and decoded.event["data"]["pattern"] == "call"
    reply = events.encode(events.response_payload("cmd1", True, "acknowledged", kiosk=KIOSK))
    assert dec(REPLY, reply, b"cmd1") == ReplyMessage(b"cmd1", True, None, "acknowledged")


@pytest.mark.parametrize("topic,payload", [
    (T.status, b"not json"),
    (T.status, b'{"state": "sleeping"}'),
    (T.call, b'{"call_id": "c/1", "reason": "x"}'),  # an id that could never be a topic-safe id
    (T.call, b"\xff\xfe"),
    (T.event("call"), event("lookup", {"code": "011", "known": True})),  # kind does not match the topic
    (T.event("call"), b'{"id": "e", "kind": "call", "time": "t", "data": {"code": "12345"}}'),
    ("kiosk/site-1/reply/status", b'{"state": "online", "details": {}}'),  # the reply tree is no kiosk
    ("other/site-1/k1/status", b'{"state": "online", "details": {}}'),
    (T.base + "/something", b"{}"),
    (REPLY, b'{"ok": true}'),  # a reply without correlation data
    (T.status, b"[" * 100_000),
])
def test_malformed_or_foreign_messages_are_ignored(topic, payload):
    assert dec(topic, payload) is None


def test_an_event_kind_this_console_does_not_know_is_decoded_and_only_marks_the_kiosk_seen():
    """A kiosk upgraded before its console: a newer kind is no malformed message (the kiosk stays 'seen'),
    and it changes nothing else (no history row, no count)."""
    newer = events.encode({"id": "e9", "kind": "x_kind_from_a_newer_kiosk", "kiosk": KIOSK, "site": SITE, "seq": 9,
                           "time": "2026-11-25T12:00:01.000+09:00", "schema_version": events.SCHEMA_VERSION,
                           "catalogue_version": "v", "data": {"passed": True}})
    assert "x_kind_from_a_newer_kiosk" not in events.EVENT_KINDS  # a placeholder no kiosk will ever send
    decoded = dec(T.event("x_kind_from_a_newer_kiosk"), newer)
    assert isinstance(decoded, EventMessage) and decoded.event["kind"] == "x_kind_from_a_newer_kiosk"
    assert dec(T.event("call"), newer) is None  # the kind still has to match its topic
    state = ConsoleState()
    state.on_status((SITE, KIOSK), {"online": True, "backlog": None, "reader_ok": None, "lamp": None,
                                    "outage": None, "outage_code": None}, NOON)
    later = NOON + timedelta(minutes=5)
    updates = state.on_event((SITE, KIOSK), decoded.event, later)
    assert state.kiosks[(SITE, KIOSK)].last_seen == later.isoformat(timespec="seconds")
    assert not [u for u in updates if u["type"] in ("history", "code")] and not state.history


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([T.status, T.call, T.event("call"), T.event("lamp_status"), REPLY]),
       st.one_of(st.binary(max_size=200),
                 st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                              lambda inner: st.lists(inner, max_size=4)
                              | st.dictionaries(st.text(max_size=8), inner, max_size=6),
                              max_leaves=20).map(lambda v: json.dumps(v).encode())))
def test_any_payload_decodes_or_is_ignored_never_raises(topic, payload):
    decoded = dec(topic, payload, b"corr")
    assert decoded is None or isinstance(decoded, (StatusMessage, CallMessage, EventMessage, ReplyMessage))


# --- state ------------------------------------------------------------------------------------------------

def ev(kind, data, event_id, time="2026-11-25T12:00:01+09:00"):
    base = {"code": None, "reason": None, "pattern": None, "available": None, "backlog": None}
    return {"id": event_id, "kind": kind, "time": time, "data": {**base, **data}}


def test_a_malformed_kiosk_state_in_the_status_still_counts_as_presence():
    status = {"state": "online", "details": {"outbox": {"backlog": 2}, "reader": "fine", "lamp": "<b>",
                                             "outage": {"active": "perhaps"}}}
    assert dec(T.status, json.dumps(status).encode()) == StatusMessage(SITE, KIOSK, {
        "online": True, "backlog": 2, "reader_ok": None, "reader_cause": None, "reader_params": {}, "lamp": None,
        "outage": None, "outage_code": None})
    odd = {"state": "online", "details": {"reader": {"available": False, "cause": "<b>x</b>", "params": [1]}}}
    decoded = dec(T.status, json.dumps(odd).encode()).status
    assert (decoded["reader_ok"], decoded["reader_cause"], decoded["reader_params"]) == (False, None, {})


def test_the_retained_status_alone_gives_reader_lamp_and_outage():
    """A console started after the kiosk entered outage mode / lost its reader knows it from `status`."""
    state = ConsoleState()
    key = (SITE, KIOSK)
    online = {"online": True, "backlog": 0, "reader_ok": False, "lamp": "outage", "outage": True,
              "outage_code": "950"}
    state.on_status(key, online, NOON)
    view = state.kiosks[key]
    assert (view.reader_ok, view.lamp, view.outage, view.outage_code) == (False, "outage", True, "950")
    assert state.outage_kiosks == [key]
    state.on_status(key, {"online": False, "backlog": None, "reader_ok": None, "lamp": None, "outage": None,
                          "outage_code": None}, NOON)  # offline says nothing about them: the last known stay
    assert (view.online, view.reader_ok, view.lamp, view.outage) == (False, False, "outage", True)
    state.on_status(key, {**online, "reader_ok": True, "lamp": "off", "outage": False}, NOON)
    assert (view.reader_ok, view.lamp, view.outage, view.outage_code) == (True, "off", False, None)
    assert state.outage_kiosks == []


def test_status_call_and_events_build_the_kiosk_view():
    state = ConsoleState()
    key = (SITE, KIOSK)
    state.on_status(key, {"online": True, "backlog": 3}, NOON)
    state.on_event(key, ev("reader_status", {"available": False}, "e1"), NOON)
    state.on_event(key, ev("lamp_status", {"pattern": "call"}, "e2"), NOON)
    updates = state.on_call(key, call_dict(), NOON)
    assert updates == [{"type": "call", "call": {"site": SITE, "kiosk": KIOSK, **call_dict()}}]
    view = state.kiosks[key]
    assert (view.online, view.reader_ok, view.lamp, view.backlog) == (True, False, "call", 3)
    assert state.on_call(key, call_dict(), NOON) == []  # the same retained call again changes nothing
    state.on_status(key, {"online": False, "backlog": None}, NOON)
    assert state.kiosks[key].online is False and state.kiosks[key].backlog == 3
    assert state.on_call(key, None, NOON) == [{"type": "call_cleared", "site": SITE, "kiosk": KIOSK, "call_id": "c1"}]
    assert state.calls == {}


def test_outage_mode_is_tracked_per_kiosk_with_its_code():
    state = ConsoleState()
    state.on_event((SITE, "a"), ev("outage_entered", {"code": "901"}, "e1"), NOON)
    state.on_event((SITE, "b"), ev("outage_entered", {"code": None}, "e2"), NOON)
    assert state.outage_kiosks == [(SITE, "a"), (SITE, "b")]
    assert state.kiosks[(SITE, "a")].outage_code == "901"
    state.on_event((SITE, "a"), ev("outage_left", {}, "e3"), NOON)
    assert state.outage_kiosks == [(SITE, "b")] and state.kiosks[(SITE, "a")].outage_code is None


def test_history_counts_each_event_once_and_keeps_only_codes_and_times():
    state = ConsoleState()
    key = (SITE, KIOSK)
    state.on_event(key, ev("lookup", {"code": "011"}, "e1"), NOON)
    state.on_event(key, ev("call", {"code": "011", "reason": "staff_code"}, "e2"), NOON)
    state.on_event(key, ev("call", {"code": "011", "reason": "staff_code"}, "e2"), NOON)  # QoS 1 duplicate
    state.on_event(key, ev("call", {"code": None, "reason": "patient_request"}, "e3"), NOON)
    state.on_event(key, ev("heartbeat", {"backlog": 0}, "e4"), NOON)
    state.on_event(key, ev("precheck", {"code": None}, "e5"), NOON)  # nothing wrong: not history
    snap = state.snapshot()
    assert [h["kind"] for h in snap["history"]] == ["lookup", "call", "call"]
    assert set(snap["history"][0]) == {"time", "kind", "code", "site", "kiosk"}
    assert snap["counts"] == [{"code": "011", "lookups": 1, "calls": 1},
                              {"code": "patient_request", "lookups": 0, "calls": 1}]


def test_history_starts_again_on_a_new_day_and_stays_bounded():
    state = ConsoleState()
    key = (SITE, KIOSK)
    for i in range(HISTORY_KEEP + 20):
        state.on_event(key, ev("lookup", {"code": "001"}, f"e{i}"), NOON)
    assert len(state.history) == HISTORY_KEEP and state.lookups["001"] == HISTORY_KEEP + 20
    updates = state.on_event(key, ev("lookup", {"code": "002"}, "next"), NOON + timedelta(days=1))
    assert updates[0] == {"type": "day", "day": "2026-11-26"}
    assert state.snapshot()["counts"] == [{"code": "002", "lookups": 1, "calls": 0}]


# --- accounts, sessions, throttle -------------------------------------------------------------------------

def write(tmp_path, text):
    path = tmp_path / "accounts.toml"
    path.write_text(text)
    return path


def test_accounts_file_is_validated_with_clear_messages(tmp_path):
    good = hash_secret("correct horse")
    accounts = load_accounts(write(tmp_path, f'[[account]]\nname = "a"\npassword_hash = "{good}"\nrole = "display"\n'))
    assert accounts["a"].role == "display" and not accounts["a"].can_command
    cases = {
        '[[account]]\nname = "a"\npassword_hash = "hunter2"\n': "not a password hash",
        f'[[account]]\nname = "a"\npassword_hash = "{good}"\nrole = "admin"\n': "role",
        f'[[account]]\nname = "a b"\npassword_hash = "{good}"\n': "name",
        f'[[account]]\nname = "a"\npassword_hash = "{good}"\n' * 2: "twice",
        "": "no .*account.* entries",
        "[[account]\n": "not valid TOML",
    }
    for text, expected in cases.items():
        with pytest.raises(AccountsError, match=expected) as err:
            load_accounts(write(tmp_path, text))
        assert str(tmp_path) in str(err.value)
    with pytest.raises(AccountsError, match="not found"):
        load_accounts(tmp_path / "missing.toml")


def test_authenticate_checks_the_hash():
    accounts = {"a": Account(name="a", password_hash=hash_secret("right password"))}
    assert authenticate(accounts, "a", "right password") == accounts["a"]
    assert authenticate(accounts, "a", "wrong password") is None
    assert authenticate(accounts, "nobody", "right password") is None


def test_sessions_expire_and_display_sessions_last_longer():
    clock = FakeClock()
    store = SessionStore(staff_seconds=60, display_seconds=90_000, clock=clock)
    staff = store.create(Account(name="s", password_hash=hash_secret("x" * 8)))
    wall = store.create(Account(name="w", password_hash=hash_secret("x" * 8), role="display"))
    assert staff.csrf_token != wall.csrf_token and store.lookup(staff.token) == (staff, False)
    clock.advance(61)
    assert store.lookup(staff.token) == (None, True)
    assert store.lookup(staff.token) == (None, True)  # still says "expired" on the next request
    assert store.lookup(wall.token) == (wall, False)
    clock.advance(86_400)
    assert store.lookup(staff.token) == (None, False)  # forgotten after a day
    assert store.lookup(None) == (None, False) and store.lookup("forged") == (None, False)
    store.end(wall.token)
    assert store.lookup(wall.token) == (None, False)


def test_throttle_locks_after_repeated_failures_until_the_window_passes():
    clock = FakeClock()
    throttle = LoginThrottle(max_failures=3, window_seconds=600, clock=clock)
    for _ in range(3):
        assert throttle.reserve("a", "1") == 0  # counted as a failure until it succeeds
        clock.advance(10)
    assert throttle.reserve("a", "1") == pytest.approx(570)  # this account from this address: locked
    assert throttle.retry_after("a", "2") == 0  # the same account from elsewhere: not locked out by this
    assert throttle.retry_after("b", "1") == 0  # another account from this address: below the wide limit
    clock.advance(571)
    assert throttle.retry_after("a", "1") == 0


def test_throttle_reserves_before_the_hash_and_never_locks_out_an_address_that_logged_in_before():
    clock = FakeClock()
    throttle = LoginThrottle(max_failures=2, window_seconds=900, clock=clock, spread=3)
    assert throttle.reserve("reception", "pc") == 0
    throttle.succeeded("reception", "pc")  # reception's own PC logged in once
    # 60 parallel attempts: each is counted when reserved, so only the first two pass before any hash ends
    assert sum(throttle.reserve("reception", "attacker") == 0 for _ in range(60)) == 2
    for address in (f"other-{i}" for i in range(8)):  # spraying from many addresses
        throttle.reserve("reception", address)
    wait = throttle.retry_after("reception", "new-pc")
    assert wait > 0  # the account is throttled for addresses it has never logged in from ...
    assert throttle.retry_after("reception", "pc") == 0  # ... but reception's own PC still gets in
    first = throttle.retry_after("reception", "new-pc")
    clock.advance(first)
    throttle.reserve("reception", "another")  # one more failure doubles the back-off
    assert throttle.retry_after("reception", "new-pc") == pytest.approx(2 * first)
    # an address spraying many accounts is throttled whatever name it tries
    for i in range(6):
        throttle.reserve(f"name-{i}", "sprayer")
    assert throttle.retry_after("reception", "sprayer") > 0

def test_locales_have_the_same_keys_and_placeholders():
    strings = load_strings()
    import re

    for key, text in strings["ja"].items():
        assert set(re.findall(r"\{(\w+)\}", text)) == set(re.findall(r"\{(\w+)\}", strings["en"][key])), key


# --- hub --------------------------------------------------------------------------------------------------

def test_a_browser_too_far_behind_is_cut_off_and_others_keep_their_updates():
    import asyncio
    import concurrent.futures

    from kiosk.console.hub import SUBSCRIBER_QUEUE, Hub
    from kiosk.console.messages import StatusMessage

    async def scenario():
        hub = Hub(sites=[SITE], code_info=lambda code: {}, command_timeout=1, publish_command=lambda *a: True,
                  max_kiosks=SUBSCRIBER_QUEUE + 10)
        slow, fast = hub.subscribe(), hub.subscribe()
        for i in range(SUBSCRIBER_QUEUE + 5):
            hub.handle(StatusMessage(SITE, f"k{i}", {"online": True, "backlog": None}))
            while not fast.empty():
                fast.get_nowait()
        items = []
        while not slow.empty():
            items.append(slow.get_nowait())
        hub.handle(StatusMessage(SITE, "late", {"online": True, "backlog": None}))
        hub.handle(StatusMessage("other-site", "x", {"online": True, "backlog": None}))  # not this console's
        return items, fast.get_nowait(), fast.empty(), len(hub.state.kiosks)

    # its own thread: the browser tests' session-wide Playwright keeps an event loop running on this one
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        items, latest, drained, kiosk_count = pool.submit(asyncio.run, scenario()).result()
    assert items[-1] is None and len(items) == SUBSCRIBER_QUEUE  # told to reconnect (and redraw)
    assert latest["kiosk"]["kiosk"] == "late" and drained
    assert kiosk_count == SUBSCRIBER_QUEUE + 6


def test_a_cleared_retained_status_takes_the_kiosk_and_its_call_off_the_page():
    assert dec(T.status, b"") == StatusMessage(SITE, KIOSK, None)
    state = ConsoleState()
    key = (SITE, KIOSK)
    state.on_status(key, {"online": True, "backlog": None}, NOON)
    state.on_call(key, call_dict(), NOON)
    updates = state.on_status(key, None, NOON)
    assert [u["type"] for u in updates] == ["call_cleared", "kiosk_removed"]
    assert state.kiosks == {} and state.calls == {}
    assert state.on_status(key, None, NOON) == []


# --- replies and staff texts as ids (issue 14) ------------------------------------------------------------

def test_a_reply_carries_its_text_id_and_params_and_a_malformed_one_is_dropped():
    reply = events.response_payload("cmd1", True, "catalogue version v2", kiosk=KIOSK,
                                    detail_id="catalogue_reloaded", params={"version": "v2"})
    assert dec(REPLY, events.encode(reply), b"cmd1") == ReplyMessage(
        b"cmd1", True, None, "catalogue version v2", "catalogue_reloaded", {"version": "v2"})
    refused = events.response_payload("cmd1", False, "no open call", kiosk=KIOSK)
    assert (refused["detail_id"], refused["params"]) == ("rejected", {})  # the error's text when none is given
    many = {str(i): "x" for i in range(20)}
    odd = {**reply, "detail_id": "<script>", "params": {"version": {"nested": 1}, "n": 3, **many}}
    decoded = dec(REPLY, events.encode(odd), b"cmd1")
    assert decoded.ok and decoded.detail_id == "" and "version" not in decoded.params
    assert len(decoded.params) <= events.MAX_REPLY_PARAMS
    old = {k: v for k, v in reply.items() if k not in ("detail_id", "params")}  # a kiosk that predates them
    assert dec(REPLY, events.encode(old), b"cmd1") == ReplyMessage(b"cmd1", True, None, "catalogue version v2")


def test_every_reply_and_id_the_kiosk_sends_has_a_console_text_in_both_languages():
    from hardware.readers.contract import Cause
    from kiosk.vocabulary import CALL_REASONS, LAMP_PATTERNS

    strings = load_strings()
    replies = {"acknowledged", "already_acknowledged", "resolved", "no_open_call", "not_open_call",
               "lamp_test_started", "outage_entered", "already_in_outage", "outage_left", "not_in_outage",
               "catalogue_reloaded", "catalogue_not_reloaded", events.TOO_LARGE, events.NOT_JSON, events.INVALID,
               events.UNKNOWN_COMMAND, events.WRONG_KIOSK, events.REPLAYED, events.REJECTED, events.TIMEOUT,
               events.RETAINED}
    wanted = ([f"reply.{r}" for r in replies] + [f"lamp.{p}" for p in LAMP_PATTERNS]
              + [f"event.{k}" for k in events.EVENT_KINDS] + [f"call.title.{r}" for r in CALL_REASONS]
              + [f"call.reason.{r}" for r in CALL_REASONS] + [f"reader.{c}" for c in Cause])
    for lang in ("ja", "en"):
        assert [key for key in wanted if key not in strings[lang]] == [], lang


def test_the_flows_replies_name_texts_that_exist():
    """Every Reply the flow can make names a staff text (a reply id typo would show the fallback)."""
    import ast
    from pathlib import Path

    from kiosk import flow

    tree = ast.parse(Path(flow.__file__).read_text(encoding="utf-8"))
    ids = {call.args[2].value for call in ast.walk(tree) if isinstance(call, ast.Call)
           and getattr(call.func, "id", "") == "Reply" and isinstance(call.args[2], ast.Constant)}
    assert ids and not [i for i in ids if f"reply.{i}" not in load_strings()["ja"]]


def test_a_staff_text_in_both_the_console_strings_and_staff_json_is_refused(monkeypatch, tmp_path):
    import shutil

    from kiosk.console import server
    from kiosk.paths import catalogue_root

    root = tmp_path / "catalogue"
    shutil.copytree(catalogue_root() / "locales", root / "locales")
    staff = json.loads((root / "locales" / "en" / "staff.json").read_text(encoding="utf-8"))
    (root / "locales" / "en" / "staff.json").write_text(json.dumps({**staff, "app.title": "x"}), encoding="utf-8")
    monkeypatch.setattr(server, "locales_dir", lambda: root / "locales")
    with pytest.raises(ValueError, match=r"en/staff.json: \['app.title'\] also in the console strings en.json"):
        load_strings()


def test_a_write_to_the_browser_folds_each_kiosks_row_updates_and_keeps_the_rest_in_order():
    from kiosk.console.routes.stream import coalesced

    def row(kiosk, lamp):
        return {"type": "kiosk", "kiosk": {"site": "s", "kiosk": kiosk, "lamp": lamp}}

    history = {"type": "history", "entry": {"kind": "call"}, "count": {"code": "011", "lookups": 0, "calls": 1}}
    call = {"type": "call", "call": {"call_id": "c1"}}
    removed = {"type": "kiosk_removed", "site": "s", "kiosk": "a"}
    batch = [row("a", "call"), call, history, row("b", "off"), row("a", "acknowledged"), removed, row("a", "off")]
    assert coalesced(batch) == [row("a", "acknowledged"), call, history, row("b", "off"), removed, row("a", "off")]
    flood = [row(f"k{n % 3}", f"p{n}") for n in range(1000)]
    assert coalesced(flood) == [row("k0", "p999"), row("k1", "p997"), row("k2", "p998")]


def test_a_call_is_handled_before_a_flood_of_events_already_waiting():
    from kiosk.console.hub import Hub

    class Loop:  # the server's event loop, as far as Hub.post uses it: callbacks queued in order
        def __init__(self):
            self.ready: list = []

        def call_soon_threadsafe(self, callback, *args):
            self.ready.append((callback, args))

    loop = Loop()
    hub = Hub(sites=["s1"], code_info=lambda code: {"known": False}, command_timeout=5,
              publish_command=lambda *a: True)
    hub.bind(loop)
    updates = hub.subscribe()
    for n in range(200):
        hub.post(EventMessage("s1", f"k{n}", {"id": f"e{n}", "kind": "lookup", "time": "2026-11-30T10:00:00+09:00",
                                             "data": {"code": "011"}}))
    hub.post(CallMessage("s1", "k9", {"call_id": "c1", "reason": "patient_request", "code": None,
                                       "audience": "patient", "since": None, "acknowledged": False}))
    callback, args = loop.ready[0]
    callback(*args)  # the first waiting message: the call is handled before it
    first = [updates.get_nowait()["type"] for _ in range(updates.qsize())]
    assert "call" in first and first.count("history") == 1
    for callback, args in loop.ready[1:]:
        callback(*args)
    rest = [updates.get_nowait()["type"] for _ in range(updates.qsize())]
    assert rest.count("history") == 199 and "call" not in rest  # nothing lost, the call handled once


def test_a_kiosk_row_is_resent_for_last_seen_alone_only_every_fifteen_seconds():
    state = ConsoleState()
    start = datetime(2026, 11, 30, 10, 0, tzinfo=timezone(timedelta(hours=9)))

    def event(n: int, seconds: float, kind: str = "heartbeat", data: dict | None = None) -> list[str]:
        updates = state.on_event((SITE, KIOSK), {"id": f"e{n}", "kind": kind, "time": start.isoformat(),
                                                 "data": {"backlog": None, **(data or {})}},
                                 start + timedelta(seconds=seconds))
        return [u["type"] for u in updates if u["type"] == "kiosk"]

    assert event(1, 0) == ["kiosk"]
    assert event(2, 1) == [] and event(3, 14) == []  # only last_seen moved
    assert event(4, 14.5, "lamp_status", {"pattern": "call"}) == ["kiosk"]  # anything else: at once
    assert event(5, 30) == ["kiosk"]  # and last_seen again after 15 s
    assert state.kiosks[(SITE, KIOSK)].last_seen == (start + timedelta(seconds=30)).isoformat(timespec="seconds")


def test_every_refusal_the_console_can_answer_has_its_text_in_both_languages():
    """`Refused("x", status)` / `CommandRefused("x", ...)` answer `{error, message}` with `error.x`: a router
    added without its text would answer 500 instead (recipe "add a console page/router" in docs/design.md)."""
    import re
    from pathlib import Path

    import kiosk.console

    source = "\n".join(p.read_text(encoding="utf-8") for p in Path(kiosk.console.__file__).parent.rglob("*.py"))
    errors = set(re.findall(r"Refused\(\s*\"([a-z_]+)\"", source)) | {"login_required", "session_expired"}
    assert {"csrf", "display_only", "unknown_kiosk"} <= errors  # the scan finds what it should
    strings = load_strings()
    for lang in ("ja", "en"):
        assert sorted(e for e in errors if f"error.{e}" not in strings[lang]) == [], lang
