"""Console accounts, sessions and the failed-login throttle.

Pure (no web framework): the server adapter asks these objects and turns their answers into responses.
The clock is injected so expiry and lockout are tested without waiting.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kiosk.passwords import is_hash, verify_secret
from kiosk.tomldata import load_toml

Role = Literal["staff", "display"]
EXPIRED_REMEMBERED_SECONDS = 86_400.0  # an expired session says "expired" (not "log in") for this long
Clock = Callable[[], float]


class AccountsError(Exception):
    """An accounts file that cannot be used; the message names the file, the entry and the field."""


class Account(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    password_hash: str
    role: Role = "staff"

    @field_validator("password_hash")
    @classmethod
    def _hashed(cls, value: str) -> str:
        if not is_hash(value):
            raise ValueError("not a password hash (make one with `kiosk console --hash-password`)")
        return value

    @property
    def can_command(self) -> bool:
        """Display accounts (wall screens) only watch; staff accounts acknowledge and resolve."""
        return self.role == "staff"


class _AccountsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account: list[Account] = []


def load_accounts(path: Path) -> dict[str, Account]:
    """Accounts by name from a TOML file of `[[account]]` tables; every problem names file and field."""
    # no values in the errors: a misplaced plain password must not reach the journal
    accounts = load_toml(path, _AccountsFile, AccountsError, "accounts file", show_values=False).account
    by_name: dict[str, Account] = {}
    for account in accounts:
        if account.name in by_name:
            raise AccountsError(f"{path}: account {account.name!r} is listed twice")
        by_name[account.name] = account
    if not by_name:
        raise AccountsError(f"{path}: no [[account]] entries; nobody could log in")
    return by_name


def authenticate(accounts: dict[str, Account], name: str, password: str) -> Account | None:
    """The account when name and password match; an unknown name costs the same hash work as a known one."""
    account = accounts.get(name)
    if account is None:
        verify_secret(password, _DUMMY_HASH)
        return None
    return account if verify_secret(password, account.password_hash) else None


# A fixed valid hash of a random secret: unknown names are checked against it so timing reveals nothing.
_DUMMY_HASH = (
    "scrypt$14$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
)


@dataclass
class Session:
    token: str
    account: Account
    csrf_token: str
    expires_at: float


@dataclass
class SessionStore:
    """Server-side sessions keyed by a random cookie token; each has an absolute expiry and a CSRF token."""

    staff_seconds: float
    display_seconds: float
    clock: Clock
    _sessions: dict[str, Session] = field(default_factory=dict)

    def create(self, account: Account) -> Session:
        self._drop_expired()
        lifetime = self.display_seconds if account.role == "display" else self.staff_seconds
        session = Session(secrets.token_urlsafe(32), account, secrets.token_urlsafe(32), self.clock() + lifetime)
        self._sessions[session.token] = session
        return session

    def lookup(self, token: str | None) -> tuple[Session | None, bool]:
        """(session, expired): an expired token keeps being reported as expired for a day, then forgotten."""
        session = self._sessions.get(token or "")
        if session is None:
            return None, False
        now = self.clock()
        if now >= session.expires_at + EXPIRED_REMEMBERED_SECONDS:
            del self._sessions[session.token]
            return None, False
        if now >= session.expires_at:
            return None, True
        return session, False

    def end(self, token: str | None) -> None:
        self._sessions.pop(token or "", None)

    def _drop_expired(self) -> None:
        now = self.clock()
        for token in [t for t, s in self._sessions.items() if now >= s.expires_at + EXPIRED_REMEMBERED_SECONDS]:
            del self._sessions[token]


@dataclass
class LoginThrottle:
    """Failed-login limits that slow an attacker without locking reception out.

    - one account from one address: `max_failures` inside `window_seconds`, then refused until the oldest
      failure leaves the window;
    - one address, any accounts (spraying), and one account from any address: `spread` × `max_failures`, then
      refused with a back-off that doubles with every further failure (BACKOFF_SECONDS, at most the window) —
      but the account-wide limit does not apply to an address that has logged in to that account before, so
      failures elsewhere on the LAN never lock reception's own PC out.

    `reserve` counts the attempt *before* the password hash runs (as a failure until `succeeded`), so parallel
    attempts cannot slip past the limit while the hashes are running.
    """

    max_failures: int
    window_seconds: float
    clock: Clock
    spread: int = 3
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _trusted: dict[str, deque[str]] = field(default_factory=dict)  # account -> addresses that logged in

    def reserve(self, account: str, address: str) -> float:
        """0.0: the attempt is counted and may go ahead; else the seconds to wait (nothing counted)."""
        wait = self.retry_after(account, address)
        if wait > 0:
            return wait
        now = self.clock()
        if len(self._failures) > _MAX_TRACKED_KEYS:  # a flood of made-up names cannot grow memory forever
            self._failures = {k: v for k, v in self._failures.items() if self._recent(k, now)}
        for key in self._keys(account, address):
            self._recent(key, now).append(now)
        return 0.0

    def retry_after(self, account: str, address: str) -> float:
        """Seconds until a login for `account` from `address` is allowed again; 0 when it is allowed now."""
        now = self.clock()
        pair, by_address, by_account = self._keys(account, address)
        times = self._recent(pair, now) if pair in self._failures else deque()
        wait = times[0] + self.window_seconds - now if len(times) >= self.max_failures else 0.0
        wide = [by_address] if address in self._trusted.get(account, ()) else [by_address, by_account]
        limit = self.spread * self.max_failures
        for key in wide:
            times = self._recent(key, now) if key in self._failures else deque()
            if len(times) >= limit:
                backoff = min(self.window_seconds, BACKOFF_SECONDS * 2 ** min(len(times) - limit, 20))
                wait = max(wait, times[-1] + backoff - now)
        return max(0.0, wait)

    def succeeded(self, account: str, address: str) -> None:
        """The reserved attempt was the right password: forget this pair's failures, take back the
        reservation, remember the address as one that logs in to this account."""
        pair, by_address, by_account = self._keys(account, address)
        self._failures.pop(pair, None)
        for key in (by_address, by_account):
            times = self._failures.get(key)
            if times:
                times.pop()
        trusted = self._trusted.setdefault(account, deque(maxlen=TRUSTED_ADDRESSES))
        if address not in trusted:
            trusted.append(address)

    @staticmethod
    def _keys(account: str, address: str) -> tuple[str, str, str]:
        return f"pair:{account}\n{address}", f"address:{address}", f"account:{account}"

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window_seconds:
            times.popleft()
        return times


BACKOFF_SECONDS = 30.0  # the first wait once an address or account passes its wide limit; doubles after
TRUSTED_ADDRESSES = 16  # addresses remembered per account as ones that logged in to it
_MAX_TRACKED_KEYS = 10_000
