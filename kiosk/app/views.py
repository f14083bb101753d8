"""What each screen shows, as plain data: `build_view(name, lang, context, ...) -> View`. Pure: no Kivy.

The flow decides *which* screen and passes a context (docs/design.md "Flow"); this module turns that into
texts (ui.json, catalogue guidance), illustration ids and buttons with their tap targets. The Kivy layer
(kiosk/app/kiosk.kv + widgets) only lays a View out, so everything a patient reads is testable here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from string import Formatter
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kiosk.app.texts import UiTexts
from kiosk.events import ESCALATED, SENT_TO_DESK
from kiosk.vocabulary import (
    CALLING,
    CHECKING,
    DEFAULT_TIMEZONE,
    DISPLAY_MODES,
    GOOD_OUTCOMES,
    IDLE,
    LOOKUP,
    LOOKUP_RESULT,
    OUTAGE,
    RESULT,
    STAFF,
    STAFF_COMING,
    STAFF_LANGUAGES,
    STAFF_PIN,
)

log = logging.getLogger(__name__)

MAX_STEPS = 3
MAX_ILLUSTRATIONS = 2

ILLUSTRATIONS = ("card_flat", "card_out_of_case", "one_card_only", "phone_nfc_spot", "iphone_wallet",
                 "android_screen_off")

# Which pictures explain a pre-check outcome, and which explain a hint (hints come first).
OUTCOME_ILLUSTRATIONS: dict[str, tuple[str, ...]] = {
    "nothing": ("card_flat", "phone_nfc_spot"),
    "mynumber_card": ("card_flat",),
    "smartphone_iphone": ("iphone_wallet", "phone_nfc_spot"),
    "smartphone_android": ("android_screen_off", "phone_nfc_spot"),
    "not_mynumber": ("one_card_only", "card_out_of_case"),
    "unreadable_card": ("card_out_of_case", "card_flat"),
    "smartphone_unreadable": ("phone_nfc_spot", "android_screen_off"),
    "smartphone_mismatch": ("iphone_wallet", "phone_nfc_spot"),
}
HINT_ILLUSTRATIONS: dict[str, str] = {
    "out_of_case": "card_out_of_case",
    "one_item_only": "one_card_only",
    "not_mynumber_card": "one_card_only",
    "android_screen_sleep": "android_screen_off",
    "antenna_position": "phone_nfc_spot",
    "hold_slightly_away": "phone_nfc_spot",
    "phone_wallet_first": "iphone_wallet",
    "choose_iphone": "iphone_wallet",
    "card_on_card_reader": "card_flat",
}
MAX_LANGUAGE_BUTTONS = 2  # in the title bar; more languages open a picker (LANGUAGE_MENU, handled by the UI)
PINNED_LANGUAGES = ("ja", "en")  # always one tap away
LANGUAGE_MENU = "menu:languages"
STAFF_ACTIONS = ("lamp_test", "clear_call", "outage_enter", "outage_leave", "reload_catalogue")
SPEAK = "speak"  # the speaker button's tap target


@dataclass(frozen=True)
class Action:
    """A button: what it says, what it posts (`target`, see docs/design.md "Flow"), how it looks."""

    target: str
    text: str
    style: str = "plain"  # plain | primary | call
    lang: str | None = None  # render in this language's font (language buttons name their own language)


@dataclass(frozen=True)
class Keypad:
    """A numeric keypad; `submit` is "lookup" (posts LookupEntered) or "pin" (posts PinEntered)."""

    submit: str
    max_digits: int
    masked: bool
    submit_text: str
    delete_text: str


@dataclass(frozen=True)
class View:
    screen: str
    lang: str
    title: str
    tone: str = "info"  # info | ok | warn | alert: the title bar colour
    banner: str = ""  # one highlighted sentence (staff called, an entry error)
    lines: tuple[str, ...] = ()  # paragraphs
    steps: tuple[str, ...] = ()  # numbered steps (at most MAX_STEPS for patients)
    illustrations: tuple[str, ...] = ()
    keypad: Keypad | None = None
    choices: tuple[Action, ...] = ()  # secondary buttons beside the text (nearest codes, staff tools)
    actions: tuple[Action, ...] = ()  # the bottom bar
    languages: tuple[Action, ...] = ()  # the language switch (empty where the flow ignores it)
    language_menu: tuple[Action, ...] = ()  # every other language, when too many for the title bar
    dense: bool = False  # staff-facing status text: may go smaller than patient text
    speech: tuple[str, ...] = ()  # what the speaker button reads (title, then sentences); () = what is shown

    def spoken(self) -> tuple[str, list[str]]:
        """(title, sentences) for kiosk.voice.speech_text: the screen's guidance, without the buttons."""
        if self.speech:
            return self.speech[0], list(self.speech[1:])
        return self.title, [self.banner, *self.lines, *self.steps]

    def texts(self) -> list[str]:
        """Every string the view shows (for glyph and translation checks)."""
        buttons = [a.text for a in (*self.choices, *self.actions, *self.languages, *self.language_menu)]
        keypad = [self.keypad.submit_text, self.keypad.delete_text] if self.keypad else []
        return [self.title, self.banner, *self.lines, *self.steps, *buttons, *keypad]


