"""Build the shipped `catalogue/locales/fonts/*+Latin-*.ttf`: a Noto script font plus Noto Sans' Latin.

Kivy draws a label with one font file and no fallback, but Noto Sans Thai / Devanagari / Myanmar carry no
Latin letters or digits, and every screen shows digits (error codes) and the odd Latin word. So the script
font is merged with a small Latin subset of Noto Sans (both SIL OFL 1.1, which allows this) with fontTools.
Run `kiosk locales fonts` after a Debian font update; the output is committed so the Pi needs no build step.
"""

from __future__ import annotations

from pathlib import Path

NOTO_DIR = Path("/usr/share/fonts/truetype/noto")
SCRIPTS = ("Thai", "Devanagari", "Myanmar")
WEIGHTS = ("Regular", "Bold")
# Basic Latin, Latin-1 punctuation and the typographic marks the texts use.
LATIN_CODEPOINTS = (
    list(range(0x20, 0x7F))
    + list(range(0xA0, 0x100))
    + [0x2010, 0x2011, 0x2013, 0x2014, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2026, 0x2192, 0x25CB, 0x25CF]
)


def merged_font_name(script: str, weight: str) -> str:
    return f"NotoSans{script}+Latin-{weight}.ttf"


def build_merged_font(script_font: Path, latin_font: Path, out: Path) -> Path:
    """Write `script_font` + the Latin subset of `latin_font` to `out` (the script font's metrics win)."""
    from fontTools import subset
    from fontTools.merge import Merger, Options

    options = subset.Options()
    options.layout_features = ["*"]
    options.name_IDs = ["*"]
    options.notdef_outline = True
    latin = subset.load_font(str(latin_font), options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=LATIN_CODEPOINTS)
    subsetter.subset(latin)
    out.parent.mkdir(parents=True, exist_ok=True)
    latin_path = out.with_suffix(".latin.tmp")
    try:
        latin.save(str(latin_path))
        merged = Merger(Options(drop_tables=["vmtx", "vhea", "MATH"])).merge([str(script_font), str(latin_path)])
    finally:
        latin_path.unlink(missing_ok=True)
    merged.save(str(out))
    return out


def build_all(out_dir: Path, noto_dir: Path = NOTO_DIR) -> list[Path]:
    """Every script × weight; raises FileNotFoundError naming the missing Debian font (fonts-noto-core)."""
    built = []
    for script in SCRIPTS:
        for weight in WEIGHTS:
            sources = (noto_dir / f"NotoSans{script}-{weight}.ttf", noto_dir / f"NotoSans-{weight}.ttf")
            for source in sources:
                if not source.is_file():
                    raise FileNotFoundError(f"{source}: missing (apt-get install fonts-noto-core)")
            built.append(build_merged_font(*sources, out_dir / merged_font_name(script, weight)))
    return built
