"""The probes behind `kiosk doctor`: each looks at one real thing (a socket, a device node, the broker, the
disk, the kernel clock) and returns plain facts for `kiosk.doctor`'s pure checks. Run it as the service user
(install.sh does): permissions are tested with that user's rights.

Device discovery reads `/sys/bus/usb/devices`, `/dev/bus/usb`, `/dev/gpiochip*`, `/dev/dri` and `/dev/input`
below `KIOSK_DEVICE_ROOT` (default `/`); the tests point it at a prepared tree (tests/rigs/devices.py) to
show readers that cannot be plugged into a build machine.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

from kiosk import clock, doctor, events
from kiosk.config import Config, ConfigError
from kiosk.doctor import BrokerOutcome, DeviceNode, Finding, PcscOutcome, UsbDevice
from kiosk.outbox import OutboxStats

BROKER_TIMEOUT_SECONDS = 5.0
PCSCD_SOCKET = "/run/pcscd/pcscd.comm"  # pcsc-lite's default; PCSCLITE_CSOCK_NAME overrides it


def device_root() -> Path:
    return Path(os.environ.get("KIOSK_DEVICE_ROOT", "/"))


def _node(path: Path, mode: int) -> DeviceNode:
    return DeviceNode(str(path), os.access(path, mode))


def usb_devices(root: Path | None = None) -> list[UsbDevice]:
    """Every USB device sysfs lists, with its /dev/bus/usb node and whether we may read and write it."""
    root = root or device_root()
    found = []
    for device in sorted((root / "sys/bus/usb/devices").glob("*")):
        try:
            vendor = int((device / "idVendor").read_text().strip(), 16)
            product = int((device / "idProduct").read_text().strip(), 16)
            bus, number = (int((device / name).read_text().strip()) for name in ("busnum", "devnum"))
        except (OSError, ValueError):
            continue  # an interface, not a device
        node = root / f"dev/bus/usb/{bus:03d}/{number:03d}"
        found.append(UsbDevice(vendor, product, str(node), os.access(node, os.R_OK | os.W_OK)))
    return found


def probe_pcscd() -> tuple[PcscOutcome, list[str]]:
    """Can this user talk to pcscd, and which readers does it list?"""
    try:
        from smartcard import scard
    except ImportError:
        return PcscOutcome.NO_LIBRARY, []
    result, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if result != scard.SCARD_S_SUCCESS:
        return (PcscOutcome.REFUSED if _pcscd_listens() else PcscOutcome.NOT_RUNNING), []
    try:
        result, readers = scard.SCardListReaders(context, [])
        if result == scard.SCARD_E_NO_READERS_AVAILABLE:
            return PcscOutcome.OK, []
        if result != scard.SCARD_S_SUCCESS:
            return PcscOutcome.REFUSED, []
        return PcscOutcome.OK, list(readers)
    finally:
        scard.SCardReleaseContext(context)


def _pcscd_listens() -> bool:
    """Does anything accept connections on pcscd's socket (a stale socket file does not)?"""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(os.environ.get("PCSCLITE_CSOCK_NAME", PCSCD_SOCKET))
        except OSError:
            return False
    return True


def gpio_chips(root: Path | None = None) -> list[DeviceNode]:
    return [_node(p, os.R_OK | os.W_OK) for p in sorted((root or device_root()).glob("dev/gpiochip*"))]


def busy_pins(pins: list[int]) -> dict[int, str]:
    """BCM pins of the header's GPIO chip already claimed by someone else (lgpio line info); empty when
    lgpio is not installed (not a Pi) or no chip can be opened."""
    try:
        import lgpio
    except ImportError:
        return {}
    busy: dict[int, str] = {}
    for chip in range(5):  # the 40-pin header: gpiochip0 (Pi 1-4, newer Pi 5 kernels) or gpiochip4 (Pi 5)
        try:
            handle = lgpio.gpiochip_open(chip)
        except lgpio.error:
            continue
        try:
            _, _, _, label = lgpio.gpio_get_chip_info(handle)
            if "pinctrl" not in label:
                continue
            for pin in pins:
                _, _, flags, _, user = lgpio.gpio_get_line_info(handle, pin)
                if flags & 1 and user:  # the kernel (or another process) holds the line
                    busy[pin] = user
            return busy
        finally:
            lgpio.gpiochip_close(handle)
    return busy


def display_nodes(root: Path | None = None) -> tuple[list[DeviceNode], list[DeviceNode]]:
    root = root or device_root()
    cards = [_node(p, os.R_OK | os.W_OK) for p in sorted(root.glob("dev/dri/*")) if not p.is_dir()]
    inputs = [_node(p, os.R_OK) for p in sorted(root.glob("dev/input/event*"))]
    return cards, inputs


