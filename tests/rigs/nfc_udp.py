"""nfcpy rig: cards emulated over nfcpy's `udp` driver (no hardware). Plugin "tests.rigs.nfc_udp".

The reader side is the real nfcpy stack (`udp:127.0.0.1:PORT`); the card side is a small UDP server here:
one datagram per frame, ASCII `"<bitrate> <hex>"`, `RFOFF` = field off, no CRC. It answers Type A
anticollision + RATS, Type B SENSB_REQ + ATTRIB, FeliCa SENSF_REQ, and ISO-DEP I-blocks / R(NAK) presence
checks; every APDU it receives is recorded (teardown fails the test on anything outside the allow-list).
Fixture: `udp_card(kind, profile) -> UdpCard` on a fresh port.
Technologies nobody answers cost 1 s each in the udp driver: sense only what the card emulates.
"""

from __future__ import annotations

import socket
import threading

import pytest

from hardware.readers import apdu
from hardware.readers.cards import PROFILES, CardProfile

# Made-up identifiers (the rig's own; nothing here is ever asserted to leave the reader).
UID = bytes.fromhex("08A1B2C3")  # 08.. = a random UID, as phones use
PUPI = bytes.fromhex("11223344")
IDM_PMM = bytes.fromhex("0123456789ABCDEF" "0000000000000000")

KIND_TECHNOLOGY = {"type_a": "106A", "type_4a": "106A", "type_4b": "106B", "felica": "212F"}


class UdpCard:
    """A card of `kind` (type_4a, type_4b, type_a = MIFARE-like, felica) answering nfcpy's udp driver."""

    def __init__(self, kind: str, profile: CardProfile, app_data_proto: bytes = bytes.fromhex("000005E0B381A1")):
        self.kind = kind
        self.technology = KIND_TECHNOLOGY[kind]
        self.profile = profile
        self.app_data_proto = app_data_proto  # ATQB application data (4) + protocol info (3)
        self.received: list[bytes] = []
        self.in_field = True
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name=f"udp-card-{kind}")
        self._thread.start()

    @property
    def path(self) -> str:
        return f"udp:127.0.0.1:{self.port}"

    def remove(self) -> None:
        self.in_field = False

    def insert(self) -> None:
        self.in_field = True

    def close(self) -> None:
        self._closed.set()
        self.sock.close()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                datagram, peer = self.sock.recvfrom(1024)
            except OSError:
                return
            if not self.in_field or datagram.startswith(b"RFOFF"):
                continue
            try:
                brty, hexdata = datagram.decode("ascii").split()
                frame = bytes.fromhex(hexdata)
            except ValueError:
                continue
            answer = self._answer(brty, frame)
            if answer is not None:
                try:
                    self.sock.sendto(f"{brty} {answer.hex()}".encode("ascii"), peer)
                except OSError:
                    return

    def _answer(self, brty: str, frame: bytes) -> bytes | None:
        if brty != self.technology:
            return None
        if self.kind == "felica":
            return bytes([18, 0x01]) + IDM_PMM if frame[:2] == b"\x06\x00" else None
        if self.kind == "type_4b":
            if frame[:1] == b"\x05":  # SENSB_REQ / ALLB_REQ
                return b"\x50" + PUPI + self.app_data_proto
            if frame[:1] == b"\x1d":  # ATTRIB
                return b"\x00"
            return self._iso_dep(frame)
        bcc = bytes([UID[0] ^ UID[1] ^ UID[2] ^ UID[3]])
        if frame == b"\x26":
            return b"\x04\x00"
        if frame == b"\x93\x20":
            return UID + bcc
        if frame == b"\x93\x70" + UID + bcc:
            return b"\x20" if self.kind == "type_4a" else b"\x08"
        if self.kind == "type_4a":
            if frame[:1] == b"\xe0":  # RATS → ATS: FSCI 8, FWI 8
                return bytes.fromhex("0578008002")
            return self._iso_dep(frame)
        return None

    def _iso_dep(self, frame: bytes) -> bytes | None:
        if not frame:
            return None
        pcb = frame[0]
        if pcb & 0xEE == 0x02:  # I-block carrying an APDU
            self.received.append(frame[1:])
            return bytes([pcb]) + self.profile.respond(frame[1:])
        if pcb & 0xFE == 0xB2:  # R(NAK): presence check
            return bytes([0xA2 | (pcb & 1)])
        return None


@pytest.fixture
def udp_card():
    """Factory: `udp_card("type_4b", "mynumber_card")`; every card is closed afterwards."""
    cards: list[UdpCard] = []

    def make(kind: str, profile: CardProfile | str, **kwargs) -> UdpCard:
        card = UdpCard(kind, PROFILES[profile] if isinstance(profile, str) else profile, **kwargs)
        cards.append(card)
        return card

    yield make
    for card in cards:
        card.close()
    for card in cards:
        assert set(card.received) <= apdu.ALLOWED, f"{card.profile.name} received an APDU outside the allow-list"
