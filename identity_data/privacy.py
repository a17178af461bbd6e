"""Keyed pseudonymisation of subject references (special-category personal data)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

import polars as pl

MIN_KEY_BYTES = 16


class MissingPseudonymKeyError(ValueError):
    """Raised at launch when no usable pseudonymisation key is configured."""


def _decode(key: str) -> bytes | None:
    """Hex (`openssl rand -hex 32`) or standard/URL-safe base64 (`openssl rand -base64 32`)."""
    text = key.strip()
    if re.fullmatch(r"(?:[0-9a-fA-F]{2})+", text):
        return bytes.fromhex(text)
    try:
        return base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        return None


def _low_entropy(secret: bytes) -> bool:
    """Too few distinct bytes, or one short block repeated: e.g. `aaaa…` or `0123…0123…`.
    Random keys of 16+ bytes pass with overwhelming probability."""
    if len(set(secret)) < len(secret) // 2:
        return True
    return any(secret == secret[:p] * (len(secret) // p) for p in range(1, len(secret) // 2 + 1))


def check_key(key: str | None, setting: str = "IDENTITY_DATA_PSEUDONYM_KEY") -> bytes:
    """The decoded secret; the message never repeats the key."""
    secret = _decode(key) if key else None
    if secret is None or len(secret) < MIN_KEY_BYTES:
        raise MissingPseudonymKeyError(
            f"{setting} must hold a random secret of at least {MIN_KEY_BYTES} bytes, written as "
            "hex or base64 (e.g. `openssl rand -hex 32`): subject references cannot leave the "
            "raw zone without a keyed pseudonym."
        )
    if _low_entropy(secret):
        raise MissingPseudonymKeyError(
            f"{setting} decodes to a low-entropy secret (few distinct or repeating bytes); "
            "generate one with `openssl rand -hex 32`."
        )
    return secret


def pseudonymise(key: bytes, refs: pl.Series) -> pl.Series:
    """HMAC-SHA256 of each reference, hex; nulls stay null. Hashed once per distinct value."""
    distinct = refs.drop_nulls().unique()
    hashed = [hmac.new(key, ref.encode(), hashlib.sha256).hexdigest() for ref in distinct]
    return refs.replace_strict(distinct, pl.Series(hashed, dtype=pl.String), return_dtype=pl.String)
