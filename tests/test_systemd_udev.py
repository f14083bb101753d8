"""udev rules: the readers the kiosk supports are covered, and every group they grant is one install.sh puts
the kiosk user in."""

import re
from pathlib import Path

SYSTEMD = Path(__file__).resolve().parent.parent / "systemd"
RULES = sorted((SYSTEMD / "udev").glob("*.rules"))


def _rule_lines():
    for path in RULES:
        for line in path.read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                yield path.name, line


def _usb_ids() -> set[str]:
    ids = set()
    for _, line in _rule_lines():
        vendor = re.search(r'ATTRS\{idVendor\}=="([0-9a-f]{4})"', line)
        products = re.search(r'ATTRS\{idProduct\}=="([0-9a-f|]+)"', line)
        if vendor and products:
            ids |= {f"{vendor.group(1)}:{product}" for product in products.group(1).split("|")}
    return ids


def test_supported_readers_are_covered():
    """The nfcpy readers (hardware.readers.registry.KNOWN_READERS with back-end nfc), and not the RC-S300:
    nfcpy cannot drive it, pcscd opens it."""
    from hardware.readers.registry import KNOWN_READERS

    nfcpy = {f"{v:04x}:{p:04x}" for (v, p), known in KNOWN_READERS.items() if "nfc" in known.backends}
    assert {"054c:06c1", "054c:06c3", "04cc:2533", "072f:2200"} <= nfcpy
    assert nfcpy <= _usb_ids()
    assert not {"054c:0dc8", "054c:0dc9"} & _usb_ids()


def test_granted_groups_are_the_kiosk_users_groups_and_access_is_not_world_wide():
    script = (SYSTEMD / "install.sh").read_text()
    device_groups = set(re.search(r"^DEVICE_GROUPS=\(([^)]*)\)", script, re.M).group(1).split())
    for name, line in _rule_lines():
        group = re.search(r'GROUP="([^"]+)"', line)
        if group:
            assert group.group(1) in device_groups, f"{name}: {line}"
        mode = re.search(r'MODE="(\d+)"', line)
        if mode:
            assert mode.group(1).endswith("0"), f"{name}: world access in {line}"


def test_rule_lines_use_only_match_and_assign_operators():
    """A typo like ATTRS{idVendor}="054c" (assignment, not match) silently matches every device."""
    for name, line in _rule_lines():
        for key, op in re.findall(r"([A-Z]+(?:\{[^}]*\})?)\s*(==|!=|\+=|=)", line):
            if key in ("ACTION", "SUBSYSTEM", "KERNEL", "ATTRS", "ENV") or key.startswith(("ATTRS{", "ENV{")):
                assert op in ("==", "!="), f"{name}: {key} must be matched, not assigned: {line}"
