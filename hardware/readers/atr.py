"""ATR → family, by structure (PC/SC Part 3 contactless ATRs), never by a whole ATR.

Contactless ATR: `3B 8n 80 01` + n historical bytes + TCK. Storage cards carry
`80 4F 0C A0 00 00 03 06 SS NN NN` (SS = standard, NN NN = card name); ISO-DEP Type B carries ATQB
application data (4) + protocol info (3) + MBLI; ISO-DEP Type A carries the ATS historical bytes.
The ATR itself never leaves the adapter.
"""

from __future__ import annotations

import re

from hardware.readers.contract import Family

STORAGE_MARKER = bytes.fromhex("804F0CA000000306")
SONY_FELICA_PREFIX = bytes.fromhex("0443FD")  # some Sony readers report FeliCa this way

# ISO 14443-3 Type A storage cards (MIFARE Classic / Ultralight / Mini / NTAG ...)
STORAGE_STANDARD_MIFARE = 0x03
STORAGE_STANDARD_FELICA = 0x11

# 住基カード: a Type B card whose protocol info differs from My Number cards seen so far [inference; tune here]
JUKI_HISTORICAL = (re.compile(r"^.{8}B38191", re.IGNORECASE),)


def family_of(atr: bytes) -> Family:
    """The family of a presented item from its ATR (empty ATR: UNKNOWN)."""
    historical = contactless_historical_bytes(atr)
    if historical is None:
        return Family.OTHER if len(atr) >= 2 and atr[0] in (0x3B, 0x3F) else Family.UNKNOWN
    if historical.startswith(STORAGE_MARKER):
        standard = historical[8] if len(historical) > 8 else -1
        if standard == STORAGE_STANDARD_FELICA:
            return Family.FELICA
        if standard == STORAGE_STANDARD_MIFARE:
            return Family.MIFARE
        return Family.STORAGE
    if historical.startswith(SONY_FELICA_PREFIX):
        return Family.FELICA
    if len(historical) == 8:
        if any(p.match(historical.hex()) for p in JUKI_HISTORICAL):
            return Family.JUKI
        return Family.ISO_DEP_B
    return Family.ISO_DEP_A


def contactless_historical_bytes(atr: bytes) -> bytes | None:
    """The historical bytes of a PC/SC Part 3 contactless ATR (`3B 8n 80 01 ...`), None for any other ATR."""
    if len(atr) < 4 or atr[0] != 0x3B or atr[1] & 0xF0 != 0x80 or atr[2] != 0x80 or atr[3] != 0x01:
        return None
    count = atr[1] & 0x0F
    historical = atr[4 : 4 + count]
    return historical if len(historical) == count else None


def contactless_atr(historical: bytes) -> bytes:
    """Build the PC/SC Part 3 ATR for the given historical bytes (with TCK), as a reader would report it."""
    body = bytes([0x3B, 0x80 | len(historical), 0x80, 0x01]) + historical
    tck = 0
    for byte in body[1:]:
        tck ^= byte
    return body + bytes([tck])
