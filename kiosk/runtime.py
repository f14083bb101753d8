"""The main loop: reader thread → classify → flow → effects (screen, lamp, buzzer, events, command replies).

One thread owns the state. The reader thread, gpiozero's button threads and the MQTT network thread only
`post()` messages; the main loop handles them one at a time: a plain queue loop headless (`run`), or Kivy's
Clock in the app (`attach_kivy`). Kivy is imported only there, so `kiosk run --headless` never loads it.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from hardware.readers.contract import Cause, Presented, ReaderStatus, Removed
from hardware.signals import Lamp
from kiosk import events
from kiosk.config import Config
from kiosk.effects import (
    Chirp,
    Effect,
    Emit,
    LampTest,
    ReloadCatalogue,
    Reply,
    SetCall,
    SetDefaultLanguage,
    SetLamp,
    SetVoice,
    ShowScreen,
    Speak,
)
from kiosk.flow import CodeFacts, Flow, FlowTimings
from kiosk.jsondata import read_json
from kiosk.messages import Answer, CardPresented, CardRemoved, Command, LinkChanged, Message, ReaderChanged, Tick
from kiosk.passwords import verify_secret
from kiosk.sdnotify import Notifier, Watchdog
from kiosk.vocabulary import STAFF

log = logging.getLogger(__name__)

HOUSEKEEPING_SECONDS = 1.0  # watchdog tick, staff screen figures
WORKER_RESTART_SECONDS = 2.0  # a dead reader or link thread is started again at most this often
SETTINGS_FILE = "kiosk-ui.json"  # in the state dir: what staff chose on the staff screen


class _LinkStatsDue:
    """Housekeeping's own message: refresh the broker/outbox figures on the staff screen."""


class Screen(Protocol):
    """What the runtime needs from a display (kiosk.app's KioskApp; nothing at all headless)."""

    def show(self, screen: ShowScreen) -> None: ...

    def show_lamp(self, pattern: str) -> None: ...

    def speech(self) -> str: ...  # what the speaker button reads out: the guidance on the screen now


class CatalogueCodebook:
    """The flow's view of a kiosk.catalogue.Catalogue: audience, outage mode, whether to call staff.

    Only the system-failure codes (9xx, e.g. 950, 952) switch the kiosk into outage mode. Other codes whose
    official row allows interim operation (001: this patient's card or the reader) are one patient's
    problem: they get their guidance, and staff are called when it says so.
    """

    OUTAGE_MODE_PREFIX = "9"

    def __init__(self, catalogue: Any) -> None:
        self.catalogue = catalogue

    def facts(self, code: str) -> CodeFacts | None:
        entry = self.catalogue.codes.get(code)
        if entry is None:
            return None
        outage = bool(entry.outage) and code.startswith(self.OUTAGE_MODE_PREFIX)
        return CodeFacts(code, entry.audience, outage, self.catalogue.guidance(code, "ja").call_staff)

    def nearest(self, code: str) -> list[str]:
        return list(self.catalogue.nearest(code))


def timings_from(config: Config) -> FlowTimings:
    ui, staff = config.ui, config.staff
    return FlowTimings(
        checking_seconds=ui.checking_seconds,
        result_timeout_seconds=ui.result_timeout_seconds,
        linger_after_removal_seconds=ui.linger_after_removal_seconds,
        idle_timeout_seconds=ui.idle_timeout_seconds,
        failures_before_call=ui.failures_before_call,
        pin_attempts=staff.pin_attempts,
        pin_lockout_seconds=staff.pin_lockout_seconds,
        escalate_seconds=config.calls.escalate_seconds,
        desk_seconds=config.calls.desk_seconds,
    )


def voice_languages(voice: Any, languages: tuple[str, ...]) -> frozenset[str]:
    """The languages `voice` can speak on this machine (whatever mute and volume are set to)."""
    if voice is None or not voice.enabled or voice.player is None:
        return frozenset()
    return frozenset(lang for lang in languages if lang in voice.synthesizers)


