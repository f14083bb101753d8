"""KioskApp: the Kivy touchscreen app. It renders what the flow shows and posts what the patient taps.

Contract (docs/design.md "Runtime"): the runtime calls `show(ShowScreen)` and `show_lamp(pattern)` on the
Kivy main thread; taps come back through `post(message)` as kiosk.messages (`Tap`, `LookupEntered`,
`PinEntered`). No reader, network or flow work happens here.
"""

from __future__ import annotations

import logging
import os

# Read when Kivy is imported: the kiosk CLI owns sys.argv, and Kivy logs through Python logging (stderr →
# journald) instead of taking over sys.stderr.
os.environ.setdefault("KIVY_NO_ARGS", "1")
os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")
from collections.abc import Mapping, Sequence
from pathlib import Path

from kivy.app import App
from kivy.core.text import LabelBase
from kivy.core.window import Window
from kivy.lang import Builder
from kivy.properties import ColorProperty, DictProperty, NumericProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.gridlayout import GridLayout
from kivy.uix.label import Label
from kivy.uix.layout import Layout
from kivy.uix.modalview import ModalView

from kiosk.app.texts import UiTexts
from kiosk.app.views import LANGUAGE_MENU, View, build_view
from kiosk.app.widgets import FitButton, Illustration, Keypad  # also registers LampView, StaffCorner for kiosk.kv
from kiosk.display import Look, load_display_modes
from kiosk.effects import ShowScreen
from kiosk.locales import Locale
from kiosk.messages import LookupEntered, PinEntered, Tap
from kiosk.voice import speech_text

log = logging.getLogger(__name__)

KV_FILE = Path(__file__).resolve().parent / "kiosk.kv"
BASE_SHORT_SIDE = 480  # px: u = 1 on the 800×480 display

TONES = ("info", "ok", "warn", "alert")  # title bar colours: `tone.<tone>` in the display palette
PATIENT_MIN_FONT = 14  # px per u: the smallest text a patient is shown
DENSE_MIN_FONT = 10  # the staff screen's status lines
# In large text, bars, banners and buttons grow by this much and their text never goes below this multiple of the
# usual minimum; pictures make room for the guidance text (LARGE_TEXT_PICTURES), which starts at the full scale and
# only the longest texts (Burmese, portrait keypad screens) step down towards the patient minimum.
LARGE_MIN_SCALE = 1.2
MAX_ACTIONS_PER_PORTRAIT_ROW = 3  # the portrait action bar is narrow: a fourth button (speaker) starts a 2nd row
DEMO_PRESETS = {  # demo button → hardware.readers.sim preset
    "present_card": "mynumber_card",
    "present_iphone": "iphone",
    "present_android": "android",
    "present_transit_card": "transit_card",
    "present_unreadable": "silent",
}
DEMO_ACTIONS = (*DEMO_PRESETS, "remove", "call_button", "reset_button", "acknowledge", "resolve", "outage_enter",
                "outage_leave")
# Share of the body the aside takes, (landscape, portrait): a portrait keypad needs height for 9 mm keys.
ASIDE_SHARE = {"pictures": (0.42, 0.42), "keypad": (0.46, 0.58), "choices": (0.52, 0.52)}
LARGE_TEXT_PICTURES = 0.6  # large text: pictures keep this fraction of their room, the text gets the rest


def register_fonts(locales: Mapping[str, Locale]) -> dict[str, str]:
    """Register each locale's font with Kivy; returns {lang: font name}. A missing file falls back to Roboto."""
    names: dict[str, str] = {}
    for code, locale in locales.items():
        regular = locale.font_file()
        if regular is None:
            log.warning("no font file for %s (tried %s); its text may show as boxes", code,
                        ", ".join(map(str, locale.fonts)))
            names[code] = "Roboto"
            continue
        bold = locale.bold_font_file() or regular
        names[code] = f"kiosk-{code}"
        LabelBase.register(name=names[code], fn_regular=str(regular), fn_bold=str(bold))
    return names


def shaping_scripts(locales: Mapping[str, Locale]) -> dict[str, str]:
    """{lang: Kivy `font_script_name`}: the locale's ISO 15924 script, so HarfBuzz shapes Devanagari and Myanmar.
    Tags Kivy's Label does not accept (Jpan, Hans, Hant, Kore: mixed scripts) become Zyyy (HarfBuzz guesses)."""
    accepted = Label.font_script_name.options
    return {code: locale.script if locale.script in accepted else "Zyyy" for code, locale in locales.items()}


