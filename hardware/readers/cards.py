"""Card profiles: how the things patients carry answer the allowed probe.

Played by the simulated reader (demo, UI tests) and by the vpcd virtual card in the PC/SC tests, so both
exercise the same probe and allow-list. Profiles hold no real identifiers.
"""

from __future__ import annotations

from dataclasses import dataclass

from hardware.readers import apdu
from hardware.readers.atr import contactless_atr

SW_NOT_FOUND = bytes.fromhex("6A82")
SW_INS_NOT_SUPPORTED = bytes.fromhex("6D00")
SW_OK = bytes.fromhex("9000")


@dataclass(frozen=True)
class CardProfile:
    """An item as seen through a PC/SC reader.

    `pull_after` = the item leaves the field when this many APDUs have been
    answered (0: on the first APDU). `token` is the content of JPKI EF 0006 (None: no such file).
    """

    name: str
    atr: bytes
    jpki_sw: bytes = SW_NOT_FOUND
    token: bytes | None = None
    pull_after: int | None = None

    def respond(self, command: bytes) -> bytes:
        """The response APDU to `command` (anything unknown: 6D 00)."""
        if command == apdu.SELECT_JPKI:
            return self.jpki_sw
        if command == apdu.SELECT_TOKEN_EF:
            return SW_OK if self.token is not None else SW_NOT_FOUND
        if command == apdu.READ_TOKEN and self.token is not None:
            return self.token.ljust(32, b" ")[:32] + SW_OK
        return SW_INS_NOT_SUPPORTED


SILENT_ATR = bytes([0x00])  # a garbled answer to reset: the chip is in the field but cannot talk
MYNUMBER_ATR = bytes.fromhex("3B888001000005E0B381A1007F")
JUKI_ATR = bytes.fromhex("3B888001000014E0B38191005E")
PHONE_ATR = contactless_atr(b"")  # ISO-DEP Type A, no historical bytes (phones use random UIDs anyway)
CREDIT_CARD_ATR = contactless_atr(bytes.fromhex("8073C821C057597562694B"))
TRANSIT_ATR = bytes.fromhex("3B8F8001804F0CA0000003061100" "3B0000000042")
MIFARE_ATR = contactless_atr(bytes.fromhex("804F0CA00000030603000100000000"))

PROFILES: dict[str, CardProfile] = {
    p.name: p
    for p in (
        CardProfile("mynumber_card", MYNUMBER_ATR, SW_OK, b"JPKIAPICCTOKEN2"),
        CardProfile("android", PHONE_ATR, SW_OK, b"JPKIAPGPSETOKEN"),
        CardProfile("iphone", PHONE_ATR, SW_OK, b"JPKIAPIOSTOKEN"),
        CardProfile("transit_card", TRANSIT_ATR),
        CardProfile("credit_card", CREDIT_CARD_ATR),
        CardProfile("mifare", MIFARE_ATR),
        CardProfile("juki_card", JUKI_ATR),
        CardProfile("silent", SILENT_ATR),
        CardProfile("pulled_mid_exchange", MYNUMBER_ATR, SW_OK, b"JPKIAPICCTOKEN2", pull_after=0),
    )
}
