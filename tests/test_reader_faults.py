"""Reader faults are the reader's: each becomes a reader status with a cause, never a patient outcome.

Produced for real where pcsc-lite can be made to misbehave (a second PC/SC client holding the card
exclusively, an unprivileged user whose pcscd socket is out of reach); scripted at pyscard's / nfcpy's driver
boundary otherwise (tests/rigs/scard_faults.py): transient UNAVAILABLE states, SCARD_F_COMM_ERROR, an unplug
racing the reader list, SCARD_E_NO_ACCESS, nfcpy's EBUSY / EACCES and devices it skips.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from hardware.readers.contract import Cause, Presented, ProbeOptions, ReaderError, ReaderStatus, Removed
from hardware.readers.nfc import NfcReader
from hardware.readers.pcsc import BLIP_SECONDS, PcscReader
from hardware.readers.registry import open_reader
from kiosk.config import ConfigError, load_config
from kiosk.doctor import DoctorTexts
from kiosk.precheck import Outcome, classify
from tests.rigs.pcsc import reader_name
from tests.rigs.scard_faults import fail, reader_state, without_reader

FULL_PROBE_LEN = 3
ROOT = Path(__file__).resolve().parent.parent


def _statuses_until(running, predicate, timeout=15.0) -> list:
    """Every event up to and including the first one satisfying `predicate`."""
    seen = []
    running.wait_for(lambda e: seen.append(e) or predicate(e), timeout)
    return seen


@contextlib.contextmanager
def exclusive_hold(slot: int = 0):
    """A second PC/SC client holding the card in `slot` with SCARD_SHARE_EXCLUSIVE (scdaemon does so)."""
    from smartcard import scard

    result, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    assert result == scard.SCARD_S_SUCCESS
    state = scard.SCARD_STATE_UNAWARE
    while not state & scard.SCARD_STATE_PRESENT:  # pcscd sees a new card within its 400 ms poll
        result, states = scard.SCardGetStatusChange(context, 5000, [(reader_name(slot), state)])
        assert result == scard.SCARD_S_SUCCESS, hex(result & 0xFFFFFFFF)
        state = states[0][1] & ~scard.SCARD_STATE_CHANGED
    result, card, _ = scard.SCardConnect(context, reader_name(slot), scard.SCARD_SHARE_EXCLUSIVE,
                                         scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
    assert result == scard.SCARD_S_SUCCESS, hex(result & 0xFFFFFFFF)
    try:
        yield
    finally:
        scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)
        scard.SCardReleaseContext(context)


# --- every cause has staff texts -----------------------------------------------------------------------------

@pytest.mark.parametrize("lang", ["ja", "en"])
def test_every_cause_has_a_staff_text_and_a_fix(lang):
    texts = json.loads((ROOT / "catalogue/locales" / lang / "staff.json").read_text(encoding="utf-8"))
    english = json.loads((ROOT / "catalogue/locales/en/staff.json").read_text(encoding="utf-8"))
    assert set(texts) == set(english)
    for cause in Cause:
        assert texts[f"reader.{cause}"], cause
        assert f"reader.{cause}.fix" in texts
    for key, text in texts.items():  # same placeholders in both languages
        assert sorted(_placeholders(text)) == sorted(_placeholders(english[key])), key


def _placeholders(text: str) -> list[str]:
    import string

    return [name for _, name, _, _ in string.Formatter().parse(text) if name]


def test_staff_texts_render_in_the_staff_language():
    ja = DoctorTexts("ja", name="staff.json")
    assert ja.get("reader.reader_busy", {"reader": "RC-S300"}) == "別のプログラムがリーダーを使用中です: RC-S300"
    en = DoctorTexts("en", name="staff.json")
    assert "polkit" in en.get("reader.service_refused.fix", {"user": "kiosk", "path": "/run/pcscd/pcscd.comm"})


# --- RC-S300 under nfcpy: refused when configured ------------------------------------------------------------

@pytest.mark.parametrize("path", ["usb:054c:0dc8", "usb:054c:0dc9"])
def test_nfc_for_an_rc_s300_is_refused_when_opened_and_when_the_config_loads(tmp_path, path):
    with pytest.raises(ReaderError) as refused:
        open_reader(f"nfc:{path}")
    assert refused.value.cause is Cause.UNSUPPORTED_MODEL and "backend = pcsc" in str(refused.value)
    config = tmp_path / "kiosk.toml"
    config.write_text(f'[reader]\nbackend = "nfc"\nnfc_path = "{path}"\n')
    with pytest.raises(ConfigError, match="works only with backend = pcsc"):
        load_config(config)
    config.write_text(f'[reader]\nbackend = "pcsc"\nnfc_path = "{path}"\n')  # nfc_path unused under pcsc
    load_config(config)


def test_precheck_refuses_nfc_for_an_rc_s300_with_the_cause(capsys):
    from kiosk.cli import main

    assert main(["precheck", "--reader", "nfc:usb:054c:0dc8", "--once", "--timeout", "1"]) == 4
    out, err = capsys.readouterr()
    assert out == ""
    assert "reader unsupported_model:" in err and "backend = pcsc" in err


# --- nfcpy: busy, no permission, devices it skips (scripted at nfcpy's device boundary) -----------------------

@pytest.mark.parametrize(("code", "cause"), [
    (errno.EBUSY, Cause.READER_BUSY), (errno.EACCES, Cause.NO_PERMISSION), (errno.EIO, Cause.COMM_ERROR)])
def test_nfc_device_errors_have_their_cause(running_reader, nfc_faults, code, cause):
    nfc_faults.device_error(code)
    status = running_reader(NfcReader("usb:054c:06c3")).wait_status(False)
    assert status.cause is cause and status.params["reader"] == "usb:054c:06c3"


def test_nfc_path_matching_an_rc_s300_says_so(running_reader, nfc_faults):
    nfc_faults.usb_devices([(0x054C, 0x0DC8, "001", "004")])
    status = running_reader(NfcReader("usb")).wait_status(False)
    assert status.cause is Cause.UNSUPPORTED_MODEL and status.params["model"] == "RC-S300"


def test_nfc_reader_nfcpy_skipped_for_permissions_says_so(running_reader, nfc_faults):
    nfc_faults.usb_devices([(0x054C, 0x06C3, "999", "999")])  # no such node: not accessible
    status = running_reader(NfcReader("usb")).wait_status(False)
    assert status.cause is Cause.NO_PERMISSION


def test_nfc_nothing_plugged_in_is_missing(running_reader, nfc_faults):
    nfc_faults.usb_devices([])
    assert running_reader(NfcReader("usb")).wait_status(False).cause is Cause.READER_MISSING


# --- PC/SC: a sharing violation, for real ---------------------------------------------------------------------

@pytest.mark.pcsc
def test_card_held_exclusively_by_another_program_is_the_readers_fault(pcscd, running_reader, virtual_card):
    card = virtual_card("mynumber_card")
    with exclusive_hold():
        running = running_reader(PcscReader(name="PCD 00 00"))
        busy = running.wait_for(lambda e: isinstance(e, ReaderStatus) and not e.available)
        assert busy.cause is Cause.READER_BUSY and busy.params == {"reader": reader_name(0)}
    seen = _statuses_until(running, lambda e: isinstance(e, Presented))
    assert seen[-2] == ReaderStatus.ready(reader_name(0))  # the reader is back before the item is read
    observation = seen[-1].observation
    assert classify(observation).outcome is Outcome.MYNUMBER_CARD and observation.presentations == 1
    assert not any(isinstance(e, Presented) for e in seen[:-1])  # nothing reached the patient meanwhile
    assert len(card.received) == FULL_PROBE_LEN


@pytest.mark.pcsc
def test_sharing_violation_at_connect_is_retried_as_the_same_presentation(pcscd, running_reader, virtual_card,
                                                                          scard_faults):
    from smartcard import scard

    running = running_reader(PcscReader(name="PCD 00 00"))
    running.wait_status(True)
    scard_faults.add("SCardConnect", fail(scard.SCARD_E_SHARING_VIOLATION))
    virtual_card("mynumber_card")
    assert running.wait_status(False).cause is Cause.READER_BUSY
    seen = _statuses_until(running, lambda e: isinstance(e, Presented))
    assert seen[-1].observation.presentations == 1
    assert classify(seen[-1].observation).outcome is Outcome.MYNUMBER_CARD


@pytest.mark.pcsc
def test_precheck_with_a_busy_reader_exits_4_with_the_cause_and_no_outcome(pcscd, virtual_card, capsys):
    from kiosk.cli import main

    virtual_card("mynumber_card")
    with exclusive_hold():
        status = main(["precheck", "--reader", "pcsc", "--reader-name", "PCD 00 00", "--once", "--json",
                       "--timeout", "4"])
    out, err = capsys.readouterr()
    assert status == 4 and out == ""
    assert "reader reader_busy: 別のプログラムがリーダーを使用中です" in err  # [console] language: ja by default


# --- PC/SC: transient states and communication errors (scripted) ---------------------------------------------

@pytest.mark.pcsc
def test_blips_while_a_card_lies_still_are_neither_a_removal_nor_a_presentation(pcscd, running_reader,
                                                                                virtual_card, scard_faults):
    from smartcard import scard

    running = running_reader(PcscReader(name="PCD 00 00", options=ProbeOptions(flap_window_seconds=60.0)))
    running.wait_status(True)
    card = virtual_card("mynumber_card")
    assert running.next_observation().presentations == 1
    blip = scard.SCARD_STATE_UNAVAILABLE | scard.SCARD_STATE_EXCLUSIVE | scard.SCARD_STATE_CHANGED
    for _ in range(2):  # two blips within the flap window: once made a well-placed card "one item only"
        scard_faults.add("SCardGetStatusChange", reader_state(blip))
    scard_faults.wait_met("SCardGetStatusChange")  # met within WAIT_MS: the reader asks pcscd again each second
    card.remove()
    seen = _statuses_until(running, lambda e: isinstance(e, Removed))
    assert seen == [Removed()]  # no made-up removal, no re-read, no status flicker
    assert len(card.received) == FULL_PROBE_LEN
    card.insert()
    assert running.next_observation().presentations == 2  # the blips were not counted


@pytest.mark.pcsc
def test_a_reader_unavailable_longer_than_a_blip_is_reported_then_recovers(pcscd, running_reader, virtual_card,
                                                                           scard_faults):
    from smartcard import scard

    running = running_reader(PcscReader(name="PCD 00 00"))
    running.wait_status(True)
    card = virtual_card("mynumber_card")
    running.next_observation()
    stuck = scard.SCARD_STATE_UNAVAILABLE | scard.SCARD_STATE_CHANGED
    scard_faults.add("SCardGetStatusChange", reader_state(stuck, pause=0.2), times=int(BLIP_SECONDS / 0.2) + 5)
    status = running.wait_status(False)
    assert status.cause is Cause.READER_UNAVAILABLE
    seen = _statuses_until(running, lambda e: isinstance(e, ReaderStatus) and e.available)
    assert not any(isinstance(e, Presented | Removed) for e in seen)
    card.remove()
    assert running.wait_for(lambda e: isinstance(e, Removed | Presented)) == Removed()


@pytest.mark.pcsc
def test_comm_error_mid_exchange_is_the_readers_and_the_card_is_read_once_it_talks(pcscd, running_reader,
                                                                                   virtual_card, scard_faults):
    from smartcard import scard

    running = running_reader(PcscReader(name="PCD 00 00"))
    running.wait_status(True)
    scard_faults.add("SCardTransmit", fail(scard.SCARD_F_COMM_ERROR))
    card = virtual_card("mynumber_card")
    fault = running.wait_status(False)
    assert fault.cause is Cause.COMM_ERROR
    seen = _statuses_until(running, lambda e: isinstance(e, Presented))
    assert not any(isinstance(e, Removed) for e in seen)
    observation = seen[-1].observation
    assert classify(observation).outcome is Outcome.MYNUMBER_CARD and observation.presentations == 1
    assert len(card.received) == FULL_PROBE_LEN  # the failed exchange never reached the card


@pytest.mark.pcsc
def test_unplug_is_confirmed_by_listing_the_readers(pcscd, running_reader, scard_faults):
    from smartcard import scard

    running = running_reader(PcscReader(name="PCD 00 00"))
    running.wait_status(True)
    # pcscd still lists the reader when the first error comes: a blip, not an unplug, not "pcscd stopped"
    scard_faults.add("SCardGetStatusChange", fail(scard.SCARD_E_UNKNOWN_READER))
    scard_faults.add("SCardGetStatusChange", fail(scard.SCARD_E_READER_UNAVAILABLE))
    scard_faults.add("SCardListReaders", lambda real, *a: real(*a))  # the first listing: still there
    scard_faults.add("SCardListReaders", without_reader("PCD 00 00"), times=4)  # then gone
    seen = _statuses_until(running, lambda e: isinstance(e, ReaderStatus) and e.available)
    lost = [e for e in seen if isinstance(e, ReaderStatus) and not e.available]
    assert lost and lost[0].cause is Cause.READER_UNPLUGGED and lost[0].params == {"reader": reader_name(0)}
    assert all(e.cause is Cause.READER_UNPLUGGED for e in lost)  # never "pcscd stopped", never "none found"


@pytest.mark.pcsc
def test_pcscd_saying_no_access_is_a_refusal(pcscd, running_reader, scard_faults):
    from smartcard import scard

    scard_faults.add("SCardEstablishContext", fail(scard.SCARD_E_NO_ACCESS))
    status = running_reader(PcscReader(name="PCD 00 00")).wait_status(False)
    assert status.cause is Cause.SERVICE_REFUSED and status.params["user"]


# --- PC/SC: a refusal, for real: an unprivileged user whose pcscd socket is out of reach ---------------------

@pytest.mark.pcsc
def test_precheck_as_a_user_pcscd_refuses_exits_4_with_the_cause(pcscd, request):
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    shared = Path(tempfile.mkdtemp(prefix="kiosk-refusal-"))  # pytest's tmp_path is root-only all the way up
    request.addfinalizer(lambda: shutil.rmtree(shared, ignore_errors=True))
    shared.chmod(0o755)
    hidden = shared / "pcscd-private"
    hidden.mkdir(mode=0o700)  # root only: user nobody may not reach the socket inside
    os.symlink("/run/pcscd/pcscd.comm", hidden / "pcscd.comm")
    config = shared / "kiosk.toml"
    config.write_text('[reader]\nbackend = "pcsc"\n')
    config.chmod(0o644)
    env = {**os.environ, "PCSCLITE_CSOCK_NAME": str(hidden / "pcscd.comm"), "HOME": str(shared)}
    done = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-c",
         "import sys; from kiosk.cli import main; sys.exit(main(sys.argv[1:]))",
         "--config", str(config), "precheck", "--once", "--timeout", "5"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 4, done.stderr
    assert done.stdout == ""
    assert "reader service_refused: pcscd がユーザー nobody のアクセスを拒否しました" in done.stderr
    assert "pcscd refused access to user nobody" in done.stderr
    assert "not running" not in done.stderr
