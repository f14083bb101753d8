"""The simulated reader: scriptable from a scenario file and from code (the demo panel, tests).

`sim.present("iphone")`, `sim.remove()`, `sim.unplug()` / `sim.plug()` may be called from any thread; the
reader thread applies them in order and runs the same probe and allow-list as the real back-ends.
Presets: the card profiles in `hardware.readers.cards` plus `flapping` / `two_cards` and `nothing`.
"""

from __future__ import annotations

import importlib.resources
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hardware.readers.atr import family_of
from hardware.readers.base import (
    CardGone,
    Failure,
    Family,
    Heartbeat,
    Observation,
    Post,
    Presented,
    ProbeOptions,
    Reader,
    ReaderError,
    ReaderStatus,
    Removed,
    no_heartbeat,
)
from hardware.readers.cards import PROFILES, CardProfile
from hardware.readers.probe import observe
from kiosk.tomldata import load_toml

FLAPPING_PRESETS = ("flapping", "two_cards")  # several items in the field: the reader sees a burst
FLAP_BURST = 3
PRESETS: tuple[str, ...] = (*PROFILES, *FLAPPING_PRESETS, "nothing")
IDLE_WAKE_SECONDS = 0.1  # how often the idle thread looks at `stop`


class Step(BaseModel):
    """One scenario step: present an item for `hold` seconds, wait, or unplug the reader for a while."""

    model_config = ConfigDict(extra="forbid")
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
    model_config = ConfigDict(extra="forbid")
    description: str = ""
    repeat: bool = False
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _takes_time_if_repeating(self) -> Scenario:
        duration = sum((s.hold if s.present else 0.0) + s.wait + s.unplug for s in self.steps)
        if self.repeat and duration <= 0:
            raise ValueError("a repeating scenario must take some time (hold, wait or unplug > 0)")
        return self


def scenario_dir() -> Path:
    return Path(str(importlib.resources.files("kiosk") / "scenarios"))


def load_scenario(name_or_path: str) -> Scenario:
    """A scenario by shipped name (`kiosk/scenarios/NAME.toml`) or by file path; errors name file and field."""
    path = Path(name_or_path)
    if not path.suffix:
        path = scenario_dir() / f"{name_or_path}.toml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in scenario_dir().glob("*.toml")))
        raise ReaderError(f"{path}: no such scenario (shipped: {known})")
    return load_toml(path, Scenario, ReaderError, "scenario")


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
    """A reader whose items come from presets; `wire` records every APDU that reached the simulated card."""

    description = "simulated reader"

    def __init__(self, scenario: Scenario | None = None, options: ProbeOptions | None = None) -> None:
        self.scenario = scenario
        self.options = options or ProbeOptions()
        self.wire: list[bytes] = []
        self._commands: queue.Queue = queue.Queue()
        self._present = False

    def present(self, item: str) -> None:
        """Put a preset on the reader (replacing whatever is there)."""
        if item not in PRESETS:
            raise ReaderError(f"unknown preset {item!r}; known: {', '.join(PRESETS)}")
        self._commands.put(_Present(item))

    def remove(self) -> None:
        self._commands.put(_Remove())

    def unplug(self) -> None:
        self._commands.put(_Plug(False))

    def plug(self) -> None:
        self._commands.put(_Plug(True))

    def run(self, post: Post, stop: threading.Event, heartbeat: Heartbeat = no_heartbeat) -> None:
        post(ReaderStatus(True, self.description))
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

    def _timeline(self):
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

    def _apply(self, command, post: Post) -> None:
        if isinstance(command, _Plug):
            if not command.available:
                self._take_away(post)
            post(ReaderStatus(command.available, self.description if command.available else "simulated unplug"))
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