def compose_text(lines: Sequence[str], steps: Sequence[str]) -> str:
    """Paragraphs then numbered steps, one a line (plain text: FitLabel breaks the lines, kiosk.typeset).

    The number is glued to its step with a no-break space, so a step never starts a line without its number."""
    return "\n".join([*lines, *(f"{n}.\u00a0{step}" for n, step in enumerate(steps, 1))])


class KioskRoot(BoxLayout):
    """The one screen layout (kiosk.kv); `show(view)` fills it."""

    tone = StringProperty("info")
    tone_color = ColorProperty((0, 0, 0, 1))  # kiosk.kv: the palette's `tone.<tone>`

    def show(self, view: View, app: KioskApp) -> None:
        ids = self.ids
        self.tone = view.tone if view.tone in TONES else "info"
        ids.title.text = view.title
        ids.banner.text = view.banner
        ids.text.text = compose_text(view.lines, view.steps)
        ids.text.min_font_size = app.u * (DENSE_MIN_FONT if view.dense else PATIENT_MIN_FONT)
        ids.corner.send = lambda: app.tap("staff_gesture")

        ids.languages.clear_widgets()
        ids.languages_row.clear_widgets()
        switch = ids.languages if self.width >= self.height else ids.languages_row
        for action in view.languages:
            switch.add_widget(app.button(action, size_hint_x=None, width=app.u * 132,
                                         max_font_size=app.u * 22 * app.text_scale))

        ids.aside.clear_widgets()
        ids.choices.clear_widgets()
        if view.keypad is not None:
            spec = view.keypad
            ids.aside.add_widget(Keypad(max_digits=spec.max_digits, masked=spec.masked, submit_text=spec.submit_text,
                                        delete_text=spec.delete_text,
                                        send=lambda digits: app.submit(spec.submit, digits)))
            aside = "keypad"
        elif view.illustrations:
            for name in view.illustrations:
                ids.aside.add_widget(Illustration(name=name))
            aside = "pictures"
        elif view.choices:
            aside = "choices"
        else:
            aside = ""
        choices_box = ids.choices
        if aside == "choices":
            rows = (len(view.choices) + 1) // 2
            choices_box = GridLayout(cols=2, spacing=app.u * 6, row_default_height=app.u * (72 if rows <= 3 else 60),
                                     row_force_default=True, size_hint_y=None)
            choices_box.bind(minimum_height=choices_box.setter("height"))
            ids.aside.add_widget(choices_box)
        for action in view.choices:
            button = app.button(action, max_font_size=app.u * 20 * app.text_scale)
            if view.dense:  # staff tools: as many as the aside holds, in any language
                button.min_font_size = app.u * DENSE_MIN_FONT
            choices_box.add_widget(button)
        self._aside_kind = aside
        self.layout_aside()

        ids.actions.clear_widgets()
        two_rows = self.width < self.height and len(view.actions) > MAX_ACTIONS_PER_PORTRAIT_ROW
        ids.actions.cols = (len(view.actions) + 1) // 2 if two_rows else None
        for action in view.actions:
            ids.actions.add_widget(app.button(action))
        self.settle()

    def settle(self) -> None:
        """Lay the screen out now, so each label's fit (a Clock trigger that runs before the next frame, as
        Kivy's own layout triggers do) finds its final size and breaks and fits its text once, not once per
        intermediate size (start-up: bench/bench_ui.py). Innermost boxes first (their minimum sizes size the
        boxes around them), then outermost first (each box sizes what is inside it)."""
        layouts = [widget for widget in self.walk(restrict=True) if isinstance(widget, Layout)]
        for layout in (*reversed(layouts), *layouts):
            layout.do_layout()

    def layout_aside(self, *args) -> None:
        landscape = self.ids.body.orientation == "horizontal"
        kind = getattr(self, "_aside_kind", "")
        share = ASIDE_SHARE.get(kind, (0, 0))[0 if landscape else 1]
        app = App.get_running_app()
        if kind == "pictures" and app is not None and app.text_scale > 1:
            share *= LARGE_TEXT_PICTURES
        aside, main = self.ids.aside, self.ids.main
        if share:
            aside.size_hint = (share, 1) if landscape else (1, share)
        else:  # Kivy treats a 0 size hint like None (keep the current size): collapse it explicitly
            aside.size_hint = (None, 1) if landscape else (1, None)
            aside.size = (0, 0)
        main.size_hint = (1 - share, 1) if landscape else (1, 1 - share)
        aside.opacity = 1 if share else 0

    def on_kv_post(self, base_widget) -> None:
        self.ids.body.bind(orientation=self._turned)

    def _turned(self, *args) -> None:
        """Landscape ⇄ portrait: the language switch changes place and the aside its share."""
        app = App.get_running_app()
        if app is not None and app.view is not None:
            self.show(app.view, app)


