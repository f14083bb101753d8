"""kiosk.events: every payload the builders make is valid against docs/asyncapi.yaml; commands are strict."""

import json

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk import events
from kiosk.effects import Call
from tests.rigs import contract

SAMPLE_DATA = {
    "precheck": {"outcome": "smartphone_iphone", "code": None, "hints": ["move_closer"]},
    "lookup": {"code": "012", "known": True, "audience": "patient", "outage": False},
    "call": {"call_id": "c1", "reason": "patient_request", "code": None, "audience": "patient",
             "consoles_online": 0},
    "call_escalated": {"call_id": "c1", "reason": "staff_code", "code": "101", "audience": "staff", "level": 2,
                       "waited_seconds": 180, "consoles_online": None},
    "call_acknowledged": {"call_id": "c1", "reason": "staff_code", "code": "101", "audience": "staff",
                          "by": "console"},
    "call_resolved": {"call_id": "c1", "reason": "outage", "code": "101", "audience": "staff", "by": "button"},
    "outage_entered": {"code": "101", "source": "lookup"},
    "outage_left": {"source": "staff"},
    "reader_status": {"available": False, "detail": "no reader"},
    "lamp_status": {"pattern": "off"},
    "heartbeat": {"uptime_seconds": 12.5, "outbox": {"backlog": 0, "dropped": 0, "refused": 0, "last_error": None}},
    "outbox_dropped": {"count": 3, "by_kind": {"heartbeat": 3}, "total": 7},
    "outbox_recovered": {"salvaged": 2987, "lost": 13, "cause": "damaged",
                         "kept_as": "outbox.sqlite3.unreadable-20250101T093000"},
}


def test_every_kind_has_a_schema_and_sample():
    assert set(SAMPLE_DATA) == set(events.EVENT_KINDS) == set(events.PRIORITY)


@pytest.mark.parametrize("kind", events.EVENT_KINDS)
def test_envelope_valid_for_every_kind(kind):
    payload = events.envelope(kind, SAMPLE_DATA[kind], kiosk="k-1", site="s1", seq=7, catalogue_version="2025.1")
    contract.validate_event(json.loads(events.encode(payload)))
    assert payload["time"][-6] in "+-" or payload["time"].endswith("Z")


def test_schema_refuses_an_identifier_smuggled_into_data():
    payload = events.envelope("precheck", {**SAMPLE_DATA["precheck"], "uid": "04A1B2"}, kiosk="k", site="s",
                              seq=1, catalogue_version="v")
    with pytest.raises(jsonschema.ValidationError):
        contract.validate_event(payload)


def test_unknown_kind_is_a_programming_error():
    with pytest.raises(ValueError):
        events.envelope("nope", {}, kiosk="k", site="s", seq=1, catalogue_version="v")


def test_status_and_call_payloads_valid():
    for online in (True, False):
        contract.validate("Status", events.status_payload(online, kiosk="k", site="s", catalogue_version="v",
                                                          details={"reason": "stopped"}))
    call = Call(id="c9", reason="repeated_failures", code=None, audience="patient", since=events.timestamp())
    contract.validate("OpenCall", events.call_payload(call, kiosk="k", site="s"))
    escalated = Call(id="c9", reason="patient_request", code=None, audience="patient", since=events.timestamp(),
                     escalation=events.SENT_TO_DESK)
    contract.validate("OpenCall", events.call_payload(escalated, kiosk="k", site="s"))
    state = events.kiosk_state(reader_available=True, reader_detail="", lamp="no_console", outage=False,
                               outage_code=None, consoles_online=0)
    contract.validate("Status", events.status_payload(True, kiosk="k", site="s", catalogue_version="v",
                                                      details=state))


