"""What every reader back-end reports: identifier-free observations and reader events.

A back-end runs in its own thread (`Reader.run`) and only *posts* events; the main loop classifies them
(`kiosk.precheck.classify`). Nothing here carries a UID, PUPI, IDm, certificate or card number.
"""

from __future__ import annotations

import abc
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Callable


class Family(StrEnum):
    """What kind of thing answered, from the ATR (PC/SC) or the RF technology (nfcpy)."""

    NONE = "none"  # nothing on the reader
    ISO_DEP_B = "iso_dep_b"  # ISO 14443-4 Type B: the My Number card's family
    ISO_DEP_A = "iso_dep_a"  # ISO 14443-4 Type A: phones, credit cards
    JUKI = "juki"  # the older 住基カード (Type B, its own ATR family)
    FELICA = "felica"  # transit / e-money cards, phones in express transit mode
    MIFARE = "mifare"  # MIFARE Classic / Ultralight / Mini storage cards
    STORAGE = "storage"  # other storage cards (ISO 15693, ...)
    OTHER = "other"  # an ATR outside the contactless families (e.g. a contact card)
    UNKNOWN = "unknown"  # present, but no usable ATR / technology


class Failure(StrEnum):
    """Why an exchange with the presented item did not complete."""

    NONE = "none"
    MUTE = "mute"  # present but not answering (no ATR, unresponsive)
    CONNECT = "connect"  # connecting to the item failed
    REMOVED = "removed"  # taken away mid-exchange
    TRANSPORT = "transport"  # any other transmission error


@dataclass(frozen=True)
class Observation:
    """One presentation, described without identifiers.

    `jpki_sw` is the status word the SELECT JPKI AP answered (None: not probed). `token` is the JPKI token
    type string (a fixed per-kind label such as "JPKIAPICCTOKEN2"), "other" when the token file held
    something else, None when not read. `presentations` counts presentations within the reader's flap
    window, this one included (several items in the field make the reader see many).
    """

    family: Family = Family.NONE
    jpki_sw: int | None = None
    token: str | None = None
    failure: Failure = Failure.NONE
    presentations: int = 1
    elapsed_ms: float = 0.0


NOTHING = Observation(family=Family.NONE, presentations=0)


@dataclass(frozen=True)
class Presented:
    observation: Observation


@dataclass(frozen=True)
class Removed:
    pass


@dataclass(frozen=True)
class ReaderStatus:
    available: bool
    detail: str = ""


ReaderEvent = Presented | Removed | ReaderStatus
Post = Callable[[ReaderEvent], None]


@dataclass(frozen=True)
class ProbeOptions:
    """Field-tunable choices about what a back-end asks a presented item."""

    read_token: bool = True  # SELECT EF 0006 + READ BINARY after JPKI answered 90 00
    flap_window_seconds: float = 2.0  # presentations closer than this count as one episode


class ReaderError(Exception):
    """A reader cannot be opened or used; the message says what to do."""


class CardGone(Exception):
    """The item left the field during an exchange."""


class CardTransportError(Exception):
    """An exchange failed for another reason (unresponsive, protocol error)."""


class Reader(abc.ABC):
    """A reader back-end. `run` blocks in its own thread until `stop` is set, posting ReaderEvents."""

    description: str = ""

    @abc.abstractmethod
    def run(self, post: Post, stop: threading.Event) -> None:
        """Watch the reader, survive its loss (posting ReaderStatus) and return once `stop` is set."""


@dataclass
class FlapCounter:
    """Counts presentations within a sliding window (several items or a wobbling hand)."""

    window_seconds: float
    times: list[float] = field(default_factory=list)

    def add(self, now: float) -> int:
        self.times = [t for t in self.times if now - t < self.window_seconds] + [now]
        return len(self.times)


def open_reader(spec: str, name: str = "", options: ProbeOptions | None = None) -> Reader:
    """A back-end from a spec: `pcsc`, `nfc[:PATH]` or `sim[:SCENARIO]`; `name` picks a reader by substring."""
    options = options or ProbeOptions()
    kind, _, arg = spec.partition(":")
    if kind == "pcsc":
        from hardware.readers.pcsc import PcscReader

        return PcscReader(name=name, options=options)
    if kind == "nfc":
        from hardware.readers.nfc import NfcReader

        return NfcReader(path=arg or "usb", options=options)
    if kind == "sim":
        from hardware.readers.sim import SimReader, load_scenario

        return SimReader(scenario=load_scenario(arg) if arg else None, options=options)
    raise ReaderError(f"unknown reader back-end {spec!r}: use pcsc, nfc[:PATH] or sim[:SCENARIO]")
