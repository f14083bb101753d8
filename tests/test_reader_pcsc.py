"""The PC/SC back-end on a real pcscd + vpcd, with virtual cards that record every APDU they receive."""

from __future__ import annotations

import queue
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hardware.readers import apdu
from hardware.readers.atr import contactless_atr
from hardware.readers.cards import CardProfile
from hardware.readers.contract import Failure, Family, ProbeOptions, ReaderStatus, Removed
from hardware.readers.pcsc import PcscReader
from kiosk.precheck import CODES, Outcome, classify
from tests.rigs.pcsc import EXPECTED_OUTCOMES, reader_name, wait_until_empty

pytestmark = pytest.mark.pcsc

# What each card is asked: the whole probe for JPKI holders, SELECT JPKI only for others, nothing for
# FeliCa / MIFARE / storage / 住基 / mute items.
FULL_PROBE = [apdu.SELECT_JPKI, apdu.SELECT_TOKEN_EF, apdu.READ_TOKEN]
EXPECTED_WIRE = {
    "mynumber_card": FULL_PROBE,
    "android": FULL_PROBE,
    "iphone": FULL_PROBE,
    "credit_card": [apdu.SELECT_JPKI],
    "pulled_mid_exchange": [apdu.SELECT_JPKI],
    "transit_card": [],
    "mifare": [],
    "juki_card": [],
    "silent": [],
}


@pytest.fixture
def reader(pcscd, running_reader):
    running = running_reader(PcscReader(name="PCD 00 00"))
    assert running.wait_status(True) == ReaderStatus.ready(reader_name(0))
    return running


@pytest.mark.parametrize("preset", sorted(EXPECTED_WIRE))
def test_each_card_maps_to_its_outcome_and_receives_only_allowed_apdus(reader, virtual_card, preset):
    card = virtual_card(preset)
    observation = reader.next_observation()
    for expect, wanted in zip((None, "iphone", "android"), EXPECTED_OUTCOMES[preset], strict=True):
        verdict = classify(observation, expect)
        assert (verdict.outcome, verdict.code) == (wanted, CODES[Outcome(wanted)]), expect
    assert card.received == EXPECTED_WIRE[preset]
    assert set(card.received) <= apdu.ALLOWED
    card.remove()
    assert reader.wait_for(lambda e: isinstance(e, Removed)) == Removed()


def test_pulled_card_is_a_failed_exchange_not_an_absent_jpki(reader, virtual_card):
    virtual_card("pulled_mid_exchange")
    observation = reader.next_observation()
    assert observation.family is Family.ISO_DEP_B and observation.jpki_sw is None
    assert observation.failure in (Failure.REMOVED, Failure.TRANSPORT)


def test_flapping_is_one_item_only(pcscd, running_reader, virtual_card):
    running = running_reader(PcscReader(name="PCD 00 00", options=ProbeOptions(flap_window_seconds=10.0)))
    running.wait_status(True)
    card = virtual_card("mynumber_card", insert=False)
    observations = []
    for _ in range(3):
        card.insert()
        observations.append(running.next_observation())
        card.remove()
        running.wait_for(lambda e: isinstance(e, Removed))
    assert [o.presentations for o in observations] == [1, 2, 3]
    assert classify(observations[-1]).outcome is Outcome.UNREADABLE_CARD
    assert classify(observations[-1], "iphone").code == "021"
    assert "one_item_only" in classify(observations[-1]).hints
    assert set(card.received) <= apdu.ALLOWED


def test_reader_picked_by_name(pcscd, running_reader, virtual_card):
    running = running_reader(PcscReader(name="pcd 00 01"))  # case-insensitive substring
    assert running.wait_status(True).detail == reader_name(1)
    virtual_card("iphone", slot=1)
    assert classify(running.next_observation()).outcome is Outcome.SMARTPHONE_IPHONE


def test_no_matching_reader_is_reported_clearly(pcscd, running_reader):
    running = running_reader(PcscReader(name="RC-S300"))
    status = running.wait_status(False)
    assert "no card reader matching 'RC-S300'" in status.detail and reader_name(0) in status.detail


# The watchdog's window is 30 s (WatchdogSec); a healthy loop beats about once a second. Old 5 s waits fail here.
MAX_SILENCE_SECONDS = 3.5


def test_heartbeat_while_waiting_for_a_card_and_while_the_reader_is_missing(pcscd, reader, running_reader):
    missing = running_reader(PcscReader(name="RC-S300"))
    missing.wait_status(False)
    start = time.monotonic()
    time.sleep(6.0)
    end = time.monotonic()
    assert reader.longest_silence(start, end) < MAX_SILENCE_SECONDS
    assert missing.longest_silence(start, end) < MAX_SILENCE_SECONDS


def test_pcscd_restart_is_survived(pcscd, reader, virtual_card):
    pcscd.stop()
    assert "pcscd" in reader.wait_status(False).detail
    start = time.monotonic()
    time.sleep(4.0)
    assert reader.longest_silence(start, time.monotonic()) < MAX_SILENCE_SECONDS  # beats through the back-off
    pcscd.start()
    assert reader.wait_status(True, timeout=15).detail == reader_name(0)
    card = virtual_card("android")
    assert classify(reader.next_observation()).outcome is Outcome.SMARTPHONE_ANDROID
    assert card.received == FULL_PROBE


def test_card_on_the_reader_while_pcscd_restarts(pcscd, reader, virtual_card):
    card = virtual_card("mynumber_card")
    assert classify(reader.next_observation()).outcome is Outcome.MYNUMBER_CARD
    pcscd.stop()
    assert reader.wait_for(lambda e: isinstance(e, Removed)) == Removed()  # the item can no longer be seen
    reader.wait_status(False)
    card.remove()
    pcscd.start()
    reader.wait_status(True, timeout=15)
    card.insert()
    assert classify(reader.next_observation()).outcome is Outcome.MYNUMBER_CARD


def test_reader_started_before_pcscd_finds_it_later(pcscd, running_reader, virtual_card):
    pcscd.stop()
    running = running_reader(PcscReader(name="PCD 00 00"))
    assert running.wait_status(False).detail.startswith("pcscd is not running")
    pcscd.start()
    running.wait_status(True, timeout=15)
    virtual_card("credit_card")
    assert classify(running.next_observation()).code == "002"


def test_stop_returns_promptly_while_waiting(pcscd, running_reader):
    running = running_reader(PcscReader())
    running.wait_status(True)
    running.close(timeout=2.0)



@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    atr=st.one_of(
        st.binary(min_size=1, max_size=33),
        st.binary(max_size=12).map(lambda tail: bytes.fromhex("3B8880010000") + tail),  # Type B-like
        st.binary(max_size=15).map(lambda hist: contactless_atr(hist)),  # any contactless family
    ),
    jpki_sw=st.binary(min_size=0, max_size=4),
    token=st.one_of(st.none(), st.binary(max_size=40)),
)
def test_any_card_on_the_real_stack_gives_a_defined_outcome(reader, virtual_card, atr, jpki_sw, token):
    card = virtual_card(CardProfile("fuzz", atr, jpki_sw, token))
    try:
        observation = reader.next_observation(timeout=3)
    except queue.Empty:
        observation = None  # pcscd may refuse to power such a card: then nothing is presented
    if observation is not None:
        verdict = classify(observation)
        assert verdict.code == CODES[verdict.outcome]
    assert set(card.received) <= apdu.ALLOWED
    card.remove()
    wait_until_empty(0)
    assert reader.thread.is_alive()
