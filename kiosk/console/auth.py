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
    """Refuses logins for an account or a client address after too many failures inside a sliding window."""

    max_failures: int
    window_seconds: float
    clock: Clock
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def retry_after(self, *keys: str) -> float:
        """Seconds until a login for these keys is allowed again; 0 when it is allowed now."""
        now = self.clock()
        wait = 0.0
        for key in keys:
            times = self._recent(key, now) if key in self._failures else deque()
            if len(times) >= self.max_failures:
                wait = max(wait, times[0] + self.window_seconds - now)
        return wait

    def failed(self, *keys: str) -> None:
        now = self.clock()
        if len(self._failures) > _MAX_TRACKED_KEYS:  # a flood of made-up names cannot grow memory forever
            self._failures = {k: v for k, v in self._failures.items() if self._recent(k, now)}
        for key in keys:
            self._recent(key, now).append(now)

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window_seconds:
            times.popleft()
        return times


_MAX_TRACKED_KEYS = 10_000