class GuidanceSource(Protocol):
    """kiosk.catalogue.Catalogue as far as the screens need it."""

    def guidance(self, code: str, lang: str) -> Any: ...


def build_view(name: str, lang: str, context: Mapping[str, Any], texts: UiTexts,
               guidance: GuidanceSource | None = None, languages: Sequence[str] = ("ja", "en"),
               speaker: bool = False, display: Mapping[str, bool] | None = None) -> View:
    """The View for one ShowScreen effect; unknown screens and odd contexts degrade, never raise.

    `speaker` adds the speaker button (the flow decides where); `display` ({mode: on}) marks the idle screen's
    display toggles that are on."""
    if name == STAFF and lang not in STAFF_LANGUAGES:  # staff texts exist in ja and en only (staff.json): the
        lang = STAFF_LANGUAGES[0]  # flow picks one (Flow._shown_lang); a preview or a stray effect gets Japanese
    builder = BUILDERS.get(name)
    if builder is None:
        log.warning("no layout for screen %r; showing the idle screen", name)
        builder = _idle
    t = _Texts(texts, lang)
    try:
        view = builder(t, dict(context) if isinstance(context, Mapping) else {}, guidance)
    except Exception:  # a malformed context must never blank the kiosk: show where the patient can start over
        log.exception("screen %r could not be built from its context; showing the idle screen", name)
        view = _idle(t, {}, guidance)
    if speaker:
        view = _with(view, actions=(*view.actions, Action(SPEAK, t("button.speak"), "plain")))
    if view.screen == IDLE:
        modes = display or {}
        view = _with(view, choices=tuple(Action(f"display:{mode}", t(f"display.{mode}"),
                                                "primary" if modes.get(mode) else "plain") for mode in DISPLAY_MODES))
    if name in (STAFF, STAFF_PIN):  # the flow ignores language taps there
        return view
    others = tuple(Action(f"lang:{code}", texts.text(code, "lang.self_name"), "plain", code)
                   for code in languages if code != lang)
    if len(others) <= MAX_LANGUAGE_BUTTONS:
        return _with(view, languages=others)
    direct = tuple(a for a in others if a.lang in PINNED_LANGUAGES)[:MAX_LANGUAGE_BUTTONS - 1]
    return _with(view, languages=(*direct, Action(LANGUAGE_MENU, t("lang.picker"), "primary")), language_menu=others)


class _Texts:
    def __init__(self, texts: UiTexts, lang: str) -> None:
        self.texts, self.lang = texts, lang

    def __call__(self, key: str, **context: object) -> str:
        return self.texts.text(self.lang, key, **context)

    def optional(self, key: str, **context: object) -> str | None:
        return self(key, **context) if self.texts.has(key) else None


def _with(view: View, **changes: Any) -> View:
    return View(**{**view.__dict__, **changes})


def _dedupe(items: Sequence[str | None], limit: int) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in items if i))[:limit]


def _items(value: Any) -> list:
    """A list/tuple context value as a list; anything else (None, a string, a number) as empty."""
    return list(value) if isinstance(value, (list, tuple)) else []


def _mapping(value: Any) -> Mapping:
    return value if isinstance(value, Mapping) else {}


def _call_button(t: _Texts) -> Action:
    return Action("call", t("button.call"), "call")


def _lookup_button(t: _Texts) -> Action:
    return Action("lookup", t("button.lookup"), "primary")


def _idle(t: _Texts, ctx: dict, guidance: GuidanceSource | None) -> View:
    return View("idle", t.lang, t("idle.title"), lines=(t("idle.body"), t("idle.privacy")),
                illustrations=("card_flat", "phone_nfc_spot"), actions=(_lookup_button(t), _call_button(t)))


