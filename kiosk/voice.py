"""Offline voice guidance: speak a guidance text in the patient's language without ever blocking the UI.

Speech comes from Debian's engines (`open_jtalk` with the shipped Mei voice for Japanese, `espeak-ng` for most
other languages; `catalogue/locales/languages.json` says which) into a clip cache keyed by engine, voice and
text. `kiosk voice build` fills the cache at install time from the same texts for the slow engine (Open JTalk), so
a press plays at once and the Pi's CPU is not busy synthesising while a patient waits; espeak-ng takes
milliseconds, so its clips are made on first use (and kept). A text changed later (catalogue reload) has a new
key and is synthesised on first use, so stale audio never plays. Nothing is downloaded, ever.

Playback runs in one worker thread that pipes volume-scaled PCM into `aplay`; a newer request interrupts the
current one. Missing pieces (no aplay, no engine, no voice for a language) make `Voice` a quiet no-op.
"""

from __future__ import annotations

import array
import hashlib
import io
import logging
import shutil
import subprocess
import sys
import threading
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kiosk.config import Config, VoiceSection
from kiosk.locales import Locale, TtsEntry, load_locales, locales_dir

log = logging.getLogger(__name__)

SYNTH_TIMEOUT_SECONDS = 30.0
MAX_SPLIT_DEPTH = 3  # a failing text is retried in at most 2**3 pieces


SENTENCE_ENDS = ("。", ".", "!", "?", "！", "？", "।", "။", ":", "：")


def speech_text(title: str, steps: list[str] | tuple[str, ...]) -> str:
    """What the speaker button says for a screen: the title, then each step, each its own sentence."""
    parts = [part.strip() for part in (title, *steps) if part.strip()]
    ended = [part if part.endswith(SENTENCE_ENDS) else f"{part}。" if _is_japanese(part) else f"{part}."
             for part in parts]
    return "\n\n".join(ended)


def _is_japanese(text: str) -> bool:
    return any("\u3040" <= ch <= "\u30ff" for ch in text)  # kana: Japanese ends sentences with 。


def cache_dir_for(config: Config) -> Path:
    """Where clips live: [voice] cache_dir, else <kiosk.state_dir>/voice."""
    return config.voice.cache_dir or config.kiosk.state_dir / "voice"


class SynthesisError(Exception):
    """An engine failed to produce a clip; the kiosk stays silent for that text."""


class Synthesizer(Protocol):
    @property
    def key(self) -> str:
        """Names engine and voice; part of the clip-cache key."""

    @property
    def prebuild(self) -> bool:
        """Slow enough that `kiosk voice build` makes its clips at install time."""

    def synthesize(self, text: str, out: Path) -> None: ...


def _run_engine(command: list[str], text: str, out: Path) -> None:
    try:
        result = subprocess.run(command, input=text.encode("utf-8"), capture_output=True, timeout=SYNTH_TIMEOUT_SECONDS)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SynthesisError(f"{command[0]}: {exc}") from None
    if result.returncode != 0 or not out.is_file() or out.stat().st_size <= 44:
        detail = result.stderr.decode("utf-8", "replace").strip()[:200]
        raise SynthesisError(f"{command[0]} exited {result.returncode}: {detail}")


@dataclass(frozen=True)
class OpenJTalk:
    """Debian's `open_jtalk` + `open-jtalk-mecab-naist-jdic` dictionary + an HTS voice file."""

    binary: str
    dictionary: Path
    voice_file: Path
    prebuild = True  # ~0.1 s a sentence on x86, several times that on a Pi

    @property
    def key(self) -> str:
        return f"open_jtalk:{self.voice_file.stem}"

    def synthesize(self, text: str, out: Path) -> None:
        _run_engine([self.binary, "-x", str(self.dictionary), "-m", str(self.voice_file), "-ow", str(out)], text, out)


@dataclass(frozen=True)
class ESpeakNg:
    binary: str
    voice: str
    prebuild = False  # a few ms a sentence: synthesised on first use

    @property
    def key(self) -> str:
        return f"espeak-ng:{self.voice}"

    def synthesize(self, text: str, out: Path) -> None:
        _run_engine([self.binary, "-v", self.voice, "-s", "150", "-w", str(out), "--stdin"], text, out)


def synthesizer_for(tts: TtsEntry | None, dictionary: Path, voices: Path | None = None) -> Synthesizer | None:
    """The engine for a locale's `tts` entry, or None when the language or this machine has no voice."""
    if tts is None:
        return None
    if tts.engine == "open_jtalk":
        binary = shutil.which("open_jtalk")
        voice_file = (voices or locales_dir() / "voices") / f"{tts.voice}.htsvoice"
        if binary and (dictionary / "sys.dic").is_file() and voice_file.is_file():
            return OpenJTalk(binary, dictionary, voice_file)
        return None
    binary = shutil.which("espeak-ng")
    return ESpeakNg(binary, tts.voice) if binary else None


