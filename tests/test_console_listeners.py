"""kiosk.console.listeners on an injected clock: who can hear a call at a console (issue 18)."""

from __future__ import annotations

from kiosk.console.listeners import CLOSE_GRACE_SECONDS, Listeners


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_page_counts_while_visible_and_beating_and_stops_when_hidden_closed_or_silent():
    clock, changes = Clock(), []
    listeners = Listeners(30.0, changes.append, clock)
    assert listeners.beat_seconds == 10.0
    page = listeners.open("session-a")
    assert page and listeners.count == 0  # a stream alone is not a listener: the page must say it is visible
    assert listeners.beat(page, "session-a", True) and listeners.count == 1
    other = listeners.open("session-b")
    assert other and listeners.beat(other, "session-b", True) and listeners.count == 2
    assert not listeners.beat(other, "session-a", True)  # a page speaks only for its own session
    assert not listeners.beat("nope", "session-a", True)

    clock.now += 20.0
    assert listeners.beat(page, "session-a", True)
    assert listeners.beat(other, "session-b", False) and listeners.count == 2  # hidden: counts until the expiry
    clock.now += 10.5  # 30.5 s since `other` was last visible
    listeners.expire()
    assert listeners.count == 1
    clock.now += 20.0  # `page` asleep, frozen, PC off: no beat within the expiry
    listeners.expire()
    assert listeners.count == 0
    assert listeners.beat(page, "session-a", True) and listeners.count == 1  # awake again
    listeners.close(page)  # closed or reloaded: still counted for the close grace (a reload opens a new page)
    assert listeners.count == 1
    assert not listeners.beat(page, "session-a", True)  # its stream ended: the page gets a new id
    clock.now += CLOSE_GRACE_SECONDS
    listeners.expire()
    assert listeners.count == 0
    listeners.close(page)  # twice, or a display page's None: nothing
    listeners.close(None)
    assert changes == [1, 2, 1, 0, 1, 0]
    again = listeners.open("session-b")
    assert again and listeners.beat(again, "session-b", False) and listeners.count == 0  # hidden from the start
    listeners.close(again)  # never counted: gone at once
    assert not listeners.beat(again, "session-b", True) and listeners.count == 0
