"""Voice guidance: why Japanese clips are built at install time and espeak-ng ones on first use.

For every Japanese guidance item (Open JTalk) and the same items in English (espeak-ng), measures in one run:
- baseline: a cached clip read and volume-scaled (the work before playback once the clip exists);
- without the clip: synthesis of the same text into a fresh cache, then the same read and scaling.
Prints medians per engine and the ratio (time to first sound without the clip / with it). Nothing is played;
all of it runs on the voice thread, never on the UI thread.

    .venv/bin/python bench/bench_voice.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiosk.catalogue import load_catalogue
from kiosk.config import VoiceSection
from kiosk.locales import load_locales
from kiosk.voice import ClipCache, scaled_wav, speech_text, synthesizer_for


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def measure(lang: str, texts: list[str], folder: Path) -> tuple[float, float] | None:
    synth = synthesizer_for(load_locales()[lang].tts, VoiceSection().jtalk_dictionary)
    if synth is None:
        print(f"{lang}: no engine on this machine, skipped")
        return None
    cache = ClipCache(folder / lang)
    live, cached = [], []
    for text in texts:
        start = time.perf_counter()
        clip = cache.clip(synth, text)
        synthesis = time.perf_counter() - start
        start = time.perf_counter()
        scaled_wav(clip, 0.8)
        cached.append(time.perf_counter() - start)
        live.append(synthesis + cached[-1])
    return median_ms(live), median_ms(cached)


def main() -> int:
    catalogue = load_catalogue()
    with tempfile.TemporaryDirectory() as tmp:
        for lang, engine in (("ja", "Open JTalk"), ("en", "espeak-ng")):
            texts = list(dict.fromkeys(
                speech_text(g.title, g.steps) for g in (catalogue.guidance(code, lang) for code in catalogue.codes)))
            result = measure(lang, texts, Path(tmp))
            if result:
                live, cached = result
                print(f"{lang} ({engine}, {len(texts)} texts): without clip median {live:.1f} ms, "
                      f"with clip {cached:.1f} ms, ratio {live / cached:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
