"""The call-staff lamp, the optional buzzer and the two buttons, over gpiozero.

Devices are created only when `Signals(...)` is built (never at import time: off a Pi gpiozero has no pin
factory). Tests and the demo pass gpiozero's `MockFactory`. Button callbacks run on gpiozero's threads:
they must only post a message into the main loop.

Lamp patterns are data: a step time and a cycle of on/off values, played through gpiozero's `source`
mechanism (one small thread per blinking pattern, none for steady or off).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_BOUNCE_SECONDS = 0.05


@dataclass(frozen=True)
class GpioPins:
    """Where the parts are wired: BCM GPIO numbers (0-27), None = that part is absent.

    `lamp_active_high`: False for active-low relay boards. `bounce_seconds`: a press counts only after this
    long without any edge (`Debouncer`). The kiosk builds it from `[gpio]` (`kiosk.config.GpioSection.pins()`),
    which also checks that each part has a pin of its own.
    """

    lamp: int | None = None
    buzzer: int | None = None
    call_button: int | None = None
    reset_button: int | None = None
    lamp_active_high: bool = True
    bounce_seconds: float = DEFAULT_BOUNCE_SECONDS


@dataclass(frozen=True)
class Pattern:
    """A lamp pattern: `values` (1 on, 0 off) played `step` seconds each, cyclically."""

    step: float  # seconds per value
    values: tuple[int, ...]  # one cycle; a single value means steady


PATTERNS: dict[str, Pattern] = {
    "off": Pattern(1.0, (0,)),
    "call": Pattern(0.5, (1, 0)),  # blink, 1 Hz
    "acknowledged": Pattern(1.0, (1,)),  # steady
    "outage": Pattern(0.1, (1, 0, 1) + (0,) * 9),  # fast double flash every 1.2 s
    "reader_fault": Pattern(0.2, (1, 0, 0, 0, 0, 0, 0, 0, 0, 0)),  # short flash every 2 s
    "escalated": Pattern(0.125, (1, 0)),  # fast blink, 4 Hz: a call nobody acknowledged in time
    "no_console": Pattern(0.25, (1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0)),  # triple flash every 3 s: no console is up
}
LAMP_TEST = ("call", "outage", "acknowledged")  # shown in turn by Lamp.test(seconds)
LAMP_TEST_SECONDS = 5  # a lamp test without `seconds` (the staff screen's button, the lamp_test command's default)


def _expand(pattern: Pattern, base_step: float, seconds: float | None) -> Iterator[int]:
    """The pattern as values at `base_step` intervals, for `seconds` or forever."""
    per_value = max(1, round(pattern.step / base_step))
    cycle = [v for v in pattern.values for _ in range(per_value)]
    if seconds is None:
        return itertools.cycle(cycle)
    return itertools.islice(itertools.cycle(cycle), max(1, round(seconds / base_step)))


class Lamp:
    """The call-staff lamp. `show(pattern)` switches at once; `test()` plays every pattern, then restores."""

    def __init__(self, device=None) -> None:
        self._device = device  # a gpiozero output device, or None when no lamp is wired
        self.pattern = "off"
        self.listeners: list[Callable[[str], None]] = []  # told of every pattern change (the demo draws it)

    def show(self, pattern: str) -> None:
        """Play `pattern` (a key of PATTERNS) from now on; ValueError for an unknown one. Tells `listeners`."""
        if pattern not in PATTERNS:
            raise ValueError(f"unknown lamp pattern {pattern!r}; known: {', '.join(PATTERNS)}")
        self.pattern = pattern
        self._play([], pattern)
        for listener in self.listeners:
            listener(pattern)

    def test(self, seconds: float = LAMP_TEST_SECONDS) -> None:
        """Every LAMP_TEST pattern in turn for `seconds` (in all), then the current pattern again."""
        self._play(LAMP_TEST, self.pattern, seconds / len(LAMP_TEST))

    def _play(self, first: Iterable[str], then: str, seconds_each: float = 0.0) -> None:
        if self._device is None:
            return
        final = PATTERNS[then]
        step = min([final.step] + [PATTERNS[p].step for p in first])
        intro = itertools.chain.from_iterable(_expand(PATTERNS[p], step, seconds_each) for p in first)
        self._device.source = None
        if len(final.values) == 1:
            if not first:
                self._device.value = final.values[0]
                return
            tail: Iterator[int] = iter(final.values)  # the source ends on the steady value
        else:
            tail = _expand(final, step, None)
        self._device.source_delay = step
        self._device.source = itertools.chain(intro, tail)


class Buzzer:
    """The optional active buzzer (None device: not fitted, `chirp` does nothing)."""

    def __init__(self, device=None) -> None:
        self._device = device

    def chirp(self) -> None:
        """Two short beeps: a new call."""
        if self._device is not None:
            self._device.beep(on_time=0.08, off_time=0.08, n=2, background=True)


class Debouncer:
    """Accepts a press only when the line was quiet (no edge at all) for `bounce_seconds` before it.

    Done here rather than with gpiozero's `bounce_time` because back-ends differ (lgpio filters, RPi.GPIO
    locks out, MockFactory ignores it): one rule everywhere, and tests can exercise it.
    """

    def __init__(self, bounce_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.bounce_seconds = bounce_seconds
        self._clock = clock
        self._last_edge: float | None = None

    def edge(self, pressed: bool) -> bool:
        """Record an edge; True when it is a press to act on."""
        now = self._clock()
        quiet = self._last_edge is None or now - self._last_edge >= self.bounce_seconds
        self._last_edge = now
        return pressed and quiet


class Signals:
    """Lamp, buzzer and buttons on the pins in `gpio`; parts with no pin are simply absent.

    `on_call` / `on_reset` run on gpiozero's threads after a debounced press (post, never touch state).
    `pin_factory`: a gpiozero pin factory (None: gpiozero's default, i.e. the Pi's GPIO). Raises whatever
    gpiozero raises when the pins cannot be used (`open_signals` turns that into None).
    """

    def __init__(
        self,
        gpio: GpioPins,
        on_call: Callable[[], None],
        on_reset: Callable[[], None],
        pin_factory: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from gpiozero import Button, DigitalOutputDevice  # imported here: devices only when asked for
        from gpiozero import Buzzer as GpioBuzzer

        self._devices: list = []

        def make(cls, pin, **kwargs):
            if pin is None:
                return None
            device = cls(pin, pin_factory=pin_factory, **kwargs)
            self._devices.append(device)
            return device

        self.lamp = Lamp(make(DigitalOutputDevice, gpio.lamp, active_high=gpio.lamp_active_high,
                              initial_value=False))
        self.buzzer = Buzzer(make(GpioBuzzer, gpio.buzzer, initial_value=False))
        for pin, action in ((gpio.call_button, on_call), (gpio.reset_button, on_reset)):
            button = make(Button, pin, pull_up=True, bounce_time=None)
            if button is not None:
                self._wire(button, Debouncer(gpio.bounce_seconds, clock), action)

    @staticmethod
    def _wire(button, debouncer: Debouncer, action: Callable[[], None]) -> None:
        def pressed():
            if debouncer.edge(True):
                action()

        button.when_pressed = pressed
        button.when_released = lambda: debouncer.edge(False)

    def close(self) -> None:
        for device in reversed(self._devices):
            device.close()
        self._devices.clear()


def open_signals(gpio: GpioPins, on_call: Callable[[], None], on_reset: Callable[[], None],
                 pin_factory: Any = None) -> Signals | None:
    """Signals, or None (logged) when this machine has no usable GPIO: the kiosk runs on without a lamp."""
    try:
        return Signals(gpio, on_call, on_reset, pin_factory=pin_factory)
    except Exception as exc:  # gpiozero raises several kinds (BadPinFactory, PinInvalidPin, OSError ...)
        log.warning("GPIO unavailable, running without lamp, buzzer and buttons: %s", exc)
        return None
