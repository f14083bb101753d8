"""Every event and retained call the patient flow produces is valid against docs/asyncapi.yaml.

Drives the real kiosk.flow state machine through pre-checks, lookups, calls, staff commands and outages, and
wraps each Emit / SetCall exactly as kiosk.link does before publishing.
"""

from kiosk import events
from kiosk.effects import Emit, SetCall
from kiosk.messages import CallButton, CardRemoved, Command, LookupEntered, ReaderChanged, ResetButton, Tap
from tests.rigs import contract
from tests.test_flow import NOT_MYNA, OK, UNREADABLE, Harness


def check(effects, seen):
    for effect in effects:
        if isinstance(effect, Emit):
            payload = events.envelope(effect.kind, effect.data, kiosk="k1", site="s1", seq=len(seen) + 1,
                                      catalogue_version="2025.1")
            contract.validate_event(payload)
            seen.append(effect.kind)
        elif isinstance(effect, SetCall) and effect.call is not None:
            contract.validate("OpenCall", events.call_payload(effect.call, kiosk="k1", site="s1"))
            seen.append("retained_call")


def command(name, **args):
    return Command(events.new_id(), name, args, reply=lambda answer: None)


def test_flow_emits_only_contract_payloads():
    h = Harness(failures_before_call=3)
    seen: list[str] = []
    check(h.effects, seen)
    for verdict in (OK, NOT_MYNA, UNREADABLE, UNREADABLE, UNREADABLE):
        check(h.present(verdict), seen)
        check(h.send(CardRemoved()), seen)
    check(h.send(ReaderChanged(False, "reader unplugged")), seen)
    check(h.send(ReaderChanged(True, "")), seen)
    call_id = h.flow.call.id if h.flow.call else None
    if call_id:
        check(h.send(command("acknowledge", call_id=call_id)), seen)
        check(h.send(command("resolve", call_id=call_id)), seen)
    check(h.send(Tap("lookup")), seen)
    for code in ("001", "013", "999", "950"):
        check(h.send(LookupEntered(code)), seen)
    check(h.send(CallButton()), seen)
    check(h.send(ResetButton()), seen)
    check(h.send(command("outage_enter", code="950")), seen)
    check(h.send(command("outage_leave")), seen)
    check(h.send(command("lamp_test", seconds=5)), seen)
    check(h.advance(120), seen)
    for kind in ("precheck", "lookup", "call", "call_acknowledged", "call_resolved", "outage_entered",
                 "outage_left", "reader_status", "lamp_status", "retained_call"):
        assert kind in seen, f"the drive never produced {kind}"
