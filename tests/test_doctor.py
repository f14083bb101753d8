"""`kiosk doctor`: the pure checks (kiosk.doctor), its texts, and every failure path for real — the command run
as a process against a real pcscd (stopped), real mosquitto (down, wrong password, ACL denial), a tmpfs that is
full, fonts hidden by a mount namespace, and a device tree (tests/rigs/devices.py) whose USB node the user
running the doctor cannot open."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from kiosk import doctor
from kiosk.doctor import DoctorTexts, Finding, Status, UsbDevice
from kiosk.locales import placeholders, source_files
from tests.rigs.devices import DeviceTree
from tests.rigs.mosquitto import free_port

REPO = Path(__file__).resolve().parent.parent
SHIPPED_BROKER = REPO / "systemd" / "mosquitto"
RC_S300, RC_S380 = (0x054C, 0x0DC8), (0x054C, 0x06C3)
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mount namespaces, capabilities)")


# --- pure checks ------------------------------------------------------------------------------------------


def _usb(ids, accessible=True):
    return UsbDevice(ids[0], ids[1], "/dev/bus/usb/001/002", accessible)


@pytest.mark.parametrize(("backend", "ids", "expected"), [
    ("pcsc", RC_S300, "readers.drivable"),
    ("nfc", RC_S300, "readers.wrong_backend"),  # nfcpy has no RC-S300 driver
    ("nfc", RC_S380, "readers.drivable"),
    ("pcsc", RC_S380, "readers.drivable"),
    ("nfc:usb", (0x04CC, 0x2533), "readers.drivable"),
    ("pcsc", (0x04CC, 0x2533), "readers.wrong_backend"),
    ("pcsc", (0x1D6B, 0x0002), "readers.none"),  # a root hub is no reader
    ("sim:demo", (0x1D6B, 0x0002), "readers.simulated"),
])
def test_reader_back_end_by_usb_id(backend, ids, expected):
    (finding, *_) = doctor.reader_findings(backend, [_usb(ids)])
    assert finding.text == expected
    assert finding.status is (Status.FAILED if expected in ("readers.wrong_backend", "readers.none") else Status.OK)


def test_usb_node_permission_matters_only_when_the_kiosk_opens_it():
    assert [f.text for f in doctor.reader_findings("nfc", [_usb(RC_S380, accessible=False)])] == [
        "readers.drivable", "usb.denied"]
    assert [f.text for f in doctor.reader_findings("pcsc", [_usb(RC_S380, accessible=False)])] == [
        "readers.drivable", "usb.pcscd_opens"]  # pcscd (root) opens it, not the kiosk


def test_disk_outbox_and_exit_code():
    assert doctor.disk_findings("/s", 10 * 2**20, None)[0].text == "disk.full"
    assert doctor.disk_findings("/s", 100 * 2**20, None)[0].text == "disk.low"
    assert doctor.disk_findings("/s", 10 * 2**30, None)[0].status is Status.OK
    assert doctor.outbox_findings("/o", 90, 100, None)[0].status is Status.WARNING
    warnings = doctor.clock_findings(False) + doctor.display_findings([], [])
    assert doctor.exit_code(warnings) == 0
    assert doctor.exit_code(warnings + doctor.font_findings({"日本語": ["/x.ttc"]})) == 1


def test_staff_texts_ja_and_en_match_and_are_not_demanded_of_patient_locales():
    root = REPO / "catalogue" / "locales"
    ja, en = (json.loads((root / lang / "doctor.json").read_text(encoding="utf-8")) for lang in ("ja", "en"))
    assert ja.keys() == en.keys()
    assert all(placeholders(ja[key]) == placeholders(en[key]) for key in ja), "placeholders differ"
    assert "doctor.json" not in source_files()  # staff-only: the 13 other languages do not translate it
    for key in ja:  # every warning or failure text carries its one-line fix
        if not key.endswith(".fix") and not key.startswith(("check.", "summary")) and f"{key}.fix" not in ja:
            assert key.endswith((".ok", ".none", ".not_used", ".simulated", ".drivable", ".disabled",
                                 ".pcscd_opens")), key


def test_checklist_shows_fix_lines_in_the_staff_language():
    findings = [Finding("broker", Status.FAILED, "broker.unreachable", {"url": "mqtt://x", "detail": "refused"}),
                Finding("clock", Status.OK, "clock.ok")]
    text = doctor.render(findings, DoctorTexts("ja"))
    assert "[FAIL] MQTT ブローカー: mqtt://x に接続できません: refused" in text
    assert "→ ブローカーを起動するか" in text and "失敗 1 件" in text
    assert "→" not in text.splitlines()[-2]  # no fix line under an OK item


# --- the command, for real --------------------------------------------------------------------------------


def appliance_broker(mosquitto_factory, tmp_path, acl: str | None = None):
    """systemd/mosquitto/kiosk.conf + kiosk.acl (or `acl`) on a loopback port, account kiosk / k-pw."""
    conf = (SHIPPED_BROKER / "kiosk.conf").read_text().replace("/etc/mosquitto/", "{dir}/")
    conf = conf.replace("listener 1883 127.0.0.1", "listener {port} 127.0.0.1") + "\nlog_dest stderr\n"
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "kiosk", "k-pw"], check=True, capture_output=True)
    return mosquitto_factory(conf, {"kiosk.acl": acl or (SHIPPED_BROKER / "kiosk.acl").read_text(),
                                    "kiosk.passwd": passwd.read_bytes()})


def write_config(folder: Path, *, url: str, password: str = "k-pw", backend: str = "pcsc",
                 state_dir: Path | None = None) -> Path:
    secret = folder / "mqtt-password"
    secret.write_text(password + "\n")
    secret.chmod(0o600)
    state = state_dir or folder / "state"
    state.mkdir(exist_ok=True)
    path = folder / "config.toml"
    path.write_text(f"""
