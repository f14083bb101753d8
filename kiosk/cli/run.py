"""`kiosk run` (full screen, or `--headless`: reader + lamp + MQTT only) and `kiosk demo` (simulated reader)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from kiosk.cli import add_network_options, config_from_args
from kiosk.config import Config

SCENARIO_GRACE_SECONDS = 3.0  # after a scenario's last step, before the headless demo ends
# `kiosk run` could not use its configuration or data and could not show the out-of-service screen either
# (--headless, no display, or the screen's own data broken): sysexits.h EX_CONFIG. kiosk.service lists it in
# RestartPreventExitStatus=, so systemd does not restart into the same error every few seconds.
EXIT_CONFIG = 78


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser("run", help="run the kiosk (full screen; --headless: no screen)")
    run.add_argument("--headless", action="store_true", help="reader, lamp, buttons and MQTT only, no screen")
    add_network_options(run)
    run.set_defaults(handler=run_kiosk)

    demo = subparsers.add_parser(
        "demo", help="the kiosk with a simulated reader and lamp; with no display, a scripted tour with screenshots")
    demo.add_argument("--scenario", metavar="NAME|PATH",
                      help="drive the simulated reader from a scenario (shipped name or .toml file)")
    demo.add_argument("--out", type=Path, default=Path("demo-screenshots"), metavar="DIR",
                      help="where the tour saves its screenshots (default ./demo-screenshots)")
    demo.add_argument("--tour", action="store_true", help="play the scripted tour even when a display is present")
    add_network_options(demo)
    demo.set_defaults(handler=run_demo)


# --- the parts -------------------------------------------------------------------------------------------

def _rules(config: Config) -> Any:
    """The pre-check rule table, loaded once: its `[probe]` options go to the reader, the rest to the classifier.
    No `[reader] rules`: the shipped table, which kiosk.precheck validated when imported."""
    from kiosk.precheck import DEFAULT_RULES, load_rules

    return load_rules(config.reader.rules) if config.reader.rules else DEFAULT_RULES


def _ui_texts():
    """Every language's UI texts (kiosk.app.texts.UiTexts), read and checked once: the runtime takes its languages
    from them and the app its texts."""
    from kiosk.app.texts import UiTexts

    return UiTexts()


def _catalogue_loader():
    from kiosk.catalogue import load_catalogue

    return load_catalogue()


def _link_factory(config: Config):
    from kiosk.link import EventLink

    return lambda catalogue_version, post, on_turn: EventLink(config, catalogue_version, post, on_turn=on_turn)


def _signals_factory(config: Config, pin_factory=None):
    from hardware.signals import Signals, open_signals
    from kiosk.messages import CallButton, ResetButton

    def make(post):
        buttons = {"on_call": lambda: post(CallButton()), "on_reset": lambda: post(ResetButton())}
        if pin_factory is not None:  # the demo's mock GPIO: a failure there is a bug, not a missing Pi
            return Signals(config.gpio.pins(), pin_factory=pin_factory, **buttons)
        return open_signals(config.gpio.pins(), **buttons)

    return make


def _build_runtime(config: Config, reader, rules, *, notifier=None, pin_factory=None, texts=None):
    """The runtime around `reader`, which must have been opened with `rules.probe_options()`; its languages are
    those of `texts` (a UiTexts; read now when not given)."""
    from kiosk.runtime import Runtime

    languages = tuple((texts or _ui_texts()).languages)
    return Runtime(config, reader=reader, catalogue_loader=_catalogue_loader, languages=languages,
                   signals_factory=_signals_factory(config, pin_factory), link_factory=_link_factory(config),
                   rules=rules, notifier=notifier)


def _fail(message: str) -> int:
    print(f"kiosk: {message}", file=sys.stderr)
    return 2


def _data_errors() -> tuple[type[Exception], ...]:
    """The errors a bad config or data file raises at start (a reader spec or scenario the registry refuses
    included); each message names the file, the field and the value."""
    from hardware.readers.contract import ReaderError
    from kiosk.catalogue import CatalogueError
    from kiosk.config import ConfigError
    from kiosk.display import DisplayError
    from kiosk.locales import LocaleError
    from kiosk.precheck import RulesError

    return ConfigError, ReaderError, CatalogueError, LocaleError, RulesError, DisplayError


def _startup_errors() -> tuple[type[Exception], ...]:
    """The errors bad data or a missing device raise at start; each message names the file or device."""
    return *_data_errors(), OSError


def _stop_on_signals(runtime) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: runtime.stop())


# --- kiosk run -------------------------------------------------------------------------------------------

def run_kiosk(args: argparse.Namespace) -> int:
    """The kiosk until SIGTERM (0). A config or data file it cannot use: the out-of-service screen until SIGTERM
    (0), or EXIT_CONFIG when that cannot be shown either; another start-up failure (OSError): 2."""
    from hardware.readers.registry import open_reader
    from kiosk.scenarios import load_scenario
    from kiosk.sdnotify import Notifier

    notifier = Notifier.from_environ()
    fullscreen = True
    try:
        config = config_from_args(args)
        fullscreen = config.ui.fullscreen
        texts = None if args.headless else _screen_data()  # before any device is opened
        rules = _rules(config)
        reader = open_reader(config.reader.spec(), config.reader.name, rules.probe_options(),
                             load_scenario=load_scenario)
        runtime = _build_runtime(config, reader, rules, notifier=notifier, texts=texts)
    except _data_errors() as exc:
        return _out_of_service(str(exc), headless=args.headless, fullscreen=fullscreen, notifier=notifier)
    except OSError as exc:
        return _fail(f"cannot start: {exc}")
    if args.headless:
        _stop_on_signals(runtime)
        runtime.run()
        return 0
    app = _kiosk_app(runtime, fullscreen=config.ui.fullscreen, texts=texts)
    for signum in (signal.SIGTERM, signal.SIGINT):  # systemd stops us with SIGTERM: leave cleanly ("offline")
        signal.signal(signum, lambda *_: app.stop())
    app.run()
    return 0


def _screen_data():
    """The screen's own data (UI texts of every language, kiosk/display.json), read before the runtime starts so
    a broken file is an out-of-service screen rather than a crash; the UiTexts go to the app."""
    from kiosk.display import load_display_modes

    load_display_modes()
    return _ui_texts()


def _out_of_service(problem: str, *, headless: bool, fullscreen: bool, notifier) -> int:
    """Say what is wrong (stderr: the journal) and show the out-of-service screen until stopped (0); EXIT_CONFIG
    when it cannot be shown (--headless, no display, its own data broken)."""
    print(f"kiosk: cannot start: {problem}", file=sys.stderr, flush=True)
    if headless:
        return EXIT_CONFIG
    from kiosk.app import out_of_service

    shown = out_of_service.show(problem, notifier=notifier, fullscreen=fullscreen)
    return 0 if shown else EXIT_CONFIG


def _kiosk_app(runtime, *, fullscreen: bool, demo_reader=None, texts=None):
    """The Kivy app over the runtime (it becomes the runtime's screen and drives its loop from Kivy's Clock)."""
    os.environ.setdefault("KIVY_NO_ARGS", "1")  # Kivy must not parse the kiosk's own arguments
    from kiosk.app import KioskApp

    return KioskApp(runtime, fullscreen=fullscreen, demo_reader=demo_reader, texts=texts)


# --- kiosk demo ------------------------------------------------------------------------------------------

def demo_config(args: argparse.Namespace) -> Config:
    """The config with the demo's parts: simulated reader, state in a temp dir, a known staff PIN."""
    from kiosk.app.tour import DEMO_PIN
    from kiosk.passwords import hash_secret

    config = config_from_args(args) if args.config else Config()
    if args.broker:
        config.mqtt.url = args.broker
    config.reader.backend = "sim"
    config.ui.fullscreen = False
    config.kiosk.state_dir = args.state_dir or Path(tempfile.mkdtemp(prefix="kiosk-demo-"))
    if not config.staff.pin_hash:
        config.staff.pin_hash = hash_secret(DEMO_PIN)
    return config