def _checking(t: _Texts, ctx: dict, guidance: GuidanceSource | None) -> View:
    return View("checking", t.lang, t("checking.title"), lines=(t("checking.body"),),
                illustrations=("card_flat",))


def _result(t: _Texts, ctx: dict, guidance: GuidanceSource | None) -> View:
    outcome = str(ctx.get("outcome") or "")
    key = outcome if t.texts.has(f"result.{outcome}.title") else "other"
    hints = [str(h) for h in _items(ctx.get("hints"))]
    steps = _dedupe([t.optional(f"hint.{h}") for h in hints]
                    + [t.optional(f"result.{key}.{n}") for n in range(1, MAX_STEPS + 1)], MAX_STEPS)
    pictures = _dedupe([HINT_ILLUSTRATIONS.get(h) for h in hints] + list(OUTCOME_ILLUSTRATIONS.get(outcome, ())),
                       MAX_ILLUSTRATIONS)
    code = ctx.get("code")
    called = bool(ctx.get("called") or ctx.get("call_staff"))
    good = outcome in GOOD_OUTCOMES
    return View("result", t.lang, t(f"result.{key}.title"), tone="ok" if good else "warn",
                banner=t("call.called") if called else "",
                lines=(t("result.code_note", code=code),) if code and not good else (),
                steps=steps, illustrations=pictures,
                actions=(Action("done", t("button.done"), "primary"), _call_button(t)))


def _lookup(t: _Texts, ctx: dict, guidance: GuidanceSource | None) -> View:
    error = ctx.get("error")
    banner = t(f"lookup.error.{error}", entered=ctx.get("entered", "")) if error in ("format", "unknown") else ""
    nearest = tuple(Action(f"code:{c}", str(c), "plain") for c in _items(ctx.get("nearest"))[:4])
    return View("lookup", t.lang, t("lookup.title"), tone="info", banner=banner,
                lines=(t("lookup.prompt"),) + ((t("lookup.nearest"),) if nearest else ()),
                keypad=Keypad("lookup", 3, False, t("keypad.lookup"), t("keypad.delete")), choices=nearest,
                actions=(Action("home", t("button.home"), "plain"), _call_button(t)))


def _lookup_result(t: _Texts, ctx: dict, guidance: GuidanceSource | None) -> View:
    code = str(ctx.get("code") or "")
    title = t("lookup_result.heading", code=code)
    steps: tuple[str, ...] = ()
    pictures: tuple[str, ...] = ()
    try:
        found = guidance.guidance(code, t.lang) if guidance is not None else None
    except Exception as exc:  # a catalogue gap must not blank the screen
        log.warning("no guidance for code %s: %s", code, exc)
        found = None
    if found is not None:
        title = f"{title}  {found.title}"
        steps = _dedupe(list(found.steps), MAX_STEPS)
        pictures = _dedupe([p for p in found.illustrations if p in ILLUSTRATIONS], MAX_ILLUSTRATIONS)
    lines = []
    if ctx.get("outage"):
        lines.append(t("lookup_result.outage"))
    if ctx.get("audience") == "staff":
        lines.append(t("lookup_result.staff"))
    if not steps and not lines:
        lines.append(t("lookup_result.no_guidance"))
    called = bool(ctx.get("called"))
    actions = [Action("done", t("button.done"), "primary"), _lookup_button(t)]
    if not called:
        actions.append(_call_button(t))
    banner = t("call.called") if called else ""
    speech = (found.title, *steps, *lines, banner) if found is not None else ()
    return View("lookup_result", t.lang, title, tone="alert" if ctx.get("outage") else "info",
                banner=banner, lines=tuple(lines), steps=steps, illustrations=pictures, actions=tuple(actions),
                speech=speech)


def _reason_line(t: _Texts, ctx: dict) -> tuple[str, ...]:
    line = t.optional(f"calling.reason.{ctx.get('reason')}", code=ctx.get("code") or "")
    return (line,) if line else ()


def _calling(t: _Texts, ctx: dict, guidance: GuidanceSource | None) -> View:
    """Staff are being called; or, when no staff console is up (`consoles_online` 0) or the call waited past
    [calls] desk_seconds (`escalation` 2), the patient is sent to the reception desk; after escalate_seconds
    (`escalation` 1) the patient hears that staff were called once more."""
    escalation = ctx.get("escalation")
    escalation = escalation if isinstance(escalation, int) and not isinstance(escalation, bool) else 0
    consoles = ctx.get("consoles_online")
    unheard = type(consoles) is int and consoles == 0
    if unheard or escalation >= SENT_TO_DESK:
        banner = t("calling.desk.no_console") if unheard else t("calling.desk.waited")
        return View("calling", t.lang, t("calling.desk.title"), tone="alert", banner=banner,
                    lines=_reason_line(t, ctx), actions=(_lookup_button(t),))
    banner = t("calling.escalated") if escalation >= ESCALATED else t("calling.body")
    return View("calling", t.lang, t("calling.title"), tone="warn", banner=banner,
                lines=_reason_line(t, ctx), actions=(_lookup_button(t),))