def _open_voice(config: Config) -> Any:
    """The kiosk's Voice, or None when it cannot be set up (the kiosk goes on without sound)."""
    from kiosk.voice import Voice

    try:
        return Voice.from_config(config)
    except Exception as exc:  # a broken languages.json or locale: no voice, never no kiosk
        log.warning("voice guidance is off: %s", exc)
        return None


def _voice_settings(settings: dict[str, Any], config: Config) -> tuple[bool, float]:
    """Mute and volume: what staff last chose (kept in the settings file), else the config's."""
    muted, volume = settings.get("voice_muted"), settings.get("voice_volume")
    if not isinstance(muted, bool):
        muted = config.voice.muted
    if isinstance(volume, bool) or not isinstance(volume, (int, float)) or not 0 <= volume <= 1:
        volume = config.voice.volume
    return muted, float(volume)


def load_settings(state_dir: Path) -> dict[str, Any]:
    """Staff choices kept across restarts; an unreadable file is reported and ignored."""
    path = state_dir / SETTINGS_FILE
    if not path.exists():
        return {}
    try:
        data = read_json(path, ValueError, "staff settings")
    except ValueError as exc:  # the message names the file and what is wrong with it
        log.warning("%s: ignored: %s", SETTINGS_FILE, exc)
        return {}
    return data if isinstance(data, dict) else {}