[kiosk]
id = "k1"
site = "s1"
state_dir = "{state}"
[reader]
backend = "{backend}"
[mqtt]
url = "{url}"
username = "kiosk"
password_file = "{secret}"
[voice]
enabled = false
""")
    return path


def healthy_devices(root: Path) -> DeviceTree:
    tree = DeviceTree(root)
    tree.add_usb(*RC_S380, mode=0o660)
    tree.add_node("dev/gpiochip0", 254, 0, 0o660)
    tree.add_node("dev/dri/card0", 226, 0, 0o660)
    tree.add_node("dev/input/event0", 13, 64, 0o660)
    return tree


def run_doctor(config: Path, devices: Path, *, prefix: tuple[str, ...] = ()):
    """`kiosk doctor --json` as a process; returns (exit code, {check id: [finding, ...]})."""
    env = {**os.environ, "KIOSK_DEVICE_ROOT": str(devices)}
    result = subprocess.run([*prefix, sys.executable, "-m", "kiosk", "--config", str(config), "doctor", "--json",
                             "--lang", "en"], capture_output=True, text=True, env=env, timeout=120,
                            cwd="/")
    assert result.stdout, result.stderr
    by_check: dict[str, list[dict]] = {}
    for record in json.loads(result.stdout):
        by_check.setdefault(record["check"], []).append(record)
    return result.returncode, by_check


def _status(findings, check):
    return [(f["status"], f["id"]) for f in findings[check]]


@pytest.mark.pcsc
@pytest.mark.mqtt
def test_a_healthy_kiosk_passes_then_pcscd_stopped_fails(pcscd, mosquitto_factory, tmp_path):
    broker = appliance_broker(mosquitto_factory, tmp_path)
    config = write_config(tmp_path, url=broker.url)
    healthy_devices(tmp_path / "devices")
    code, findings = run_doctor(config, tmp_path / "devices")
    failed = [f for group in findings.values() for f in group if f["status"] == "failed"]
    assert code == 0 and not failed, failed
    assert _status(findings, "pcscd") == [("ok", "pcscd.ok")]
    assert "Virtual PCD" in findings["pcscd"][0]["message"]
    assert _status(findings, "broker") == [("ok", "broker.ok")]
    assert _status(findings, "readers") == [("ok", "readers.drivable")]

    pcscd.stop()
    try:
        code, findings = run_doctor(config, tmp_path / "devices")
    finally:
        pcscd.start()
    assert code == 1 and _status(findings, "pcscd") == [("failed", "pcscd.not_running")]
    assert "systemctl enable --now pcscd.socket" in findings["pcscd"][0]["fix"]


@pytest.mark.mqtt
def test_broker_down_wrong_password_and_acl_denials(mosquitto_factory, tmp_path):
    devices = tmp_path / "devices"
    healthy_devices(devices)
    code, findings = run_doctor(write_config(tmp_path, url=f"mqtt://127.0.0.1:{free_port()}", backend="sim"), devices)
    assert code == 1 and _status(findings, "broker") == [("failed", "broker.unreachable")]

    broker = appliance_broker(mosquitto_factory, tmp_path)
    code, findings = run_doctor(write_config(tmp_path, url=broker.url, password="wrong", backend="sim"), devices)
    assert code == 1 and _status(findings, "broker") == [("failed", "broker.login_refused")]
    assert "password_file" in findings["broker"][0]["fix"]

    # mosquitto grants every SUBSCRIBE and filters on delivery, so its ACL denials show on publishing
    for acl, expected in (("user kiosk\ntopic readwrite elsewhere/#\n", "broker.publish_denied"),
                          ("user kiosk\ntopic read kiosk/+/+/cmd\n", "broker.publish_denied")):
        folder = Path(tempfile.mkdtemp(dir=tmp_path))
        broker = appliance_broker(mosquitto_factory, folder, acl)
        code, findings = run_doctor(write_config(folder, url=broker.url, backend="sim"), devices)
        assert code == 1 and _status(findings, "broker") == [("failed", expected)]
        assert "kiosk/s1/k1/" in findings["broker"][0]["message"]


@needs_root
def test_a_full_filesystem_and_missing_fonts_fail(tmp_path):
    """A 256 KiB tmpfs filled to the brim as the state dir, and /usr/share/fonts hidden by an empty tmpfs,
    each inside a private mount namespace (gone when the doctor exits)."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare not installed (util-linux)")
    devices = tmp_path / "devices"
    healthy_devices(devices)
    state = tmp_path / "small"
    state.mkdir()
    config = write_config(tmp_path, url=f"mqtt://127.0.0.1:{free_port()}", backend="sim", state_dir=state)
    fill = (f"mount -t tmpfs -o size=256k kiosk-full {state} && (head -c 1M /dev/zero > {state}/filler || true) && "
            'exec "$@"')
    code, findings = run_doctor(config, devices, prefix=("unshare", "--mount", "--propagation", "private",
                                                         "sh", "-c", fill, "sh"))
    assert code == 1 and _status(findings, "disk") == [("failed", "disk.not_writable")]
    assert "No space left on device" in findings["disk"][0]["message"]

    hide = 'mount -t tmpfs kiosk-no-fonts /usr/share/fonts && exec "$@"'
    code, findings = run_doctor(config, devices, prefix=("unshare", "--mount", "--propagation", "private",
                                                         "sh", "-c", hide, "sh"))
    missing = {f["message"].split(":")[0] for f in findings["fonts"] if f["status"] == "failed"}
    assert code == 1 and {"日本語", "English", "Tiếng Việt"} <= missing  # shipped merged fonts (Thai…) stay
    assert "fonts-noto-cjk" in findings["fonts"][0]["fix"]
    code, findings = run_doctor(config, devices)
    assert _status(findings, "fonts") == [("ok", "fonts.ok")] and _status(findings, "disk")[0][0] != "failed"


