"""ATR → family, by what the bytes mean (PC/SC Part 3 contactless ATRs), never by a whole ATR or a byte count.

Source: PC/SC Specification Part 3 (Requirements for PC-Connected Interface Devices) and its Supplemental
Document (contactless storage-card ATR, standard and card-name tables); ISO/IEC 14443-3 (ATQB protocol info).

A contactless ATR is `3B 8n 80 01` + n historical bytes + TCK (n = 0..15):
- storage cards (no ISO 14443-4): historical bytes `80 4F 0C A0 00 00 03 06 SS NN NN 00 00 00 00`
  (category 80, AID tag 4F, length 0C, RID A0 00 00 03 06, SS = standard, NN NN = card name);
  SS `01`-`03` ISO 14443A parts 1-3, `05`-`07` ISO 14443B parts 1-3, `09`-`0C` ISO 15693, `11` FeliCa;
  NN NN `00 3B` FeliCa, `00 01` / `00 02` / `00 03` / `00 26` / `00 36`-`00 3A` / `00 3D` MIFARE …
- ISO-DEP Type B: ATQB application data (4) + protocol info (3) + MBLI nibble `x0` — exactly 8 bytes whose
  protocol info is valid ISO 14443-3 (bit-rate b4 = 0, protocol type 0 or 1, FWI < 15);
- ISO-DEP Type A: the ATS historical bytes (any count, e.g. JCOP `4A 43 4F 50 …`, 8 bytes and still Type A).
A prefix `3B 8n 80 01` whose length or storage layout does not add up is malformed: UNKNOWN, and UNKNOWN
items receive no APDU. FeliCa and MIFARE never receive one either (`probe.PROBED_FAMILIES`).
The ATR itself never leaves the adapter.
"""

from __future__ import annotations

import re

from hardware.readers.contract import Family

STORAGE_MARKER = bytes.fromhex("804F0CA000000306")  # category 80, AID tag 4F, length 0C, RID A0 00 00 03 06
STORAGE_HISTORICAL_LENGTH = 15
SONY_FELICA_PREFIX = bytes.fromhex("0443FD")  # some Sony readers report FeliCa this way (NFC Forum type 3)

# PC/SC Part 3 supplement: standard byte SS
STORAGE_STANDARDS_TYPE_A = frozenset({0x01, 0x02, 0x03})  # ISO 14443A parts 1-3 (MIFARE family, NTAG ...)
STORAGE_STANDARD_FELICA = 0x11
# card names NN NN
CARD_NAME_FELICA = 0x003B
CARD_NAMES_MIFARE = frozenset({0x0001, 0x0002, 0x0003, 0x0026, 0x0036, 0x0037, 0x0038, 0x0039, 0x003A, 0x003D})

# MIFARE ISO-DEP products, no JPKI: NXP's product identification tag C1 05 (AN10833: MIFARE Plus, DESFire
# EV2+; alone or after the whole ATS, as some readers pass it on), the DESFire EV1 ATS, an ATS naming itself
# "DESFire" (all seen in smartcard_list.txt)
MIFARE_HISTORICAL = (re.compile(r"^(..75......)?c105", re.IGNORECASE),
                     re.compile(r"7577810280|^810280$", re.IGNORECASE),
                     re.compile(re.escape(b"DESFire".hex()), re.IGNORECASE))

# 住基カード: a Type B card whose protocol info differs from My Number cards seen so far [inference; tune here]
JUKI_HISTORICAL = (re.compile(r"^.{8}B38191", re.IGNORECASE),)


def family_of(atr: bytes) -> Family:
    """The family of a presented item from its ATR (empty or malformed contactless ATR: UNKNOWN)."""
    if is_contactless(atr):
        historical = contactless_historical_bytes(atr)
        return Family.UNKNOWN if historical is None else family_of_historical(historical)
    return Family.OTHER if is_well_formed(atr) else Family.UNKNOWN


