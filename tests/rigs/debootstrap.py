"""Debian 12 roots made with debootstrap, for running systemd/install.sh as on a real machine: the host's own
architecture (tests/test_install.py) or arm64 through qemu-user-static and binfmt_misc (tests/test_arm64.py).

- `debian_root(work, arch=None)`: a minbase bookworm root (+ systemd) from the host's Debian mirror, with the
  host's resolver and CA bundle (pip gets it through PIP_CERT / SSL_CERT_FILE: the network may intercept TLS),
  a policy-rc.d that keeps packages from starting daemons, /proc mounted and a copy of the project's tracked
  files in /usr/src/kiosk. Context manager: unmounts /proc and deletes everything on exit. Nothing is cached
  outside `work`.
- `arm64_refused()`: None once the kernel runs aarch64 programs (registering qemu-aarch64 with binfmt_misc if
  needed), else the reason it cannot.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
FALLBACK_MIRROR = "http://deb.debian.org/debian"
BINFMT = Path("/proc/sys/fs/binfmt_misc")
QEMU = Path("/usr/bin/qemu-aarch64-static")
# binfmt_misc entry for aarch64 ELF executables (as in Debian's qemu-user-static); F: the interpreter is opened
# at registration, so it also runs inside a chroot that lacks it.
AARCH64_MAGIC = r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00"
AARCH64_MASK = r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"


def host_mirror() -> str:
    """The Debian mirror this machine's apt uses (deb822 .sources or sources.list), not the security one."""
    texts = [p.read_text() for p in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*.sources")]
             if p.is_file()]
    for text in texts:
        for uri in re.findall(r"^URIs:\s*(\S+)", text, re.M) + re.findall(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", text, re.M):
            if "security" not in uri:
                return uri
    return FALLBACK_MIRROR


def arm64_refused() -> str | None:
    """None when this kernel can run aarch64 programs (registers qemu-aarch64 if needed), else why not."""
    if platform.machine() == "aarch64":
        return None
    if not QEMU.exists():
        return "qemu-user-static is not installed (Debian package qemu-user-static)"
    if not (BINFMT / "register").exists():
        command = ["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            return f"cannot mount binfmt_misc: {result.stderr.strip()}"
    entry = BINFMT / "qemu-aarch64"
    if not entry.exists():
        rule = f":qemu-aarch64:M::{AARCH64_MAGIC}:{AARCH64_MASK}:{QEMU}:F"
        try:
            (BINFMT / "register").write_bytes(rule.encode().decode("unicode_escape").encode("latin-1"))
        except OSError as exc:
            return f"the kernel refused the binfmt_misc registration of qemu-aarch64: {exc}"
    if not entry.read_text().startswith("enabled"):
        return "binfmt_misc has qemu-aarch64 registered but disabled (update-binfmts --enable qemu-aarch64)"
    return None


class Chroot:
    def __init__(self, root: Path):
        self.root = root
        self.env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "DEBIAN_FRONTEND": "noninteractive",
            "PIP_CERT": "/etc/kiosk-test-ca.crt",  # the CAs this machine trusts (its network may intercept TLS)
            "SSL_CERT_FILE": "/etc/kiosk-test-ca.crt",
            "PIP_DEFAULT_TIMEOUT": os.environ.get("PIP_DEFAULT_TIMEOUT", "60"),
        }

    def path(self, inside: str) -> Path:
        return self.root / inside.lstrip("/")

    def run(self, *command: str, timeout: float = 1800, env: dict[str, str] | None = None,
            prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        """`command` inside the root (after `prefix` outside it, e.g. `unshare --net`)."""
        return subprocess.run([*prefix, "chroot", str(self.root), *command], env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=timeout)

    def install(self, *args: str, script: str = "/usr/src/kiosk/systemd/install.sh", **options) -> str:
        result = self.run(script, *args, **options)
        assert result.returncode == 0, f"install.sh {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout + result.stderr

    def passwd(self, user: str) -> list[str] | None:
        for line in self.path("/etc/passwd").read_text().splitlines():
            if line.split(":")[0] == user:
                return line.split(":")
        return None

    def groups_of(self, user: str) -> set[str]:
        lines = self.path("/etc/group").read_text().splitlines()
        return {line.split(":")[0] for line in lines if user in line.split(":")[3].split(",")}


def is_mounted(path: Path) -> bool:
    return any(line.split()[1] == str(path) for line in Path("/proc/mounts").read_text().splitlines())


def copy_sources(into: Path) -> None:
    """The project's tracked files (what a clone has), as they are in the working tree."""
    into.mkdir(parents=True)
    if (REPO / ".git").exists():
        files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
        for name in filter(None, files.decode().split("\0")):
            if (REPO / name).is_file():
                (into / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / name, into / name)
    else:
        shutil.copytree(REPO, into, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".venv", "*.egg-info", "build"))


@contextmanager
def debian_root(work: Path, arch: str | None = None) -> Iterator[Chroot]:
    root = work / "root"
    proc = root / "proc"
    try:
        subprocess.run(["debootstrap", *([f"--arch={arch}"] if arch else []), "--variant=minbase",
                        "--include=systemd", "bookworm", str(root), host_mirror()],
                       check=True, capture_output=True, timeout=1800)
        shutil.copy("/etc/resolv.conf", root / "etc" / "resolv.conf")
        shutil.copy("/etc/ssl/certs/ca-certificates.crt", root / "etc" / "kiosk-test-ca.crt")
        # no fsync per unpacked file: a throw-away root, and under qemu each fsync is costly
        (root / "etc" / "dpkg" / "dpkg.cfg.d" / "kiosk-test-unsafe-io").write_text("force-unsafe-io\n")
        policy = root / "usr" / "sbin" / "policy-rc.d"  # packages must not start daemons inside the chroot
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        subprocess.run(["mount", "-t", "proc", "proc", str(proc)], check=True)
        copy_sources(root / "usr" / "src" / "kiosk")
        yield Chroot(root)
    finally:
        if is_mounted(proc):
            subprocess.run(["umount", "-l", str(proc)], check=False)
        if not is_mounted(proc):  # never delete through a mount
            shutil.rmtree(work, ignore_errors=True)
