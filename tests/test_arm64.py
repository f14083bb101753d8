"""The Pi's own architecture: systemd/install.sh in an arm64 Debian 12 root run through qemu-user-static
(binfmt_misc), exactly as on a Pi — pyscard compiled for aarch64, Kivy's aarch64 wheel, lgpio (the `pi` extra) —
then the kiosk inside it: --help, catalogue validate, a simulated pre-check, the offscreen demo with its
screenshots (Mesa's software renderer, emulated). Then the offline bundle: systemd/bundle.sh builds the aarch64
wheelhouse in the same root, and install.sh installs and upgrades from it with the network cut (a network
namespace with no interfaces, pip configured with no index).

One root for the whole session (built once: the slowest part); slow; root only. Skipped only when the kernel
refuses the binfmt_misc registration or a package is missing (with the reason)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.rigs.debootstrap import REPO, arm64_refused, debian_root

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root (debootstrap, chroot, binfmt_misc)")]
KIOSK = "/opt/kiosk/venv/bin/kiosk"
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="session")
def arm64(tmp_path_factory):
    for tool in ("debootstrap", "unshare"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    reason = arm64_refused()
    if reason:
        pytest.skip(reason)
    started = time.monotonic()
    with debian_root(Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp(), prefix="arm64-")), "arm64") as root:
        TIMINGS["debootstrap"] = time.monotonic() - started
        yield root
    print("arm64 timings (s):", {name: round(seconds) for name, seconds in TIMINGS.items()})


def _timed(name: str, function, *args, **options):
    started = time.monotonic()
    try:
        return function(*args, **options)
    finally:
        TIMINGS[name] = time.monotonic() - started


@pytest.fixture(scope="session")
def installed(arm64):
    """install.sh run once in the arm64 root (KMS mode, as on Pi OS Lite); its output."""
    assert arm64.run("uname", "-m").stdout.strip() == "aarch64"
    return _timed("install", arm64.install, "--display", "kms")


def test_install_builds_for_aarch64_and_checks_itself(arm64, installed):
    python = "/opt/kiosk/venv/bin/python"
    probe = arm64.run(python, "-c", "import platform, smartcard.scard, kivy, lgpio, gpiozero, nfc; "
                      "print(platform.machine(), smartcard.scard.__file__, kivy.__version__)")
    assert probe.returncode == 0, probe.stderr
    machine, scard_module, _ = probe.stdout.splitlines()[-1].split()  # after any Kivy log lines
    assert machine == "aarch64"
    assert "ARM aarch64" in subprocess.run(["file", "-L", str(arm64.path(scard_module).parent.glob("_scard*.so")
                                                              .__next__())], capture_output=True, text=True).stdout
    # the checklist ran at the end, as the kiosk user, in Japanese; a chroot has no pcscd or broker running
    assert "checking the installation: kiosk doctor" in installed
    assert "設定ファイル: /etc/kiosk/config.toml は正しい設定です" in installed
    assert "kiosk doctor found problems" in installed  # ... which does not fail the install


def test_kiosk_commands_run_on_arm64(arm64, installed):
    assert arm64.run(KIOSK, "--help").returncode == 0
    result = arm64.run(KIOSK, "catalogue", "validate")
    assert result.returncode == 0, result.stdout + result.stderr
    result = arm64.run(KIOSK, "precheck", "--reader", "sim:mynumber_card", "--once", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["outcome"] == "mynumber_card"


def test_demo_renders_offscreen_on_arm64(arm64, installed):
    result = _timed("demo", arm64.run, "sh", "-c", f"cd /tmp && {KIOSK} demo --out /tmp/shots",
                    env={"SDL_VIDEODRIVER": "offscreen", "KIVY_NO_ARGS": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    shots = sorted(p.name for p in arm64.path("/tmp/shots").glob("*.png"))
    assert any("ja" in name for name in shots) and any("en" in name for name in shots), shots
    assert all(p.stat().st_size > 2000 for p in arm64.path("/tmp/shots").glob("*.png"))


def test_offline_bundle_installs_and_upgrades_with_the_network_cut(arm64, installed, tmp_path):
    out = tmp_path / "bundle"
    result = _timed("bundle", subprocess.run, [str(REPO / "systemd" / "bundle.sh"), "--out", str(out),
                                               "--arm64-root", str(arm64.root)],
                    capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, result.stderr[-5000:]
    wheelhouse = out / "kiosk" / "wheelhouse"
    names = [p.name for p in wheelhouse.glob("*.whl")]
    for project in ("pyscard", "lgpio", "kivy", "pydantic_core", "nfcpy", "setuptools"):
        assert any(n.lower().startswith(project) for n in names), (project, names)
    assert all("x86_64" not in n for n in names)
    assert any("aarch64" in n for n in names if n.lower().startswith("pyscard"))

    shutil.copytree(out, arm64.path("/root/bundle"), symlinks=True)
    arm64.path("/etc/pip.conf").write_text("[global]\nno-index = true\n")  # pip knows no index at all ...
    offline = ("unshare", "--net")  # ... and there is no network: only a loopback that is down
    try:
        no_network = arm64.run("python3", "-c", "import socket; socket.create_connection(('pypi.org', 443), 5)",
                               prefix=offline)
        assert no_network.returncode != 0
        shutil.rmtree(arm64.path("/opt/kiosk/venv"))  # a first install: every package from the wheelhouse
        script = "/root/bundle/kiosk/systemd/install.sh"
        output = _timed("offline install", arm64.install, "--find-links", "/root/bundle/kiosk/wheelhouse",
                        script=script, prefix=offline)
        assert "installing offline from /root/bundle/kiosk/wheelhouse" in output
        assert arm64.run(KIOSK, "catalogue", "validate", prefix=offline).returncode == 0
        package = arm64.path("/root/bundle/kiosk/kiosk/__init__.py")  # a newer version: upgrade in place
        package.write_text(package.read_text() + "\nUPGRADE_MARKER = 1\n")
        arm64.install("--find-links", "/root/bundle/kiosk/wheelhouse", script=script, prefix=offline)
        upgraded = arm64.run("/opt/kiosk/venv/bin/python", "-c", "import kiosk; print(kiosk.UPGRADE_MARKER)")
        assert upgraded.stdout.strip() == "1", upgraded.stderr
    finally:
        arm64.path("/etc/pip.conf").unlink()
