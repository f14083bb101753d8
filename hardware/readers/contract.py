"""The reader contract: what every back-end reports, and the interface it implements. Imports no back-end.

A back-end runs in its own thread (`Reader.run`) and only *posts* `ReaderEvent`s; the main loop classifies
them (`kiosk.precheck.classify`). Nothing here carries a UID, PUPI, IDm, certificate or card number.
Back-ends are listed by name in `hardware.readers.registry`; what they share lives in `toolkit`.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar


class Family(StrEnum):
    """What kind of thing answered, from the ATR (PC/SC Part 3) or the RF technology (nfcpy)."""

    NONE = "none"  # nothing on the reader
    ISO_DEP_B = "iso_dep_b"  # ISO/IEC 14443-4 Type B: the My Number card's family
    ISO_DEP_A = "iso_dep_a"  # ISO/IEC 14443-4 Type A: phones, credit cards
    JUKI = "juki"  # the older 住基カード (Type B, its own ATR family)
    FELICA = "felica"  # transit / e-money cards, phones in express transit mode
    MIFARE = "mifare"  # MIFARE Classic / Ultralight / Mini storage cards
    STORAGE = "storage"  # other storage cards (ISO/IEC 15693, Topaz, ...)
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

    `jpki_sw` is the status word (SW1 SW2 as one int, e.g. 0x9000) the SELECT JPKI AP answered; None: not
    probed. `token` is the JPKI token type string (a fixed per-kind label such as "JPKIAPICCTOKEN2",
    see `probe.token_label`), "other" when the token file held something else, None when not read.
    `presentations` counts presentations within the reader's flap window, this one included (several items
    in the field make the reader see many). `elapsed_ms`: milliseconds the probe took.
    """

    family: Family = Family.NONE
    jpki_sw: int | None = None
    token: str | None = None
    failure: Failure = Failure.NONE
    presentations: int = 1
    elapsed_ms: float = 0.0


NOTHING = Observation(family=Family.NONE, presentations=0)  # nothing presented


@dataclass(frozen=True)
class Presented:
    """An item came into the field and was probed."""

    observation: Observation


@dataclass(frozen=True)
class Removed:
    """The item presented last has left the field."""


class Cause(StrEnum):
    """Why a reader is (un)available: the id staff texts are looked up by (`reader.<cause>` and
    `reader.<cause>.fix` in the staff locale files) and what `reader_status` events carry.

    A reader fault is never a patient outcome: no Presented is posted for an item the reader could not read
    because of the reader, and the re-read once the fault is gone is the same presentation.
    """

    READY = "ready"  # available: the reader is watched
    SIMULATED_UNPLUG = "simulated_unplug"  # the simulated reader's cable was "pulled" (demo panel, scenarios)
    SERVICE_DOWN = "service_down"  # pcscd is not running / stopped (nothing listens on its socket)
    SERVICE_REFUSED = "service_refused"  # pcscd refuses this user (polkit, socket permissions): SCARD_E_NO_ACCESS
    READER_MISSING = "reader_missing"  # no (matching) reader is plugged in
    READER_UNPLUGGED = "reader_unplugged"  # the reader in use was pulled out (confirmed by listing readers)
    READER_BUSY = "reader_busy"  # another program holds the reader or card (SCARD_E_SHARING_VIOLATION, EBUSY)
    READER_UNAVAILABLE = "reader_unavailable"  # listed but unusable for longer than a blip (UNAVAILABLE state)
    COMM_ERROR = "comm_error"  # talking to the reader failed (SCARD_F_COMM_ERROR, USB I/O error)
    NO_PERMISSION = "no_permission"  # the device node may not be opened by this user (EACCES)
    UNSUPPORTED_MODEL = "unsupported_model"  # the back-end cannot drive this reader (RC-S300 under nfcpy)
    BAD_DEVICE_PATH = "bad_device_path"  # not an nfcpy device path
    DRIVER_ERROR = "driver_error"  # anything else the driver threw (the type only is logged)


