"""The console's one owner of state: runs on the server's asyncio loop.

The MQTT thread only posts decoded messages here (`Hub.post`, thread-safe); browsers subscribe to updates;
staff commands go out through the link and wait for the kiosk's MQTT v5 response.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kiosk import events
from kiosk.console.messages import CallMessage, Decoded, EventMessage, ReplyMessage, StatusMessage
from kiosk.console.state import MAX_KIOSKS, ConsoleState, Update
from kiosk.ratelog import RateLimitedLog
from kiosk.vocabulary import DEFAULT_TIMEZONE

log = logging.getLogger(__name__)
_dropped = RateLimitedLog(log)

STAFF_COMMANDS = (events.ACKNOWLEDGE, events.RESOLVE)  # what a console button may send
SUBSCRIBER_QUEUE = 2_000  # updates buffered per browser; a browser this far behind is cut off and reconnects


@dataclass(frozen=True)
class LinkState:
    """Posted by the MQTT adapter when its broker connection comes or goes."""

    connected: bool


class CommandRefused(Exception):
    """A command not sent or not answered; `error` names the message (locale key error.<error>)."""

    def __init__(self, error: str, http: int, params: dict[str, str] | None = None):
        super().__init__(error)
        self.error, self.http, self.params = error, http, params or {}


@dataclass(frozen=True)
class CommandAnswer:
    """The kiosk's answer: `detail_id` + `params` name its staff text (`reply.<detail_id>`), `detail` is English."""
    ok: bool
    error: str | None
    detail: str
    detail_id: str = ""
    params: dict[str, str] = field(default_factory=dict)


