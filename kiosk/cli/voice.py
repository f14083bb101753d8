"""`kiosk voice`: build the voice-guidance clips at install time, or speak one text to test the speaker.

Exit codes: 0 ok, 1 some clips could not be made (the rest are kept), 2 nothing can speak (no engine / no aplay).
"""

from __future__ import annotations

import argparse
import sys
import threading


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("voice", help="offline voice guidance: build clips, test the speaker",
                                   description=__doc__.splitlines()[0])
    actions = parser.add_subparsers(dest="voice_action", required=True, metavar="ACTION")

    build = actions.add_parser("build", help="synthesise every guidance and result screen into the clip cache")
    build.add_argument("--lang", action="append", metavar="CODE", help="these locales (repeatable; default: those "
                       "whose engine is slow, i.e. Japanese; the others are synthesised on first use)")
    build.add_argument("--all", action="store_true", help="every locale that has a voice")
    build.set_defaults(handler=run_build)

    say = actions.add_parser("say", help="speak TEXT through the configured device and wait until done")
    say.add_argument("text")
    say.add_argument("--lang", default="ja", help="locale code (default ja)")
    say.set_defaults(handler=run_say)


def screens_to_speak(catalogue, lang: str) -> list[str]:
    """The spoken text of every guidance item and every pre-check result screen in `lang`."""
    from kiosk.locales import locales_dir, read_locale_file
    from kiosk.voice import speech_text

    texts = [speech_text(g.title, g.steps) for g in (catalogue.guidance(code, lang) for code in catalogue.codes)]
    ui_file = locales_dir() / lang / "ui.json"
    strings = read_locale_file(ui_file) if ui_file.exists() else {}
    for key in strings:
        if key.startswith("result.") and key.endswith(".title"):
            screen = key.removesuffix(".title")
            steps = [strings[step] for n in (1, 2, 3) if (step := f"{screen}.{n}") in strings]
            texts.append(speech_text(strings[key], steps))
    return texts


def run_build(args: argparse.Namespace) -> int:
    from kiosk.catalogue import CatalogueError, load_catalogue
    from kiosk.cli import config_from_args
    from kiosk.locales import LocaleError
    from kiosk.voice import SynthesisError, Voice

    try:
        voice = Voice.from_config(config_from_args(args))
        langs = args.lang or [lang for lang, synth in voice.synthesizers.items() if args.all or synth.prebuild]
        unknown = [lang for lang in langs if lang not in voice.synthesizers]
        if unknown:
            print(f"kiosk voice: no voice on this machine for {', '.join(unknown)} "
                  f"(have: {', '.join(voice.synthesizers) or 'none'})", file=sys.stderr)
            return 2
        catalogue = load_catalogue()
        screens = {lang: screens_to_speak(catalogue, lang) for lang in langs}
    except (CatalogueError, LocaleError) as exc:
        print(f"kiosk voice: cannot read the texts to speak:\n{exc}", file=sys.stderr)
        return 2
    failed = made = 0
    for lang in langs:
        for text in dict.fromkeys(screens[lang]):
            try:
                voice.cache.clip(voice.synthesizers[lang], text)
                made += 1
            except SynthesisError as exc:
                failed += 1
                print(f"kiosk voice: {lang}: {exc}", file=sys.stderr)
    print(f"{made} clips ready in {voice.cache.folder} ({failed} failed)")
    return 1 if failed else 0


def run_say(args: argparse.Namespace) -> int:
    from kiosk.cli import config_from_args
    from kiosk.voice import Voice

    done = threading.Event()
    result: list[bool] = []

    def finished(played: bool) -> None:
        result.append(played)
        done.set()

    voice = Voice.from_config(config_from_args(args), on_finished=finished)
    if not voice.say(args.text, args.lang):
        print(f"kiosk voice: nothing to play for {args.lang!r} (muted, disabled, no engine or no aplay)",
              file=sys.stderr)
        return 2
    done.wait(120)
    voice.close()
    return 0 if result == [True] else 1
