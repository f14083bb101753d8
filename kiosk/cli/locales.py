"""`kiosk locales`: check the translations (for translators), accept an updated one, preview how the screens
break each text into lines, rebuild the merged fonts.

Exit codes: 0 ok (stale texts are reported but do not fail), 1 problems found, 2 bad languages.json or usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("locales", help="check translations, accept an update, rebuild fonts",
                                   description=__doc__.splitlines()[0])
    actions = parser.add_subparsers(dest="locales_action", required=True, metavar="ACTION")

    check = actions.add_parser("check", help="completeness, placeholders, glossary, font coverage, stale texts")
    check.add_argument("--lang", action="append", metavar="CODE", help="only these locales (repeatable)")
    check.set_defaults(handler=run_check)

    accept = actions.add_parser("accept", help="record that CODE now follows the current Japanese texts")
    accept.add_argument("code")
    accept.set_defaults(handler=run_accept)

    preview = actions.add_parser(
        "preview", help="every text of every screen as broken into lines at a layout (no display needed)",
        description="Print every text of every screen exactly as the kiosk breaks it into lines at LAYOUT, with "
                    "the font size used; flag overflow, kinsoku and phrase-breaking problems (exit 1 if any).")
    preview.add_argument("--lang", action="append", metavar="CODE", help="only these locales (repeatable; "
                         "default: all)")
    preview.add_argument("--layout", action="append", choices=("800x480", "1280x720", "720x1280"),
                         help="screen size (repeatable; default 800x480)")
    preview.add_argument("--screen", action="append", metavar="NAME", help="only these screens (repeatable)")
    preview.add_argument("--large-text", action="store_true", help="in the patient's large-text mode")
    preview.add_argument("--problems", action="store_true", help="print only the labels with a problem")
    preview.set_defaults(handler=run_preview)

    fonts = actions.add_parser("fonts", help="rebuild catalogue/locales/fonts from Debian's Noto fonts")
    fonts.add_argument("--out", type=Path, help="output folder (default: catalogue/locales/fonts)")
    fonts.set_defaults(handler=run_fonts)


def run_check(args: argparse.Namespace) -> int:
    from kiosk import locales as loc

    try:
        available = loc.load_locales()
        codes = args.lang or [code for code in available if code != loc.SOURCE_LANG]
        unknown = [code for code in codes if code not in available]
        if unknown:
            print(f"kiosk locales: not in languages.json: {', '.join(unknown)}", file=sys.stderr)
            return 2
        problems: list[str] = []
        stale: list[str] = []
        for code in codes:
            problems += [*loc.completeness_problems(code), *loc.glossary_problems(code),
                         *loc.font_problems(available[code])]
            stale += loc.stale_texts(code)
    except loc.LocaleError as exc:
        print(f"kiosk locales: {exc}", file=sys.stderr)
        return 2
    for line in problems:
        print(f"PROBLEM {line}")
    for line in stale:
        print(f"STALE   {line}")
    if stale:
        print("STALE: the Japanese text changed since the translation was accepted; update the translation, "
              "then `kiosk locales accept CODE`")
    print(f"{len(codes)} locales: {len(problems)} problems, {len(stale)} stale texts")
    return 1 if problems else 0


def run_accept(args: argparse.Namespace) -> int:
    from kiosk import locales as loc

    try:
        if args.code not in loc.load_locales() or args.code == loc.SOURCE_LANG:
            print(f"kiosk locales: {args.code!r} is not a translation listed in languages.json", file=sys.stderr)
            return 2
        problems = loc.completeness_problems(args.code)
    except loc.LocaleError as exc:
        print(f"kiosk locales: {exc}", file=sys.stderr)
        return 2
    if problems:
        print("\n".join(problems) + "\nkiosk locales: complete the translation before accepting it", file=sys.stderr)
        return 1
    print(f"recorded {loc.accept_translation(args.code)}")
    return 0


def run_preview(args: argparse.Namespace) -> int:
    from kiosk import locales as loc
    from kiosk.app.offscreen import prepare_environment

    try:
        available = [code for code in loc.load_locales() if (loc.locales_dir() / code / "ui.json").exists()]
    except loc.LocaleError as exc:
        print(f"kiosk locales: {exc}", file=sys.stderr)
        return 2
    codes = args.lang or available
    unknown = [code for code in codes if code not in available]
    if unknown:
        print(f"kiosk locales: not in languages.json: {', '.join(unknown)}", file=sys.stderr)
        return 2
    prepare_environment()
    from kiosk.app.preview import PREVIEW_SCREENS, format_labels, preview
    from kiosk.vocabulary import SCREENS

    wrong = [name for name in args.screen or () if name not in SCREENS]
    if wrong:
        print(f"kiosk locales: no screen {', '.join(wrong)} (screens: {', '.join(SCREENS)})", file=sys.stderr)
        return 2
    problems = 0
    for layout, lang, screen, labels in preview(codes, args.layout or ["800x480"], args.screen, args.large_text):
        shown = [label for label in labels if label.problems or not args.problems]
        problems += sum(len(label.problems) for label in labels)
        if shown:
            print(f"== {layout} {lang} {screen}")
            print("\n".join(format_labels(shown)))
    screens = len([s for s in PREVIEW_SCREENS if not args.screen or s.name in args.screen])
    print(f"{len(codes)} locales, {screens} screens: {problems} problems")
    return 1 if problems else 0


def run_fonts(args: argparse.Namespace) -> int:
    from kiosk.fontbuild import build_all
    from kiosk.locales import locales_dir

    try:
        for path in build_all(args.out or locales_dir() / "fonts"):
            print(path)
    except FileNotFoundError as exc:
        print(f"kiosk locales: {exc}", file=sys.stderr)
        return 1
    return 0
