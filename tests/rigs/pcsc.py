"""PC/SC rig: a real `pcscd --foreground` with vsmartcard-vpcd, and virtual cards speaking the vpcd protocol.

Fixtures (pytest plugin "tests.rigs.pcsc"):
- `pcscd` (session): starts pcscd, holding an exclusive lock on /tmp/kiosk-pcscd.lock for its lifetime so
  concurrent pytest runs on this machine take turns; stopped by PID. `pcscd.restart()` / `pcscd.stop()` /
  `pcscd.start()` for recovery tests.
- `virtual_card` (function): a factory `virtual_card(profile_or_preset, slot=0, insert=True) -> VirtualCard`;
  every card is removed at teardown, which also fails the test if any card received an APDU outside the
  allow-list.
- `running_reader` (function): a factory `running_reader(reader) -> RunningReader` running any
  `hardware.readers` Reader in its thread and collecting its events; stopped at teardown.

vpcd wire protocol: every message is a 2-byte big-endian length + payload; a 1-byte payload is a control
byte (00 off, 01 on, 02 reset, 04 "send the ATR"), anything longer a command APDU. The card is the TCP
client: insert = connect, remove = close.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import queue
import shutil
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from hardware.readers import apdu
from hardware.readers.cards import PROFILES, CardProfile
from hardware.readers.contract import Observation, Presented, Reader, ReaderStatus

LOCK_PATH = Path("/tmp/kiosk-pcscd.lock")
VPCD_CONF = Path("/etc/reader.conf.d/vpcd")
VPCD_PORT = 35963  # slot n listens on VPCD_PORT + n
VPCD_READER = "Virtual PCD 00 0"  # + slot number
CTRL_ATR = 0x04

# Every preset → the expected outcome with no phone choice, with "iphone" chosen, with "android" chosen
EXPECTED_OUTCOMES = {
    "mynumber_card": ("mynumber_card", "smartphone_mismatch", "smartphone_mismatch"),
    "android": ("smartphone_android", "smartphone_mismatch", "smartphone_android"),
    "iphone": ("smartphone_iphone", "smartphone_iphone", "smartphone_mismatch"),
    "transit_card": ("not_mynumber", "smartphone_mismatch", "smartphone_mismatch"),
    "credit_card": ("not_mynumber", "smartphone_mismatch", "smartphone_mismatch"),
    "mifare": ("not_mynumber", "smartphone_mismatch", "smartphone_mismatch"),
    "juki_card": ("not_mynumber", "smartphone_mismatch", "smartphone_mismatch"),
    "silent": ("unreadable_card", "smartphone_unreadable", "smartphone_unreadable"),
    "pulled_mid_exchange": ("unreadable_card", "smartphone_unreadable", "smartphone_unreadable"),
    "flapping": ("unreadable_card", "smartphone_unreadable", "smartphone_unreadable"),
    "two_cards": ("unreadable_card", "smartphone_unreadable", "smartphone_unreadable"),
}


def reader_name(slot: int = 0) -> str:
    return f"{VPCD_READER}{slot}"


class VirtualCard:
    """A card on vpcd slot `slot` playing `profile`; `received` lists every command APDU it was sent."""

    def __init__(self, profile: CardProfile, slot: int = 0) -> None:
        self.profile = profile
        self.slot = slot
        self.received: list[bytes] = []
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._answered = 0

    @property
    def inserted(self) -> bool:
        return self._sock is not None

    def insert(self, timeout: float = 5.0) -> None:
        """Connect to vpcd (the card enters the field)."""
        assert self._sock is None, "already inserted"
        deadline = time.monotonic() + timeout
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", VPCD_PORT + self.slot), timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(None)
        self._answered = 0
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, args=(sock,), daemon=True, name="virtual-card")
        self._thread.start()

    def remove(self) -> None:
        """Close the socket (the card leaves the field)."""
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _serve(self, sock: socket.socket) -> None:
        try:
            while True:
                message = _recv_frame(sock)
                if message is None:
                    break
                if len(message) == 1:
                    if message[0] == CTRL_ATR:
                        _send_frame(sock, self.profile.atr)
                    continue  # power on / off / reset: no reply
                self.received.append(message)
                if self.profile.pull_after is not None and self._answered >= self.profile.pull_after:
                    break  # pulled mid-exchange
                self._answered += 1
                _send_frame(sock, self.profile.respond(message))
        except OSError:
            pass
        with self._lock:
            if self._sock is sock:
                self._sock = None
                sock.close()


def _recv_exact(sock: socket.socket, count: int) -> bytes | None:
    data = b""
    while len(data) < count:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)  # vpcd sends length and payload apart
        chunk = sock.recv(count - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _recv_frame(sock: socket.socket) -> bytes | None:
    header = _recv_exact(sock, 2)
    if header is None:
        return None
    return _recv_exact(sock, struct.unpack(">H", header)[0])


def _send_frame(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(struct.pack(">H", len(payload)) + payload)


class Pcscd:
    """One pcscd process in the foreground, stopped by PID."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> None:
        assert self.process is None
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (kept open for pcscd's lifetime, closed in stop)
        self.process = subprocess.Popen(
            ["pcscd", "--foreground"], stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while not self._readers_listed():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"pcscd did not show the vpcd readers; see {self.log_path}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
        self._log.close()

    def restart(self) -> None:
        self.stop()
        self.start()

    @staticmethod
    def _readers_listed() -> bool:
        from smartcard import scard

        result, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if result != scard.SCARD_S_SUCCESS:
            return False
        try:
            result, names = scard.SCardListReaders(context, [])
            return result == scard.SCARD_S_SUCCESS and any(n.startswith(VPCD_READER) for n in names)
        finally:
            scard.SCardReleaseContext(context)

def pcsc_rig_missing() -> str | None:
    """Why the PC/SC rig cannot run here, or None."""
    if os.geteuid() != 0:
        return "the PC/SC rig needs root (pcscd's socket lives in /run/pcscd)"
    if shutil.which("pcscd") is None:
        return "pcscd is not installed (Debian package pcscd)"
    if not VPCD_CONF.exists():
        return "vsmartcard-vpcd is not installed (Debian package vsmartcard-vpcd)"
    try:
        import smartcard  # noqa: F401
    except ImportError:
        return "pyscard is not installed"
    return None


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory):
    """A real pcscd with the vpcd readers, exclusive to this test session (others wait on the lock)."""
    reason = pcsc_rig_missing()
    if reason:
        pytest.skip(reason)
    with open(LOCK_PATH, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        daemon = Pcscd(tmp_path_factory.mktemp("pcscd") / "pcscd.log")
        daemon.start()
        try:
            yield daemon
        finally:
            daemon.stop()
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture
def virtual_card(pcscd):
    """Factory: `virtual_card("mynumber_card")` (or a CardProfile) inserts a card; all are removed afterwards."""
    cards: list[VirtualCard] = []

    def make(profile: CardProfile | str, slot: int = 0, insert: bool = True) -> VirtualCard:
        card = VirtualCard(PROFILES[profile] if isinstance(profile, str) else profile, slot)
        cards.append(card)
        if insert:
            card.insert()
        return card

    yield make
    for card in cards:
        card.remove()
    for slot in {card.slot for card in cards}:
        wait_until_empty(slot)  # so the next test does not meet this card's ghost (pcscd polls every 400 ms)
    for card in cards:  # a safety net for every test using the rig: nothing outside the allow-list, ever
        assert set(card.received) <= apdu.ALLOWED, f"{card.profile.name} received an APDU outside the allow-list"


def wait_until_empty(slot: int, timeout: float = 3.0) -> None:
    """Block until pcscd reports no card in vpcd slot `slot` (no-op when pcscd is down)."""
    from smartcard import scard

    result, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if result != scard.SCARD_S_SUCCESS:
        return
    try:
        state = scard.SCARD_STATE_UNAWARE
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result, states = scard.SCardGetStatusChange(context, 500, [(reader_name(slot), state)])
            if result not in (scard.SCARD_S_SUCCESS, scard.SCARD_E_TIMEOUT):
                return
            state = states[0][1] & ~scard.SCARD_STATE_CHANGED
            if state & scard.SCARD_STATE_EMPTY:
                return
        raise AssertionError(f"vpcd slot {slot} still shows a card {timeout} s after removal")
    finally:
        scard.SCardReleaseContext(context)


class RunningReader:
    """A Reader running in its own thread; its events are collected in `events`, its heartbeats in `beats`."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.events: queue.Queue = queue.Queue()
        self.beats: list[float] = []  # monotonic times of the reader's heartbeats
        self.stop = threading.Event()
        self.thread = threading.Thread(target=reader.run, args=(self.events.put, self.stop),
                                       kwargs={"heartbeat": lambda: self.beats.append(time.monotonic())}, daemon=True)
        self.thread.start()

    def longest_silence(self, start: float, end: float) -> float:
        """The longest time between `start` and `end` (monotonic) without a heartbeat."""
        times = [start] + [t for t in list(self.beats) if start <= t <= end] + [end]
        return max(b - a for a, b in itertools.pairwise(times))

    def next_event(self, timeout: float = 5.0):
        return self.events.get(timeout=timeout)

    def wait_for(self, predicate, timeout: float = 10.0):
        """The first event satisfying `predicate` (earlier ones are dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            if predicate(event):
                return event

    def wait_status(self, available: bool, timeout: float = 10.0) -> ReaderStatus:
        return self.wait_for(lambda e: isinstance(e, ReaderStatus) and e.available == available, timeout)

    def next_observation(self, timeout: float = 10.0) -> Observation:
        return self.wait_for(lambda e: isinstance(e, Presented), timeout).observation

    def settled_observation(self, timeout: float = 10.0, settle: float = 0.3) -> Observation:
        """The last observation of a burst (flapping posts several): the first, then any within `settle` s."""
        observation = self.next_observation(timeout)
        while True:
            try:
                event = self.events.get(timeout=settle)
            except queue.Empty:
                return observation
            if isinstance(event, Presented):
                observation = event.observation

    def close(self, timeout: float = 5.0) -> None:
        self.stop.set()
        self.thread.join(timeout=timeout)
        assert not self.thread.is_alive(), "the reader thread did not stop"


@pytest.fixture
def running_reader():
    """Factory: `running_reader(reader)` starts a Reader thread; all are stopped (and must stop) at teardown."""
    started: list[RunningReader] = []

    def start(reader: Reader) -> RunningReader:
        running = RunningReader(reader)
        started.append(running)
        return running

    yield start
    for running in started:
        running.close()
