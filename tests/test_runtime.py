"""The headless runtime: the simulated reader thread, the flow, the mock lamp, a recording screen and link."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from hardware.readers.contract import ReaderStatus
from hardware.readers.sim import SimReader
from hardware.signals import Signals
from kiosk.config import Config
from kiosk.effects import Call
from kiosk.flow import CodeFacts
from kiosk.messages import CallButton, Command, ConsolesChanged, LookupEntered, PinEntered, ResetButton, Tap
from kiosk.passwords import hash_secret
from kiosk.runtime import CatalogueCodebook, Runtime
from kiosk.vocabulary import CALLING, IDLE, LOOKUP_RESULT, RESULT, STAFF, STAFF_COMING


class FakeCatalogue:
    """Just what the runtime reads of a kiosk.catalogue.Catalogue."""

    def __init__(self, version="test-1"):
        self.version = version
        self.codes = {
            "001": SimpleNamespace(audience="patient", outage=True),  # interim operation, not outage mode
            "013": SimpleNamespace(audience="staff", outage=False),
            "950": SimpleNamespace(audience="staff", outage=True),
        }

    def nearest(self, code):
        return ["001"]

    def guidance(self, code, lang):
        return SimpleNamespace(call_staff=code != "001")


class Recorder:
    """Collects what the main loop did, and lets the test wait for it."""

    def __init__(self):
        self.items: list = []
        self._cond = threading.Condition()

    def add(self, item):
        with self._cond:
            self.items.append(item)
            self._cond.notify_all()

    def wait_for(self, pred, timeout=10.0, after=0):
        """The first item (from index `after`) that satisfies `pred`, waiting for it if need be."""
        with self._cond:
            assert self._cond.wait_for(lambda: any(pred(i) for i in self.items[after:]), timeout), self.items
            return next(i for i in self.items[after:] if pred(i))


class RecordingScreen:
    def __init__(self):
        self.shown = Recorder()
        self.lamps = Recorder()

    def show(self, screen):
        self.shown.add(screen)

    def show_lamp(self, pattern):
        self.lamps.add(pattern)


class RecordingLink:
    def __init__(self, version, post, on_turn):
        self.catalogue_version, self.post = version, post
        self.events = Recorder()
        self.states = Recorder()
        self.calls: list = []
        self.started = self.stopped = False

    def start(self):
        self.started = True

    def stop(self):
        self.stopped = True

    @property
    def alive(self):  # the runtime's supervisor restarts a link whose thread died
        return self.started and not self.stopped

    def emit(self, kind, data, at=None):
        self.events.add((kind, data))
        return "id"

    def set_call(self, call):
        self.calls.append(call)

    def set_state(self, state):
        self.states.add(state)

    def stats(self):
        return SimpleNamespace(connected=True, backlog=len(self.events.items))


def staff_command(name: str, args: dict[str, Any] | None = None) -> tuple[Command, Recorder]:
    """A real kiosk.messages.Command and the Recorder its replies land in."""
    replies = Recorder()
    command = Command(f"test-{name}", name, dict(args or {}),
                      reply=lambda answer: replies.add((answer.ok, answer.detail)))
    return command, replies


@pytest.fixture
def factory():
    factory = MockFactory()
    yield factory
    factory.close()


@pytest.fixture
def kiosk(tmp_path, factory):
    """A running headless runtime; yields a namespace with its parts."""
    made = []

    def make(loader=FakeCatalogue, reader=None, **config_changes):
        config = Config.model_validate({
            "kiosk": {"state_dir": str(tmp_path)},
            "ui": {"checking_seconds": 0.05, "linger_after_removal_seconds": 0.2, **config_changes},
            "gpio": {"lamp": 17, "buzzer": 18, "call_button": 27, "reset_button": 22},
            "staff": {"pin_hash": hash_secret("2468")},
        })
        reader, screen = reader or SimReader(), RecordingScreen()

        def signals(post):
            return Signals(config.gpio.pins(), on_call=lambda: post(CallButton()), on_reset=lambda: post(ResetButton()),
                           pin_factory=factory)

        runtime = Runtime(config, reader=reader, catalogue_loader=loader, screen=screen, signals_factory=signals,
                          link_factory=RecordingLink)
        thread = threading.Thread(target=runtime.run, name="main-loop")
        thread.start()
        made.append((runtime, thread))
        return SimpleNamespace(runtime=runtime, reader=reader, screen=screen, link=runtime.link,
                               lamp_pin=factory.pin(17), thread=thread)

    yield make
    for runtime, thread in made:
        runtime.stop()
        thread.join(timeout=10)
        assert not thread.is_alive()


def test_card_on_the_sim_reader_reaches_the_result_screen_and_a_precheck_event(kiosk):
    k = kiosk()
    k.screen.shown.wait_for(lambda s: s.name == IDLE)
    k.reader.present("transit_card")
    shown = k.screen.shown.wait_for(lambda s: s.name == RESULT)
    assert shown.context["outcome"] == "not_mynumber" and shown.context["code"] == "002"
    _kind, data = k.link.events.wait_for(lambda e: e[0] == "precheck")
    assert data["outcome"] == "not_mynumber" and data["code"] == "002"
    seen = len(k.screen.shown.items)
    k.reader.remove()
    k.screen.shown.wait_for(lambda s: s.name == IDLE, after=seen)
    assert k.link.started


def test_lookup_of_a_staff_code_calls_staff_and_blinks_the_lamp_then_acknowledge(kiosk):
    k = kiosk()
    k.screen.shown.wait_for(lambda s: s.name == IDLE)
    k.runtime.post(ConsolesChanged(1))  # a staff console listens: the lamp blinks "call", not "no_console"
    k.runtime.post(Tap("lookup"))
    k.runtime.post(LookupEntered("013"))
    k.screen.shown.wait_for(lambda s: s.name == LOOKUP_RESULT and s.context["called"])
    _kind, call = k.link.events.wait_for(lambda e: e[0] == "call")
    assert call["reason"] == "staff_code" and call["code"] == "013"
    assert isinstance(k.link.calls[-1], Call)
    k.screen.lamps.wait_for(lambda p: p == "call")
    time.sleep(1.2)
    assert sum(1 for s in k.lamp_pin.states if s.state) >= 2  # blinking
    command, replies = staff_command("acknowledge", {"call_id": call["call_id"]})
    k.runtime.post(command)
    assert replies.wait_for(lambda r: True) == (True, "acknowledged")
    k.screen.lamps.wait_for(lambda p: p == "acknowledged")
    k.lamp_pin.clear_states()
    time.sleep(1.1)
    assert k.lamp_pin.state is True and len(k.lamp_pin.states) == 1  # steady
    k.runtime.post(Tap("home"))
    k.screen.shown.wait_for(lambda s: s.name == STAFF_COMING)


def test_physical_call_button_and_reset_button(kiosk, factory):
    k = kiosk()
    k.screen.shown.wait_for(lambda s: s.name == IDLE)
    factory.pin(27).drive_low()
    factory.pin(27).drive_high()
    k.screen.shown.wait_for(lambda s: s.name == CALLING)
    time.sleep(0.1)
    factory.pin(22).drive_low()
    factory.pin(22).drive_high()
    _kind, data = k.link.events.wait_for(lambda e: e[0] == "call_resolved")
    assert data["by"] == "reset_button"
    assert k.link.calls[-1] is None


def test_reader_unplug_is_reported_and_shows_the_fault_lamp(kiosk):
    k = kiosk()
    k.reader.unplug()
    _kind, data = k.link.events.wait_for(lambda e: e[0] == "reader_status" and not e[1]["available"])
    assert data["detail"] == "simulated unplug"
    k.screen.lamps.wait_for(lambda p: p == "reader_fault")


def test_reload_catalogue_failure_keeps_the_old_one(kiosk):
    loads = iter([FakeCatalogue("v1")])

    def loader():
        try:
            return next(loads)
        except StopIteration:
            raise ValueError("catalogue/codes.json: [013.audience] bad value") from None

    k = kiosk(loader=loader)
    command, replies = staff_command("reload_catalogue")
    k.runtime.post(command)
    ok, detail = replies.wait_for(lambda r: True)
    assert not ok and "013.audience" in detail
    assert k.runtime.catalogue.version == "v1"


def test_reload_catalogue_swaps_the_codebook(kiosk):
    versions = iter(["v1", "v2"])
    k = kiosk(loader=lambda: FakeCatalogue(next(versions)))
    command, replies = staff_command("reload_catalogue")
    k.runtime.post(command)
    assert replies.wait_for(lambda r: True) == (True, "catalogue version v2")
    assert k.runtime.flow.codebook.catalogue.version == "v2"
    assert k.link.catalogue_version == "v2"


def test_default_language_chosen_by_staff_survives_a_restart(kiosk):
    k = kiosk()
    k.runtime.post(Tap("staff_gesture"))
    k.runtime.post(PinEntered("2468"))
    k.screen.shown.wait_for(lambda s: s.name == STAFF)
    # fresh broker/outbox figures right after the PIN (then housekeeping keeps them current)
    k.screen.shown.wait_for(lambda s: s.name == STAFF and s.context["broker"]["connected"], timeout=0.9)
    k.runtime.post(Tap("default_lang:en"))
    k.runtime.post(Tap("home"))
    k.screen.shown.wait_for(lambda s: s.name == IDLE and s.lang == "en")
    k.runtime.stop()
    k.thread.join(timeout=10)
    again = kiosk()
    again.screen.shown.wait_for(lambda s: s.name == IDLE and s.lang == "en")


def test_a_failing_screen_never_stops_the_loop(kiosk):
    k = kiosk()

    def broken(screen):
        raise RuntimeError("widget exploded")

    k.screen.show = broken
    k.runtime.post(Tap("lookup"))
    k.runtime.post(CallButton())
    k.link.events.wait_for(lambda e: e[0] == "call")


def test_unknown_messages_are_ignored(kiosk):
    k = kiosk()
    k.runtime.post("garbage")
    k.runtime.post(CallButton())
    k.link.events.wait_for(lambda e: e[0] == "call")


def test_catalogue_codebook_adapts_the_catalogue():
    book = CatalogueCodebook(FakeCatalogue())
    assert book.facts("950") == CodeFacts("950", "staff", True, True)
    assert book.facts("001") == CodeFacts("001", "patient", False, False)
    assert book.facts("999") is None
    assert book.nearest("999") == ["001"]


def test_only_9xx_codes_of_the_real_catalogue_switch_to_outage_mode():
    from kiosk.catalogue import load_catalogue

    book = CatalogueCodebook(load_catalogue())
    assert book.facts("950").outage and book.facts("952").outage and book.facts("901").outage
    assert not book.facts("001").outage  # the patient's card or the reader: guidance, not outage mode
    assert book.facts("013").audience == "staff" and book.facts("013").call_staff
    assert book.facts("999") is None and book.nearest("999")


def test_headless_runtime_never_loads_kivy(tmp_path):
    """`kiosk run --headless` builds the same runtime without a screen: Kivy (and its window) stays out."""
    import subprocess
    import sys

    script = f"""