class ClipCache:
    """WAV clips in one folder, named by a hash of engine, voice and text (so the text itself is never a name)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path_for(self, synthesizer: Synthesizer, text: str) -> Path:
        digest = hashlib.sha256(f"{synthesizer.key}\n{text}".encode()).hexdigest()[:32]
        return self.folder / f"{digest}.wav"

    def clip(self, synthesizer: Synthesizer, text: str) -> Path:
        """The cached clip for `text`, synthesised now if missing; raises SynthesisError."""
        path = self.path_for(synthesizer, text)
        if path.is_file():
            return path
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SynthesisError(f"{self.folder}: cannot create clip cache: {exc}") from None
        partial = path.with_suffix(".part.wav")
        try:
            _synthesize_or_split(synthesizer, text, partial)
            partial.replace(path)  # atomic: a half-written clip is never played
        finally:
            partial.unlink(missing_ok=True)
        return path


def _synthesize_or_split(synthesizer: Synthesizer, text: str, out: Path, depth: int = 0) -> None:
    """Synthesise `text`; if the engine fails, do each half (split at a space) and join them.

    Debian 12's espeak-ng aborts ("buffer overflow detected") on some long Burmese clauses that it reads fine
    in two parts; a text that fails even in short pieces raises SynthesisError."""
    try:
        synthesizer.synthesize(text, out)
        return
    except SynthesisError:
        words = text.split()
        if len(words) < 2 or depth >= MAX_SPLIT_DEPTH:
            raise
    middle = len(words) // 2
    pieces = [out.with_name(f"{out.stem}.{depth}{n}.wav") for n in (0, 1)]
    try:
        for piece, half in zip(pieces, (" ".join(words[:middle]), " ".join(words[middle:])), strict=True):
            _synthesize_or_split(synthesizer, half, piece, depth + 1)
        with wave.open(str(pieces[0]), "rb") as first, wave.open(str(pieces[1]), "rb") as second:
            if first.getparams()[:3] != second.getparams()[:3]:
                raise SynthesisError(f"{synthesizer.key}: pieces differ in format")
            with wave.open(str(out), "wb") as joined:
                joined.setparams(first.getparams())
                joined.writeframes(first.readframes(first.getnframes()) + second.readframes(second.getnframes()))
    except (wave.Error, EOFError) as exc:
        raise SynthesisError(f"{synthesizer.key}: cannot join pieces: {exc}") from None
    finally:
        for piece in pieces:
            piece.unlink(missing_ok=True)


def scaled_wav(clip: Path, volume: float) -> bytes:
    """The clip as WAV bytes with its 16-bit samples multiplied by `volume` (0..1)."""
    with wave.open(str(clip), "rb") as wav:
        params = wav.getparams()
        frames = wav.readframes(params.nframes)
    if params.sampwidth != 2:
        raise SynthesisError(f"{clip.name}: {8 * params.sampwidth}-bit audio, expected 16-bit")
    if volume < 1.0:
        samples = array.array("h", frames)
        if sys.byteorder == "big":  # WAV is little-endian
            samples.byteswap()
        samples = array.array("h", (int(s * volume) for s in samples))
        if sys.byteorder == "big":
            samples.byteswap()
        frames = samples.tobytes()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setparams(params)
        out.writeframes(frames)
    return buffer.getvalue()


def _feed(process: subprocess.Popen[bytes], data: bytes) -> None:
    assert process.stdin is not None  # started with stdin=PIPE
    try:
        process.stdin.write(data)
        process.stdin.close()
    except (BrokenPipeError, OSError, ValueError):  # aplay was killed or failed: play() reports it
        pass


class AplayPlayer:
    """Plays WAV audio through ALSA's `aplay` on `device` ("default", "null", "file:FILE=…,FORMAT=raw" …)."""

    def __init__(self, binary: str, device: str) -> None:
        self.binary = binary
        self.device = device

    def play(self, data: bytes, interrupted: threading.Event) -> bool:
        """Plays WAV bytes, blocking the calling (worker) thread; True unless interrupted or failed."""
        command = [self.binary, "-q", "-D", self.device, "-"]
        if interrupted.is_set():
            return False
        try:
            process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE)
        except OSError as exc:
            log.warning("voice: cannot start %s: %s", self.binary, exc)
            return False
        # aplay reads its stdin only as fast as it plays: a feeder thread writes, so an interruption is never
        # stuck behind a full pipe (a long clip would otherwise play on for seconds after stop()).
        feeder = threading.Thread(target=_feed, args=(process, data), name="voice-feed", daemon=True)
        feeder.start()
        try:
            while process.poll() is None:
                if interrupted.wait(0.02):
                    process.kill()
                    return False
        finally:
            process.wait()
            feeder.join()
            assert process.stderr is not None  # started with stderr=PIPE
            error = process.stderr.read().decode("utf-8", "replace").strip()
            process.stderr.close()
        if process.returncode != 0:
            log.warning("voice: %s on %r exited %s: %s", self.binary, self.device, process.returncode, error[:200])
            return False
        return True


