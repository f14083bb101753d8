"""Scripted reader faults at the driver boundary, for what real pcsc-lite / nfcpy cannot be made to do on demand.

PC/SC: `ScardFaults` interposes on pyscard's `smartcard.scard` module (the functions `hardware.readers.pcsc`
calls: SCardEstablishContext, SCardListReaders, SCardGetStatusChange, SCardConnect, SCardTransmit). Each
function has a queue of scripted faults; a call takes the next one, or goes to the real function (the real
pcscd + vpcd of `tests.rigs.pcsc`) when its queue is empty. A fault is a callable `(real, *args) -> result`
that may call `real(*args)` and change its answer, or answer alone:
- `fail(code)`: the function returns `code` (its payload empty, shaped like pyscard's: ListReaders `[]`,
  Connect `(handle 0, protocol 0)`, ...) without reaching pcscd;
- `reader_state(bits)`: GetStatusChange answers at once that the watched reader is in state `bits`
  (e.g. UNAVAILABLE|EXCLUSIVE|CHANGED, a known CCID report) while the real card lies still;
- `without_reader(name)`: ListReaders really asks pcscd, then leaves `name` out (a reader being unplugged).
`calls` counts the calls of each function. Used for transient states, SCARD_F_COMM_ERROR, SCARD_E_NO_ACCESS
and unplug races; sharing violations and refusals are produced for real (see tests/test_reader_faults.py).

nfcpy: `NfcFaults` interposes on `nfc.clf.device.connect` (where nfcpy's USB transport raises IOError
EBUSY / EACCES / ENODEV from libusb) and on `nfc.clf.transport.USB.find` (the USB devices a path matches),
since no USB reader exists here and nfcpy's udp driver never binds a port, so a held port cannot make it busy.

Fixtures (plugin "tests.rigs.scard_faults"): `scard_faults`, `nfc_faults`; both are undone at teardown.
"""

from __future__ import annotations

import os
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from typing import Any

import pytest

Fault = Callable[..., Any]
EMPTY_PAYLOAD: dict[str, tuple[Any, ...]] = {
    "SCardEstablishContext": (0,),
    "SCardListReaders": ([],),
    "SCardGetStatusChange": ([],),
    "SCardConnect": (0, 0),
    "SCardTransmit": ([],),
}


def fail(code: int, pause: float = 0.0) -> Fault:
    """Answer `code` without reaching pcscd (after `pause` seconds: a blocking call that returns an error)."""

    def fault(real: Callable[..., Any], *args: Any) -> Any:
        if pause:
            time.sleep(pause)
        return None  # replaced by ScardFaults with the function's empty payload

    fault.code = code  # type: ignore[attr-defined]
    return fault


def reader_state(bits: int, pause: float = 0.0) -> Fault:
    """GetStatusChange: the first watched reader reports `bits` (its ATR kept), the others as asked."""
    from smartcard import scard

    def fault(real: Callable[..., Any], context: int, timeout: int, states: list) -> Any:
        if pause:
            time.sleep(pause)
        answered = [(name, bits if i == 0 else (current & ~scard.SCARD_STATE_CHANGED), [])
                    for i, (name, current) in enumerate(states)]
        return scard.SCARD_S_SUCCESS, answered

    return fault


def without_reader(name: str) -> Fault:
    """ListReaders: pcscd's real list, minus readers whose name contains `name`."""

    def fault(real: Callable[..., Any], *args: Any) -> Any:
        result, names = real(*args)
        return result, [n for n in names if name not in n]

    return fault


class ScardFaults:
    """The scripted fault table over `smartcard.scard` (see the module docstring)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from smartcard import scard

        self.table: dict[str, deque[Fault]] = defaultdict(deque)
        self.calls: Counter[str] = Counter()
        for function in EMPTY_PAYLOAD:
            monkeypatch.setattr(scard, function, self._wrap(function, getattr(scard, function)))

    def add(self, function: str, fault: Fault, times: int = 1) -> None:
        """The next `times` calls of `function` (an SCard* name) meet `fault`."""
        assert function in EMPTY_PAYLOAD, f"{function} is not interposed"
        self.table[function].extend([fault] * times)

    def pending(self, function: str) -> int:
        """Scripted faults of `function` not met yet."""
        return len(self.table[function])

    def wait_met(self, function: str, timeout: float = 10.0) -> None:
        """Block until every scripted fault of `function` was met (AssertionError after `timeout` s)."""
        deadline = time.monotonic() + timeout
        while self.table[function]:
            assert time.monotonic() < deadline, f"{len(self.table[function])} {function} faults never met"
            time.sleep(0.02)

    def _wrap(self, function: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            self.calls[function] += 1
            queue = self.table[function]
            if not queue:
                return real(*args)
            fault = queue.popleft()
            answer = fault(real, *args)
            if answer is None:
                return (fault.code, *EMPTY_PAYLOAD[function])  # type: ignore[attr-defined]
            return answer

        return call


class NfcFaults:
    """nfcpy's device boundary: `device_error(errno)` makes opening any path raise IOError(errno) as the USB
    transport does; `usb_devices([(vendor, product, bus, dev), ...])` is what `USB.find` matches."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch

    def device_error(self, code: int) -> None:
        from nfc.clf import device

        def connect(path: str) -> Any:
            raise OSError(code, os.strerror(code))

        self.monkeypatch.setattr(device, "connect", connect)

    def usb_devices(self, found: list[tuple[int, int, str, str]]) -> None:
        from nfc.clf import device, transport

        self.monkeypatch.setattr(transport.USB, "find", classmethod(lambda cls, path: list(found)))
        self.monkeypatch.setattr(device, "connect", lambda path: None)  # nfcpy skips what it cannot open


@pytest.fixture
def scard_faults(monkeypatch) -> ScardFaults:
    pytest.importorskip("smartcard", reason="pyscard is not installed")
    return ScardFaults(monkeypatch)


@pytest.fixture
def nfc_faults(monkeypatch) -> NfcFaults:
    pytest.importorskip("nfc", reason="nfcpy is not installed")
    return NfcFaults(monkeypatch)