import sys
from gpiozero.pins.mock import MockFactory
from hardware.readers.sim import SimReader
from kiosk.cli.run import _build_runtime
from kiosk.config import Config
from kiosk.precheck import DEFAULT_RULES
config = Config.model_validate({{"kiosk": {{"state_dir": {str(tmp_path)!r}}}, "reader": {{"backend": "sim"}}}})
runtime = _build_runtime(config, SimReader(), DEFAULT_RULES, pin_factory=MockFactory())
runtime.start()
runtime.shutdown()
print(sorted(m for m in sys.modules if m == "kivy" or m.startswith("kivy.")))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_a_crashing_reader_thread_shows_as_a_reader_fault(kiosk):
    class Broken:
        def run(self, post, stop, heartbeat):
            raise RuntimeError("driver bug")

    k = kiosk(reader=Broken())
    _kind, data = k.link.events.wait_for(lambda e: e[0] == "reader_status")
    assert data == {"available": False, "detail": "reader thread failed", "cause": "driver_error",
                    "params": {"reader": "reader thread"}}
    k.screen.lamps.wait_for(lambda p: p == "reader_fault")


def test_an_unreadable_settings_file_is_ignored(kiosk, tmp_path, caplog):
    (tmp_path / "kiosk-ui.json").write_text("{not json")
    k = kiosk()
    assert k.screen.shown.wait_for(lambda s: s.name == IDLE).lang == "ja"
    assert "kiosk-ui.json: ignored" in caplog.text