def print_event(kind: str, data: dict[str, Any], config: Config) -> None:
    from kiosk.events import Topics

    topic = Topics(config.mqtt.prefix, config.kiosk.site, config.kiosk.id).event(kind)
    print(f"{topic}  {json.dumps(data, ensure_ascii=False)}", flush=True)


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run_demo(args: argparse.Namespace) -> int:
    from gpiozero.pins.mock import MockFactory

    from hardware.readers.sim import SimReader
    from kiosk.app.tour import DEMO_PIN
    from kiosk.scenarios import load_scenario

    if args.tour and args.scenario:
        return _fail("--tour plays its own script; leave out --scenario")
    config = demo_config(args)
    display = has_display() and not args.tour
    try:
        scenario = load_scenario(args.scenario) if args.scenario else None
        rules = _rules(config)
        reader = SimReader(scenario=scenario, options=rules.probe_options())
        texts = _ui_texts()
        runtime = _build_runtime(config, reader, rules, pin_factory=MockFactory(), texts=texts)
    except _startup_errors() as exc:
        return _fail(f"cannot start the demo: {exc}")
    runtime.event_listeners.append(lambda kind, data: print_event(kind, data, config))
    if not args.verbose:  # the events are on stdout already
        logging.getLogger("kiosk.runtime").setLevel(logging.WARNING)
    print(f"kiosk demo: state in {config.kiosk.state_dir}, events to {config.mqtt.url} "
          f"(kept in the outbox while no broker answers); staff PIN {DEMO_PIN}", file=sys.stderr, flush=True)
    if display:
        _kiosk_app(runtime, fullscreen=False, demo_reader=reader, texts=texts).run()
        return 0
    if scenario is not None:  # no display: play the scenario headless and print its events
        _stop_on_signals(runtime)
        if not scenario.repeat:
            seconds = sum(step.hold + step.wait + step.unplug for step in scenario.steps) + SCENARIO_GRACE_SECONDS
            threading.Timer(seconds, runtime.stop).start()
        runtime.run()
        return 0
    from kiosk.app.tour import play

    try:
        shots = play(runtime, reader, args.out, ("ja", "en"))
    finally:
        runtime.shutdown()
    print(f"kiosk demo: {len(shots)} screenshots in {args.out}/", file=sys.stderr)
    return 0
