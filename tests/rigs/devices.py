"""Device-tree rig for `kiosk doctor`: a prepared `/sys/bus/usb` + `/dev` tree that `KIOSK_DEVICE_ROOT` points
the doctor's device discovery at (the documented boundary in kiosk/doctor_probes.py), because readers, GPIO
chips and displays cannot be plugged into a build machine. The nodes are real character devices made with
mknod (major 189 = USB devices, 254 = gpiochip, 226 = DRM, 13 = input) where the kernel allows it, else plain
files with the same permissions; either way the doctor tests access with the rights of the user running it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class DeviceTree:
    """A fake root: `add_usb(vendor, product, mode)` adds a USB device (sysfs attributes + /dev/bus/usb
    node), `add_node("dev/dri/card0", major, minor, mode)` any other device node."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "sys/bus/usb/devices").mkdir(parents=True, exist_ok=True)
        (root / "dev").mkdir(parents=True, exist_ok=True)
        self._count = 0

    def add_node(self, relative: str, major: int, minor: int, mode: int) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        for directory in [path.parent, *path.parent.parents]:
            if directory == self.root or self.root not in directory.parents:
                break
            directory.chmod(0o755)
        try:
            os.mknod(path, stat.S_IFCHR | mode, os.makedev(major, minor))
        except PermissionError:
            path.touch()
        path.chmod(mode)
        return path

    def add_usb(self, vendor: int, product: int, mode: int = 0o660, bus: int = 1) -> Path:
        self._count += 1
        number = self._count + 1
        device = self.root / f"sys/bus/usb/devices/{bus}-{self._count}"
        device.mkdir(parents=True)
        for name, value in (("idVendor", f"{vendor:04x}"), ("idProduct", f"{product:04x}"),
                            ("busnum", str(bus)), ("devnum", str(number))):
            (device / name).write_text(value + "\n")
        interface = self.root / f"sys/bus/usb/devices/{bus}-{self._count}:1.0"  # interfaces have no ids
        interface.mkdir()
        return self.add_node(f"dev/bus/usb/{bus:03d}/{number:03d}", 189, (bus - 1) * 128 + number - 1, mode)
