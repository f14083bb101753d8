"""hardware.readers.atr against a corpus nobody here wrote: every ATR of pcsc-tools' smartcard_list.txt
(thousands of real cards, labelled by the people who met them), wildcards filled several ways."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from hardware.readers.atr import contactless_atr, family_of, is_contactless
from hardware.readers.contract import Family, ProbeOptions
from hardware.readers.probe import PROBED_FAMILIES, observe

CORPUS = Path("/usr/share/pcsc/smartcard_list.txt")
FELICA_LABEL = re.compile(r"felica|suica|pasmo|icoca", re.IGNORECASE)
MIFARE_LABEL = re.compile(r"mifare", re.IGNORECASE)
# Labelled MIFARE but ISO 14443-4 smart cards (Java Card / JCOP, with MIFARE emulation on the side): they get
# the allowed SELECT JPKI like any ISO-DEP card (a phone's secure element presents the same way) and end as
# "not a My Number card". Listed by label so a new corpus entry must be looked at, not silently accepted.
MIFARE_LABELLED_JAVA_CARDS = re.compile(r"JCOP|Fidesmo|ProX|mifare \(Transport\)", re.IGNORECASE)
# "RFID - FeliCa compatible" on an entry whose standard byte is 0x10, ISO 7816-10 3WBP (a contact storage
# card, as the same entry's second label says): a storage card, no APDU.
FELICA_LABELLED_OTHER_STANDARD = re.compile(r"3WBP", re.IGNORECASE)


def corpus() -> list[tuple[str, str]]:
    """(ATR pattern, label) for every entry of the list."""
    if not CORPUS.exists():
        pytest.skip("pcsc-tools is not installed (tests/debian-packages.txt lists it)")
    entries: list[tuple[str, list[str]]] = []
    for line in CORPUS.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if not line[0].isspace():
            entries.append((line.strip(), []))
        elif entries:
            entries[-1][1].append(line.strip())
    return [(atr, " ".join(label)) for atr, label in entries]


def fillings(pattern: str, seed: int) -> list[bytes]:
    """Concrete ATRs for a pattern (regex over hex digits: '.', '.*', '[..]' classes with ranges/commas): lowest
    choices, highest choices, two seeded random fillings; contactless ones also with their TCK recomputed."""
    tokens: list[list[str]] = []
    at = 0
    text = pattern.replace(" ", "")
    while at < len(text):
        char = text[at]
        if text.startswith(".*", at):  # any number of bytes: none, or one 00..FF byte
            tokens.append(["", "00", "FF"])
            at += 1
        elif char == ".":
            tokens.append(list("0123456789ABCDEF"))
        elif char == "[":
            end = text.index("]", at)
            choices: list[str] = []
            body = text[at + 1:end].replace(",", "")
            i = 0
            while i < len(body):
                if i + 2 < len(body) and body[i + 1] == "-":
                    choices += [f"{n:X}" for n in range(int(body[i], 16), int(body[i + 2], 16) + 1)]
                    i += 3
                else:
                    choices.append(body[i])
                    i += 1
            tokens.append(choices)
            at = end
        else:
            tokens.append([char])
        at += 1
    rng = random.Random(seed)
    picks = [[t[0] for t in tokens], [t[-1] for t in tokens],
             [rng.choice(t) for t in tokens], [rng.choice(t) for t in tokens]]
    atrs = [bytes.fromhex(hex_) for hex_ in ("".join(p) for p in picks) if len(hex_) % 2 == 0]
    atrs += [contactless_atr(atr[4:-1]) for atr in atrs if is_contactless(atr) and len(atr) > 5]
    return atrs


def probed(atr: bytes) -> list[bytes]:
    """The APDUs the probe would send to an item with this ATR (a card answering 6A 82 to everything)."""
    sent: list[bytes] = []
    observe(family_of(atr), lambda command: sent.append(command) or b"\x6a\x82", ProbeOptions(read_token=True))
    return sent


def test_every_corpus_atr_parses_without_exception():
    entries = corpus()
    assert len(entries) > 3000
    count = 0
    for n, (pattern, _) in enumerate(entries):
        for atr in fillings(pattern, n):
            assert isinstance(family_of(atr), Family), pattern
            count += 1
    assert count > 4 * len(entries) * 0.95


def test_felica_and_mifare_labelled_entries_classify_as_such_and_get_no_apdu():
    checked = {Family.FELICA: 0, Family.MIFARE: 0}
    for n, (pattern, label) in enumerate(corpus()):
        if not pattern.startswith("3B 8") or not re.match(r"3B 8. 80 01", pattern):
            continue  # contact interfaces of dual cards: the reader here is contactless
        if FELICA_LABEL.search(label) and not FELICA_LABELLED_OTHER_STANDARD.search(label):
            expected = Family.FELICA
        elif MIFARE_LABEL.search(label) and not MIFARE_LABELLED_JAVA_CARDS.search(label):
            expected = Family.MIFARE
        else:
            continue
        for atr in fillings(pattern, n):
            assert family_of(atr) is expected, (pattern, label)
            assert probed(atr) == [], (pattern, label)
        checked[expected] += 1
    assert checked[Family.FELICA] >= 3 and checked[Family.MIFARE] >= 15


def test_malformed_contactless_atrs_are_unknown_and_get_no_apdu():
    for n, (pattern, _) in enumerate(corpus()):
        for atr in fillings(pattern, n):
            if not is_contactless(atr):
                continue
            for broken in (atr[:-1], atr[:-2], atr + b"\x00", atr[:4]):
                if len(broken) == 4 + (broken[1] & 0x0F) + 1:
                    continue  # happens to be well-formed again
                assert family_of(broken) is Family.UNKNOWN, broken.hex()
                assert probed(broken) == []


@pytest.mark.parametrize(("atr", "family"), [
    # FeliCa by its card name 00 3B, whatever the standard byte
    ("3B 8F 80 01 80 4F 0C A0 00 00 03 06 00 00 3B 00 00 00 00 69", Family.FELICA),
    ("3B 8F 80 01 80 4F 0C A0 00 00 03 06 11 00 3B 00 00 00 00 42", Family.FELICA),  # Suica, PASMO, ICOCA
    # a truncated FeliCa ATR is malformed: unknown, and it must receive nothing (was "other" + SELECT JPKI)
    ("3B 8F 80 01 80 4F 0C A0 00 00 03 06 11 00 3B", Family.UNKNOWN),
    # NXP JCOP: 8 historical bytes, but ATS historical bytes ("JCOPv241") of a Type A card, not an ATQB
    ("3B 88 80 01 4A 43 4F 50 76 32 34 31 5E", Family.ISO_DEP_A),
    # My Number cards (Type B: ATQB application data + protocol info B3 81 A1 / D1 + MBLI 00)
    ("3B 88 80 01 00 00 05 E0 B3 81 A1 00 7F", Family.ISO_DEP_B),
    ("3B 88 80 01 00 00 41 E0 B3 81 A1 00 3B", Family.ISO_DEP_B),
    ("3B 88 80 01 00 4B 51 FF B3 81 D1 00 0F", Family.ISO_DEP_B),
    # 住基カード (the Basic Resident Registration card): Type B with protocol info B3 81 91
    ("3B 88 80 01 00 00 14 E0 B3 81 91 00 5E", Family.JUKI),
    # MIFARE Classic 1K / Ultralight by standard 03 and card name; Sony's FeliCa form
    ("3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 01 00 00 00 00 6A", Family.MIFARE),
    ("3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 03 00 00 00 00 68", Family.MIFARE),
    ("3B 8C 80 01 04 43 FD 00 00 00 00 00 00 00 00 00 3A", Family.FELICA),
    # MIFARE Plus / DESFire: NXP's product identification in the ATS historical bytes (AN10833)
    ("3B 87 80 01 C1 05 2F 2F 01 BC D6 A9", Family.MIFARE),
    ("3B 86 80 01 06 75 77 81 02 80 00", Family.MIFARE),
    # ISO 15693 storage card: storage, no APDU; the contact interface of a My Number card: probed
    ("3B 8F 80 01 80 4F 0C A0 00 00 03 06 0B 00 14 00 00 00 00 77", Family.STORAGE),
    ("3B DA 13 FF 81 31 FB 46 80 12 39 2F 31 C1 73 C6 01 C0 3B", Family.OTHER),
])
def test_odd_entries(atr, family):
    raw = bytes.fromhex(atr.replace(" ", ""))
    assert family_of(raw) is family
    assert (probed(raw) != []) == (family in PROBED_FAMILIES)
