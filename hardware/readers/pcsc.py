"""PC/SC back-end (pyscard's low-level `scard` API): Sony RC-S300 and any CCID reader under pcscd.

A supervised loop of our own over `SCardGetStatusChange` (with the `\\\\?PnP?\\Notification` pseudo-reader)
instead of pyscard's CardMonitor, whose thread dies for good when pcscd stops. The loop blocks in pcscd
(event-driven, no polling) for at most WAIT_MS, so the loop beats its heartbeat about once a second even
while idle; `stop` cancels the wait through `SCardCancel`.

Reader faults are the reader's (`contract.Cause`), never a patient's: pcscd down or refusing this user (told
apart by trying its socket), the reader unplugged (confirmed by listing the readers again), another program
holding the reader (`SCARD_E_SHARING_VIOLATION`, or the `EXCLUSIVE` state), a reader listed but `UNAVAILABLE`
(a blip shorter than BLIP_SECONDS is not even reported) and communication errors (`SCARD_F_COMM_ERROR`) post
`ReaderStatus(False, cause=...)` and no presentation. An item lying on the reader through a fault is read once
the fault is gone; that read is the same presentation (not counted in the flap window), and an item read
before a blip is not read again.
"""

from __future__ import annotations

import os
import socket
import threading
import time

from smartcard import scard

from hardware.readers.atr import family_of
from hardware.readers.contract import (
    CardGone,
    CardTransportError,
    Cause,
    Failure,
    Family,
    Heartbeat,
    Observation,
    OpenRequest,
    Post,
    Presented,
    ProbeOptions,
    Reader,
    ReaderLost,
    ReaderStatus,
    Removed,
    no_heartbeat,
)
from hardware.readers.probe import PROBED_FAMILIES, observe
from hardware.readers.toolkit import FlapCounter, StatusLatch, supervise, this_user

PNP_READER = "\\\\?PnP?\\Notification"
WAIT_MS = 1_000  # the longest wait between heartbeats (well within the watchdog's window); `stop` cancels it
CANCEL_RETRY_SECONDS = 0.05
RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0)  # back-off while pcscd or the reader is missing
BLIP_SECONDS = 2.0  # a reader listed but unavailable for less than this is a blip: nothing is reported
TRANSIENT_WAIT_SECONDS = 0.2  # pause after a transient error result before asking pcscd again
PCSCD_SOCKET = "/run/pcscd/pcscd.comm"  # pcsc-lite's default; PCSCLITE_CSOCK_NAME overrides it (server and client)
GONE_ON_TRANSMIT = {
    scard.SCARD_W_REMOVED_CARD,
    scard.SCARD_E_NO_SMARTCARD,
    scard.SCARD_W_RESET_CARD,
    scard.SCARD_W_UNPOWERED_CARD,
}
SERVICE_LOST = {scard.SCARD_E_NO_SERVICE, scard.SCARD_E_SERVICE_STOPPED, scard.SCARD_E_INVALID_HANDLE,
                scard.SCARD_F_COMM_ERROR}
REFUSED = {scard.SCARD_E_NO_ACCESS, scard.SCARD_W_SECURITY_VIOLATION}  # polkit said no (access_pcsc / access_card)
READER_GONE = {scard.SCARD_E_UNKNOWN_READER, scard.SCARD_E_READER_UNAVAILABLE}
# results of a connect or transmit that are the reader's (or pcscd's) fault, not the item's
READER_FAULTS = SERVICE_LOST | REFUSED | READER_GONE | {scard.SCARD_E_SHARING_VIOLATION}
UNUSABLE_STATES = scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_UNAVAILABLE | scard.SCARD_STATE_IGNORE


def _code(result: int) -> int:
    return result & 0xFFFFFFFF


def service_socket() -> str:
    """The path of pcscd's socket this process would use (PCSCLITE_CSOCK_NAME, else pcsc-lite's default)."""
    return os.environ.get("PCSCLITE_CSOCK_NAME", PCSCD_SOCKET)


