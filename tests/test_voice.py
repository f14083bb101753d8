"""Voice guidance end to end: real Open JTalk / espeak-ng, real aplay into an ALSA file sink on a FIFO.

The FIFO makes the sink block until the test reads it, so "say() returns while audio is still playing" and
"stop() interrupts playback" are shown without any timing assumption.
"""

from __future__ import annotations

import re
import shutil
import threading
import wave
from pathlib import Path

import pytest

from kiosk.catalogue import load_catalogue
from kiosk.cli import main
from kiosk.config import VoiceSection
from kiosk.locales import load_locales
from kiosk.voice import (
    AplayPlayer,
    ClipCache,
    ESpeakNg,
    SynthesisError,
    Voice,
    speech_text,
    synthesizer_for,
)
from tests.rigs.voice import (
    JTALK_DICT,
    FifoSink,
    Finished,
    needs_aplay,
    needs_espeak,
    needs_jtalk,
    samples,
    wav_samples,
)

LOCALES = load_locales()
@pytest.fixture
def sink(tmp_path):
    return FifoSink(tmp_path)


def make_voice(tmp_path: Path, sink: FifoSink | None, **settings) -> tuple[Voice, Finished]:
    finished = Finished()
    config = VoiceSection(device=sink.device if sink else "null", **settings)
    voice = Voice(config, LOCALES, tmp_path / "clips", on_finished=finished)
    return voice, finished


def test_speech_text_ends_every_part_as_a_sentence():
    assert (speech_text("暗証番号がちがいます", ["もう一度入力してください。"])
            == "暗証番号がちがいます。\n\nもう一度入力してください。")
    assert speech_text("Wrong PIN", ["Try again.", " "]) == "Wrong PIN.\n\nTry again."


@needs_jtalk
def test_build_makes_audio_for_every_japanese_guidance_item(tmp_path, capsys):
    config = tmp_path / "kiosk.toml"
    config.write_text(f'[kiosk]\nstate_dir = "{tmp_path}"\n', encoding="utf-8")
    assert main(["--config", str(config), "voice", "build", "--lang", "ja"]) == 0
    assert "0 failed" in capsys.readouterr().out
    catalogue = load_catalogue()
    jtalk = synthesizer_for(LOCALES["ja"].tts, JTALK_DICT)
    cache = ClipCache(tmp_path / "voice")
    for code in catalogue.codes:
        guidance = catalogue.guidance(code, "ja")
        clip = cache.path_for(jtalk, speech_text(guidance.title, guidance.steps))
        assert clip.is_file(), f"no clip for guidance {code}"
        rate, pcm = wav_samples(clip)
        assert len(pcm) / rate > 1.0, f"guidance {code}: clip too short"
        assert max(map(abs, pcm)) > 1000, f"guidance {code}: clip is silent"


@needs_aplay
@needs_jtalk
def test_say_returns_at_once_and_plays_through_the_sink_at_the_set_volume(tmp_path, sink):
    voice, finished = make_voice(tmp_path, sink, volume=0.5)
    text = "マイナ保険証をカードリーダーに置いてください。"
    assert voice.say(text, "ja")
    assert not finished.event.is_set()  # the sink is not being read yet: playback is still going on
    sink.drain()
    assert finished.wait() == [True]
    sink.join()
    _, clip = wav_samples(voice.cache.path_for(voice.synthesizers["ja"], text))
    played = samples(sink.captured)
    assert len(played) >= len(clip)
    assert list(played[: len(clip)]) == [int(s * 0.5) for s in clip]
    voice.close()


@needs_aplay
@needs_espeak
def test_stop_interrupts_playback_and_a_new_text_plays(tmp_path, sink):
    voice, finished = make_voice(tmp_path, sink)
    assert voice.say("The first text is long enough to still be playing.", "en")
    voice.stop()  # aplay is blocked on the unread sink: it must be killed, not waited for
    assert finished.wait() == [False]
    assert voice.say("Second.", "en")
    sink.drain()
    assert finished.wait() == [False, True]
    sink.join()
    assert max(map(abs, samples(sink.captured))) > 1000
    voice.close()


@needs_aplay
def test_interrupted_before_start_plays_nothing(tmp_path):
    player = AplayPlayer(shutil.which("aplay"), f"file:FILE={tmp_path / 'out.raw'},FORMAT=raw")
    interrupted = threading.Event()
    interrupted.set()
    with wave.open(str(tmp_path / "beep.wav"), "wb") as wav:
        wav.setnchannels(1), wav.setsampwidth(2), wav.setframerate(16000), wav.writeframes(b"\x10\x27" * 16000)
    assert player.play((tmp_path / "beep.wav").read_bytes(), interrupted) is False
    assert not (tmp_path / "out.raw").exists() or (tmp_path / "out.raw").stat().st_size == 0