class Runtime:
    """Wires the parts together; every method except `post` runs on the main thread."""

    def __init__(
        self,
        config: Config,
        *,
        reader: Any,
        catalogue_loader: Callable[[], Any],
        languages: tuple[str, ...] = ("ja", "en"),
        screen: Screen | None = None,
        signals_factory: Callable[[Callable[[Any], None]], Any] | None = None,
        link_factory: Callable[[str, Callable[[Any], None], Callable[[], None]], Any] | None = None,
        rules: Any = None,
        notifier: Any = None,
        clock: Callable[[], float] = time.monotonic,
        voice: Any = None,
    ) -> None:
        self.config = config
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._wake: Callable[[], None] = lambda: None
        self._rules = rules  # None: the shipped table, loaded when the reader starts
        self.reader = reader
        self.screen = screen
        self._catalogue_loader = catalogue_loader
        self.catalogue = catalogue_loader()  # first: bad data fails before any device is opened
        self.signals = signals_factory(self.post) if signals_factory else None
        self.lamp = self.signals.lamp if self.signals is not None else Lamp()
        self.buzzer = self.signals.buzzer if self.signals is not None else None
        self.notifier = notifier or Notifier(None)
        self.watchdog = Watchdog(self.notifier, workers=("reader", "mqtt") if link_factory else ("reader",),
                                 clock=clock)
        self._clock = clock
        self.settings_path = config.kiosk.state_dir / SETTINGS_FILE
        settings = load_settings(config.kiosk.state_dir)
        self.voice = voice if voice is not None else _open_voice(config)  # kiosk.voice.Voice
        muted, volume = _voice_settings(settings, config)
        if self.voice is not None:
            self.voice.set_muted(muted)
            self.voice.set_volume(volume)
        pin_hash = config.staff.pin_hash
        self.flow = Flow(
            CatalogueCodebook(self.catalogue),
            timings_from(config),
            languages=languages,
            default_lang=str(settings.get("default_language", config.kiosk.language)),
            verify_pin=(lambda pin: verify_secret(pin, pin_hash)) if pin_hash else None,
            clock=clock,
            voice_languages=voice_languages(self.voice, languages),
            voice_muted=muted,
            voice_volume=volume,
            staff_lang=config.console.language,
            timezone=config.facility.timezone,
        )
        self.link = None
        if link_factory is not None:
            self.link = link_factory(getattr(self.catalogue, "version", ""), self.post,
                                     lambda: self.watchdog.beat("mqtt"))
        self.event_listeners: list[Callable[[str, dict[str, Any]], None]] = []  # the demo prints events
        self._stop = threading.Event()
        self._reader_stop = threading.Event()
        self._reader_thread: threading.Thread | None = None
        self._kivy_timer: Any = None  # the one-shot for the flow's next deadline
        self._kivy_housekeeping: Any = None  # the repeating once-a-second turn
        self._kivy_trigger: Any = None  # what post() wakes
        self._shut_down = False
        self._shown = ""  # the screen last shown
        self._shown_lang = ""
        self._shared_state: dict[str, Any] | None = None  # the kiosk state last given to the link
        self._last_housekeeping = clock()
        self._restart_link_at = self._restart_reader_at = 0.0  # supervisor: next restart allowed at

    # --- any thread ----------------------------------------------------------------------------------------

    def post(self, message: Any) -> None:
        """Hand a message to the main loop (thread-safe; the only thing workers may call)."""
        self._inbox.put(message)
        self._wake()

    def guidance(self, code: str, lang: str) -> Any:
        """Patient guidance from the current catalogue (the app's GuidanceSource; follows reloads)."""
        return self.catalogue.guidance(code, lang)

    # --- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Show the first screen, start the link and the reader thread; call on the main thread."""
        self._apply(self.flow.start())  # first: the link's first "online" status already carries the state
        self._start_workers()

    def _start_workers(self) -> None:
        """The link, the pre-check rules and the reader thread, then READY=1 (nothing once shut down)."""
        if self._shut_down:
            return
        if self.link is not None:
            self.link.start()
        if self._rules is None:
            from kiosk.precheck import DEFAULT_RULES

            self._rules = DEFAULT_RULES
        self._reader_thread = threading.Thread(target=self._run_reader, name="reader", daemon=True)
        self._reader_thread.start()
        self.notifier.ready("kiosk running")

    def stop(self) -> None:
        """Ask the loop to end (any thread); `shutdown` then releases everything."""
        self._stop.set()
        self._inbox.put(None)

    def shutdown(self) -> None:
        """Stop the reader thread, the link and the GPIO devices (idempotent)."""
        if self._shut_down:
            return
        self._shut_down = True
        self.notifier.stopping()
        self._wake = lambda: None  # detach from Kivy's Clock, which would otherwise go on calling pump()
        for timer in (self._kivy_trigger, self._kivy_housekeeping, self._kivy_timer):
            if timer is not None:
                timer.cancel()
        self._reader_stop.set()
        if self._reader_thread is not None:
            self._reader_thread.join(timeout=5)
        if self.link is not None:
            self.link.stop()
        if self.signals is not None:
            self.signals.close()
        if self.voice is not None:
            self.voice.close()

    def run(self) -> None:
        """The headless main loop: start, handle messages until `stop()`, shut down."""
        self.start()
        try:
            while not self._stop.is_set():
                try:
                    message = self._inbox.get(timeout=self._seconds_to_next_turn())
                except queue.Empty:
                    message = None
                if message is not None:
                    self._dispatch(message)
                self._turn()
        finally:
            self.shutdown()

    def attach_kivy(self) -> None:
        """Drive the loop from Kivy's Clock (call from App.on_start): posts wake a trigger, timers are one-shot.

        The first screen is shown now; the link and the reader start once the window has drawn its first frame
        (they are not running before, so no event is lost; start-up time: bench/bench_ui.py)."""
        from kivy.clock import Clock
        from kivy.core.window import Window

        def first_frame_drawn(window: Any) -> None:
            window.unbind(on_flip=first_frame_drawn)
            Clock.schedule_once(lambda _dt: self._start_workers())  # after every handler of this flip

        self._kivy_trigger = self._wake = Clock.create_trigger(lambda _dt: self.pump())
        self._kivy_housekeeping = Clock.schedule_interval(lambda _dt: self.pump(), HOUSEKEEPING_SECONDS)
        self._apply(self.flow.start())
        Window.bind(on_flip=first_frame_drawn)
        self._kivy_trigger()

    def pump(self) -> None:
        """Handle everything posted so far, then any deadline that has passed (Kivy mode)."""
        while True:
            try:
                message = self._inbox.get_nowait()
            except queue.Empty:
                break
            if message is not None:
                self._dispatch(message)
        self._turn()
        self._schedule_kivy_timer()

    # --- the loop ------------------------------------------------------------------------------------------

    def _seconds_to_next_turn(self) -> float:
        wait = HOUSEKEEPING_SECONDS
        deadline = self.flow.next_deadline()
        if deadline is not None:
            wait = min(wait, deadline - self._clock())
        return max(0.0, wait)

    def _schedule_kivy_timer(self) -> None:
        from kivy.clock import Clock

        if self._kivy_timer is not None:
            self._kivy_timer.cancel()
        deadline = self.flow.next_deadline()
        if deadline is None:
            return
        self._kivy_timer = Clock.schedule_once(lambda _dt: self.pump(), max(0.0, deadline - self._clock()))

    def _turn(self) -> None:
        """Deadlines that have passed, and housekeeping once a second."""
        deadline = self.flow.next_deadline()
        if deadline is not None and self._clock() >= deadline:
            self._apply(self.flow.handle(Tick()))
        now = self._clock()
        if now - self._last_housekeeping >= HOUSEKEEPING_SECONDS:
            self._last_housekeeping = now
            self._supervise()
            self.watchdog.tick()
            if self.flow.screen == STAFF and self.link is not None:  # keep the staff screen's backlog current
                self._dispatch(_LinkStatsDue())

    def _supervise(self) -> None:
        """A worker thread that ended (a bug, not a hang: a hang stops its watchdog beats) is started again,
        at most once every WORKER_RESTART_SECONDS; staff see the fault meanwhile."""
        if self._shut_down or self._stop.is_set() or self._reader_thread is None:
            return  # stopping, or the workers have not been started yet (Kivy starts them after the first frame)
        now = self._clock()
        if self.link is not None and not self.link.alive and now >= self._restart_link_at:
            log.error("the MQTT link thread is gone; starting it again")
            self._restart_link_at = now + WORKER_RESTART_SECONDS
            self.link.restart()
        reader = self._reader_thread
        if reader is not None and not reader.is_alive() and not self._reader_stop.is_set() \
                and now >= self._restart_reader_at:
            log.error("the reader thread is gone; starting it again")
            self._restart_reader_at = now + WORKER_RESTART_SECONDS
            self._reader_thread = threading.Thread(target=self._run_reader, name="reader", daemon=True)
            self._reader_thread.start()

    def _run_reader(self) -> None:
        try:
            self.reader.run(self.post, self._reader_stop, heartbeat=lambda: self.watchdog.beat("reader"))
        except Exception:
            log.exception("the reader thread failed; it is started again within %.0f s", WORKER_RESTART_SECONDS)
            self.post(ReaderChanged(False, "reader thread failed", Cause.DRIVER_ERROR, {"reader": "reader thread"}))

    def _dispatch(self, message: Any) -> None:
        """Turn one posted message into flow input and carry out the effects; a failure is logged, not fatal."""
        try:
            self._apply(self.flow.handle(self._translate(message)))
        except Exception:
            log.exception("could not handle %s", type(message).__name__)

    def _translate(self, message: Any) -> Message:
        if isinstance(message, _LinkStatsDue) and self.link is not None:
            stats = self.link.stats()
            return LinkChanged(stats.connected, stats.backlog)
        if isinstance(message, Presented):
            from kiosk.precheck import classify

            return CardPresented(classify(message.observation, rules=self._rules))
        if isinstance(message, Removed):
            return CardRemoved()
        if isinstance(message, ReaderStatus):
            return ReaderChanged(message.available, message.detail, str(message.cause), dict(message.params))
        return message

    # --- effects -------------------------------------------------------------------------------------------

    def _apply(self, effects: list[Effect]) -> None:
        for effect in effects:
            try:
                self._apply_one(effect)
            except Exception:
                log.exception("effect %s failed", type(effect).__name__)
        self._share_state()  # also when nothing was shown: e.g. consoles_online changed with the lamp unchanged

    def _share_state(self) -> None:
        """Give the link the reader / lamp / outage state when it changed (it goes into the retained status)."""
        flow = self.flow
        state = events.kiosk_state(reader_available=flow.reader["available"], reader_detail=flow.reader["detail"],
                                   reader_cause=flow.reader["cause"], reader_params=flow.reader["params"],
                                   lamp=flow.lamp, outage=flow.in_outage, outage_code=flow.outage_code,
                                   consoles_online=flow.consoles_online)
        if self.link is not None and state != self._shared_state:
            self._shared_state = state
            self.link.set_state(state)

    def _apply_one(self, effect: Effect) -> None:
        match effect:
            case ShowScreen():
                log.debug("screen %s (%s)", effect.name, effect.lang)
                if effect.name == STAFF and self._shown != STAFF and self.link is not None:
                    self.post(_LinkStatsDue())  # fresh broker/outbox figures right after the PIN
                if self.voice is not None and (effect.name, effect.lang) != (self._shown, self._shown_lang):
                    self.voice.stop()  # guidance read out belongs to the screen it was read on
                self._shown, self._shown_lang = effect.name, effect.lang
                if self.screen is not None:
                    self.screen.show(effect)
            case SetLamp(pattern):
                self.lamp.show(pattern)
                if self.screen is not None:
                    self.screen.show_lamp(pattern)
            case LampTest(seconds):
                self.lamp.test(seconds)
            case Chirp():
                if self.buzzer is not None:
                    self.buzzer.chirp()
            case Emit(kind, data, at):
                log.info("event %s %s", kind, json.dumps(data, ensure_ascii=False))
                if self.link is not None:
                    self.link.emit(kind, dict(data), at)
                for listener in self.event_listeners:
                    listener(kind, dict(data))
            case SetCall(call):
                if self.link is not None:
                    self.link.set_call(call)
            case Reply(command, ok, text, detail, params):
                command.reply(Answer(ok, text, detail, params))
            case ReloadCatalogue(command):
                self._reload_catalogue(command)
            case SetDefaultLanguage(lang):
                self._save_settings({"default_language": lang})
            case Speak(lang):
                if self.voice is not None and self.screen is not None:
                    self.voice.say(self.screen.speech(), lang)
            case SetVoice(muted, volume):
                if self.voice is not None:
                    self.voice.set_muted(muted)
                    self.voice.set_volume(volume)
                self._save_settings({"voice_muted": muted, "voice_volume": volume})

    def _reload_catalogue(self, command: Command | None) -> None:
        try:
            catalogue = self._catalogue_loader()
        except Exception as exc:  # CatalogueError names file, code and field
            log.error("catalogue reload failed, keeping version %s: %s", getattr(self.catalogue, "version", "?"), exc)
            if command is not None:
                command.reply(Answer(False, "catalogue_not_reloaded", f"catalogue not reloaded: {exc}"[:300]))
            return
        self.catalogue = catalogue
        self.flow.codebook = CatalogueCodebook(catalogue)
        if self.link is not None:  # events from now on name the new version
            self.link.catalogue_version = getattr(catalogue, "version", "")
        log.info("catalogue reloaded: version %s", getattr(catalogue, "version", "?"))
        if command is not None:
            version = str(getattr(catalogue, "version", "?"))
            command.reply(Answer(True, "catalogue_reloaded", f"catalogue version {version}", {"version": version}))

    def _save_settings(self, changes: dict[str, Any]) -> None:
        settings = {**load_settings(self.settings_path.parent), **changes}
        try:
            self.settings_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.settings_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(settings), encoding="utf-8")
            tmp.replace(self.settings_path)
        except OSError as exc:
            log.error("%s: cannot save staff settings: %s", self.settings_path, exc)