def _staff_coming(t: _Texts, ctx: dict, guidance: GuidanceSource | None) -> View:
    return View("staff_coming", t.lang, t("staff_coming.title"), tone="ok", banner=t("staff_coming.body"),
                lines=_reason_line(t, ctx), actions=(_lookup_button(t),))


def _outage(t: _Texts, ctx: dict, guidance: GuidanceSource | None) -> View:
    code = ctx.get("code")
    options = [t.optional(f"outage.option.{o}") for o in _items(ctx.get("options"))]
    return View("outage", t.lang, t("outage.title"), tone="alert",
                banner=t("outage.code", code=code) if code else "", lines=(t("outage.body"),),
                steps=tuple(o for o in options if o), actions=(_lookup_button(t), _call_button(t)))


def _staff_pin(t: _Texts, ctx: dict, guidance: GuidanceSource | None) -> View:
    error = ctx.get("error")
    banner = ""
    if error in ("wrong", "locked"):
        banner = t(f"staff_pin.error.{error}", attempts_left=ctx.get("attempts_left", 0))
    return View("staff_pin", t.lang, t("staff_pin.title"), banner=banner, lines=(t("staff_pin.prompt"),),
                keypad=Keypad("pin", 8, True, t("keypad.enter"), t("keypad.delete")),
                actions=(Action("home", t("button.cancel"), "plain"),))


def _staff(t: _Texts, ctx: dict, guidance: GuidanceSource | None) -> View:
    """The staff menu: every state is an id rendered from staff.json (lamp.<pattern>, reader.<cause>,
    call.title.<reason>, event.<kind> ...) and every time is the facility's clock time (`timezone`)."""
    reader = _mapping(ctx.get("reader"))
    broker = _mapping(ctx.get("broker"))
    call = _mapping(ctx.get("open_call"))
    zone = _zone(ctx.get("timezone"))
    lines = [t("staff.reader.ok")] if reader.get("available") else _reader_fault(t, reader)
    lines += [
        t("staff.broker.ok" if broker.get("connected") else "staff.broker.down", pending=broker.get("pending", 0)),
        t("staff.lamp", pattern=_named(t, "lamp", ctx.get("lamp"))),
        t("staff.call.acknowledged" if call.get("acknowledged") else "staff.call.open",
          call=_call_title(t, call.get("reason"), call.get("code")), since=_clock(t, call.get("since"), zone))
        if call else t("staff.call.none"),
        t("staff.outage.on" if ctx.get("outage") else "staff.outage.off"),
    ]
    tools = [Action(name, t(f"staff.{name}"), "plain") for name in STAFF_ACTIONS
             if not (name == "clear_call" and not call)
             and not (name == "outage_enter" and ctx.get("outage"))
             and not (name == "outage_leave" and not ctx.get("outage"))]
    voice = _mapping(ctx.get("voice"))
    if voice.get("available"):
        volume = round(100 * float(voice.get("volume") or 0))
        lines.append(t("staff.voice.muted" if voice.get("muted") else "staff.voice.on", volume=volume))
        tools.append(Action("voice_mute", t("staff.voice_unmute" if voice.get("muted") else "staff.voice_mute"),
                            "plain"))
        tools.append(Action("voice_volume", t("staff.voice_volume", volume=volume), "plain"))
    elif voice:
        lines.append(t("staff.voice.none"))
    events = [e for e in _items(ctx.get("last_events")) if isinstance(e, Mapping)]
    if events:
        lines.append(t("staff.events"))
        lines += [t("staff.event_row", time=_clock(t, e.get("time"), zone), event=_event_text(t, e))
                  for e in events[-5:]]
    languages = [str(code) for code in _items(ctx.get("languages"))]
    default = ctx.get("default_language")
    if languages:  # one button, however many languages: it names the current default and steps to the next
        current = default if default in languages else languages[0]
        following = languages[(languages.index(current) + 1) % len(languages)]
        lines.insert(0, t("staff.default_language"))
        tools.append(Action(f"default_lang:{following}", t.texts.text(current, "lang.self_name"), "primary", current))
    return View("staff", t.lang, t("staff.title"), lines=tuple(lines), choices=tuple(tools), dense=True,
                actions=(Action("done", t("button.close"), "primary"),))


