"""The nfcpy back-end through nfcpy's real stack and its `udp` driver, against cards emulated in the tests."""

from __future__ import annotations

import logging

import pytest

from hardware.readers import apdu
from hardware.readers.contract import Family, ReaderStatus, Removed
from hardware.readers.nfc import NfcReader
from hardware.readers.registry import open_reader
from kiosk.precheck import Outcome, classify
from tests.rigs.nfc_udp import IDM_PMM, PUPI, UID

pytest.importorskip("nfc", reason="nfcpy is not installed")

FULL_PROBE = [apdu.SELECT_JPKI, apdu.SELECT_TOKEN_EF, apdu.READ_TOKEN]


def start(running_reader, card):
    running = running_reader(NfcReader(card.path, technologies=(card.technology,)))
    assert running.wait_status(True) == ReaderStatus.ready(f"NFC reader {card.path}")
    return running


@pytest.mark.parametrize(
    ("kind", "preset", "family", "outcome", "wire"),
    [
        ("type_4b", "mynumber_card", Family.ISO_DEP_B, Outcome.MYNUMBER_CARD, FULL_PROBE),
        ("type_4a", "iphone", Family.ISO_DEP_A, Outcome.SMARTPHONE_IPHONE, FULL_PROBE),
        ("type_4a", "android", Family.ISO_DEP_A, Outcome.SMARTPHONE_ANDROID, FULL_PROBE),
        ("type_4a", "credit_card", Family.ISO_DEP_A, Outcome.NOT_MYNUMBER, [apdu.SELECT_JPKI]),
        ("felica", "transit_card", Family.FELICA, Outcome.NOT_MYNUMBER, []),
        ("type_a", "mifare", Family.MIFARE, Outcome.NOT_MYNUMBER, []),
    ],
)
def test_emulated_cards(running_reader, udp_card, kind, preset, family, outcome, wire):
    card = udp_card(kind, preset)
    running = start(running_reader, card)
    observation = running.next_observation()
    assert observation.family is family
    assert classify(observation).outcome is outcome
    assert card.received == wire
    card.remove()
    assert running.wait_for(lambda e: isinstance(e, Removed)) == Removed()


def test_juki_card_over_type_b_is_not_probed(running_reader, udp_card):
    card = udp_card("type_4b", "juki_card", app_data_proto=bytes.fromhex("000014E0B38191"))
    observation = start(running_reader, card).next_observation()
    assert observation.family is Family.JUKI and classify(observation).code == "002"
    assert card.received == []


def test_card_presented_again_after_removal(running_reader, udp_card):
    card = udp_card("type_4b", "mynumber_card")
    running = start(running_reader, card)
    running.next_observation()
    card.remove()
    running.wait_for(lambda e: isinstance(e, Removed))
    card.insert()
    second = running.next_observation()
    assert second.presentations == 2 and classify(second, "iphone").code == "020"


def test_nfc_logs_carry_no_identifiers(running_reader, udp_card, caplog):
    caplog.set_level(logging.DEBUG)
    logging.getLogger("nfc").setLevel(logging.DEBUG)  # as someone debugging might: the reader pins it back
    logging.getLogger("nfc.clf").setLevel(logging.DEBUG)
    card = udp_card("type_4b", "mynumber_card")
    running = start(running_reader, card)
    running.next_observation()
    card.remove()
    running.wait_for(lambda e: isinstance(e, Removed))
    assert logging.getLogger("nfc").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("nfc.clf.udp").getEffectiveLevel() == logging.WARNING
    text = caplog.text.lower()
    for identifier in (PUPI, UID, IDM_PMM[:8]):
        assert identifier.hex() not in text


def test_missing_device_is_reported(running_reader):
    running = running_reader(open_reader("nfc:usb:ffff:ffff"))
    status = running.wait_status(False)
    assert status.detail == "no NFC reader found at 'usb:ffff:ffff'; plug one in"


def test_bad_device_path_is_reported(running_reader):
    status = running_reader(open_reader("nfc:udp:127.0.0.1:discard")).wait_status(False)
    assert "is not an nfcpy device path" in status.detail
