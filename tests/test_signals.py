"""Lamp timelines, buzzer and debounced buttons on gpiozero's MockFactory."""

from __future__ import annotations

import time

import pytest
from gpiozero.pins.mock import MockFactory

from hardware.signals import PATTERNS, Debouncer, GpioPins, Lamp, Signals, open_signals
from kiosk.config import ConfigError, GpioSection, config_from_dict


@pytest.fixture
def factory():
    factory = MockFactory()
    yield factory
    factory.close()


@pytest.fixture
def presses():
    return []


@pytest.fixture
def signals(factory, presses):
    gpio = GpioPins(lamp=17, buzzer=18, call_button=27, reset_button=22, bounce_seconds=0.05)
    signals = Signals(gpio, on_call=lambda: presses.append("call"), on_reset=lambda: presses.append("reset"),
                      pin_factory=factory)
    yield signals
    signals.close()


def lamp_timeline(factory, pattern_calls, seconds):
    pin = factory.pin(17)
    pin.clear_states()
    pattern_calls()
    time.sleep(seconds)
    return pin


def test_call_pattern_blinks_at_1hz(signals, factory):
    pin = lamp_timeline(factory, lambda: signals.lamp.show("call"), 2.3)
    pin.assert_states_and_times([(0, False), (0, True), (0.5, False), (0.5, True), (0.5, False)])
    assert signals.lamp.pattern == "call"


def test_acknowledged_is_steady_and_off_is_off(signals, factory):
    pin = lamp_timeline(factory, lambda: signals.lamp.show("acknowledged"), 1.2)
    assert [s.state for s in pin.states] == [False, True]
    signals.lamp.show("off")
    assert pin.state is False


def test_outage_is_a_fast_double_flash(signals, factory):
    pin = lamp_timeline(factory, lambda: signals.lamp.show("outage"), 1.5)
    pin.assert_states_and_times([(0, False), (0, True), (0.1, False), (0.1, True), (0.1, False), (0.9, True)])


def test_reader_fault_is_a_short_flash_every_two_seconds(signals, factory):
    pin = lamp_timeline(factory, lambda: signals.lamp.show("reader_fault"), 2.3)
    pin.assert_states_and_times([(0, False), (0, True), (0.2, False), (1.8, True)])


def test_switching_pattern_stops_the_blink(signals, factory):
    signals.lamp.show("call")
    time.sleep(0.2)
    signals.lamp.show("acknowledged")
    pin = factory.pin(17)
    pin.clear_states()
    time.sleep(1.2)
    assert [s.state for s in pin.states] == [True]  # no further edges


def test_lamp_test_plays_every_pattern_then_restores(signals, factory):
    signals.lamp.show("acknowledged")
    pin = lamp_timeline(factory, lambda: signals.lamp.test(3.6), 4.2)
    assert pin.state is True  # back to steady
    assert len(pin.states) >= 6  # blinked and double-flashed in between
    assert signals.lamp.pattern == "acknowledged"


def test_active_low_lamp(factory):
    signals = Signals(GpioPins(lamp=5, lamp_active_high=False, call_button=None, reset_button=None),
                      on_call=lambda: None, on_reset=lambda: None, pin_factory=factory)
    signals.lamp.show("acknowledged")
    assert factory.pin(5).state is False
    signals.close()


def test_unknown_pattern_is_refused():
    with pytest.raises(ValueError, match="unknown lamp pattern 'disco'"):
        Lamp().show("disco")


def test_every_pattern_plays_without_a_lamp_and_listeners_hear_it():
    lamp, heard = Lamp(), []
    lamp.listeners.append(heard.append)
    for name in PATTERNS:
        lamp.show(name)
    lamp.test()
    assert heard == list(PATTERNS)


def test_buzzer_chirps_twice(signals, factory):
    pin = factory.pin(18)
    pin.clear_states()
    signals.buzzer.chirp()
    time.sleep(0.5)
    assert [s.state for s in pin.states] == [False, True, False, True, False]


def test_buttons_post_presses(signals, factory, presses):
    call, reset = factory.pin(27), factory.pin(22)
    call.drive_low()
    call.drive_high()
    time.sleep(0.1)
    reset.drive_low()
    reset.drive_high()
    time.sleep(0.05)
    assert presses == ["call", "reset"]


def test_button_bounce_is_ignored(signals, factory, presses):
    call = factory.pin(27)
    for _ in range(5):  # a bouncing contact: several edges within a few ms
        call.drive_low()
        call.drive_high()
    time.sleep(0.1)
    call.drive_low()  # a real second press, after a quiet line
    time.sleep(0.02)
    assert presses == ["call", "call"]


def test_debouncer_rule():
    now = [0.0]
    d = Debouncer(0.05, clock=lambda: now[0])
    assert d.edge(True)
    now[0] = 0.01
    assert not d.edge(False) and not d.edge(True)  # bounce
    now[0] = 0.5
    assert not d.edge(False)  # a release is never an action
    now[0] = 0.52
    assert not d.edge(True)  # release bounce
    now[0] = 1.0
    assert d.edge(True)


def test_disabled_parts_are_absent(factory):
    signals = Signals(GpioPins(lamp=None, buzzer=None, call_button=None, reset_button=None),
                      on_call=lambda: None, on_reset=lambda: None, pin_factory=factory)
    signals.lamp.show("call")
    signals.buzzer.chirp()
    assert signals.lamp.pattern == "call"
    signals.close()


def test_no_gpio_degrades_to_none(caplog):
    class Broken:
        def __getattr__(self, name):
            raise OSError("no GPIO chip")

    assert open_signals(GpioSection().pins(), lambda: None, lambda: None, pin_factory=Broken()) is None
    assert "running without lamp" in caplog.text


@pytest.mark.parametrize("gpio, problem", [
    ({"lamp": 17, "call_button": 17}, "GPIO 17 is given to both lamp and call_button"),
    ({"buzzer": 40}, "[gpio.buzzer]"),
    ({"reset_button": -1}, "[gpio.reset_button]"),
    ({"bounce_seconds": 5}, "[gpio.bounce_seconds]"),
])
def test_bad_gpio_config_is_named(gpio, problem):
    with pytest.raises(ConfigError) as error:
        config_from_dict({"gpio": gpio}, source="kiosk.toml")
    assert problem in str(error.value) and "kiosk.toml" in str(error.value)


def test_the_config_hands_signals_plain_pins():
    section = GpioSection(lamp=5, buzzer=6, call_button=None, reset_button=26, lamp_active_high=False,
                          bounce_seconds=0.2)
    assert section.pins() == GpioPins(lamp=5, buzzer=6, call_button=None, reset_button=26, lamp_active_high=False,
                                      bounce_seconds=0.2)
    assert GpioSection().pins() == GpioPins(lamp=17, buzzer=None, call_button=27, reset_button=22)


def test_the_lamp_draws_exactly_the_patterns_the_flow_names():
    """hardware/ may not import kiosk/, so the lamp keeps its own table: it must match the vocabulary's words."""
    from kiosk.vocabulary import LAMP_PATTERNS

    assert set(PATTERNS) == set(LAMP_PATTERNS)