class Hub:
    def __init__(self, *, sites: list[str], code_info: Callable[[str], dict], command_timeout: float,
                 publish_command: Callable[[str, str, dict], bool], max_kiosks: int = MAX_KIOSKS,
                 now: Callable[[], datetime] = lambda: datetime.now().astimezone(),
                 timezone: str = DEFAULT_TIMEZONE):
        self.sites = sites
        self.timezone = timezone  # the facility's ([facility] timezone): pages show every time in it
        self.state = ConsoleState(max_kiosks=max_kiosks)
        self.connected = False
        self.listeners = 0  # staff pages that can hear a call (kiosk.console.listeners), shown on every page
        self._code_info = code_info
        self._codes: dict[str, dict] = {}
        self._timeout = command_timeout
        self._publish = publish_command
        self._now = now
        self._subscribers: set[asyncio.Queue] = set()
        self._pending: dict[bytes, asyncio.Future] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._calls: deque[CallMessage] = deque()  # posted calls, handled before anything else waiting

    # --- input from the MQTT thread ---------------------------------------------------------------------

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    async def restore_today(self, load: Callable[[int, int], list]) -> None:
        """Today's history lines and counts from the event store, so a restarted console shows the whole day:
        `load(start_ms, end_ms)` runs in a thread and returns the day's events oldest first
        (kiosk.recorder.store.Store.day_events); ConsoleState.restore merges them with what arrived meanwhile."""
        now = self._now()
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        rows = await asyncio.to_thread(load, round(midnight.timestamp() * 1000),
                                       round((midnight + timedelta(days=1)).timestamp() * 1000))
        self.state.restore(now.date().isoformat(), self._now(), rows)

    def post(self, message: Decoded | LinkState) -> None:
        """Thread-safe: hand a message to the loop that owns the state. A call jumps the queue: it is handled
        before the next message already waiting (a flood of events must not hold it back); only calls do, as
        nothing else changes a call, while a status handled before older events would be overwritten by them."""
        assert self._loop is not None, "Hub.bind(loop) first"
        if isinstance(message, CallMessage):
            self._calls.append(message)
            self._loop.call_soon_threadsafe(self._handle_calls)
            return
        self._loop.call_soon_threadsafe(self._handle_contained, message)

    def _handle_calls(self) -> None:
        while self._calls:
            self._contained(self._calls.popleft())

    def _handle_contained(self, message: Decoded | LinkState) -> None:
        self._handle_calls()
        self._contained(message)

    def _contained(self, message: Decoded | LinkState) -> None:
        try:
            self.handle(message)
        except Exception as exc:  # one message must not cost a traceback each, nor stop the others
            _dropped.error("handle", "a %s was dropped: %s: %s", type(message).__name__, type(exc).__name__,
                           str(exc)[:200])

    def handle(self, message: Decoded | LinkState) -> None:
        """Apply one message (on the loop thread) and tell the browsers what changed."""
        now = self._now()
        if isinstance(message, LinkState):
            self.connected = message.connected
            self._broadcast([{"type": "link", "connected": message.connected}])
            return
        if isinstance(message, ReplyMessage):
            future = self._pending.pop(message.correlation, None)
            if future is not None and not future.done():
                future.set_result(CommandAnswer(message.ok, message.error, message.detail, message.detail_id,
                                                message.params))
            return
        if message.site not in self.sites:
            return
        key = (message.site, message.kiosk)
        if isinstance(message, StatusMessage):
            updates = self.state.on_status(key, message.status, now)
        elif isinstance(message, CallMessage):
            updates = self.state.on_call(key, message.call, now)
        elif isinstance(message, EventMessage):
            updates = self.state.on_event(key, message.event, now)
        else:
            return
        self._broadcast(updates)

    # --- browsers -----------------------------------------------------------------------------------------

    def listeners_changed(self, count: int) -> None:
        """The number of staff pages that can hear a call changed: every page shows it."""
        self.listeners = count
        self._broadcast([{"type": "listeners", "count": count}])

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(SUBSCRIBER_QUEUE)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._subscribers.discard(queue)

    def snapshot(self) -> dict:
        snap = self.state.snapshot()
        snap["connected"] = self.connected
        snap["listeners"] = self.listeners
        snap["codes"] = {code: self._info(code) for code in self._referenced_codes()}
        snap["server_time"] = self._now().isoformat(timespec="milliseconds")  # the browser's clock may be off
        snap["timezone"] = self.timezone
        return snap

    def _broadcast(self, updates: list[Update]) -> None:
        if not updates:
            return
        updates = self._with_code_info(updates)
        for queue in list(self._subscribers):
            for update in updates:
                try:
                    queue.put_nowait(update)
                except asyncio.QueueFull:
                    log.warning("a browser fell %d updates behind; closing its stream", SUBSCRIBER_QUEUE)
                    self._subscribers.discard(queue)
                    queue.get_nowait()
                    queue.put_nowait(None)  # tells the stream to end; the browser reconnects and redraws
                    break

    def _with_code_info(self, updates: list[Update]) -> list[Update]:
        """Send the catalogue text of a code the first time an update refers to it."""
        out = []
        for update in updates:
            if update["type"] == "call":
                code = update["call"]["code"]
            elif update["type"] == "kiosk":
                code = update["kiosk"]["outage_code"]
            else:
                code = None
            if code and code not in self._codes:
                out.append({"type": "code", "code": code, "info": self._info(code)})
            out.append(update)
        return out

    def _info(self, code: str) -> dict:
        if code not in self._codes:
            self._codes[code] = self._code_info(code)
        return self._codes[code]

    def _referenced_codes(self) -> set[str]:
        codes = {c.code for c in self.state.calls.values() if c.code}
        return codes | {k.outage_code for k in self.state.kiosks.values() if k.outage_code}

    # --- commands -----------------------------------------------------------------------------------------

    async def command(self, site: str, kiosk: str, name: str, call_id: str) -> CommandAnswer:
        """Send acknowledge/resolve for the kiosk's open call and wait for its answer."""
        if name not in STAFF_COMMANDS:
            raise CommandRefused("bad_command", 400)
        if site not in self.sites:
            raise CommandRefused("other_site", 403)
        view = self.state.kiosks.get((site, kiosk))
        if view is None:
            raise CommandRefused("unknown_kiosk", 404)
        call = self.state.calls.get((site, kiosk))
        if call is None or call.call_id != call_id:
            raise CommandRefused("call_not_open", 409)
        if not view.online:
            raise CommandRefused("kiosk_offline", 409)
        if not self.connected:
            raise CommandRefused("broker_down", 503)
        payload = events.command_payload(name, {"call_id": call_id}, kiosk=kiosk)
        correlation = payload["id"].encode()
        future = asyncio.get_running_loop().create_future()
        self._pending[correlation] = future
        try:
            if not self._publish(site, kiosk, payload):
                raise CommandRefused("broker_down", 503)
            return await asyncio.wait_for(future, self._timeout)
        except TimeoutError:
            raise CommandRefused("no_answer", 504, {"seconds": f"{self._timeout:g}"}) from None
        finally:
            self._pending.pop(correlation, None)
