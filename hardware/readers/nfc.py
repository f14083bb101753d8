"""nfcpy back-end: RC-S380 / RC-S330 / PN533 / ACR122U over USB (and nfcpy's `udp` driver in tests).

Senses Type A, Type B and FeliCa itself instead of `clf.connect()`, so nothing is activated that need not
be: FeliCa and MIFARE items are only sensed (never activated, never sent an APDU); ISO-DEP items are
activated (RATS / ATTRIB) and probed through the shared allow-listed probe. `tag.ndef` is never touched.
nfcpy logs UIDs, PUPIs and IDms at DEBUG: its loggers are pinned to WARNING whenever this module runs.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time

from hardware.readers.atr import contactless_atr, family_of
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
from hardware.readers.registry import KNOWN_READERS
from hardware.readers.toolkit import FlapCounter, StatusLatch, supervise, this_user

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
        """Open the device and watch it until `stop`; a missing, busy, forbidden or lost device raises ReaderLost."""
        import nfc

        clf = nfc.ContactlessFrontend()
        opened = False
        try:
            try:
                opened = clf.open(self.path)
            except ValueError:
                raise ReaderLost(f"{self.path!r} is not an nfcpy device path (usb, usb:054c:06c3, tty:USB0, ...)",
                                 Cause.BAD_DEVICE_PATH, path=self.path) from None
            if not opened:
                raise self._not_opened()
            self._status.report(post, ReaderStatus.ready(self.description))
            self._watch(clf, post, stop, heartbeat)
        except OSError as exc:
            raise self._os_fault(exc, opened) from None
        finally:
            clf.close()

    def _os_fault(self, exc: OSError, opened: bool) -> ReaderLost:
        """What an OSError from nfcpy (libusb, a tty) means for staff; only its errno is kept."""
        path, code = self.path, exc.errno
        if code == errno.EBUSY:
            return ReaderLost(f"NFC reader {path!r} is busy: another program (pcscd for an ACR122U?) holds it",
                              Cause.READER_BUSY, reader=path)
        if code in (errno.EACCES, errno.EPERM):
            return ReaderLost(f"user {this_user()} may not open NFC reader {path!r} (udev rule, plugdev group)",
                              Cause.NO_PERMISSION, reader=path, user=this_user())
        if code in (errno.ENODEV, errno.ENOENT):
            cause = Cause.READER_UNPLUGGED if opened else Cause.READER_MISSING
            return ReaderLost(f"NFC reader {path!r} {'was unplugged' if opened else 'not found'}", cause,
                              reader=path, wanted=path, readers="none")
        if code in (errno.EIO, errno.ETIMEDOUT, errno.EPIPE):
            return ReaderLost(f"communication with NFC reader {path!r} failed ({errno.errorcode.get(code, code)})",
                              Cause.COMM_ERROR, reader=path)
        name = errno.errorcode.get(code or 0, str(code))
        return ReaderLost(f"NFC reader {path!r} unavailable ({name})", Cause.DRIVER_ERROR, reader=path, error=name)

    def _not_opened(self) -> ReaderLost:
        """Why nfcpy found no device at a (partial) path: it skips readers it may not open or has no driver
        for, and says only False. Looks at the USB devices the path matches, without opening any."""
        for vendor, product, bus, dev in _usb_devices(self.path):
            known = KNOWN_READERS.get((vendor, product))
            if known is not None and self.kind not in known.backends:
                return ReaderLost(f"the {known.model} ({vendor:04x}:{product:04x}) works only with "
                                  f"{' or '.join(known.backends)}, not nfcpy", Cause.UNSUPPORTED_MODEL,
                                  model=known.model, backends=", ".join(known.backends))
            if _nfcpy_drives(vendor, product):
                if not os.access(f"/dev/bus/usb/{int(bus):03d}/{int(dev):03d}", os.R_OK | os.W_OK):
                    return self._os_fault(OSError(errno.EACCES, "no permission"), False)
                return self._os_fault(OSError(errno.EBUSY, "busy"), False)
        return ReaderLost(f"no NFC reader found at {self.path!r}; plug one in", Cause.READER_MISSING,
                          wanted=self.path, readers="none")

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


def _usb_devices(path: str) -> list[tuple[int, int, str, str]]:
    """(vendor, product, bus, device) of the USB devices an nfcpy `usb...` path matches; [] for other paths or
    when libusb cannot enumerate."""
    if not path.startswith("usb"):
        return []
    from nfc.clf import transport

    try:
        return [(int(v), int(p), str(b), str(d)) for v, p, b, d in transport.USB.find(path) or []]
    except Exception:  # no libusb backend, no USB bus (containers)
        return []


def _nfcpy_drives(vendor: int, product: int) -> bool:
    from nfc.clf import device

    return (vendor, product) in device.usb_device_map


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