def probe_broker(config: Config) -> tuple[BrokerOutcome, str, str]:
    """Connect with the kiosk's credentials, subscribe to its command topic and publish one heartbeat event
    (QoS 1) with a client id of its own (never the kiosk's: that would disconnect the running kiosk).
    Returns (outcome, detail, topic)."""

    from kiosk.broker import new_client

    topics = events.Topics(config.mqtt.prefix, config.kiosk.site, config.kiosk.id)
    try:
        client, address = new_client(config.mqtt, f"{config.kiosk.id}-doctor-{os.getpid()}", auto_reconnect=False)
    except ConfigError as exc:
        return BrokerOutcome.BAD_SETTINGS, str(exc), ""
    answers: dict[str, object] = {}
    arrived = threading.Event()

    def answer(name: str, value: object) -> None:
        answers[name] = value
        arrived.set()

    client.on_connect = lambda _c, _u, _f, reason, _p: answer("connect", reason)
    client.on_subscribe = lambda _c, _u, _m, reasons, _p: answer("subscribe", reasons[0])
    client.on_publish = lambda _c, _u, _m, reason, _p: answer("publish", reason)

    def wait(name: str) -> object | None:
        deadline = time.monotonic() + BROKER_TIMEOUT_SECONDS
        while name not in answers and time.monotonic() < deadline:
            arrived.wait(0.05)
            arrived.clear()
        return answers.get(name)

    try:
        client.connect(address.host, address.port, keepalive=10)
    except (OSError, ValueError) as exc:
        return BrokerOutcome.UNREACHABLE, str(exc), ""
    client.loop_start()
    try:
        reason = wait("connect")
        if reason is None:
            return BrokerOutcome.UNREACHABLE, "no CONNACK", ""
        if reason.is_failure:  # type: ignore[attr-defined]
            login = reason.value in (0x86, 0x87, 0x8C)  # type: ignore[attr-defined]  # bad user name or password, not authorised, bad auth
            return (BrokerOutcome.LOGIN_REFUSED if login else BrokerOutcome.REFUSED), str(reason), ""
        client.subscribe(topics.cmd, qos=1)
        reason = wait("subscribe")
        if reason is None or reason.is_failure:  # type: ignore[attr-defined]
            return BrokerOutcome.SUBSCRIBE_DENIED, str(reason), topics.cmd
        stats = OutboxStats(backlog=0, dropped=0, refused=0, last_error=None).as_dict()
        data = {"uptime_seconds": 0.0, "outbox": stats, "clock_synchronized": clock.synchronized()}
        payload = events.envelope(events.HEARTBEAT, data, kiosk=config.kiosk.id,
                                  site=config.kiosk.site, seq=0, catalogue_version="doctor")
        client.publish(topics.event(events.HEARTBEAT), json.dumps(payload), qos=1)
        reason = wait("publish")
        if reason is None or reason.is_failure:  # type: ignore[attr-defined]
            return BrokerOutcome.PUBLISH_DENIED, str(reason), topics.event(events.HEARTBEAT)
        return BrokerOutcome.OK, "", ""
    finally:
        client.disconnect()
        client.loop_stop()


def disk_state(state_dir: Path) -> tuple[int | None, str | None]:
    """(free bytes for us, error writing and fsyncing a 64 KiB probe file there)."""
    try:
        stats = os.statvfs(state_dir)
        free: int | None = stats.f_bavail * stats.f_frsize
    except OSError as exc:
        return None, str(exc)
    try:
        with tempfile.NamedTemporaryFile(dir=state_dir, prefix=".doctor-") as probe:
            probe.write(b"\0" * 65536)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        return free, str(exc)
    return free, None


def outbox_state(path: Path) -> tuple[int | None, str | None]:
    """(events waiting in the outbox, error), read only; (None, None) when there is no outbox yet."""
    if not path.exists():
        return None, None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            (check,) = db.execute("PRAGMA quick_check").fetchone()
            if check != "ok":
                return None, str(check)
            (pending,) = db.execute("SELECT COUNT(*) FROM events").fetchone()
            return int(pending), None
        finally:
            db.close()
    except sqlite3.Error as exc:
        return None, str(exc)


def missing_fonts() -> dict[str, list[str]]:
    from kiosk.locales import load_locales

    return {locale.name: [str(f) for f in locale.fonts]
            for locale in load_locales().values() if locale.font_file() is None}


def voice_state(config: Config) -> tuple[list[str], int | None]:
    from kiosk.locales import load_locales
    from kiosk.voice import cache_dir_for

    engines = {locale.tts.engine for locale in load_locales().values() if locale.tts is not None}
    programs = ["aplay", *sorted({"open-jtalk": "open_jtalk", "espeak-ng": "espeak-ng"}.get(e, e) for e in engines)]
    missing = [program for program in programs if shutil.which(program) is None]
    if "open-jtalk" in engines and not config.voice.jtalk_dictionary.is_dir():
        missing.append(str(config.voice.jtalk_dictionary))
    try:
        clips = sum(1 for _ in cache_dir_for(config).glob("**/*.wav"))
    except OSError:
        clips = None
    return missing, clips


def run_all(config: Config, config_path: str, config_error: str | None) -> list[Finding]:
    """Every check, in checklist order."""
    backend = config.reader.backend
    uses_pcsc = backend.partition(":")[0] == "pcsc"
    pcsc_outcome, readers = probe_pcscd() if uses_pcsc else (None, [])
    pins = {role: pin for role in ("lamp", "buzzer", "call_button", "reset_button")
            if (pin := getattr(config.gpio, role)) is not None}
    cards, inputs = display_nodes()
    broker, detail, topic = probe_broker(config)
    free, write_error = disk_state(config.kiosk.state_dir)
    outbox = config.kiosk.state_dir / "outbox.sqlite3"
    pending, outbox_error = outbox_state(outbox)
    programs, clips = voice_state(config)
    return [
        *doctor.config_findings(config_path, config_error),
        *doctor.pcscd_findings(backend, pcsc_outcome, readers),
        *doctor.reader_findings(backend, usb_devices()),
        *doctor.gpio_findings(gpio_chips(), pins, busy_pins(list(pins.values())) if pins else {}),
        *doctor.display_findings(cards, inputs),
        *doctor.broker_findings(config.mqtt.url, config.mqtt.username, broker, detail, topic),
        *doctor.clock_findings(clock.synchronized()),
        *doctor.disk_findings(str(config.kiosk.state_dir), free, write_error),
        *doctor.outbox_findings(str(outbox), pending, config.mqtt.outbox_cap, outbox_error),
        *doctor.font_findings(missing_fonts()),
        *doctor.voice_findings(config.voice.enabled, programs, clips),
    ]
