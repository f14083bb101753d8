"""PC/SC back-end (pyscard's low-level `scard` API): Sony RC-S300 and any CCID reader under pcscd.

A supervised loop of our own over `SCardGetStatusChange` (with the `\\\\?PnP?\\Notification` pseudo-reader)
instead of pyscard's CardMonitor, whose thread dies for good when pcscd stops. The loop blocks in pcscd
(event-driven, no polling) for at most WAIT_MS, so the loop beats its heartbeat about once a second even
while idle; `stop` cancels the wait through `SCardCancel`. Losing the reader or pcscd posts
`ReaderStatus(False, ...)`; the loop re-establishes itself and posts `ReaderStatus(True, ...)`.
"""

from __future__ import annotations

import threading
import time

from smartcard import scard

from hardware.readers.atr import family_of
from hardware.readers.contract import (
    CardGone,
    CardTransportError,
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
from hardware.readers.toolkit import FlapCounter, StatusLatch, supervise

PNP_READER = "\\\\?PnP?\\Notification"
WAIT_MS = 1_000  # the longest wait between heartbeats (well within the watchdog's window); `stop` cancels it
CANCEL_RETRY_SECONDS = 0.05
RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0)  # back-off while pcscd or the reader is missing
GONE_ON_TRANSMIT = {
    scard.SCARD_W_REMOVED_CARD,
    scard.SCARD_E_NO_SMARTCARD,
    scard.SCARD_W_RESET_CARD,
    scard.SCARD_W_UNPOWERED_CARD,
}
SERVICE_LOST = {scard.SCARD_E_NO_SERVICE, scard.SCARD_E_SERVICE_STOPPED, scard.SCARD_F_COMM_ERROR}
READER_LOST_STATES = scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_UNAVAILABLE | scard.SCARD_STATE_IGNORE


def _code(result: int) -> int:
    return result & 0xFFFFFFFF


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
            raise ReaderLost("pcscd is not running (PC/SC service unavailable)")
        with self._context_lock:
            self._context = context
        try:
            while not stop.is_set():
                heartbeat()
                reader = self._find_reader(context)
                if reader is None:
                    self._wait_for_readers(post, context)
                    continue
                self._status.report(post, ReaderStatus(True, reader))
                self._watch(post, stop, context, reader, heartbeat)
        finally:
            with self._context_lock:
                self._context = None
            scard.SCardReleaseContext(context)

    def _find_reader(self, context: int) -> str | None:
        result, names = scard.SCardListReaders(context, [])
        result = _code(result)
        if result == scard.SCARD_E_NO_READERS_AVAILABLE:
            return None
        self._check(result)
        wanted = self.name.casefold()
        return next((n for n in names if wanted in n.casefold()), None)

    def _wait_for_readers(self, post: Post, context: int) -> None:
        """Report the missing reader and block until the set of readers changes (or stop)."""
        result, names = scard.SCardListReaders(context, [])
        found = ", ".join(names) if _code(result) == scard.SCARD_S_SUCCESS and names else "none"
        wanted = f" matching {self.name!r}" if self.name else ""
        self._status.report(post, ReaderStatus(False, f"no card reader{wanted} found (readers: {found}); plug one in"))
        result, _ = scard.SCardGetStatusChange(context, WAIT_MS, [(PNP_READER, len(names) << 16 if names else 0)])
        self._check(_code(result))

    def _check(self, result: int) -> None:
        if result in (scard.SCARD_S_SUCCESS, scard.SCARD_E_TIMEOUT, scard.SCARD_E_CANCELLED):
            return
        if result in SERVICE_LOST or result == scard.SCARD_E_INVALID_HANDLE:
            raise ReaderLost("pcscd stopped (PC/SC service unavailable)")
        raise ReaderLost(f"PC/SC error 0x{result:08X}")

    def _watch(self, post: Post, stop: threading.Event, context: int, reader: str, heartbeat: Heartbeat) -> None:
        """Post Presented / Removed for `reader` until `stop` (return) or until it or pcscd is lost (ReaderLost).

        The event counter in the state's high word catches a swap between two pcscd polls. Whatever ends
        the watch, an item still shown as present is reported removed.
        """
        states = [(reader, scard.SCARD_STATE_UNAWARE), (PNP_READER, scard.SCARD_STATE_UNAWARE)]
        present, count = False, -1
        try:
            while not stop.is_set():
                heartbeat()
                result, changed = scard.SCardGetStatusChange(context, WAIT_MS, states)
                result = _code(result)
                if result == scard.SCARD_E_CANCELLED:
                    return
                if result in (scard.SCARD_E_UNKNOWN_READER, scard.SCARD_E_READER_UNAVAILABLE):
                    raise ReaderLost(f"card reader {reader!r} was unplugged")
                self._check(result)
                if result == scard.SCARD_E_TIMEOUT:
                    continue
                (_, state, atr), (_, pnp_state, _) = changed
                if state & READER_LOST_STATES or (
                    pnp_state & scard.SCARD_STATE_CHANGED and reader not in self._listed(context)
                ):
                    raise ReaderLost(f"card reader {reader!r} was unplugged")
                here, new_count = bool(state & scard.SCARD_STATE_PRESENT), state >> 16
                if here and (not present or new_count != count):
                    if present:
                        post(Removed())
                    present = False
                    post(Presented(self._observe(context, reader, state, bytes(atr))))
                elif present and not here:
                    post(Removed())
                present, count = here, new_count
                states = [(reader, state & ~scard.SCARD_STATE_CHANGED),
                          (PNP_READER, pnp_state & ~scard.SCARD_STATE_CHANGED)]
        finally:
            if present:
                post(Removed())

    def _listed(self, context: int) -> list[str]:
        result, names = scard.SCardListReaders(context, [])
        return names if _code(result) == scard.SCARD_S_SUCCESS else []

    def _observe(self, context: int, reader: str, state: int, atr: bytes) -> Observation:
        started = time.monotonic()
        presentations = self._flaps.add(started)
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
            failure = Failure.REMOVED if result in GONE_ON_TRANSMIT else Failure.CONNECT
            return Observation(family, failure=failure, presentations=presentations)

        def transmit(command: bytes) -> bytes:
            result, response = scard.SCardTransmit(card, protocol, list(command))
            result = _code(result)
            if result in GONE_ON_TRANSMIT:
                raise CardGone()
            if result != scard.SCARD_S_SUCCESS:
                raise CardTransportError(f"0x{result:08X}")
            return bytes(response)

        try:
            return observe(family, transmit, self.options, presentations, started)
        finally:
            scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)
