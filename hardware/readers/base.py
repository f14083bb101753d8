"""What every reader back-end reports: identifier-free observations and reader events.

A back-end runs in its own thread (`Reader.run`) and only *posts* events; the main loop classifies them
(`kiosk.precheck.classify`). Nothing here carries a UID, PUPI, IDm, certificate or card number.
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Callable

log = logging.getLogger(__name__)

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
Heartbeat = Callable[[], None]
HEARTBEAT_SECONDS = 1.0  # a back-end's loop beats at least this often, idle or not, unless a driver call hangs


def no_heartbeat() -> None:
    """The default heartbeat: nobody is watching."""


@dataclass(frozen=True)
class ProbeOptions:
    """Field-tunable choices about what a back-end asks a presented item."""

    read_token: bool = True  # SELECT EF 0006 + READ BINARY after JPKI answered 90 00
    flap_window_seconds: float = 2.0  # presentations closer than this count as one episode


class ReaderError(Exception):
    """A reader cannot be opened or used; the message says what to do."""


class ReaderLost(Exception):
    """A back-end lost its reader or service; the message is the user-facing detail."""


class CardGone(Exception):
    """The item left the field during an exchange."""


class CardTransportError(Exception):
    """An exchange failed for another reason (unresponsive, protocol error)."""


class Reader(abc.ABC):
    """A reader back-end. `run` blocks in its own thread until `stop` is set, posting ReaderEvents."""

    description: str = ""

    @abc.abstractmethod
    def run(self, post: Post, stop: threading.Event, heartbeat: Heartbeat = no_heartbeat) -> None:
        """Watch the reader, survive its loss (posting ReaderStatus) and return once `stop` is set.

        `heartbeat()` is called on every turn of the loop, at least every HEARTBEAT_SECONDS (while idle and
        while the reader is missing too): a loop stuck in a driver call stops beating, and the watchdog notices.
        """


@dataclass
class FlapCounter:
    """Counts presentations within a sliding window (several items or a wobbling hand)."""

    window_seconds: float
    times: list[float] = field(default_factory=list)

    def add(self, now: float) -> int:
        self.times = [t for t in self.times if now - t < self.window_seconds] + [now]
        return len(self.times)


class StatusLatch:
    """Posts (and logs) a ReaderStatus only when it differs from the last one posted."""

    def __init__(self) -> None:
        self.last: ReaderStatus | None = None
        self.times_available = 0

    def report(self, post: Post, status: ReaderStatus) -> None:
        if status != self.last:
            self.last = status
            self.times_available += status.available
            (log.info if status.available else log.warning)("%s", status.detail)
            post(status)


def wait_beating(stop: threading.Event, seconds: float, heartbeat: Heartbeat) -> bool:
    """Wait `seconds` or until `stop` is set (then True), beating at least every HEARTBEAT_SECONDS."""
    deadline = time.monotonic() + seconds
    while True:
        heartbeat()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return stop.is_set()
        if stop.wait(min(remaining, HEARTBEAT_SECONDS)):
            return True


def supervise(session: Callable[[], None], post: Post, stop: threading.Event, status: StatusLatch,
              retry_seconds: tuple[float, ...], description: str, heartbeat: Heartbeat = no_heartbeat) -> None:
    """Run `session` until `stop` is set; a ReaderLost or any other failure is posted and retried with back-off.

    `session` beats while it runs; the supervisor beats before each attempt and through the back-off.
    Only the exception's type is logged for unexpected failures: driver messages may carry identifiers.
    """
    failures = 0
    while not stop.is_set():
        heartbeat()
        available_before = status.times_available
        try:
            session()
        except ReaderLost as lost:
            status.report(post, ReaderStatus(False, str(lost)))
        except Exception as exc:  # the supervisor must outlive anything a driver throws
            log.error("%s failed (%s); restarting it", description, type(exc).__name__)
            status.report(post, ReaderStatus(False, f"{description}: unexpected error; retrying"))
        if status.times_available != available_before:  # it worked for a while: retry quickly
            failures = 0
        wait_beating(stop, retry_seconds[min(failures, len(retry_seconds) - 1)], heartbeat)
        failures += 1


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