def service_fault(result: int) -> ReaderLost:
    """Why pcscd cannot be used after `result`: it refuses this user (SCARD_E_NO_ACCESS, a socket this user may
    not open, or a socket that accepts but a daemon that hangs up: polkit) or it is not running."""
    path, user = service_socket(), this_user()
    refused = ReaderLost(f"pcscd refused access to user {user} (socket {path}, 0x{result:08X})",
                         Cause.SERVICE_REFUSED, user=user, path=path)
    if result in REFUSED:
        return refused
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(path)
        except PermissionError:
            return refused
        except OSError:
            return ReaderLost(f"pcscd is not running (nothing listens on {path})", Cause.SERVICE_DOWN, path=path)
    return refused


def _busy(reader: str) -> ReaderLost:
    return ReaderLost(f"another program is using card reader {reader!r} (SCARD_E_SHARING_VIOLATION)",
                      Cause.READER_BUSY, reader=reader)


def _connect_fault(result: int, reader: str) -> ReaderLost | None:
    """The reader fault behind a failed SCardConnect / SCardTransmit, or None when the item is to blame."""
    if result == scard.SCARD_E_SHARING_VIOLATION:
        return _busy(reader)
    if result in REFUSED:
        return service_fault(result)
    if result == scard.SCARD_F_COMM_ERROR:
        return ReaderLost(f"communication with card reader {reader!r} failed (SCARD_F_COMM_ERROR)",
                          Cause.COMM_ERROR, reader=reader)
    if result in READER_FAULTS:
        return ReaderLost(f"card reader {reader!r} became unavailable (0x{result:08X})",
                          Cause.READER_UNAVAILABLE, reader=reader, code=f"0x{result:08X}")
    return None