def _zone(name: Any) -> tzinfo:
    """The facility's time zone (`[facility] timezone`, checked by the config); a bad or missing name: the
    default zone, never an error on screen."""
    try:
        return ZoneInfo(str(name or DEFAULT_TIMEZONE))
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIMEZONE)


def _clock(t: _Texts, stamp: Any, zone: tzinfo, now: datetime | None = None) -> str:
    """An ISO 8601 timestamp as people read it in the facility: "10:42" today, "11/28 10:42" another day
    (time.unknown for anything else). A timestamp without an offset is UTC, as the contract writes them."""
    try:
        moment = datetime.fromisoformat(str(stamp))
    except ValueError:
        return t("time.unknown")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(zone)
    today = (now or datetime.now(UTC)).astimezone(zone).date()
    return f"{local:%H:%M}" if local.date() == today else f"{local.month}/{local.day} {local:%H:%M}"


def _named(t: _Texts, family: str, value: Any) -> str:
    """The staff text of id `value` in `family` (lamp, outcome, event ...); `<family>.unknown` for an id the
    texts do not know (a newer kiosk), so no raw id reaches the screen."""
    return t(f"{family}.{value}") if value and t.texts.has(f"{family}.{value}") else t(f"{family}.unknown")


def _call_title(t: _Texts, reason: Any, code: Any) -> str:
    """What a call is: its code and reason (「021 スタッフ対応のコード」), or, without a code, its reason alone
    (「患者さんの呼び出し」)."""
    title = _named(t, "call.title", reason)
    return t("call.with_code", code=code, reason=title) if code else title


def _filled(t: _Texts, key: str, params: Mapping) -> str:
    """Text `key` with a kiosk's `params`; a placeholder the kiosk did not send shows as "–", never as
    `{name}` (a reader back-end that says less than its cause's text names)."""
    names = {name for _, name, _, _ in Formatter().parse(t.texts.template(t.lang, key) or "") if name}
    return t(key, **{**dict.fromkeys(names, "–"), **{str(k): v for k, v in params.items()}})


def _reader_fault(t: _Texts, reader: Mapping) -> list[str]:
    """The reader's fault in words (reader.<cause> with its params) and, when there is one, its fix."""
    cause = str(reader.get("cause") or "")
    params = _mapping(reader.get("params"))
    if not cause or not t.texts.has(f"reader.{cause}"):
        return [t("staff.reader.down", cause=t("reader.unknown"))]
    lines = [t("staff.reader.down", cause=_filled(t, f"reader.{cause}", params))]
    fix = _filled(t, f"reader.{cause}.fix", params) if t.texts.has(f"reader.{cause}.fix") else ""
    return lines + ([t("staff.reader.fix", fix=fix)] if fix else [])


def _event_text(t: _Texts, event: Mapping) -> str:
    """One recent event: its kind's name and what its ids say (lamp pattern, outcome, call reason, reader
    cause) and its code, e.g. 「ランプ: 呼び出し（点滅）」, 「事前チェック: 読めないスマホ 021」."""
    params = {str(k): v for k, v in _mapping(event.get("params")).items()}
    details = []
    if params.get("pattern"):
        details.append(_named(t, "lamp", params["pattern"]))
    if params.get("outcome"):
        details.append(_named(t, "outcome", params["outcome"]))
    if params.get("reason"):
        details.append(_named(t, "call.title", params["reason"]))
    cause = params.get("cause")
    if cause and t.texts.has(f"reader.{cause}"):
        details.append(_filled(t, f"reader.{cause}", params))
    if event.get("code"):
        details.append(str(event["code"]))
    name = _named(t, "event", event.get("kind"))
    return t("event.with_detail", event=name, detail=" ".join(details)) if details else name


# One builder per screen of kiosk.vocabulary.SCREENS (tests/test_ui_views.py checks both lists agree).
BUILDERS = {
    IDLE: _idle,
    CHECKING: _checking,
    RESULT: _result,
    LOOKUP: _lookup,
    LOOKUP_RESULT: _lookup_result,
    CALLING: _calling,
    STAFF_COMING: _staff_coming,
    OUTAGE: _outage,
    STAFF_PIN: _staff_pin,
    STAFF: _staff,
}
