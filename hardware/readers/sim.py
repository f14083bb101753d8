"""The simulated reader: scriptable from a scenario and from code (the demo panel, tests).

`sim.present("iphone")`, `sim.remove()`, `sim.unplug()` / `sim.plug()` may be called from any thread; the
reader thread applies them in order and runs the same probe and allow-list as the real back-ends.
Presets (`PRESETS`): the card profiles in `hardware.readers.cards` plus `flapping` / `two_cards` and `nothing`.
A `Scenario` is plain data; the kiosk reads scenario files (`kiosk.scenarios.load_scenario`) and passes
the parsed scenario in.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hardware.readers.atr import family_of
from hardware.readers.cards import PROFILES, CardProfile
from hardware.readers.contract import (
    CardGone,
    Cause,
    Failure,
    Family,
    Heartbeat,
    Observation,
    OpenRequest,
    Post,
    Presented,
    ProbeOptions,
    Reader,
    ReaderError,
    ReaderStatus,
    Removed,
    no_heartbeat,
)
from hardware.readers.probe import observe

FLAPPING_PRESETS = ("flapping", "two_cards")  # several items in the field: the reader sees a burst
FLAP_BURST = 3
PRESETS: tuple[str, ...] = (*PROFILES, *FLAPPING_PRESETS, "nothing")
IDLE_WAKE_SECONDS = 0.1  # how often the idle thread looks at `stop`


class Step(BaseModel):
    """One scenario step: present an item for `hold` seconds, wait, or unplug the reader for a while."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # validators built at the first scenario loaded
    present: str | None = None
    hold: float = Field(default=1.5, ge=0)
    wait: float = Field(default=0.0, ge=0)
    unplug: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _known_preset(self) -> Step:
        if self.present is not None and self.present not in PRESETS:
            raise ValueError(f"unknown preset {self.present!r}; known: {', '.join(PRESETS)}")
        return self


class Scenario(BaseModel):
    """A script for the simulated reader: `steps` in order (once, or forever when `repeat`)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    description: str = ""
    repeat: bool = False
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _takes_time_if_repeating(self) -> Scenario:
        duration = sum((s.hold if s.present else 0.0) + s.wait + s.unplug for s in self.steps)
        if self.repeat and duration <= 0:
            raise ValueError("a repeating scenario must take some time (hold, wait or unplug > 0)")
        return self


@dataclass(frozen=True)
class _Present:
    item: str


@dataclass(frozen=True)
class _Remove:
    pass


@dataclass(frozen=True)
class _Plug:
    available: bool


class SimReader(Reader):
    """A reader whose items come from presets; `wire` records every APDU that reached the simulated card.

    Beyond the `Reader` contract it has the verbs `present(preset)`, `remove()`, `unplug()`, `plug()`
    (the demo panel and tests drive it with them); other back-ends need not have them.
    """

    kind = "sim"
    description = "simulated reader"

    @classmethod
    def open(cls, request: OpenRequest) -> SimReader:
        """Spec `sim[:SCENARIO]`: SCENARIO goes through `request.load_scenario` (errors are its ReaderErrors)."""
        if not request.arg:
            return cls(options=request.options)
        if request.load_scenario is None:
            raise ReaderError(f"sim:{request.arg}: no scenario loader given (pass kiosk.scenarios.load_scenario)")
        scenario = request.load_scenario(request.arg)
        if not isinstance(scenario, Scenario):
            raise TypeError(f"load_scenario returned {type(scenario).__name__}, not a Scenario")
        return cls(scenario=scenario, options=request.options)

    def __init__(self, scenario: Scenario | None = None, options: ProbeOptions | None = None) -> None:
        self.scenario = scenario
        self.options = options or ProbeOptions()
        self.wire: list[bytes] = []
        self._commands: queue.Queue[_Present | _Remove | _Plug] = queue.Queue()
        self._present = False

    def present(self, item: str) -> None:
        """Put a preset on the reader (replacing whatever is there)."""
        if item not in PRESETS:
            raise ReaderError(f"unknown preset {item!r}; known: {', '.join(PRESETS)}")
        self._commands.put(_Present(item))

    def remove(self) -> None:
        """Take the item away (nothing happens when nothing is there)."""
        self._commands.put(_Remove())

    def unplug(self) -> None:
        """Simulate pulling the reader's cable: posts ReaderStatus(False, "simulated unplug", SIMULATED_UNPLUG)."""
        self._commands.put(_Plug(False))

    def plug(self) -> None:
        """Plug the reader back in: posts ReaderStatus.ready("simulated reader")."""
        self._commands.put(_Plug(True))

    def run(self, post: Post, stop: threading.Event, heartbeat: Heartbeat = no_heartbeat) -> None:
        post(ReaderStatus.ready(self.description))
        timeline = self._timeline()
        due = next(timeline, None)
        while not stop.is_set():
            heartbeat()
            timeout = IDLE_WAKE_SECONDS if due is None else min(IDLE_WAKE_SECONDS, max(0.0, due[0] - time.monotonic()))
            try:
                self._apply(self._commands.get(timeout=timeout), post)
                continue
            except queue.Empty:
                pass
            if due is not None and time.monotonic() >= due[0]:
                self._apply(due[1], post)
                due = next(timeline, None)

    def _timeline(self) -> Iterator[tuple[float, _Present | _Remove | _Plug]]:
        """(monotonic time, command) pairs from the scenario, lazily, repeating if asked."""
        if self.scenario is None:
            return
        at = time.monotonic()
        while True:
            for step in self.scenario.steps:
                if step.present is not None:
                    yield at, _Present(step.present)
                    at += step.hold
                    yield at, _Remove()
                if step.unplug:
                    yield at, _Plug(False)
                    at += step.unplug
                    yield at, _Plug(True)
                at += step.wait
            if not self.scenario.repeat:
                return

    def _apply(self, command: _Present | _Remove | _Plug, post: Post) -> None:
        if isinstance(command, _Plug):
            if not command.available:
                self._take_away(post)
            post(ReaderStatus.ready(self.description) if command.available else
                 ReaderStatus(False, "simulated unplug", Cause.SIMULATED_UNPLUG, {"reader": self.description}))
        elif isinstance(command, _Remove) or command.item == "nothing":
            self._take_away(post)
        elif command.item in FLAPPING_PRESETS:
            for presentations in range(1, FLAP_BURST + 1):
                self._take_away(post)
                self._show(PROFILES["mynumber_card"], post, presentations)
        else:
            self._take_away(post)
            self._show(PROFILES[command.item], post)

    def _take_away(self, post: Post) -> None:
        if self._present:
            self._present = False
            post(Removed())

    def _show(self, profile: CardProfile, post: Post, presentations: int = 1) -> None:
        """Probe `profile` like a real back-end would. Each deliberate presentation is its own episode."""
        started = time.monotonic()
        self._present = True
        family = family_of(profile.atr)
        if family is Family.UNKNOWN:
            post(Presented(Observation(family, failure=Failure.MUTE, presentations=presentations)))
            return
        answered = 0

        def transmit(command: bytes) -> bytes:
            nonlocal answered
            self.wire.append(command)
            if profile.pull_after is not None and answered >= profile.pull_after:
                raise CardGone()
            answered += 1
            return profile.respond(command)

        observation = observe(family, transmit, self.options, presentations, started)
        post(Presented(observation))
        if observation.failure is Failure.REMOVED:
            self._take_away(post)
