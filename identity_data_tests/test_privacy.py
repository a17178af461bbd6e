import base64
import secrets

import polars as pl
import pytest

from identity_data.privacy import MissingPseudonymKeyError, check_key, pseudonymise


def test_pseudonym_is_keyed_stable_and_null_safe():
    refs = pl.Series(["alice@example.com", None, "cust-000123", "alice@example.com"])
    one = pseudonymise(b"a" * 32, refs)
    assert one[0] == one[3] and one[0] != one[2]
    assert one[1] is None
    assert len(one[0]) == 64 and "alice" not in one[0]
    assert pseudonymise(b"b" * 32, refs)[0] != one[0]


@pytest.mark.parametrize(
    "key", [None, "", "too-short", "a" * 16, secrets.token_hex(8), "not hex nor base64 !"]
)
def test_unusable_keys_are_refused(key):
    with pytest.raises(MissingPseudonymKeyError, match="at least 16 bytes"):
        check_key(key)


@pytest.mark.parametrize(
    "key", ["a" * 32, "a" * 64, "0123456789abcdef" * 4, base64.b64encode(b"\x00\x01" * 16).decode()]
)
def test_low_entropy_keys_are_refused(key):
    with pytest.raises(MissingPseudonymKeyError, match="low-entropy") as err:
        check_key(key)
    assert key not in str(err.value)


def test_documented_key_forms_are_decoded():
    raw = secrets.token_bytes(32)
    assert check_key(raw.hex()) == raw
    assert check_key(raw.hex().upper()) == raw
    assert check_key(base64.b64encode(raw).decode()) == raw
    assert check_key(base64.urlsafe_b64encode(raw).decode()) == raw
    # The 64 hex digits are 32 key bytes, not 64 ASCII characters.
    assert len(check_key(raw.hex())) == 32