def test_console_presence_topics_payloads_and_the_reserved_words():
    topic = events.presence_topic("kiosk", "site-1", "console-1a2b")
    assert topic == "kiosk/site-1/console/console-1a2b/status"
    assert events.parse_presence_topic("kiosk", topic) == ("site-1", "console-1a2b")
    assert events.parse_presence_topic("a/b", "a/b/s/console/c/status") == ("s", "c")
    for other in ("kiosk/site-1/k1/status", "kiosk/site-1/console/status", "kiosk/s/console/c/call",
                  "other/s/console/c/status", "kiosk/s/console/c/status/x"):
        assert events.parse_presence_topic("kiosk", other) is None, other
    # a kiosk-topic parser never takes a console (or the reply tree) for a kiosk
    assert events.parse_topic("kiosk", topic) is None
    assert events.parse_topic("kiosk", "kiosk/site-1/console/status") is None
    assert events.parse_topic("kiosk", "kiosk/site-1/reply/to/x") is None
    for online in (True, False):
        for role, sites, listeners in (("console", ["site-1", "site-2"], 2), ("watch", [events.ANY_SITE], 1),
                                       ("console", ["site-1"], 0)):
            payload = events.presence_payload(online, console="console-1a2b", sites=sites, role=role,
                                              listeners=listeners)
            contract.validate("ConsolePresence", payload)
            state = events.presence_of(events.encode(payload), "site-1")
            assert state == (online, tuple(sites), listeners if online else 0)
            assert state.listening == (online and listeners > 0)  # online with nobody to hear it: not counted
    assert events.presence_of(b"", "site-1") == (False, ("site-1",), 0)
    assert events.presence_of(b"\xff", "s") is None and events.presence_of(b"[]", "s") is None
    # no sites: the topic's site; no listeners (a client that does not count them): one while online
    assert events.presence_of(b'{"state": "online"}', "s") == (True, ("s",), 1)
    assert events.presence_of(b'{"state": "online", "sites": "x"}', "s") == (True, ("s",), 1)
    for bad in (b'-1', b'"2"', b'true', b'1.5'):
        assert events.presence_of(b'{"state": "online", "listeners": ' + bad + b'}', "s") is None, bad
    assert events.listens_to(("site-1",), "site-1") and events.listens_to(("+",), "any")
    assert not events.listens_to(("site-2",), "site-1")


def test_topics():
    topics = events.Topics("kiosk", "site-1", "k1")
    assert topics.event("call") == "kiosk/site-1/k1/event/call"
    assert (topics.status, topics.call, topics.cmd) == ("kiosk/site-1/k1/status", "kiosk/site-1/k1/call",
                                                        "kiosk/site-1/k1/cmd")
    assert events.reply_topic("kiosk", "site-1", "console") == "kiosk/site-1/reply/to/console"
    assert events.parse_topic("kiosk", "kiosk/site-1/k1/event/call") == ("site-1", "k1", "event/call")
    assert events.parse_topic("kiosk", "other/site-1/k1/status") is None
    assert events.subscription("kiosk", what="call") == "kiosk/+/+/call"


def test_only_a_concrete_reply_topic_of_the_own_site_is_answered():
    topics = events.Topics("kiosk", "site-1", "k1")
    assert topics.valid_response_topic("kiosk/site-1/reply/to/console-ab12")
    for topic in (None, "", "kiosk/site-1/reply/to/", "kiosk/site-1/reply/to/+", "kiosk/site-1/reply/to/#",
                  "kiosk/site-1/reply/#", "kiosk/site-1/reply/console", "kiosk/site-1/reply/to/a/b",
                  "kiosk/site-2/reply/to/console", "other/site-1/reply/to/console", "kiosk/+/reply/to/console",
                  "kiosk/site-1/k2/status", "kiosk/site-1/reply/to/" + "a" * 65, "kiosk/site-1/reply/to/a b"):
        assert not topics.valid_response_topic(topic), topic


@pytest.mark.parametrize("raw,code", [
    (b"[" * 17 + b"]" * 17, "invalid"), (b"[" * 60_000, "invalid"), (b'{"a":' * 5_000, "invalid"),
    (b"x" * (events.MAX_PAYLOAD_BYTES + 1), "too_large"), (b"{not json", "not_json"), (b"\xff\xfe", "not_json"),
])
def test_load_payload_checks_size_and_nesting_before_parsing(raw, code):
    with pytest.raises(events.PayloadError) as refused:
        events.load_payload(raw)
    assert refused.value.code == code


def test_load_payload_counts_only_real_brackets():
    deep_string = json.dumps({"text": "[" * 1000 + "{" * 1000, "escaped": '\\"[[[['}).encode()
    assert events.load_payload(deep_string)["text"].startswith("[[[")
    assert events.json_depth(b"[" * 16 + b"]" * 16) == 16 and events.load_payload(b"[" * 16 + b"]" * 16)
    assert events.presence_of(b"[" * 3_000, "s1") is None  # presences too: never a RecursionError


@pytest.mark.parametrize("name,args", [("acknowledge", {"call_id": "c1"}), ("resolve", {"call_id": "c1"}),
                                       ("lamp_test", {"seconds": 3}), ("lamp_test", {}),
                                       ("reload_catalogue", {}), ("outage_enter", {"code": "101"}),
                                       ("outage_enter", {}), ("outage_leave", {})])
