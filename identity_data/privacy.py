"""Keyed pseudonymisation of subject references (special-category personal data)."""

from __future__ import annotations

import hashlib
import hmac

import polars as pl

MIN_KEY_BYTES = 16


class MissingPseudonymKeyError(ValueError):
    """Raised at launch when no usable pseudonymisation key is configured."""


def check_key(key: str | None, setting: str = "IDENTITY_DATA_PSEUDONYM_KEY") -> bytes:
    if not key or len(key.encode()) < MIN_KEY_BYTES:
        raise MissingPseudonymKeyError(
            f"{setting} must hold a secret of at least {MIN_KEY_BYTES} bytes: subject references "
            "cannot leave the raw zone without a keyed pseudonym."
        )
    return key.encode()


def pseudonymise(key: bytes, refs: pl.Series) -> pl.Series:
    """HMAC-SHA256 of each reference, hex; nulls stay null. Hashed once per distinct value."""
    distinct = refs.drop_nulls().unique()
    hashed = [hmac.new(key, ref.encode(), hashlib.sha256).hexdigest() for ref in distinct]
    return refs.replace_strict(distinct, pl.Series(hashed, dtype=pl.String), return_dtype=pl.String)
