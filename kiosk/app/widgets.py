"""Kivy widgets for the kiosk screens. No flow logic here: widgets render a View and report taps.

Sizes (kiosk.kv) scale with `App.u` = (short side of the window) / 480 px. DPI assumption: the Raspberry Pi
touch displays are 133 dpi (7" 800×480) to 210 dpi (Touch Display 2, 720×1280); at 1280×720 we assume
≥ 100 dpi (up to a 15" panel). The smallest tap targets (keypad keys, ~57 u px) are ≥ 9 mm on each of them;
tests/test_ui_screens.py measures every button at every layout.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from kivy.clock import Clock
from kivy.graphics import Color, Ellipse, PopMatrix, PushMatrix, Scale, Translate
from kivy.graphics.svg import Svg
from kivy.properties import (
    BooleanProperty,
    ColorProperty,
    ListProperty,
    NumericProperty,
    ObjectProperty,
    StringProperty,
)
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.label import Label
from kivy.uix.widget import Widget

from hardware.signals import PATTERNS
from kiosk.typeset import Typeset, typeset

ILLUSTRATION_DIR = Path(__file__).resolve().parent / "illustrations"


# Font sizes a FitLabel may use (px, ~8 % apart). Every size opens its own FreeType face (the CJK font is a
# 19 MB collection), so a short fixed ladder keeps memory flat however many boxes are fitted.
FONT_LADDER = tuple(sorted({round(10 * 1.08 ** k) for k in range(45)}))
TYPESET_CACHE_SIZE = 4096  # typeset texts kept, by (text, language, font, size, script, width)
_typeset_cache: OrderedDict[tuple, Typeset] = OrderedDict()


class FitLabel(Label):
    """A label that breaks its text by phrase (kiosk.typeset: BudouX phrases, kinsoku) and steps its font down
    the ladder (to `min_font_size`) until the text fits its box.

    Kivy itself breaks lines only at spaces, so the label hands its core label the text already broken into
    lines (newlines at the chosen breaks) for the current font size and width, measured with that core label;
    `text` keeps what the screen says (the voice reads it unbroken) and `typeset` holds the lines shown.
    A size whose lines had to cut a word or number (`Typeset.forced`) counts as not fitting, except the last.
    Markup labels are left to Kivy's own wrapping.

    Kivy 2.3 (SDL_ttf) measures text with the script the font object had at its last real render and applies
    the label's `font_script_name` only when it draws the texture (lazily, at the next frame), so the first
    render of a font at a size (or after Kivy's cache of 64 open fonts dropped it) is measured unshaped: Burmese
    came out ~10 % clipped. A size is accepted only when, drawn once, it measures as fitting again; only that
    second (shaped) measurement's lines are cached."""

    max_font_size = NumericProperty(28)
    min_font_size = NumericProperty(12)
    lang = StringProperty("")  # BCP 47 tag of the text: which phrase model breaks its lines (kiosk.typeset)

    def __init__(self, **kwargs) -> None:
        self._fit_trigger = Clock.create_trigger(lambda dt: self.fit(), -1)
        self.typeset: Typeset | None = None
        self._trusted = False
        super().__init__(**kwargs)
        for name in ("size", "text", "max_font_size", "min_font_size", "font_name", "font_script_name", "lang",
                     "bold", "padding"):
            self.fbind(name, self._fit_trigger)

    def fit(self) -> None:
        if self.width <= 1 or self.height <= 1:
            return
        padding_x = self.padding[0] + self.padding[2] if len(self.padding) == 4 else 2 * self.padding[0]
        self.text_size = (max(1, self.width - padding_x), None)
        sizes = [size for size in reversed(FONT_LADDER) if self.min_font_size < size <= self.max_font_size]
        for size in [*sizes, self.min_font_size]:
            self.font_size = size
            if self._drawn_fits() and self._drawn_fits(trusted=True):  # the second measures the shaped text
                return
        self._drawn_fits(trusted=True)  # too long even at the minimum: still show (and report) the shaped text

    def line_width(self) -> float | None:
        """The width (px) Kivy lays each line out in: `text_size` less the horizontal padding; None: unbounded."""
        if self.text_size[0] is None:
            return None
        padding = self._label.options["padding"]
        return max(0, self.text_size[0] - padding[0] - padding[2])

    def measure(self, text: str) -> float:
        """Width (px) of one line of `text` in the label's current font, size, style and script."""
        return self._label.get_extents(text)[0]

    def texture_update(self, *largs) -> None:
        """Kivy's rendering, fed the text broken into lines for the current font size and width."""
        if not self.markup:
            self.typeset = self._typeset()
            self._label.text = self.typeset.text
        super().texture_update(*largs)

    def _typeset(self) -> Typeset:
        width = self.line_width()
        if width is None or not self.text:
            return Typeset(tuple((line,) for line in self.text.split("\n")))
        key = (self.text, self.lang, self.font_name, self.font_size, self.bold, self.italic, self.font_script_name,
               self.font_direction, width)
        found = _typeset_cache.get(key)
        if found is not None:
            _typeset_cache.move_to_end(key)
            return found
        result = typeset(self.text, self.lang, width, self.measure)
        if self._trusted:
            _typeset_cache[key] = result
            if len(_typeset_cache) > TYPESET_CACHE_SIZE:
                _typeset_cache.popitem(last=False)
        return result

    def _drawn_fits(self, trusted: bool = False) -> bool:
        """Break and measure the text at the current size and draw it now (drawing sets the script on the
        font); `trusted`: the font has been drawn at this size, so its lines may be cached."""
        self._trusted = trusted
        try:
            self.texture_update()
        finally:
            self._trusted = False
        if self.texture is not None:
            self.texture.bind()  # runs the label's pending render into the texture
        forced = self.typeset is not None and self.typeset.forced and self.font_size > self.min_font_size
        return not forced and self.texture_size[0] <= self.width + 1 and self.texture_size[1] <= self.height + 1


class FitButton(ButtonBehavior, FitLabel):
    """A big button: a tap posts `target` (the app decides what that means)."""

    target = StringProperty("")
    style = StringProperty("plain")  # plain | primary | call: colours `button.<style>` of the display palette


class Illustration(Widget):
    """One of the shipped SVG illustrations, scaled to fit the box and centred."""

    name = StringProperty("")

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._svg: Svg | None = None
        self.bind(name=self._load, pos=self._place, size=self._place)
        self._load()

    def _load(self, *args) -> None:
        self.canvas.clear()
        self._svg = None
        path = ILLUSTRATION_DIR / f"{self.name}.svg"
        if not self.name or not path.is_file():
            return
        with self.canvas:
            PushMatrix()
            self._move = Translate()
            self._scale = Scale()
            self._svg = Svg(str(path))
            PopMatrix()
        self._place()

    def _place(self, *args) -> None:
        if self._svg is None or not self._svg.width:
            return
        s = min(self.width / self._svg.width, self.height / self._svg.height)
        self._scale.xyz = (s, s, 1)
        self._move.xy = (self.x + (self.width - self._svg.width * s) / 2,
                         self.y + (self.height - self._svg.height * s) / 2)


class Keypad(BoxLayout):
    """Digits, delete and submit; keeps only what is being typed and clears it after submitting."""

    entered = StringProperty("")
    max_digits = NumericProperty(3)
    masked = BooleanProperty(False)
    submit_text = StringProperty("")
    delete_text = StringProperty("")
    send = ObjectProperty(None, allownone=True)  # called with the entered digits on submit

    def press(self, key: str) -> None:
        if key == "delete":
            self.entered = self.entered[:-1]
        elif key == "submit":
            entered, self.entered = self.entered, ""
            if self.send is not None:
                self.send(entered)
        elif len(self.entered) < self.max_digits:
            self.entered += key

    def shown(self) -> str:
        return "●" * len(self.entered) if self.masked else self.entered


class StaffCorner(ButtonBehavior, Widget):
    """The hidden staff gesture: TAPS_NEEDED taps within WINDOW_SECONDS on an unmarked corner."""

    TAPS_NEEDED = 5
    WINDOW_SECONDS = 4.0
    taps = ListProperty([])
    send = ObjectProperty(None, allownone=True)  # called when the gesture is complete

    def on_release(self) -> None:
        now = Clock.get_boottime()
        self.taps = [t for t in self.taps if now - t <= self.WINDOW_SECONDS] + [now]
        if len(self.taps) >= self.TAPS_NEEDED:
            self.taps = []
            if self.send is not None:
                self.send()


class LampView(Widget):
    """The call lamp drawn on screen for the demo, playing the same patterns as hardware.signals."""

    pattern = StringProperty("off")
    lit = BooleanProperty(False)
    lit_color = ColorProperty((0.95, 0.35, 0.1, 1))
    dark_color = ColorProperty((0.3, 0.3, 0.3, 1))

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._event = None
        self._step = 0
        with self.canvas:
            self._color = Color(*self.dark_color)
            self._disc = Ellipse()
        self.bind(pos=self._redraw, size=self._redraw, lit=self._redraw)
        self.bind(pattern=self._restart)

    def _restart(self, *args) -> None:
        if self._event is not None:
            self._event.cancel()
            self._event = None
        pattern = PATTERNS.get(self.pattern, PATTERNS["off"])
        self._step = 0
        self.lit = bool(pattern.values[0])
        if len(pattern.values) > 1:
            self._event = Clock.schedule_interval(self._advance, pattern.step)

    def _advance(self, dt) -> None:
        values = PATTERNS.get(self.pattern, PATTERNS["off"]).values
        self._step = (self._step + 1) % len(values)
        self.lit = bool(values[self._step])

    def _redraw(self, *args) -> None:
        d = min(self.width, self.height) * 0.9
        self._disc.pos = (self.center_x - d / 2, self.center_y - d / 2)
        self._disc.size = (d, d)
        self._color.rgba = self.lit_color if self.lit else self.dark_color