@dataclass(frozen=True)
class ReaderStatus:
    """The reader (or its service) became available or was lost.

    `cause`: why (a `Cause` value); `params`: plain-text values for the cause's staff texts ("reader",
    "user", "path", "code", "model" ...; never an identifier of a card or a person); `detail`: one English
    line for logs and old consumers. Staff-facing words come from the locale files by `cause`.
    """

    available: bool
    detail: str = ""
    cause: Cause = Cause.READY
    params: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def ready(cls, detail: str) -> ReaderStatus:
        """Available, watching `detail` (the reader's name or the back-end's description)."""
        return cls(True, detail, Cause.READY, {"reader": detail})


ReaderEvent = Presented | Removed | ReaderStatus
Post = Callable[[ReaderEvent], None]
Heartbeat = Callable[[], None]
HEARTBEAT_SECONDS = 1.0  # a back-end's loop beats at least this often, idle or not, unless a driver call hangs


def no_heartbeat() -> None:
    """The default heartbeat: nobody is watching."""


@dataclass(frozen=True)
class ProbeOptions:
    """Field-tunable choices about what a back-end asks a presented item (from the rule table's `[probe]`)."""

    read_token: bool = True  # SELECT EF 0006 + READ BINARY after JPKI answered 90 00
    flap_window_seconds: float = 2.0  # presentations closer than this (seconds) count as one episode


class ReaderError(Exception):
    """A reader cannot be opened or used (bad spec, scenario, missing driver, a model the back-end cannot
    drive); the message says what to do. `cause` (a Cause, None: a mistake in the spec itself) and `params`
    name it for staff texts."""

    def __init__(self, message: str, cause: Cause | None = None, **params: str) -> None:
        super().__init__(message)
        self.cause = cause
        self.params = params


class ReaderLost(Exception):
    """A back-end lost its reader or service (or cannot use it): the message is the English detail for logs,
    `cause` and `params` what staff are told (see ReaderStatus)."""

    def __init__(self, detail: str, cause: Cause = Cause.DRIVER_ERROR, **params: str) -> None:
        super().__init__(detail)
        self.cause = cause
        self.params = params

    def status(self) -> ReaderStatus:
        return ReaderStatus(False, str(self), self.cause, dict(self.params))


class CardGone(Exception):
    """The item left the field during an exchange."""


class CardTransportError(Exception):
    """An exchange failed for another reason (unresponsive, protocol error)."""


@dataclass(frozen=True)
class OpenRequest:
    """What `registry.open_reader` hands a back-end's `Reader.open`.

    `arg`: the spec's text after `name:` ("" when absent). `name`: a substring picking one of several
    readers (back-ends with a single device ignore it). `load_scenario`: turns a scenario name or path into
    a parsed scenario (the kiosk passes `kiosk.scenarios.load_scenario`; None: scenarios unavailable).
    """

    arg: str = ""
    name: str = ""
    options: ProbeOptions = ProbeOptions()
    load_scenario: Callable[[str], object] | None = None


class Reader(abc.ABC):
    """A reader back-end. `run` blocks in its own thread until `stop` is set, posting ReaderEvents.

    `kind` is the back-end's name in `registry.BACKENDS` (machine-readable: "pcsc", "nfc", "sim");
    `description` is staff-facing text ("PC/SC reader 'RC-S300'").
    """

    kind: ClassVar[str]
    description: str = ""

    @classmethod
    @abc.abstractmethod
    def open(cls, request: OpenRequest) -> Reader:
        """The back-end for a spec (`registry.open_reader` calls this); raises ReaderError for a bad `arg`."""

    @abc.abstractmethod
    def run(self, post: Post, stop: threading.Event, heartbeat: Heartbeat = no_heartbeat) -> None:
        """Watch the reader, survive its loss (posting ReaderStatus) and return once `stop` is set.

        `heartbeat()` is called on every turn of the loop, at least every HEARTBEAT_SECONDS (while idle and
        while the reader is missing too): a loop stuck in a driver call stops beating, and the watchdog notices.
        """
