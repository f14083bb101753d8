"""kiosk.passwords: salted scrypt hashes for the staff PIN and console accounts."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.passwords import hash_secret, is_hash, verify_secret


def test_right_secret_verifies_and_wrong_one_does_not():
    stored = hash_secret("4821")
    assert verify_secret("4821", stored)
    assert not verify_secret("4822", stored)
    assert not verify_secret("", stored)


def test_hash_is_salted_and_does_not_contain_the_secret():
    first, second = hash_secret("correct horse"), hash_secret("correct horse")
    assert first != second
    assert "correct horse" not in first
    assert is_hash(first) and first.startswith("scrypt$")


def test_empty_secret_is_refused():
    with pytest.raises(ValueError):
        hash_secret("")


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "4821",
        "plain$text",
        "scrypt$14$8$1$!!notbase64$AAAA",
        "scrypt$x$8$1$AAAA$AAAA",
        "scrypt$14$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",  # digest too short
        "scrypt$30$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 43 + "=",  # would need GiBs of memory
        "bcrypt$14$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 43 + "=",
    ],
)
def test_malformed_stored_hash_never_matches_and_never_raises(stored):
    assert not is_hash(stored)
    assert not verify_secret("4821", stored)


def test_tampered_hash_does_not_verify():
    stored = hash_secret("4821")
    scheme, log2_n, r, p, _salt, digest = stored.split("$")
    other_salt = hash_secret("x").split("$")[4]
    assert not verify_secret("4821", "$".join([scheme, log2_n, r, p, other_salt, digest]))


def test_unicode_secrets_round_trip():
    stored = hash_secret("パスワード✓")
    assert verify_secret("パスワード✓", stored)
    assert not verify_secret("パスワード", stored)


@settings(max_examples=15, deadline=None)
@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_only_the_same_secret_verifies(secret, other):
    stored = hash_secret(secret)
    assert verify_secret(secret, stored)
    assert verify_secret(other, stored) == (other == secret)