class PcscReader(Reader):
    """Watches one PC/SC reader (the first whose name contains `name`, case-insensitive; "": the first found)."""

    kind = "pcsc"

    @classmethod
    def open(cls, request: OpenRequest) -> PcscReader:
        """Spec `pcsc`: the reader is picked by `request.name`."""
        return cls(name=request.name, options=request.options)

    def __init__(self, name: str = "", options: ProbeOptions | None = None) -> None:
        self.name = name
        self.options = options or ProbeOptions()
        self.description = f"PC/SC reader {name!r}" if name else "PC/SC reader"
        self._context: int | None = None
        self._context_lock = threading.Lock()
        self._status = StatusLatch()
        self._flaps = FlapCounter(self.options.flap_window_seconds)
        # the item on the reader (kept across a session restarted after a communication error)
        self._shown = False  # a Presented was posted for it and no Removed yet
        self._here = False  # pcscd shows an item on the reader
        self._pending: int | None = None  # its presentation count while a reader fault delays its read
        self._atr = b""

    def run(self, post: Post, stop: threading.Event, heartbeat: Heartbeat = no_heartbeat) -> None:
        finished = threading.Event()
        canceller = threading.Thread(target=self._cancel_when, args=(stop, finished), daemon=True, name="pcsc-cancel")
        canceller.start()
        try:
            supervise(lambda: self._session(post, stop, heartbeat), post, stop, self._status, RETRY_SECONDS,
                      self.description, heartbeat)
        finally:
            finished.set()

    def _cancel_when(self, stop: threading.Event, finished: threading.Event) -> None:
        """Once `stop` is set, cancel the blocking wait (again and again: a cancel between two waits is lost)."""
        stop.wait()
        while not finished.is_set():
            with self._context_lock:
                if self._context is not None:
                    scard.SCardCancel(self._context)
            finished.wait(CANCEL_RETRY_SECONDS)

    def _session(self, post: Post, stop: threading.Event, heartbeat: Heartbeat) -> None:
        """One PC/SC context: find the reader, watch it; returns when `stop` is set, raises ReaderLost otherwise."""
        result, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if _code(result) != scard.SCARD_S_SUCCESS:
            raise service_fault(_code(result))
        with self._context_lock:
            self._context = context
        try:
            while not stop.is_set():
                heartbeat()
                reader, names = self._find_reader(context)
                if reader is None:
                    self._wait_for_readers(post, context, names)
                    continue
                self._status.report(post, ReaderStatus.ready(reader))
                self._watch(post, stop, context, reader, heartbeat)
        finally:
            with self._context_lock:
                self._context = None
            scard.SCardReleaseContext(context)

    def _list(self, context: int) -> list[str]:
        """The readers pcscd lists now; ReaderLost (service down or refused) when it cannot list them."""
        result, names = scard.SCardListReaders(context, [])
        result = _code(result)
        if result == scard.SCARD_E_NO_READERS_AVAILABLE:
            return []
        if result != scard.SCARD_S_SUCCESS:
            raise service_fault(result) if result in SERVICE_LOST | REFUSED else ReaderLost(
                f"PC/SC error 0x{result:08X} listing readers", Cause.DRIVER_ERROR, code=f"0x{result:08X}")
        return list(names)

    def _find_reader(self, context: int) -> tuple[str | None, list[str]]:
        names = self._list(context)
        wanted = self.name.casefold()
        return next((n for n in names if wanted in n.casefold()), None), names

    def _wait_for_readers(self, post: Post, context: int, names: list[str]) -> None:
        """Report the missing reader (an unplug already reported stays so) and block until the set of readers
        changes (or stop). `names`: the listing the reader was looked for in."""
        last = self._status.last
        if last is None or last.cause is not Cause.READER_UNPLUGGED:
            found = ", ".join(names) or "none"
            wanted = f" matching {self.name!r}" if self.name else ""
            self._status.report(post, ReaderStatus(
                False, f"no card reader{wanted} found (readers: {found}); plug one in", Cause.READER_MISSING,
                {"wanted": self.name, "readers": found}))
        result, _ = scard.SCardGetStatusChange(context, WAIT_MS, [(PNP_READER, len(names) << 16)])
        result = _code(result)
        if result not in (scard.SCARD_S_SUCCESS, scard.SCARD_E_TIMEOUT, scard.SCARD_E_CANCELLED):
            self._list(context)  # raises when pcscd is gone or refuses us
            raise ReaderLost(f"PC/SC error 0x{result:08X} waiting for readers", Cause.DRIVER_ERROR,
                             code=f"0x{result:08X}")

    def _watch(self, post: Post, stop: threading.Event, context: int, reader: str, heartbeat: Heartbeat) -> None:
        """Post Presented / Removed for `reader` until `stop` (return) or until it or pcscd is lost (ReaderLost).

        The event counter in the state's high word catches a swap between two pcscd polls (not across a blip,
        which moves it too). An item still shown as present is reported removed when the watch ends, unless
        the reader only failed to talk for a while (a communication error): then it is still the same item.
        """
        states = [(reader, scard.SCARD_STATE_UNAWARE), (PNP_READER, scard.SCARD_STATE_UNAWARE)]
        count, blip_since = -1, None
        try:
            while not stop.is_set():
                heartbeat()
                result, changed = scard.SCardGetStatusChange(context, WAIT_MS, states)
                result = _code(result)
                if result == scard.SCARD_E_CANCELLED:
                    return
                if result == scard.SCARD_E_TIMEOUT:
                    blip_since = self._still_blipping(post, reader, blip_since)
                    if self._here and self._pending is not None and blip_since is None:
                        self._read(post, context, reader, states[0][1], self._atr)
                    continue
                if result != scard.SCARD_S_SUCCESS:
                    self._confirm_listed(context, reader, result)
                    blip_since = self._still_blipping(post, reader, blip_since or time.monotonic())
                    stop.wait(TRANSIENT_WAIT_SECONDS)
                    continue
                (_, state, atr), (_, pnp_state, _) = changed
                states = [(reader, state & ~scard.SCARD_STATE_CHANGED),
                          (PNP_READER, pnp_state & ~scard.SCARD_STATE_CHANGED)]
                if state & UNUSABLE_STATES or pnp_state & scard.SCARD_STATE_CHANGED:
                    self._confirm_listed(context, reader, result)
                if state & UNUSABLE_STATES:  # listed, yet unusable: a blip, unless it lasts
                    blip_since = self._still_blipping(post, reader, blip_since or time.monotonic())
                    continue
                after_blip, blip_since = blip_since is not None, None
                new_count = state >> 16
                self._changed(post, context, reader, state, bytes(atr), swapped=(
                    count >= 0 and new_count != count and not after_blip))
                count = new_count
        except ReaderLost as lost:
            if lost.cause is not Cause.COMM_ERROR:
                self._forget(post)
            raise
        self._forget(post)

    def _confirm_listed(self, context: int, reader: str, result: int) -> None:
        """Raise ReaderLost unless pcscd still lists `reader`: service down / refused, or the reader unplugged."""
        if reader not in self._list(context):
            raise ReaderLost(f"card reader {reader!r} was unplugged", Cause.READER_UNPLUGGED, reader=reader)
        if result == scard.SCARD_F_COMM_ERROR:
            raise ReaderLost(f"communication with card reader {reader!r} failed (SCARD_F_COMM_ERROR)",
                             Cause.COMM_ERROR, reader=reader)

    def _still_blipping(self, post: Post, reader: str, since: float | None) -> float | None:
        """Report a reader listed but unavailable since `since` once it has lasted BLIP_SECONDS; `since` back."""
        if since is not None and time.monotonic() - since >= BLIP_SECONDS:
            self._status.report(post, ReaderStatus(
                False, f"card reader {reader!r} is listed but unavailable", Cause.READER_UNAVAILABLE,
                {"reader": reader}))
        return since

    def _changed(self, post: Post, context: int, reader: str, state: int, atr: bytes, swapped: bool) -> None:
        """A settled reader state: post what changed for the item, (re-)read it when due."""
        here = bool(state & scard.SCARD_STATE_PRESENT)
        self._atr = atr
        if not here:
            self._status.report(post, ReaderStatus.ready(reader))
            self._forget(post)
            return
        held = state & scard.SCARD_STATE_EXCLUSIVE and family_of(atr) in PROBED_FAMILIES if atr else False
        if held and not self._shown:  # another program holds an item we would have to connect to
            if self._pending is None:
                self._pending = self._flaps.add(time.monotonic())
            self._here = True
            self._status.report(post, _busy(reader).status())
            return
        if swapped and self._shown:
            self._forget(post)
        self._here = True
        if self._shown:
            self._status.report(post, ReaderStatus.ready(reader))
        else:
            self._read(post, context, reader, state, atr)

    def _read(self, post: Post, context: int, reader: str, state: int, atr: bytes) -> None:
        """Read the item on the reader; a reader fault reports the reader's status and leaves the read pending
        (busy, refused: here again on the next change or WAIT_MS; others end the watch)."""
        new = self._pending is None
        presentations = self._flaps.add(time.monotonic()) if new else self._pending
        assert presentations is not None
        try:
            observation = self._observe(context, reader, state, atr, presentations)
        except ReaderLost as fault:
            self._pending = presentations
            if fault.cause in (Cause.READER_BUSY, Cause.SERVICE_REFUSED):
                self._status.report(post, fault.status())
                return
            raise
        self._pending = None
        self._status.report(post, ReaderStatus.ready(reader))
        self._shown = True
        post(Presented(observation))

    def _forget(self, post: Post) -> None:
        """The item is gone (or can no longer be seen): Removed if it was shown, no read pending."""
        if self._shown:
            post(Removed())
        self._shown, self._here, self._pending = False, False, None

    def _observe(self, context: int, reader: str, state: int, atr: bytes, presentations: int) -> Observation:
        """Probe the item; ReaderLost when the reader (not the item) failed: nothing is observed then."""
        started = time.monotonic()
        family = family_of(atr) if atr else Family.UNKNOWN
        if state & scard.SCARD_STATE_MUTE or family is Family.UNKNOWN:
            return Observation(family, failure=Failure.MUTE, presentations=presentations)
        if family not in PROBED_FAMILIES:  # FeliCa, MIFARE, storage cards: never connect, never send
            return Observation(family, presentations=presentations)
        result, card, protocol = scard.SCardConnect(
            context, reader, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
        )
        result = _code(result)
        if result != scard.SCARD_S_SUCCESS:
            fault = _connect_fault(result, reader)
            if fault is not None:
                raise fault
            failure = Failure.REMOVED if result in GONE_ON_TRANSMIT else Failure.CONNECT
            return Observation(family, failure=failure, presentations=presentations)

        def transmit(command: bytes) -> bytes:
            result, response = scard.SCardTransmit(card, protocol, list(command))
            result = _code(result)
            if result in GONE_ON_TRANSMIT:
                raise CardGone()
            fault = _connect_fault(result, reader)
            if fault is not None:
                raise fault  # not a CardGone / CardTransportError: the probe lets it through
            if result != scard.SCARD_S_SUCCESS:
                raise CardTransportError(f"0x{result:08X}")
            return bytes(response)

        try:
            return observe(family, transmit, self.options, presentations, started)
        finally:
            scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)
