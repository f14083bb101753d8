"""nfcpy back-end: RC-S380 / RC-S330 / PN533 / ACR122U over USB (and nfcpy's `udp` driver in tests).

Senses Type A, Type B and FeliCa itself instead of `clf.connect()`, so nothing is activated that need not
be: FeliCa and MIFARE items are only sensed (never activated, never sent an APDU); ISO-DEP items are
activated (RATS / ATTRIB) and probed through the shared allow-listed probe. `tag.ndef` is never touched.
nfcpy logs UIDs, PUPIs and IDms at DEBUG: its loggers are pinned to WARNING whenever this module runs.
"""

from __future__ import annotations

import logging
import threading
import time

from hardware.readers.atr import contactless_atr, family_of
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

TECHNOLOGIES = ("106A", "106B", "212F")
IDLE_SECONDS = 0.1  # pause between sense rounds when nothing answered
PRESENCE_SECONDS = 0.25  # how often a presented item is checked for removal
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)  # back-off while the reader is missing


def pin_nfc_loggers() -> None:
    """Keep nfcpy's loggers at WARNING: at DEBUG they print UIDs, PUPIs and IDms."""
    import nfc  # noqa: F401  (importing nfc sets its logger to INFO: pin after that)

    names = [n for n in logging.root.manager.loggerDict if n == "nfc" or n.startswith("nfc.")]
    for name in {"nfc", *names}:
        logging.getLogger(name).setLevel(logging.WARNING)


pin_nfc_loggers()


def target_family(target) -> Family:
    """The family of a sensed nfcpy RemoteTarget, from its technology and identifier-free fields only."""
    if target.brty.endswith("F"):
        return Family.FELICA
    if target.brty.endswith("B"):
        sensb_res = bytes(target.sensb_res or b"")
        if len(sensb_res) < 12:
            return Family.UNKNOWN
        # PC/SC Part 3 builds a Type B ATR from ATQB application data + protocol info (never the PUPI)
        return family_of(contactless_atr(sensb_res[5:12] + b"\x00"))
    sens_res, sel_res = bytes(target.sens_res or b""), bytes(target.sel_res or b"")
    if len(sens_res) == 2 and sens_res[0] & 0x1F == 0:
        return Family.STORAGE  # Type 1 (Topaz)
    if not sel_res:
        return Family.UNKNOWN
    return Family.ISO_DEP_A if sel_res[0] & 0x20 else Family.MIFARE


class NfcReader(Reader):
    """Watches one nfcpy device (`path`: usb, usb:054c:06c3, udp:HOST:PORT, ...)."""

    kind = "nfc"

    @classmethod
    def open(cls, request: OpenRequest) -> NfcReader:
        """Spec `nfc[:PATH]`: PATH is nfcpy's device path (default `usb`); checked when the reader runs."""
        return cls(path=request.arg or "usb", options=request.options)

    def __init__(self, path: str = "usb", options: ProbeOptions | None = None,
                 technologies: tuple[str, ...] = TECHNOLOGIES) -> None:
        self.path = path
        self.options = options or ProbeOptions()
        self.technologies = technologies
        self.description = f"NFC reader {path}"
        self._status = StatusLatch()
        self._flaps = FlapCounter(self.options.flap_window_seconds)

    def run(self, post: Post, stop: threading.Event, heartbeat: Heartbeat = no_heartbeat) -> None:
        pin_nfc_loggers()
        supervise(lambda: self._session(post, stop, heartbeat), post, stop, self._status, RETRY_SECONDS,
                  self.description, heartbeat)

    def _session(self, post: Post, stop: threading.Event, heartbeat: Heartbeat) -> None:
        """Open the device and watch it until `stop`; a missing or lost device raises ReaderLost."""
        import nfc

        clf = nfc.ContactlessFrontend()
        try:
            try:
                opened = clf.open(self.path)
            except ValueError:
                raise ReaderLost(
                    f"{self.path!r} is not an nfcpy device path (usb, usb:054c:06c3, tty:USB0, ...)") from None
            if not opened:
                raise ReaderLost(f"no NFC reader found at {self.path!r}; plug one in")
            self._status.report(post, ReaderStatus(True, self.description))
            self._watch(clf, post, stop, heartbeat)
        except OSError as exc:  # unplugged, busy (pcscd holding an ACR122U), no permission
            raise ReaderLost(f"NFC reader {self.path!r} unavailable: {exc.strerror or exc}") from None
        finally:
            clf.close()

    def _watch(self, clf, post: Post, stop: threading.Event, heartbeat: Heartbeat) -> None:
        from nfc.clf import RemoteTarget

        targets = [RemoteTarget(brty) for brty in self.technologies]
        while not stop.is_set():
            heartbeat()
            target = clf.sense(*targets, iterations=1)
            if target is None:
                stop.wait(IDLE_SECONDS)
                continue
            tag, observation = self._observe(clf, target)
            post(Presented(observation))
            try:
                self._wait_removed(clf, target, tag, stop, heartbeat)
            finally:
                post(Removed())

    def _observe(self, clf, target):
        from nfc.clf import CommunicationError
        from nfc.tag.tt4 import Type4ATag, Type4BTag

        started = time.monotonic()
        presentations = self._flaps.add(started)
        family = target_family(target)
        if family not in PROBED_FAMILIES:
            return None, Observation(family, presentations=presentations)
        try:
            tag = Type4BTag(clf, target) if target.brty.endswith("B") else Type4ATag(clf, target)
        except (CommunicationError, IndexError, TypeError):  # no or a malformed ATS / ATTRIB answer
            return None, Observation(family, failure=Failure.CONNECT, presentations=presentations)
        return tag, observe(family, _transmit(tag), self.options, presentations, started)

    def _wait_removed(self, clf, target, tag, stop: threading.Event, heartbeat: Heartbeat) -> None:
        """Block until the item leaves the field (ISO-DEP: presence check; others: sensed again)."""
        from nfc.clf import RemoteTarget

        while not stop.wait(PRESENCE_SECONDS):
            heartbeat()
            if tag is not None:
                if not tag.is_present:
                    return
            elif clf.sense(RemoteTarget(target.brty), iterations=1) is None:
                return


def _transmit(tag):
    """A raw transmit over an activated ISO-DEP tag, translating nfcpy errors (whose texts are not kept)."""
    import nfc.tag
    from nfc.clf import BrokenLinkError, CommunicationError, TimeoutError

    def transmit(command: bytes) -> bytes:
        try:
            response = tag.transceive(bytearray(command))
        except nfc.tag.TagCommandError as exc:
            if exc.errno == nfc.tag.TIMEOUT_ERROR:
                raise CardGone() from None
            raise CardTransportError("ISO-DEP error") from None
        except (TimeoutError, BrokenLinkError):
            raise CardGone() from None
        except CommunicationError:
            raise CardTransportError("RF error") from None
        return bytes(response or b"")

    return transmit
