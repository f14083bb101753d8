"""Who can hear a call at this console: its staff pages that are open, awake and visible.

A console process that runs with no browser open (often on the Pi itself), or whose only page is a background
tab, a sleeping PC or a screen switched off, hears nothing. So the console's retained presence (kiosk.broker
`Presence`) carries `listeners`, the count kept here, and kiosks count only consoles with at least one.

- A page's event stream (`/api/stream`) is opened here (`open`) and closed with it (`close`); only pages of
  staff accounts count (display-account wall screens cannot acknowledge a call and are often left on with
  nobody near, so they would make every call look heard).
- The page says whether it is visible (Page Visibility API) at once, when that changes and every `expiry / 3`
  seconds while visible (`beat`). A page counts until `expiry` seconds after it last said it was visible: one
  hidden (another tab, a minimised window), asleep, frozen, on a PC switched off or cut off (its TCP stream may
  look open for minutes) stops counting then (`expire`, called about once a second by the console). So a
  glance at another tab during a call does not tell the patient at once that nobody hears them, and back on
  the page it counts again at once. A closed page (its stream ends) stops counting `CLOSE_GRACE_SECONDS`
  later, so a reload, or the browser re-opening a dropped stream, does not flip the patient's screen either.

Owned by the console's asyncio loop: no locking. `on_change(count)` is called whenever the count changes.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_PAGES = 1_000  # open staff streams followed at most; more are served but not counted
CLOSE_GRACE_SECONDS = 5.0  # a closed page still counts this long (at most the expiry): a reload opens a new one


@dataclass
class _Page:
    session: str  # the session token: only the page's own session may speak for it
    seen: float | None = None  # clock time it last said it was visible (None: not yet)
    closed: float | None = None  # clock time its stream ended


class Listeners:
    """The staff pages of this console and how many of them can hear a call now."""

    def __init__(self, expiry_seconds: float, on_change: Callable[[int], None] = lambda count: None,
                 clock: Callable[[], float] = time.monotonic):
        self.expiry = expiry_seconds
        self._on_change = on_change
        self._clock = clock
        self._pages: dict[str, _Page] = {}
        self.count = 0

    @property
    def beat_seconds(self) -> float:
        """How often a visible page says so (three beats per expiry: one lost request is not enough to drop it)."""
        return self.expiry / 3

    def open(self, session_token: str) -> str | None:
        """A staff page's stream started: its id (not counted until it says it is visible), None past MAX_PAGES."""
        if len(self._pages) >= MAX_PAGES:
            return None
        page = secrets.token_urlsafe(12)
        self._pages[page] = _Page(session_token)
        return page

    def beat(self, page: str, session_token: str, visible: bool) -> bool:
        """The page says whether it is visible (hidden: it counts until the expiry, unless it is visible again
        by then). False for a page not (or no longer) open in this session (its stream ended: the browser opens
        a new one and gets a new id)."""
        known = self._pages.get(page)
        if known is None or known.session != session_token or known.closed is not None:
            return False
        if visible:
            known.seen = self._clock()
            self._recount()
        return True

    def close(self, page: str | None) -> None:
        """The page's stream ended (page closed, reloaded, session expired, server stopping): it stops counting
        after the close grace (at once if it never said it was visible)."""
        known = self._pages.get(page) if page is not None else None
        if known is not None and known.closed is None:
            known.closed = self._clock()
            self._recount()

    def expire(self) -> None:
        """Stop counting pages not seen visible within the expiry, and closed ones past the close grace."""
        self._recount()

    def _recount(self) -> None:
        now = self._clock()
        deadline, grace = now - self.expiry, min(CLOSE_GRACE_SECONDS, self.expiry)
        for page in [p for p, known in self._pages.items()
                     if known.closed is not None and (known.seen is None or now >= known.closed + grace)]:
            del self._pages[page]
        count = sum(1 for page in self._pages.values() if page.seen is not None and page.seen > deadline)
        if count != self.count:
            self.count = count
            self._on_change(count)