class DemoPanel(BoxLayout):
    """Demo controls for the simulated reader and buttons, and the lamp drawn on screen (kiosk.kv)."""


class KioskApp(App):
    """The touchscreen app over a kiosk.runtime.Runtime: renders its screens, posts the patient's taps.

    `KioskApp(runtime, fullscreen, demo_reader)` makes itself `runtime.screen`, starts the runtime from
    `on_start` (runtime.attach_kivy) and shuts it down in `on_stop`. With `demo_reader` (a SimReader) a demo
    panel drives the simulated reader, the buttons and staff commands, and draws the lamp.
    """

    title = "kiosk"
    font = StringProperty("Roboto")  # the current language's font (kv binds every label to it)
    font_script = StringProperty("Zyyy")  # ... and its script, for shaping (kv: every label's font_script_name)
    lang = StringProperty("ja")  # the screen's language (kv: every label breaks its lines by its phrases)
    u = NumericProperty(1.0)  # size unit: short side of the window / 480 px
    text_scale = NumericProperty(1.0)  # large-text mode scales every font size (kiosk/display.json)
    min_text_scale = NumericProperty(1.0)  # ... and the smallest size a box may step down to, up to LARGE_MIN_SCALE
    palette = DictProperty()  # colour name → rgba, from the display mode's palette (kv binds every colour to it)

    def __init__(self, runtime, fullscreen: bool = False, demo_reader=None, *, texts: UiTexts | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.runtime = runtime
        runtime.screen = self
        self.fullscreen = fullscreen
        self.demo_reader = demo_reader
        self.texts = texts or UiTexts()
        self.display_modes = load_display_modes()
        self.apply_look(self.display_modes.look())
        self.languages = tuple(runtime.flow.languages)
        self.fonts: dict[str, str] = {}
        self.scripts = shaping_scripts(self.texts.locales)
        self.lang = "ja"
        self.view: View | None = None
        self.kiosk: KioskRoot | None = None
        self.demo: DemoPanel | None = None
        self.menu: ModalView | None = None
        self.window_ready = False
        self.stopped = False  # after on_stop nothing renders: kiosk.kv's `app` is gone (App.stop → None)

    def on_start(self) -> None:
        self.runtime.attach_kivy()

    def on_stop(self) -> None:
        self.stopped = True
        self.runtime.shutdown()

    # --- building ------------------------------------------------------------------------------------------

    def build(self):
        self.fonts = register_fonts(self.texts.locales)
        self.font = self.fonts.get(self.lang, "Roboto")
        self.font_script = self.scripts.get(self.lang, "Zyyy")
        if self.fullscreen:
            Window.fullscreen = "auto"
            Window.show_cursor = False
        Window.bind(size=self._resized)
        self._resized(Window, Window.size)
        Window.bind(on_flip=self._first_frame_drawn)
        if not Builder.files or str(KV_FILE) not in Builder.files:
            Builder.load_file(str(KV_FILE))
        self.kiosk = KioskRoot()
        if self.demo_reader is None:
            return self.kiosk
        root = BoxLayout(orientation="horizontal")
        root.add_widget(self.kiosk)
        self.demo = DemoPanel(size_hint_x=0.28)
        self._fill_demo_panel()
        root.add_widget(self.demo)
        return root

    def _first_frame_drawn(self, window) -> None:
        """Render the first screen only once the window has drawn a frame: widgets filled in earlier (in
        on_start) cost ~40 MiB more, measured offscreen with Mesa llvmpipe (bench/bench_ui.py)."""
        window.unbind(on_flip=self._first_frame_drawn)
        if self.stopped:  # stopped (SIGTERM) before the first frame: this flip is the last one
            return
        self.window_ready = True
        if self.view is not None and self.kiosk is not None:
            self.kiosk.show(self.view, self)

    def apply_look(self, look: Look) -> None:
        """Large text and high contrast: every font size and colour in kiosk.kv follows these two properties."""
        self.text_scale = look.scale
        self.min_text_scale = min(look.scale, LARGE_MIN_SCALE)
        self.palette = {name: look.rgba(name) for name in look.palette}

    def load_kv(self, filename=None):
        return None  # kiosk.kv is loaded explicitly in build() (App's name-based lookup would not find it)

    def _resized(self, window, size) -> None:
        self.u = max(0.5, min(size) / BASE_SHORT_SIDE)

    def button(self, action, **kwargs) -> FitButton:
        """A FitButton for a views.Action that taps its target."""
        button = FitButton(text=action.text, target=action.target, style=action.style, **kwargs)
        if action.lang:
            button.font_name = self.fonts.get(action.lang, self.font)
            button.font_script_name = self.scripts.get(action.lang, "Zyyy")
            button.lang = action.lang
        button.bind(on_release=lambda b: self.tap(b.target))
        return button

    def _fill_demo_panel(self) -> None:
        assert self.demo is not None
        self.demo.ids.heading.text = self.texts.text(self.lang, "demo.title")
        buttons = self.demo.ids.buttons
        buttons.clear_widgets()
        for name in DEMO_ACTIONS:
            button = FitButton(text=self.texts.text(self.lang, f"demo.{name}"), target=name,
                               max_font_size=self.u * 16 * self.text_scale)
            button.bind(on_release=lambda b: self.demo_action(b.target))
            buttons.add_widget(button)

    def demo_action(self, name: str) -> None:
        """A demo panel button: the simulated reader, the call/reset buttons, or a staff console command."""
        from kiosk.messages import CallButton, Command, ResetButton

        if name in DEMO_PRESETS:
            self.demo_reader.present(DEMO_PRESETS[name])
        elif name == "remove":
            self.demo_reader.remove()
        elif name == "call_button":
            self.post(CallButton())
        elif name == "reset_button":
            self.post(ResetButton())
        else:  # a staff command, as the console would send it
            self.post(Command(id=f"demo-{name}", name=name, args={},
                              reply=lambda answer: log.info("demo %s: %s", name, answer.detail)))

    # --- the runtime's side --------------------------------------------------------------------------------

    def show(self, screen: ShowScreen) -> None:
        """Render a flow ShowScreen effect (Kivy main thread only); nothing once the app has stopped."""
        if self.stopped:
            return
        self.apply_look(self.display_modes.look(screen.large_text, screen.high_contrast))
        self.view = build_view(screen.name, screen.lang, screen.context, self.texts, self.runtime.catalogue,
                               self.languages, speaker=screen.speaker,
                               display={"large_text": screen.large_text, "high_contrast": screen.high_contrast})
        self.lang = self.view.lang  # the view's: the staff menu exists in the staff languages only
        self.font = self.fonts.get(self.lang, self.fonts.get("ja", "Roboto"))
        self.font_script = self.scripts.get(self.lang, self.scripts.get("ja", "Zyyy"))
        self.close_language_menu()
        if self.kiosk is not None and self.window_ready:
            self.kiosk.show(self.view, self)
        if self.demo is not None:
            self._fill_demo_panel()

    def speech(self) -> str:
        """What the speaker button reads out: the guidance on the screen now (kiosk.voice.speech_text)."""
        return speech_text(*self.view.spoken()) if self.view is not None else ""

    def show_lamp(self, pattern: str) -> None:
        """Draw the lamp pattern on the demo panel (the real lamp is hardware.signals)."""
        if self.demo is not None and not self.stopped:
            self.demo.ids.lamp.pattern = pattern

    # --- the patient's side --------------------------------------------------------------------------------

    def post(self, message) -> None:
        self.runtime.post(message)

    def tap(self, target: str) -> None:
        if target == LANGUAGE_MENU:
            self.open_language_menu()
        elif target.startswith("code:"):
            self.post(LookupEntered(target.removeprefix("code:")))
        else:
            self.post(Tap(target))

    def open_language_menu(self) -> None:
        """Every language in its own script and font; picking one posts `lang:<xx>` to the flow."""
        if self.view is None or not self.view.language_menu:
            return
        self.close_language_menu()
        portrait = Window.height > Window.width
        grid = GridLayout(cols=2 if portrait else 3, spacing=self.u * 8, padding=self.u * 12)
        for action in self.view.language_menu:
            grid.add_widget(self.button(action, max_font_size=self.u * 24 * self.text_scale))
        self.menu = ModalView(size_hint=(0.94, 0.9), auto_dismiss=True)
        self.menu.add_widget(grid)
        self.menu.open(animation=False)

    def close_language_menu(self) -> None:
        if self.menu is not None:
            self.menu.dismiss(animation=False)
            self.menu = None

    def submit(self, kind: str, digits: str) -> None:
        self.post(PinEntered(digits) if kind == "pin" else LookupEntered(digits))
