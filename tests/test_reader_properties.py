"""The allow-list, the ATR and token parsers, the probe and the classifier under arbitrary input (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.readers import apdu
from hardware.readers.atr import contactless_atr, family_of
from hardware.readers.contract import CardGone, CardTransportError, Failure, Family, Observation, ProbeOptions
from hardware.readers.probe import PROBED_FAMILIES, observe, token_label
from kiosk.precheck import CODES, Outcome, classify

FORBIDDEN = {
    "GET DATA UID": "FFCA000000",
    "VERIFY (retries left)": "0020008000",
    "VERIFY with a PIN": "002000800431323334",
    "SELECT 券面AP": "00A4040C0AD392100031000101040802",
    "SELECT 券面事項入力補助AP": "00A4040C0AD392100031000101040208",
    "SELECT JPKI with FCI": "00A404000AD392F000260100000001",
    "SELECT certificate EF 000A": "00A4020C02000A",
    "READ BINARY beyond the token": "00B0000000",
    "READ BINARY at an offset": "00B0002020",
    "GET CHALLENGE": "0084000008",
}


@pytest.mark.parametrize("name", sorted(FORBIDDEN))
def test_forbidden_apdus_are_refused_before_the_wire(name):
    command = bytes.fromhex(FORBIDDEN[name])
    reached: list[bytes] = []
    send = apdu.guarded(lambda c: reached.append(c) or b"\x90\x00")
    with pytest.raises(apdu.ForbiddenApdu) as refused:
        send(command)
    assert reached == []
    assert command.hex() not in str(refused.value).lower()  # the refused bytes are not echoed


def test_allowed_apdus_pass_unchanged():
    reached: list[bytes] = []
    send = apdu.guarded(lambda c: reached.append(c) or b"\x90\x00")
    for command in (apdu.SELECT_JPKI, apdu.SELECT_TOKEN_EF, apdu.READ_TOKEN):
        assert send(command) == b"\x90\x00"
    assert reached == [apdu.SELECT_JPKI, apdu.SELECT_TOKEN_EF, apdu.READ_TOKEN]


@given(st.binary(max_size=300))
def test_any_other_bytes_are_refused(command):
    if command in apdu.ALLOWED:
        assert apdu.check(command) == command
    else:
        with pytest.raises(apdu.ForbiddenApdu):
            apdu.check(command)


@given(st.binary(max_size=64))
def test_any_atr_has_a_family(atr):
    assert isinstance(family_of(atr), Family)


def test_known_atr_families():
    assert family_of(bytes.fromhex("3B888001000005E0B381A1007F")) is Family.ISO_DEP_B
    assert family_of(bytes.fromhex("3B88800100004BE0B381A1003B")) is Family.ISO_DEP_B
    assert family_of(bytes.fromhex("3B88800100 4B51FF B381D1000F".replace(" ", ""))) is Family.ISO_DEP_B
    assert family_of(bytes.fromhex("3B888001000014E0B38191005E")) is Family.JUKI
    assert family_of(bytes.fromhex("3B8F8001804F0CA0000003061100" "3B0000000042")) is Family.FELICA
    assert family_of(bytes.fromhex("3B8C800104" "43FD0000000000000000000000")[:17]) is Family.FELICA
    assert family_of(contactless_atr(bytes.fromhex("804F0CA00000030603000100000000"))) is Family.MIFARE
    assert family_of(contactless_atr(bytes.fromhex("804F0CA00000030609000000000000"))) is Family.STORAGE
    assert family_of(contactless_atr(bytes.fromhex("8073C821C057597562694B"))) is Family.ISO_DEP_A
    assert family_of(bytes.fromhex("3BDA13FF8131FB468012392F31C173C601C03B")) is Family.OTHER  # a contact ATR
    assert family_of(bytes.fromhex("3BDB960080B1FE451F830012")) is Family.UNKNOWN  # 11 historical bytes missing
    assert family_of(b"") is Family.UNKNOWN and family_of(b"\x00") is Family.UNKNOWN


@given(st.binary(max_size=40))
def test_token_label_passes_only_jpki_type_strings(data):
    label = token_label(data)
    assert label == "other" or (label.startswith("JPKIAP") and label.isascii() and label.isprintable())
    assert len(label) <= 32


def test_token_label_strips_padding():
    assert token_label(b"JPKIAPICCTOKEN2".ljust(32, b" ")) == "JPKIAPICCTOKEN2"
    assert token_label(b"JPKIAPGPSETOKEN".ljust(32, b"\x00")) == "JPKIAPGPSETOKEN"
    assert token_label(b"123456789012") == "other"  # anything that could be a number never passes


# A card's answer to one command: a response, a removal or a transport error.
answers = st.one_of(
    st.binary(max_size=40),
    st.builds(lambda sw, data: data + sw, st.binary(min_size=2, max_size=2), st.binary(max_size=34)),
    st.sampled_from([b"\x90\x00", b"\x6a\x82", b"\x6d\x00"]),
    st.just(CardGone()),
    st.just(CardTransportError("boom")),
)


@settings(max_examples=300)
@given(
    atr=st.one_of(st.binary(max_size=24), st.sampled_from([bytes.fromhex("3B888001000005E0B381A1007F"),
                                                            contactless_atr(b"")])),
    script=st.lists(answers, max_size=4),
    read_token=st.booleans(),
    presentations=st.integers(min_value=1, max_value=10),
    expect=st.sampled_from([None, "card", "iphone", "android"]),
)
def test_any_card_behaviour_gives_a_defined_outcome(atr, script, read_token, presentations, expect):
    sent: list[bytes] = []
    answers_left = list(script)

    def transmit(command: bytes) -> bytes:
        sent.append(command)
        answer = answers_left.pop(0) if answers_left else b""
        if isinstance(answer, Exception):
            raise answer
        return answer

    family = family_of(atr)
    observation = observe(family, transmit, ProbeOptions(read_token=read_token), presentations)
    assert set(sent) <= apdu.ALLOWED
    if family not in PROBED_FAMILIES:
        assert sent == []
    verdict = classify(observation, expect)
    assert verdict.outcome in set(Outcome)
    assert verdict.code == CODES[verdict.outcome]
    assert verdict.outcome is not Outcome.NOTHING


@given(
    family=st.sampled_from(list(Family)),
    jpki_sw=st.one_of(st.none(), st.integers(min_value=-(2**20), max_value=2**20)),
    token=st.one_of(st.none(), st.text(max_size=40)),
    failure=st.sampled_from(list(Failure)),
    presentations=st.integers(min_value=-5, max_value=1000),
    elapsed_ms=st.floats(allow_nan=True, allow_infinity=True),
    expect=st.sampled_from([None, "card", "iphone", "android"]),
)
def test_any_observation_gives_a_defined_verdict(family, jpki_sw, token, failure, presentations, elapsed_ms, expect):
    observation = Observation(family, jpki_sw, token, failure, presentations, elapsed_ms)
    verdict = classify(observation, expect)
    assert verdict.code == CODES[verdict.outcome]
    assert (verdict.outcome is Outcome.NOTHING) == (family is Family.NONE)
    assert all(isinstance(h, str) for h in verdict.hints)