@dataclass(frozen=True)
class _Request:
    text: str
    synthesizer: Synthesizer
    volume: float


class Voice:
    """The speaker button's back end. Owned by the main thread; `say` returns at once and never raises.

    Mute and volume come from `VoiceSection` and can be changed in staff mode; when muted or disabled nothing
    is synthesised or played. `on_finished(played: bool)` is called from the worker thread: post it into the
    main loop, never touch state from it.
    """

    def __init__(
        self,
        config: VoiceSection,
        locales: dict[str, Locale],
        cache_dir: Path,
        player: AplayPlayer | None = None,
        on_finished: Callable[[bool], None] | None = None,
    ) -> None:
        self.enabled = config.enabled
        self.muted = config.muted
        self.volume = config.volume
        self.cache = ClipCache(cache_dir)
        self.synthesizers: dict[str, Synthesizer] = {}
        for code, locale in locales.items():
            synthesizer = synthesizer_for(locale.tts, config.jtalk_dictionary)
            if synthesizer is not None:
                self.synthesizers[code] = synthesizer
        if player is None and (aplay := shutil.which("aplay")):
            player = AplayPlayer(aplay, config.device)
        self.player = player
        if self.enabled and player is None:
            log.warning("voice: aplay (alsa-utils) not found; voice guidance is off")
        self.on_finished = on_finished
        self._pending: _Request | None = None
        self._interrupt = threading.Event()
        self._wake = threading.Condition()
        self._closed = False
        self._worker: threading.Thread | None = None

    @classmethod
    def from_config(cls, config: Config, on_finished: Callable[[bool], None] | None = None) -> Voice:
        """The kiosk's voice: every locale of languages.json, clips under `cache_dir_for(config)`."""
        return cls(config.voice, load_locales(), cache_dir_for(config), on_finished=on_finished)

    def available(self, lang: str) -> bool:
        """Whether a speaker button for `lang` would play anything now (hide it otherwise, e.g. when muted)."""
        audible = self.enabled and not self.muted and self.volume > 0
        return audible and self.player is not None and lang in self.synthesizers

    def say(self, text: str, lang: str) -> bool:
        """Queue `text` (replacing anything queued or playing); False if nothing will play."""
        if not self.available(lang) or not text.strip() or self._closed:
            return False
        request = _Request(text, self.synthesizers[lang], self.volume)
        with self._wake:
            self._pending = request
            self._interrupt.set()
            self._wake.notify()
        if self._worker is None:
            self._worker = threading.Thread(target=self._run, name="voice", daemon=True)
            self._worker.start()
        return True

    def stop(self) -> None:
        """Silence now (screen change, idle reset)."""
        with self._wake:
            self._pending = None
            self._interrupt.set()

    def set_muted(self, muted: bool) -> None:
        self.muted = muted
        if muted:
            self.stop()

    def set_volume(self, volume: float) -> None:
        self.volume = min(1.0, max(0.0, volume))

    def close(self, timeout: float = 5.0) -> None:
        with self._wake:
            self._closed = True
            self._pending = None
            self._interrupt.set()
            self._wake.notify()
        if self._worker is not None:
            self._worker.join(timeout)

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._pending is None and not self._closed:
                    self._wake.wait()
                request = self._pending
                if self._closed or request is None:
                    return
                self._pending = None
                self._interrupt.clear()
            played = self._play(request)
            if self.on_finished is not None:
                try:
                    self.on_finished(played)
                except Exception:  # a broken callback must not end the voice thread
                    log.exception("voice: on_finished callback failed")

    def _play(self, request: _Request) -> bool:
        try:
            clip = self.cache.clip(request.synthesizer, request.text)
            if self._interrupt.is_set():
                return False
            if self.player is None:  # say() accepts nothing without a player
                return False
            return self.player.play(scaled_wav(clip, request.volume), self._interrupt)
        except (SynthesisError, OSError, wave.Error, EOFError) as exc:
            log.warning("voice: %s: cannot play: %s", request.synthesizer.key, exc)
            return False
        except Exception:  # the voice thread must outlive any surprise; the kiosk goes on without sound
            log.exception("voice: %s: unexpected error", request.synthesizer.key)
            return False
