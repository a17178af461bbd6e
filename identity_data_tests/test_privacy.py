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


@pytest.mark.parametrize("key", [None, "", "too-short"])
def test_unusable_keys_are_refused(key):
    with pytest.raises(MissingPseudonymKeyError, match="at least 16 bytes"):
        check_key(key)