@needs_root
def test_an_unreadable_usb_node_fails_for_the_user_running_the_doctor(tmp_path):
    """The node belongs to another user, mode 0600 (what a missing udev rule leaves); the doctor runs as root
    without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH (setpriv), so the kernel refuses it as it would the kiosk."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv not installed (util-linux)")
    tree = healthy_devices(tmp_path / "devices")
    node = tree.add_usb(*RC_S380, mode=0o600)
    os.chown(node, 4242, 4242)
    config = write_config(tmp_path, url=f"mqtt://127.0.0.1:{free_port()}", backend="nfc")
    without_dac = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--")
    code, findings = run_doctor(config, tmp_path / "devices", prefix=without_dac)
    denied = [f for f in findings["usb"] if f["id"] == "usb.denied"]
    assert code == 1 and len(denied) == 1 and str(node) in denied[0]["message"], findings["usb"]
    assert "plugdev" in denied[0]["fix"]
    code, findings = run_doctor(config, tmp_path / "devices")  # with its capabilities root may open it
    assert all(f["id"] == "usb.ok" for f in findings["usb"])


def test_an_invalid_config_fails_but_the_other_checks_still_run(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[mqtt]\nurl = 5\n")
    code, findings = run_doctor(config, tmp_path)
    assert code == 1 and _status(findings, "config") == [("failed", "config.invalid")]
    assert "url" in findings["config"][0]["message"] and "broker" in findings
