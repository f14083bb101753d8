"""UI benchmark: the kiosk app next to a bare Kivy app with one label, both offscreen, measured in the same run.

    .venv/bin/python bench/bench_ui.py [--seconds 60] [--runs 5]

For each app, in a fresh process: process start → first frame of its first screen (the kiosk: the idle screen,
with the real runtime, catalogue, flow and simulated reader behind it), i.e. the first frame drawn with that screen
in place (the kiosk fills its screen once the window has drawn a first, empty frame: the next frame counts), then
RSS after `--seconds` idle and the CPU it used over that idle time. Targets (issue 5): start ≤ 1.5× bare,
RSS ≤ bare + 60 MiB, idle CPU ≤ 2 % of a core. Start-up is noisy on a shared machine: the apps run interleaved
`--runs` times (at least 5) and the start ratio is the median of the per-run ratios (each run's app over the bare
app of the same run), printed with its spread (min–max). The project's modules are byte-compiled first, as
`pip install` leaves them on a kiosk (a checkout run with PYTHONDONTWRITEBYTECODE would compile them in every run,
which no kiosk does). The bare app imports nothing of the kiosk but kiosk.app.offscreen's environment set-up
(which itself imports nothing of the kiosk).
Prints the numbers and ratios; asserts nothing (a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WINDOW = (800, 480)
KINDS = ("bare", "ui", "kiosk")  # bare Kivy + one label; the kiosk UI alone; the whole kiosk (runtime, catalogue…)


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def child(kind: str, seconds: float) -> None:
    """Run one app offscreen; print one JSON line: first frame time, RSS and CPU over the idle period."""
    sys.path.insert(0, str(ROOT))
    from kiosk.app.offscreen import prepare_environment

    prepare_environment()
    from kivy.config import Config as KivyConfig

    KivyConfig.set("graphics", "width", str(WINDOW[0]))  # the 7" Raspberry Pi touch display
    KivyConfig.set("graphics", "height", str(WINDOW[1]))
    from kivy.app import App
    from kivy.clock import Clock
    from kivy.core.window import Window

    if kind == "bare":
        from kivy.uix.label import Label

        class Bare(App):
            def build(self):
                return Label(text="Hello")

        app = Bare()
        ready = lambda: True  # noqa: E731
    elif kind == "ui":  # the UI alone: KioskApp over a stand-in that only shows the idle screen
        from kiosk.app.kioskapp import KioskApp
        from kiosk.effects import ShowScreen

        class ScreenOnly:
            class flow:
                languages = ("ja", "en")

            catalogue = screen = None

            def post(self, message):
                pass

            def attach_kivy(self):
                self.screen.show(ShowScreen("idle", "ja", {}))

            def shutdown(self):
                pass

        app = KioskApp(ScreenOnly())
        ready = lambda: app.view is not None and app.window_ready  # noqa: E731
    else:
        from hardware.readers.sim import SimReader
        from kiosk.app.kioskapp import KioskApp
        from kiosk.catalogue import load_catalogue
        from kiosk.config import Config
        from kiosk.runtime import Runtime

        config = Config.model_validate({"kiosk": {"state_dir": tempfile.mkdtemp(prefix="bench-ui-")}})
        runtime = Runtime(config, reader=SimReader(), catalogue_loader=load_catalogue)
        app = KioskApp(runtime)
        ready = lambda: app.view is not None and app.view.screen == "idle" and app.window_ready  # noqa: E731

    result: dict[str, float] = {}
    drawn: list[bool] = []  # per frame: was the first screen in place when the frame was drawn

    def on_draw(*args):  # before the window draws its canvas (the window's own on_draw runs after this)
        drawn.append(ready())

    def on_flip(*args):
        if "first_frame" not in result and drawn and drawn[-1]:
            result["first_frame"] = time.time()
            result["cpu0"] = cpu_seconds()
            Clock.schedule_once(finish, seconds)

    def finish(dt):
        result["cpu"] = cpu_seconds() - result.pop("cpu0")
        result["rss_mib"] = rss_mib()
        app.stop()

    Window.bind(on_draw=on_draw, on_flip=on_flip)
    app.run()
    print("RESULT " + json.dumps(result), flush=True)


def measure(kind: str, seconds: float) -> dict[str, float]:
    started = time.time()
    out = subprocess.run([sys.executable, __file__, "--child", kind, "--seconds", str(seconds)],
                         capture_output=True, text=True, check=True, timeout=seconds + 120).stdout
    result = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
    return {"start_s": result["first_frame"] - started, "rss_mib": result["rss_mib"],
            "cpu_pct": 100 * result["cpu"] / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="idle time before RSS and CPU (default 60)")
    parser.add_argument("--runs", type=int, default=5, help="start-up runs per app (median; at least 5, default 5)")
    parser.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.runs < 5 and not args.child:
        parser.error("--runs must be at least 5 (the start-up ratio is a median)")
    if args.child:
        child(args.child, args.seconds)
        return
    for package in ("kiosk", "hardware"):  # as installed: bytecode present (see the docstring)
        compileall.compile_dir(ROOT / package, quiet=1)
    starts: dict[str, list[float]] = {kind: [] for kind in KINDS}
    idle: dict[str, dict[str, float]] = {}
    for run in range(args.runs):
        for kind in KINDS:  # interleaved, so machine load hits all alike
            last = run == args.runs - 1
            result = measure(kind, args.seconds if last else 0.5)
            starts[kind].append(result["start_s"])
            if last:
                idle[kind] = result
    start = {kind: statistics.median(starts[kind]) for kind in KINDS}
    rss = {kind: idle[kind]["rss_mib"] for kind in KINDS}
    for kind in ("ui", "kiosk"):
        ratios = [mine / bare for mine, bare in zip(starts[kind], starts["bare"], strict=True)]
        print(f"{kind:5}  start → first frame {start[kind]:.3f} s (median of {args.runs}); ratio to bare: median "
              f"{statistics.median(ratios):.2f}x, spread {min(ratios):.2f}–{max(ratios):.2f}x (target ≤ 1.5x)   "
              f"RSS after {args.seconds:.0f} s idle {rss[kind]:.0f} MiB = bare +{rss[kind] - rss['bare']:.0f} MiB "
              f"(target ≤ +60)   idle CPU {idle[kind]['cpu_pct']:.2f} % of a core (target ≤ 2 %)")
    print(f"bare   start → first frame {start['bare']:.3f} s (median; spread {min(starts['bare']):.3f}–"
          f"{max(starts['bare']):.3f} s)   RSS {rss['bare']:.0f} MiB   idle CPU {idle['bare']['cpu_pct']:.2f} %")

if __name__ == "__main__":
    main()
