"""The runtime's voice: Speak plays the screen's guidance through the real Voice and aplay, a screen change or
idle silences it, staff mute/volume are honoured at once and kept across restarts."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import pytest

from hardware.readers.sim import SimReader
from kiosk.config import Config
from kiosk.effects import ShowScreen
from kiosk.locales import load_locales
from kiosk.messages import LookupEntered, PinEntered, ResetButton, Tap
from kiosk.passwords import hash_secret
from kiosk.runtime import SETTINGS_FILE, Runtime
from kiosk.vocabulary import CALLING, IDLE
from kiosk.voice import Voice
from tests.rigs.voice import Finished, needs_voice, played_samples

pytestmark = needs_voice

SPOKEN = "スタッフを呼んでいます。"


class Catalogue:
    version = "t"
    codes: ClassVar[dict[str, object]] = {}

    def nearest(self, code):
        return []

    def guidance(self, code, lang):
        return SimpleNamespace(call_staff=False)


class Screen:
    """A screen that records what it was shown and says SPOKEN when asked for its guidance."""

    def __init__(self):
        self.shown: list[ShowScreen] = []

    def show(self, screen):
        self.shown.append(screen)

    def show_lamp(self, pattern):
        pass

    def speech(self):
        return SPOKEN



def make_runtime(state: Path, device: str, **voice) -> tuple[Runtime, Screen, Finished]:
    config = Config.model_validate({"kiosk": {"state_dir": str(state)}, "staff": {"pin_hash": hash_secret("2468")},
                                    "voice": {"device": device, "cache_dir": str(state / "clips"), **voice}})
    finished = Finished()
    screen = Screen()
    runtime = Runtime(config, reader=SimReader(), catalogue_loader=Catalogue, screen=screen,
                      voice=Voice(config.voice, load_locales(), config.voice.cache_dir, on_finished=finished))
    runtime._apply(runtime.flow.start())  # the main loop's work, done on the test thread (no reader needed)
    return runtime, screen, finished


def tap(runtime: Runtime, target: str) -> None:
    runtime._dispatch(Tap(target))


def test_speak_plays_the_screens_guidance_through_aplay(tmp_path):
    out = tmp_path / "out.raw"
    runtime, screen, finished = make_runtime(tmp_path, f"file:FILE={out},FORMAT=raw")
    try:
        tap(runtime, "call")
        assert screen.shown[-1].name == CALLING and screen.shown[-1].speaker
        tap(runtime, "speak")
        assert finished.event.wait(30) and finished.results == [True]
        played = played_samples(out)
        assert len(played) > 8000 and max(map(abs, played)) > 1000
    finally:
        runtime.shutdown()


def test_returning_to_idle_silences_the_voice(tmp_path):
    fifo = tmp_path / "sink.fifo"
    os.mkfifo(fifo)  # nobody reads it: aplay blocks, as if still speaking
    runtime, screen, finished = make_runtime(tmp_path, f"file:FILE={fifo},FORMAT=raw")
    try:
        tap(runtime, "lookup")
        runtime._dispatch(LookupEntered("999"))  # unknown: stays on lookup (no speaker there)
        tap(runtime, "call")
        tap(runtime, "speak")
        assert not finished.event.wait(1.0)  # still playing into the blocked sink
        runtime._dispatch(ResetButton())  # call resolved: back to idle
        assert screen.shown[-1].name == IDLE
        assert finished.event.wait(10) and finished.results == [False]  # interrupted
    finally:
        runtime.shutdown()


def test_mute_and_volume_from_staff_mode_are_honoured_and_kept(tmp_path):
    runtime, screen, _finished = make_runtime(tmp_path, "null")
    try:
        tap(runtime, "staff_gesture")
        runtime._dispatch(PinEntered("2468"))
        tap(runtime, "voice_volume")
        tap(runtime, "voice_mute")
        assert runtime.voice.muted and runtime.voice.volume == pytest.approx(1.0)
        tap(runtime, "done")
        tap(runtime, "call")
        assert not screen.shown[-1].speaker
        tap(runtime, "speak")
        assert not runtime.voice.say(SPOKEN, "ja")  # muted: nothing plays
    finally:
        runtime.shutdown()
    assert json.loads((tmp_path / SETTINGS_FILE).read_text())["voice_muted"] is True
    again, _, _ = make_runtime(tmp_path, "null")
    try:
        assert again.voice.muted and again.flow.voice_muted
        assert again.voice.volume == again.flow.voice_volume == pytest.approx(1.0)
    finally:
        again.shutdown()


def test_bad_voice_settings_fall_back_to_the_config(tmp_path):
    (tmp_path / SETTINGS_FILE).write_text(json.dumps({"voice_muted": "yes", "voice_volume": 7}))
    runtime, _, _ = make_runtime(tmp_path, "null", volume=0.6)
    try:
        assert not runtime.voice.muted and runtime.voice.volume == pytest.approx(0.6)
        assert runtime.flow.voice_languages >= {"ja"}
    finally:
        runtime.shutdown()


def test_without_audio_programs_the_kiosk_runs_without_a_speaker(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    config = Config.model_validate({"kiosk": {"state_dir": str(tmp_path)}})
    runtime = Runtime(config, reader=SimReader(), catalogue_loader=Catalogue, screen=Screen())
    try:
        assert runtime.flow.voice_languages == frozenset()
        runtime._apply(runtime.flow.start())
        tap(runtime, "call")
        tap(runtime, "speak")
        assert runtime.screen.shown[-1].name == CALLING and not runtime.screen.shown[-1].speaker
    finally:
        runtime.shutdown()
