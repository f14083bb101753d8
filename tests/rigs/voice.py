"""Voice test rig: skip markers for the audio programs, an ALSA file sink on a FIFO, and an on_finished recorder."""

from __future__ import annotations

import array
import os
import shutil
import threading
import wave
from pathlib import Path

import pytest

from kiosk.config import VoiceSection

JTALK_DICT = VoiceSection().jtalk_dictionary
needs_aplay = pytest.mark.skipif(not shutil.which("aplay"), reason="alsa-utils (aplay) not installed")
needs_jtalk = pytest.mark.skipif(
    not (shutil.which("open_jtalk") and (JTALK_DICT / "sys.dic").is_file()),
    reason="open-jtalk / open-jtalk-mecab-naist-jdic not installed",
)
needs_espeak = pytest.mark.skipif(not shutil.which("espeak-ng"), reason="espeak-ng not installed")


def samples(data: bytes) -> array.array:
    return array.array("h", data[: len(data) - len(data) % 2])


def wav_samples(path: Path) -> tuple[int, array.array]:
    with wave.open(str(path), "rb") as wav:
        return wav.getframerate(), samples(wav.readframes(wav.getnframes()))


class FifoSink:
    """An ALSA `file` device writing into a FIFO; `drain()` reads everything aplay plays, in a thread."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "sink.fifo"
        os.mkfifo(self.path)
        self.device = f"file:FILE={self.path},FORMAT=raw"
        self.captured = b""
        self._reader: threading.Thread | None = None

    def drain(self) -> None:
        def read() -> None:
            with open(self.path, "rb") as fifo:
                self.captured = fifo.read()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()

    def join(self) -> None:
        assert self._reader is not None
        self._reader.join(30)


class Finished:
    """Collects on_finished(played) calls from the voice worker."""

    def __init__(self) -> None:
        self.results: list[bool] = []
        self.event = threading.Event()

    def __call__(self, played: bool) -> None:
        self.results.append(played)
        self.event.set()

    def wait(self) -> list[bool]:
        assert self.event.wait(30), "voice worker never finished"
        self.event.clear()
        return self.results


needs_voice = pytest.mark.skipif(
    not (shutil.which("aplay") and shutil.which("open_jtalk") and (JTALK_DICT / "sys.dic").is_file()),
    reason="aplay (alsa-utils) / open-jtalk / open-jtalk-mecab-naist-jdic not installed")


def played_samples(out: Path) -> array.array:
    """What an ALSA file sink received (nothing yet: empty)."""
    return samples(out.read_bytes() if out.exists() else b"")