def test_good_commands_accepted_by_parser_and_schema(name, args):
    payload = events.command_payload(name, args, kiosk="k1")
    contract.validate("Command", payload)
    parsed = events.parse_command(events.encode(payload), "k1")
    assert (parsed.id, parsed.name) == (payload["id"], name)


BAD = [
    (b"x" * 5000, events.TOO_LARGE),
    (b"{not json", events.NOT_JSON),
    (b"\xff\xfe", events.NOT_JSON),
    (b"[1,2]", events.INVALID),
    (b'{"id": "a", "name": "lamp_test"}', events.INVALID),
    (events.encode(events.command_payload("self_destruct", {}, kiosk="k1")), events.UNKNOWN_COMMAND),
    (events.encode(events.command_payload("lamp_test", {}, kiosk="k2")), events.WRONG_KIOSK),
    (events.encode(events.command_payload("acknowledge", {}, kiosk="k1")), events.INVALID),
    (events.encode(events.command_payload("lamp_test", {"seconds": 999}, kiosk="k1")), events.INVALID),
    (events.encode(events.command_payload("lamp_test", {"seconds": "3"}, kiosk="k1")), events.INVALID),
    (events.encode(events.command_payload("outage_leave", {"x": 1}, kiosk="k1")), events.INVALID),
    (events.encode({**events.command_payload("outage_leave", kiosk="k1"), "extra": 1}), events.INVALID),
]


@pytest.mark.parametrize("raw,code", BAD)
def test_bad_commands_refused_with_code(raw, code):
    with pytest.raises(events.CommandError) as caught:
        events.parse_command(raw, "k1")
    assert caught.value.code == code
    response = events.response_payload(caught.value.command_id, False, caught.value.detail, kiosk="k1",
                                        error=caught.value.code)
    contract.validate("CommandResponse", response)


@settings(deadline=None)  # a loaded CI machine must not turn slowness into a failure
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode)
       | st.dictionaries(st.sampled_from(["id", "name", "kiosk", "args", "time", "x"]),
                         st.none() | st.integers() | st.text(max_size=20) | st.dictionaries(st.text(max_size=8),
                                                                                          st.integers()),
                         max_size=6).map(lambda d: json.dumps(d).encode()))
def test_parser_never_crashes_and_agrees_with_schema(raw):
    try:
        parsed = events.parse_command(raw, "k1")
    except events.CommandError:
        return
    contract.validate("Command", json.loads(raw))  # whatever the parser accepts, the contract accepts
    assert parsed.name in events.COMMAND_NAMES


def test_ok_response_valid():
    contract.validate("CommandResponse", events.response_payload("c1", True, "done", kiosk="k1"))


def test_asyncapi_document_is_valid_asyncapi_3():
    """Against the official AsyncAPI 3.0.0 JSON Schema (from npm @asyncapi/specs 6.11.1, Apache-2.0, vendored)."""
    import gzip
    from pathlib import Path

    import yaml

    official = json.loads(gzip.decompress((Path(contract.__file__).parent / "asyncapi-3.0.0.schema.json.gz")
                                          .read_bytes()))
    document = yaml.safe_load(contract.ASYNCAPI.read_text(encoding="utf-8"))
    problems = [f"{list(e.absolute_path)}: {e.message[:200]}"
                for e in jsonschema.Draft7Validator(official).iter_errors(document)]
    assert problems == []
    assert set(document["channels"]["event"]["parameters"]["kind"]["enum"]) == set(events.EVENT_KINDS)
    assert set(document["channels"]["event"]["messages"]) == set(events.EVENT_KINDS)


def test_the_published_command_names_and_arguments_are_the_code_s():
    """A new command is added to events.COMMAND_NAMES / COMMAND_ARGS and to the contract's Command schema together:
    same names, and every name has its `args` rule there (a command without one would accept any args)."""
    import yaml

    command = yaml.safe_load(contract.ASYNCAPI.read_text(encoding="utf-8"))["components"]["schemas"]["Command"]
    assert set(command["properties"]["name"]["enum"]) == set(events.COMMAND_NAMES) == set(events.COMMAND_ARGS)
    ruled = [rule["if"]["properties"]["name"] for rule in command["allOf"]]
    names = [name for rule in ruled for name in rule.get("enum", [rule.get("const")])]
    assert sorted(names) == sorted(events.COMMAND_NAMES)  # each command's args rule once
