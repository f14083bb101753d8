"""Kiosk start-up and idle cost, next to a bare Kivy app with one label measured in the same run.

    .venv/bin/python bench/bench_kiosk.py [--runs 3] [--idle-seconds 60]

Both run offscreen (SDL_VIDEODRIVER=offscreen). Measured per app:
- start: process start → first frame drawn with the idle screen (median of --runs starts);
- RSS after --idle-seconds of idle (VmRSS from /proc);
- CPU over those idle seconds, in % of one core (utime + stime from /proc).
The kiosk runs its real runtime: simulated reader, mock GPIO, the MQTT link to a local mosquitto when one is
installed (else its outbox). Targets (issue 5): start ≤ 1.5× bare, RSS ≤ bare + 60 MiB, idle CPU ≤ 2 %.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRST_FRAME = "FIRST_FRAME"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- the measured processes ------------------------------------------------------------------------------

def _report_first_frame(ready) -> None:
    """Print FIRST_FRAME after the first frame drawn once `ready()` holds."""
    from kivy.core.window import Window

    def flipped(*_):
        if ready():
            print(FIRST_FRAME, flush=True)
            Window.unbind(on_flip=flipped)

    Window.bind(on_flip=flipped)


def child_bare() -> None:
    from kivy.app import App
    from kivy.uix.label import Label

    class Bare(App):
        def build(self):
            return Label(text="hello")

        def on_start(self):
            _report_first_frame(lambda: True)

    Bare().run()


def child_kiosk(broker_url: str, state_dir: str) -> None:
    from gpiozero.pins.mock import MockFactory

    from hardware.readers.sim import SimReader
    from kiosk.cli.run import _build_runtime
    from kiosk.config import Config
    from kiosk.precheck import DEFAULT_RULES

    config = Config.model_validate({"kiosk": {"state_dir": state_dir}, "mqtt": {"url": broker_url},
                                    "reader": {"backend": "sim"}, "ui": {"fullscreen": False}})
    runtime = _build_runtime(config, SimReader(), DEFAULT_RULES, pin_factory=MockFactory())
    from kiosk.app import KioskApp

    app = KioskApp(runtime, fullscreen=False)
    original = app.on_start

    def on_start():
        original()
        _report_first_frame(lambda: runtime.flow.screen == "idle" and getattr(app, "view", None) is not None)

    app.on_start = on_start
    app.run()


# --- measuring -------------------------------------------------------------------------------------------

def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(SDL_VIDEODRIVER="offscreen", KIVY_NO_ARGS="1", KIVY_NO_CONSOLELOG="1", KIVY_NO_FILELOG="1",
               KIVY_USE_DEFAULTCONFIG="1", KIVY_HOME=tempfile.mkdtemp(prefix="bench-kivy-"),
               PYTHONPATH=str(ROOT))
    return env


def start(which: str, extra: list[str]) -> tuple[subprocess.Popen, float]:
    """Start a child; return it and the seconds from process start to its first idle frame."""
    began = time.monotonic()
    proc = subprocess.Popen([sys.executable, __file__, "--child", which, *extra], env=_env(), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        if line.strip() == FIRST_FRAME:
            return proc, time.monotonic() - began
    raise RuntimeError(f"{which}: exited {proc.wait()} before its first frame")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--child", choices=("bare", "kiosk"), help=argparse.SUPPRESS)
    parser.add_argument("child_args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "bare":
        return child_bare()
    if args.child == "kiosk":
        return child_kiosk(*args.child_args)

    work = Path(tempfile.mkdtemp(prefix="bench-kiosk-"))
    broker = None
    broker_url = "mqtt://127.0.0.1:9"  # nothing listens: the outbox keeps the events
    if shutil.which("mosquitto"):
        sys.path.insert(0, str(ROOT))
        from tests.rigs.mosquitto import DEFAULT_CONFIG, Broker

        broker = Broker(work / "broker", DEFAULT_CONFIG).start()
        broker_url = broker.url
    kiosk_args = [broker_url, str(work / "state")]
    try:
        starts: dict[str, list[float]] = {"bare": [], "kiosk": []}
        for _ in range(args.runs):
            for which in ("bare", "kiosk"):
                proc, seconds = start(which, kiosk_args if which == "kiosk" else [])
                starts[which].append(seconds)
                stop(proc)
        procs = {which: start(which, kiosk_args if which == "kiosk" else [])[0] for which in ("bare", "kiosk")}
        before = {which: cpu_seconds(p.pid) for which, p in procs.items()}
        time.sleep(args.idle_seconds)
        cpu = {which: 100 * (cpu_seconds(p.pid) - before[which]) / args.idle_seconds for which, p in procs.items()}
        rss = {which: rss_mib(p.pid) for which, p in procs.items()}
        for p in procs.values():
            stop(p)
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(work, ignore_errors=True)

    start_bare, start_kiosk = statistics.median(starts["bare"]), statistics.median(starts["kiosk"])
    print(f"broker: {broker_url if broker else 'none (outbox)'}; runs: {args.runs}; idle: {args.idle_seconds:.0f} s")
    print(f"{'':28}{'bare Kivy':>12}{'kiosk':>12}{'ratio / diff':>16}{'target':>14}")
    print(f"{'start → first idle frame':28}{start_bare:>11.2f}s{start_kiosk:>11.2f}s"
          f"{start_kiosk / start_bare:>15.2f}×{'≤ 1.5×':>14}")
    print(f"{'RSS after idle':28}{rss['bare']:>8.1f} MiB{rss['kiosk']:>8.1f} MiB"
          f"{rss['kiosk'] - rss['bare']:>+12.1f} MiB{'≤ +60 MiB':>14}")
    print(f"{'CPU while idle (% core)':28}{cpu['bare']:>11.2f}%{cpu['kiosk']:>11.2f}%"
          f"{cpu['kiosk'] - cpu['bare']:>+15.2f}%{'≤ 2 %':>14}")


if __name__ == "__main__":
    main()