def is_well_formed(atr: bytes) -> bool:
    """ISO/IEC 7816-3 structure: TS 3B/3F, T0, the interface bytes its TDi chain announces, K historical
    bytes and a TCK when any protocol other than T=0 is indicated — and nothing more."""
    if len(atr) < 2 or atr[0] not in (0x3B, 0x3F):
        return False
    at, indicator, protocols = 1, atr[1], set()
    historical = atr[1] & 0x0F
    while True:
        present = [indicator & bit for bit in (0x10, 0x20, 0x40, 0x80)]
        at += sum(1 for p in present if p)
        if at >= len(atr):
            return False
        if not present[3]:
            break
        indicator = atr[at]
        protocols.add(indicator & 0x0F)
    tck = 1 if protocols - {0} else 0
    return len(atr) == at + 1 + historical + tck


def family_of_historical(historical: bytes) -> Family:
    """The family from the historical bytes of a PC/SC Part 3 contactless ATR."""
    if historical.startswith(STORAGE_MARKER[:3]) and historical[3:8] == STORAGE_MARKER[3:8]:
        return _storage_family(historical)
    if historical.startswith(STORAGE_MARKER[:2]):  # 80 4F: a storage layout that does not add up
        return Family.UNKNOWN
    if historical.startswith(SONY_FELICA_PREFIX):
        return Family.FELICA
    if is_type_b(historical):
        if any(p.match(historical.hex()) for p in JUKI_HISTORICAL):
            return Family.JUKI
        return Family.ISO_DEP_B
    if any(p.search(historical.hex()) for p in MIFARE_HISTORICAL):
        return Family.MIFARE
    return Family.ISO_DEP_A


def _storage_family(historical: bytes) -> Family:
    if len(historical) != STORAGE_HISTORICAL_LENGTH:
        return Family.UNKNOWN
    standard, name = historical[8], int.from_bytes(historical[9:11], "big")
    if name == CARD_NAME_FELICA or standard == STORAGE_STANDARD_FELICA:
        return Family.FELICA
    if name in CARD_NAMES_MIFARE or standard in STORAGE_STANDARDS_TYPE_A:
        return Family.MIFARE
    return Family.STORAGE


def is_type_b(historical: bytes) -> bool:
    """ATQB application data (4) + protocol info (3) + MBLI (high nibble; low nibble 0), per ISO 14443-3:
    bit-rate capability b4 = 0, protocol type 0000 or 0001, FWI 0..14."""
    if len(historical) != 8:
        return False
    bit_rate, frame_and_type, fwi_adc_fo, mbli = historical[4:8]
    return (bit_rate & 0x08 == 0 and frame_and_type & 0x0F in (0, 1) and fwi_adc_fo >> 4 != 0x0F
            and mbli & 0x0F == 0)


def is_contactless(atr: bytes) -> bool:
    """The PC/SC Part 3 contactless prefix `3B 8n 80 01`."""
    return len(atr) >= 4 and atr[0] == 0x3B and atr[1] & 0xF0 == 0x80 and atr[2] == 0x80 and atr[3] == 0x01


def contactless_historical_bytes(atr: bytes) -> bytes | None:
    """The historical bytes of a PC/SC Part 3 contactless ATR (`3B 8n 80 01` + n bytes + TCK), None for any
    other ATR and for one whose length does not match n (truncated, or bytes after the TCK)."""
    if not is_contactless(atr) or len(atr) != 4 + (atr[1] & 0x0F) + 1:
        return None
    return atr[4:-1]


def contactless_atr(historical: bytes) -> bytes:
    """Build the PC/SC Part 3 ATR for the given historical bytes (with TCK), as a reader would report it."""
    body = bytes([0x3B, 0x80 | len(historical), 0x80, 0x01]) + historical
    tck = 0
    for byte in body[1:]:
        tck ^= byte
    return body + bytes([tck])
