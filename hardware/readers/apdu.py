"""The only APDUs the kiosk may ever send, enforced in this one place.

Every back-end sends through `guarded(transmit)`; anything else raises `ForbiddenApdu` before it reaches
the wire. Allowed: SELECT JPKI AP, SELECT EF 0006 (JPKI token info) and READ BINARY of its 32 bytes.
Never VERIFY, never GET DATA UID (FF CA), never certificates or other applications.
"""

from __future__ import annotations

from collections.abc import Callable

JPKI_AID = bytes.fromhex("D392F000260100000001")
SELECT_JPKI = bytes.fromhex("00A4040C0A") + JPKI_AID
SELECT_TOKEN_EF = bytes.fromhex("00A4020C020006")
READ_TOKEN = bytes.fromhex("00B0000020")

ALLOWED: frozenset[bytes] = frozenset({SELECT_JPKI, SELECT_TOKEN_EF, READ_TOKEN})

SW_OK = 0x9000

Transmit = Callable[[bytes], bytes]


class ForbiddenApdu(Exception):
    """An APDU outside the allow-list was about to be sent. Its bytes are not echoed (they may identify)."""


def check(apdu: bytes) -> bytes:
    """Return `apdu` unchanged if it is allowed, else raise ForbiddenApdu."""
    if bytes(apdu) not in ALLOWED:
        raise ForbiddenApdu(f"refused a {len(apdu)}-byte APDU outside the allow-list (INS {_ins(apdu)})")
    return bytes(apdu)


def guarded(transmit: Transmit) -> Transmit:
    """Wrap a raw transmit function so that only allowed APDUs ever reach it."""

    def send(apdu: bytes) -> bytes:
        return transmit(check(apdu))

    return send


def status_word(response: bytes) -> int | None:
    """SW1 SW2 of a response APDU as one int, None when the response is too short."""
    if len(response) < 2:
        return None
    return (response[-2] << 8) | response[-1]


def _ins(apdu: bytes) -> str:
    return f"{apdu[1]:02X}" if len(apdu) > 1 else "--"
