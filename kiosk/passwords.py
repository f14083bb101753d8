"""Salted, slow hashes for the staff PIN and console passwords (stdlib scrypt), checked in constant time.

Stored form: ``scrypt$<log2 n>$<r>$<p>$<salt, base64>$<hash, base64>`` — self-describing, so the cost can be
raised later without breaking existing hashes. Only the hash is ever stored; never log the secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

SCHEME = "scrypt"
LOG2_N = 14  # n = 16384: 16 MiB of memory per check, ~50 ms on a desktop, a few 100 ms on a Pi
BLOCK_SIZE = 8
PARALLELISM = 1
SALT_BYTES = 16
HASH_BYTES = 32
_MAX_MEMORY = 256 * 1024 * 1024  # refuse stored hashes whose check would need more memory than this


def _derive(secret: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        secret.encode("utf-8"), salt=salt, n=1 << log2_n, r=r, p=p, maxmem=_MAX_MEMORY + 1024 * 1024, dklen=HASH_BYTES
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_secret(secret: str) -> str:
    """A new salted hash of `secret`, ready to store (config `staff.pin_hash`, console accounts)."""
    if not secret:
        raise ValueError("refusing to hash an empty secret")
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _derive(secret, salt, LOG2_N, BLOCK_SIZE, PARALLELISM)
    return f"{SCHEME}${LOG2_N}${BLOCK_SIZE}${PARALLELISM}${_b64(salt)}${_b64(digest)}"


def is_hash(stored: str) -> bool:
    """True when `stored` is a hash this module can check (for config validation and clear errors)."""
    return _parse(stored) is not None


def verify_secret(secret: str, stored: str) -> bool:
    """True only when `secret` matches `stored`; a malformed or empty stored hash never matches."""
    parsed = _parse(stored)
    if parsed is None or not secret:
        return False
    log2_n, r, p, salt, expected = parsed
    return hmac.compare_digest(_derive(secret, salt, log2_n, r, p), expected)


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes] | None:
    parts = stored.split("$") if isinstance(stored, str) else []
    if len(parts) != 6 or parts[0] != SCHEME:
        return None
    try:
        log2_n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        expected = base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error):
        return None
    if not (1 <= log2_n <= 24 and 1 <= r <= 32 and 1 <= p <= 16 and salt and len(expected) == HASH_BYTES):
        return None
    if 128 * r * ((1 << log2_n) + p) > _MAX_MEMORY:
        return None
    return log2_n, r, p, salt, expected