class HangingReader:
    """Beats like a healthy back-end, then blocks forever inside a 'driver call' (its thread stays alive)."""

    def __init__(self):
        self.hang, self.release, self.hung = threading.Event(), threading.Event(), threading.Event()

    def run(self, post, stop, heartbeat):
        post(ReaderStatus(True, "hanging reader"))
        while not stop.is_set():
            heartbeat()
            if self.hang.is_set():
                self.hung.set()
                self.release.wait()  # the driver never returns
            stop.wait(0.05)


def test_a_hung_reader_stops_the_watchdog_pings_though_its_thread_is_alive(tmp_path):
    """Real notify socket: WATCHDOG=1 flows while the reader loop beats and stops once it hangs."""
    import socket

    from kiosk.sdnotify import Notifier

    address = tmp_path / "notify"
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    systemd.bind(str(address))
    received: list[tuple[float, str]] = []

    def receive_for(seconds):
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            systemd.settimeout(left)
            with contextlib.suppress(TimeoutError):
                received.append((time.monotonic(), systemd.recv(4096).decode()))

    notifier = Notifier.from_environ({"NOTIFY_SOCKET": str(address), "WATCHDOG_USEC": "1000000"})
    config = Config.model_validate({"kiosk": {"state_dir": str(tmp_path)}})
    reader = HangingReader()
    runtime = Runtime(config, reader=reader, catalogue_loader=FakeCatalogue, notifier=notifier)
    thread = threading.Thread(target=runtime.run, name="main-loop")
    thread.start()
    try:
        receive_for(3.0)
        assert sum(m == "WATCHDOG=1" for _, m in received) >= 2, received
        reader.hang.set()
        assert reader.hung.wait(5)
        receive_for(4.0)
        assert runtime._reader_thread.is_alive()
        stale = [t for t, m in received if m == "STATUS=not responding: reader"]
        assert stale, received
        assert not [t for t, m in received if m == "WATCHDOG=1" and t > stale[0]], received
    finally:
        reader.release.set()
        runtime.stop()
        thread.join(timeout=10)
        systemd.close()
    assert not thread.is_alive()


def test_reader_lamp_and_outage_state_go_to_the_link_when_they_change(kiosk):
    """The link keeps them in the retained status, so a console that connects later knows them."""
    k = kiosk()
    k.link.states.wait_for(lambda s: s["lamp"] == "off" and s["reader"]["available"] and not s["outage"]["active"])
    k.reader.unplug()
    k.link.states.wait_for(lambda s: s["reader"] == {"available": False, "detail": "simulated unplug",
                                                     "cause": "simulated_unplug",
                                                     "params": {"reader": "simulated reader"}}
                           and s["lamp"] == "reader_fault")
    k.runtime.post(staff_command("outage_enter", {"code": "950"})[0])
    k.link.states.wait_for(lambda s: s["outage"] == {"active": True, "code": "950"} and s["lamp"] == "outage")
    states = list(k.link.states.items)
    assert all(a != b for a, b in itertools.pairwise(states))  # only changes are passed on
