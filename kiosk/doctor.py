"""`kiosk doctor`'s checks as data: facts in, findings out. Pure: no I/O (the probes that gather the facts are
`kiosk.doctor_probes`; the command is `kiosk.cli.doctor`).

A `Finding` names its check, its status and a text id of `catalogue/locales/<lang>/doctor.json` (ja, en: the
staff's languages) with the placeholders to fill; every warning and failure has a one-line fix, the text id
plus `.fix`. The exit code is 1 when any finding failed, else 0 (warnings do not fail).

USB ids of the readers (the same as systemd/udev/60-kiosk-readers.rules) and which back-end can drive each:
the RC-S300 is a CCID reader (pcsc only: nfcpy has no driver for it); the RC-S380, PN533 and ACR122U are
nfcpy devices, and the RC-S380 and ACR122U are also driven by pcscd (libccid / libacsccid).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from hardware.readers.registry import KNOWN_READERS
from kiosk.paths import catalogue_root
from kiosk.vocabulary import STAFF_LANGUAGES

TEXTS_FILE = "doctor.json"

MIN_FREE_BYTES = 50 * 1024 * 1024  # below: the outbox and voice clips may not fit (failed)
LOW_FREE_BYTES = 200 * 1024 * 1024  # below: warn before it fills
OUTBOX_HIGH_SHARE = 0.8  # pending events above this share of [mqtt] outbox_cap: the oldest will soon be dropped


class Status(StrEnum):
    OK = "ok"
    WARNING = "warning"
    FAILED = "failed"


@dataclass(frozen=True)
class Finding:
    """One line of the checklist: `check` (the group, e.g. "broker"), `status`, `text` (a doctor.json id)
    and the `params` its placeholders take."""

    check: str
    status: Status
    text: str
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UsbDevice:
    """A USB device as sysfs lists it; `node` is its /dev/bus/usb path, `accessible` = read+write for us."""

    vendor: int
    product: int
    node: str
    accessible: bool


@dataclass(frozen=True)
class DeviceNode:
    path: str
    accessible: bool


class BrokerOutcome(StrEnum):
    """How far the broker probe got (kiosk.doctor_probes.probe_broker)."""

    OK = "ok"
    UNREACHABLE = "unreachable"  # no TCP connection / TLS handshake failed
    LOGIN_REFUSED = "login_refused"  # CONNACK: bad user name or password / not authorised
    REFUSED = "refused"  # CONNACK: another reason
    PUBLISH_DENIED = "publish_denied"  # PUBACK reason >= 0x80 (ACL)
    SUBSCRIBE_DENIED = "subscribe_denied"  # SUBACK reason >= 0x80 (ACL; mosquitto grants it and filters later)
    BAD_SETTINGS = "bad_settings"  # the password file or TLS files cannot be used


class PcscOutcome(StrEnum):
    OK = "ok"
    NOT_RUNNING = "not_running"  # SCARD_E_NO_SERVICE: no pcscd socket to talk to
    REFUSED = "refused"  # pcscd answered but refused this user (polkit)
    NO_LIBRARY = "no_library"  # pyscard cannot be imported


# --- one function per check: facts -> findings -----------------------------------------------------------


def config_findings(path: str, error: str | None) -> list[Finding]:
    if error is None:
        return [Finding("config", Status.OK, "config.ok", {"path": path})]
    return [Finding("config", Status.FAILED, "config.invalid", {"path": path, "error": error})]


def pcscd_findings(backend: str, outcome: PcscOutcome | None, readers: Sequence[str] = ()) -> list[Finding]:
    """`outcome` None: not probed because the configured back-end does not use PC/SC."""
    if outcome is None:
        return [Finding("pcscd", Status.OK, "pcscd.not_used", {"backend": backend})]
    if outcome is PcscOutcome.OK:
        return [Finding("pcscd", Status.OK, "pcscd.ok", {"readers": ", ".join(readers) or "-"})]
    return [Finding("pcscd", Status.FAILED, f"pcscd.{outcome.value}")]


def reader_findings(backend: str, devices: Sequence[UsbDevice]) -> list[Finding]:
    """Which present reader the configured back-end (`pcsc`, `nfc`, `sim[:…]`) can drive, and the USB
    permissions of every known reader."""
    name = backend.partition(":")[0]
    known = [(d, KNOWN_READERS[(d.vendor, d.product)]) for d in devices if (d.vendor, d.product) in KNOWN_READERS]
    findings: list[Finding] = []
    if name == "sim":
        findings.append(Finding("readers", Status.OK, "readers.simulated", {"backend": backend}))
    elif not known:
        findings.append(Finding("readers", Status.FAILED, "readers.none", {"backend": name}))
    else:
        for device, reader in known:
            params = {"model": reader.model, "usb_id": f"{device.vendor:04x}:{device.product:04x}",
                      "backend": name, "backends": " / ".join(reader.backends)}
            if name in reader.backends:
                findings.append(Finding("readers", Status.OK, "readers.drivable", params))
            else:
                findings.append(Finding("readers", Status.FAILED, "readers.wrong_backend", params))
    for device, reader in known:
        if not device.accessible and name in ("nfc", "sim"):  # pcscd (root) opens the node for pcsc
            findings.append(Finding("usb", Status.FAILED, "usb.denied", {"model": reader.model, "node": device.node}))
        elif not device.accessible:
            findings.append(Finding("usb", Status.OK, "usb.pcscd_opens", {"model": reader.model, "node": device.node}))
        else:
            findings.append(Finding("usb", Status.OK, "usb.ok", {"model": reader.model, "node": device.node}))
    return findings


def gpio_findings(chips: Sequence[DeviceNode], pins: Mapping[str, int], busy: Mapping[int, str]) -> list[Finding]:
    """`pins`: the configured role -> BCM pin; `busy`: BCM pin -> the consumer already holding it."""
    if not pins:
        return [Finding("gpio", Status.OK, "gpio.not_used")]
    if not chips:
        return [Finding("gpio", Status.WARNING, "gpio.no_chip")]
    denied = [chip.path for chip in chips if not chip.accessible]
    if denied:
        return [Finding("gpio", Status.FAILED, "gpio.denied", {"nodes": ", ".join(denied)})]
    findings = [Finding("gpio", Status.FAILED, "gpio.pin_busy", {"role": role, "pin": str(pin), "user": busy[pin]})
                for role, pin in pins.items() if pin in busy]
    return findings or [Finding("gpio", Status.OK, "gpio.ok", {"pins": ", ".join(f"{r} {p}" for r, p in pins.items())})]


def display_findings(cards: Sequence[DeviceNode], inputs: Sequence[DeviceNode]) -> list[Finding]:
    """DRM cards (/dev/dri/card*, renderD*) and input devices (/dev/input/event*). None at all is a warning
    (a build machine, a headless kiosk); present but not accessible to us fails."""
    findings = []
    for group, nodes in (("display", cards), ("input", inputs)):
        denied = [n.path for n in nodes if not n.accessible]
        if not nodes:
            findings.append(Finding(group, Status.WARNING, f"{group}.none"))
        elif denied:
            findings.append(Finding(group, Status.FAILED, f"{group}.denied", {"nodes": ", ".join(denied)}))
        else:
            findings.append(Finding(group, Status.OK, f"{group}.ok", {"count": str(len(nodes))}))
    return findings


def broker_findings(url: str, user: str, outcome: BrokerOutcome, detail: str = "", topic: str = "") -> list[Finding]:
    params = {"url": url, "user": user or "-", "detail": detail, "topic": topic}
    status = Status.OK if outcome is BrokerOutcome.OK else Status.FAILED
    return [Finding("broker", status, f"broker.{outcome.value}", params)]


def clock_findings(synchronised: bool | None) -> list[Finding]:
    """From kiosk.clock.synchronized() (the kernel's adjtimex state; None: could not tell)."""
    if synchronised:
        return [Finding("clock", Status.OK, "clock.ok")]
    return [Finding("clock", Status.WARNING, "clock.unknown" if synchronised is None else "clock.unsynchronised")]


def disk_findings(state_dir: str, free_bytes: int | None, write_error: str | None) -> list[Finding]:
    """`free_bytes` for the kiosk (statvfs f_bavail); `write_error` from writing and fsyncing a probe file."""
    params = {"dir": state_dir, "free_mb": "?" if free_bytes is None else str(free_bytes // (1024 * 1024))}
    if write_error is not None or free_bytes is None:
        return [Finding("disk", Status.FAILED, "disk.not_writable", {**params, "error": write_error or "?"})]
    if free_bytes < MIN_FREE_BYTES:
        return [Finding("disk", Status.FAILED, "disk.full", params)]
    if free_bytes < LOW_FREE_BYTES:
        return [Finding("disk", Status.WARNING, "disk.low", params)]
    return [Finding("disk", Status.OK, "disk.ok", params)]


def outbox_findings(path: str, pending: int | None, cap: int, error: str | None) -> list[Finding]:
    """`pending` None and no error: no outbox yet (nothing sent so far)."""
    params = {"path": path, "pending": str(pending or 0), "cap": str(cap)}
    if error is not None:
        return [Finding("outbox", Status.FAILED, "outbox.broken", {**params, "error": error})]
    if pending is None:
        return [Finding("outbox", Status.OK, "outbox.none", params)]
    if pending >= cap * OUTBOX_HIGH_SHARE:
        return [Finding("outbox", Status.WARNING, "outbox.filling", params)]
    return [Finding("outbox", Status.OK, "outbox.ok", params)]


def font_findings(missing: Mapping[str, Sequence[str]]) -> list[Finding]:
    """`missing`: language name -> the font files it looks for, none of which exists."""
    if not missing:
        return [Finding("fonts", Status.OK, "fonts.ok")]
    return [Finding("fonts", Status.FAILED, "fonts.missing", {"language": lang, "fonts": ", ".join(fonts)})
            for lang, fonts in missing.items()]


def voice_findings(enabled: bool, missing_programs: Sequence[str], clips: int | None) -> list[Finding]:
    """`missing_programs`: engines/players not found (aplay, open_jtalk, espeak-ng, the dictionary);
    `clips`: Japanese clips made by `kiosk voice build` (None: the cache folder cannot be read)."""
    if not enabled:
        return [Finding("voice", Status.OK, "voice.disabled")]
    findings = [Finding("voice", Status.WARNING, "voice.missing", {"program": p}) for p in missing_programs]
    if not clips:
        findings.append(Finding("voice", Status.WARNING, "voice.no_clips"))
    return findings or [Finding("voice", Status.OK, "voice.ok", {"clips": str(clips)})]


# --- rendering --------------------------------------------------------------------------------------------


class DoctorTexts:
    """doctor.json (or another staff-only file `name`, e.g. staff.json) of one staff language (falling back
    to English for a missing id)."""

    def __init__(self, lang: str, root: Path | None = None, name: str = TEXTS_FILE) -> None:
        folder = (root or catalogue_root()) / "locales"
        self.lang = lang if lang in STAFF_LANGUAGES else "en"
        self.fallback: dict[str, str] = json.loads((folder / "en" / name).read_text(encoding="utf-8"))
        self.texts: dict[str, str] = json.loads((folder / self.lang / name).read_text(encoding="utf-8"))

    def get(self, key: str, params: Mapping[str, str] | None = None) -> str:
        template = self.texts.get(key, self.fallback.get(key, key))
        try:
            return template.format_map(dict(params or {}))
        except (KeyError, ValueError):
            return template


def exit_code(findings: Iterable[Finding]) -> int:
    return 1 if any(f.status is Status.FAILED for f in findings) else 0


MARKS = {Status.OK: "OK  ", Status.WARNING: "WARN", Status.FAILED: "FAIL"}


def as_records(findings: Sequence[Finding], texts: DoctorTexts) -> list[dict[str, str | None]]:
    """One dict per finding: check, status, text id, message and fix (None when OK)."""
    return [{"check": f.check, "status": f.status.value, "id": f.text, "message": texts.get(f.text, f.params),
             "fix": None if f.status is Status.OK else texts.get(f"{f.text}.fix", f.params)} for f in findings]


def render(findings: Sequence[Finding], texts: DoctorTexts) -> str:
    """The checklist: `[OK  ] title: message`, and for a warning or failure an indented `→ fix` line,
    then a summary line."""
    lines = []
    for finding, record in zip(findings, as_records(findings, texts), strict=True):
        lines.append(f"[{MARKS[finding.status]}] {texts.get(f'check.{finding.check}')}: {record['message']}")
        if record["fix"]:
            lines.append(f"       → {record['fix']}")
    counts = {status: sum(f.status is status for f in findings) for status in Status}
    lines.append(texts.get("summary", {"ok": str(counts[Status.OK]), "warnings": str(counts[Status.WARNING]),
                                       "failed": str(counts[Status.FAILED])}))
    return "\n".join(lines)