@needs_aplay
@needs_espeak
@pytest.mark.parametrize("settings", [{"muted": True}, {"volume": 0.0}, {"enabled": False}])
def test_nothing_plays_or_is_synthesised_when_muted_silent_or_disabled(tmp_path, settings):
    voice, _finished = make_voice(tmp_path, None, **settings)
    assert not voice.available("en")  # no speaker button
    assert voice.say("Hello", "en") is False
    assert not (tmp_path / "clips").exists()
    assert voice._worker is None
    voice.close()


@needs_aplay
@needs_espeak
def test_muting_in_staff_mode_stops_and_silences(tmp_path, sink):
    voice, finished = make_voice(tmp_path, sink)
    assert voice.say("Playing until muted.", "en")
    voice.set_muted(True)
    assert finished.wait() == [False]
    assert voice.say("Not while muted.", "en") is False
    assert not voice.available("en")
    voice.set_muted(False)
    assert voice.available("en")
    voice.set_volume(7.0)
    assert voice.volume == 1.0
    voice.close()


def test_missing_programs_make_voice_a_quiet_no_op(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no aplay, no open_jtalk, no espeak-ng
    voice, _ = make_voice(tmp_path, None)
    assert voice.synthesizers == {}
    assert voice.player is None
    assert not any(voice.available(code) for code in LOCALES)
    assert voice.say("こんにちは", "ja") is False
    voice.close()


def test_languages_without_a_voice_are_not_available(tmp_path):
    voice, _ = make_voice(tmp_path, None)
    assert LOCALES["tl"].tts is None and not voice.available("tl")
    assert voice.say("Kumusta", "tl") is False
    assert voice.say("anything", "no-such-locale") is False
    voice.close()


@needs_aplay
@needs_espeak
def test_engine_failure_is_logged_not_raised_and_the_next_text_plays(tmp_path, sink, caplog):
    voice, finished = make_voice(tmp_path, sink)
    voice.synthesizers["en"] = ESpeakNg(shutil.which("false"), "en-us")  # an engine that exits 1
    assert voice.say("Hello", "en")
    assert finished.wait() == [False]
    assert "cannot play" in caplog.text
    assert not list((tmp_path / "clips").glob("*.wav"))  # no half-made clip is kept
    voice.synthesizers["en"] = ESpeakNg(shutil.which("espeak-ng"), "en-us")
    assert voice.say("Hello", "en")
    sink.drain()
    assert finished.wait() == [False, True]
    voice.close()


def test_cache_key_changes_with_text_and_voice(tmp_path):
    cache = ClipCache(tmp_path)
    en, vi = ESpeakNg("espeak-ng", "en-us"), ESpeakNg("espeak-ng", "vi")
    assert cache.path_for(en, "a") != cache.path_for(en, "b") != cache.path_for(vi, "b")
    assert re.fullmatch(r"[0-9a-f]{32}\.wav", cache.path_for(en, "マイナ保険証").name)  # the text never names a file


def test_unusable_clip_is_a_synthesis_error(tmp_path):
    clip = tmp_path / "8bit.wav"
    with wave.open(str(clip), "wb") as wav:
        wav.setnchannels(1), wav.setsampwidth(1), wav.setframerate(8000), wav.writeframes(b"\x80" * 80)
    from kiosk.voice import scaled_wav

    with pytest.raises(SynthesisError, match="8-bit"):
        scaled_wav(clip, 0.5)


@needs_espeak
def test_a_clause_the_engine_aborts_on_is_spoken_in_pieces(tmp_path):
    # Debian 12's espeak-ng 1.51 aborts on this whole Burmese step (guidance 021) but reads each half.
    text = "စမတ်ဖုန်း နောက်ကျောရှိ ဖတ်သည့်နေရာကို ကတ်ဖတ်စက်အပေါ်တွင် ချိန်ပြီး အနည်းငယ် ခွာထားပါ။"
    cache = ClipCache(tmp_path)
    rate, pcm = wav_samples(cache.clip(ESpeakNg(shutil.which("espeak-ng"), "my"), text))
    assert len(pcm) / rate > 3.0 and max(map(abs, pcm)) > 1000
    expected = cache.path_for(ESpeakNg(shutil.which("espeak-ng"), "my"), text).name
    assert [p.name for p in tmp_path.iterdir()] == [expected]


def test_build_names_a_broken_languages_file_instead_of_crashing(tmp_path, monkeypatch, capsys):
    (tmp_path / "locales").mkdir()
    (tmp_path / "locales" / "languages.json").write_text("{broken", encoding="utf-8")
    monkeypatch.setattr("kiosk.locales.catalogue_root", lambda: tmp_path)
    config = tmp_path / "kiosk.toml"
    config.write_text(f'[kiosk]\nstate_dir = "{tmp_path}"\n', encoding="utf-8")
    assert main(["--config", str(config), "voice", "build"]) == 2
    assert "languages.json: not valid JSON" in capsys.readouterr().err
