"""Containment of paths built from input, and the grammar of partition keys.

Manifest file names, database blob paths, partition keys typed into the UI and export names all
become paths. Each is checked by grammar before any read or write, then (locally) resolved,
symlinks included, and refused unless it stays inside its root. Messages name the offending
value only through `describe`, its length and a digest, and never quote it or file content: a
refused name may be an e-mail address or a person's name.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path

# A name that becomes a partition key (a campaign folder, an export file): one path component of
# plain ASCII, so no separator, no `..`, no NUL and no Unicode look-alike of any of them, and no
# `@` or space: keys show in the UI, logs and run tags, and an e-mail address or a person's name
# must not pass for one.
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}"
FOLDER_NAME = re.compile(_NAME)
# Characters of the content version a label export's key ends with (`<file name>@<version>`).
VERSION_CHARS = 12
# Dynamic partition keys: a name, or a name, `@` and the content version in lower-case hex.
PARTITION_KEY = re.compile(rf"{_NAME}(?:@[0-9a-f]{{{VERSION_CHARS}}})?")
_NAME_RULE = "1-200 characters of A-Z a-z 0-9 . _ - starting with a letter or digit"
# One component of a key built from input (a manifest's `file`, a capture's `blob_path`).
_COMPONENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,254}")
MAX_KEY_CHARS = 1024
# Capture, annotation and annotator ids are copied into tables and quarantine rows; free text (a
# name, an e-mail address) is not an id, so it is refused rather than copied.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
# Free-text columns copied into tables (a capture's device, a dataset's source label) hold a token
# in the id charset: no space and no `@`, so a name or an e-mail address typed there is refused.
TOKEN_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
TOKEN_RULE = "not a token of A-Z a-z 0-9 . _ : - (1-64 characters)"
# Warehouse objects named after input (a snapshot's view): lower-case letters, digits and `_`, a
# plain identifier in DuckDB and BigQuery alike, so it needs no quoting and cannot end a quote.
SQL_NAME = re.compile(r"[a-z][a-z0-9_]{0,127}")


class UnsafePathError(ValueError):
    """A path or partition key built from input breaks its grammar or leaves its root."""


def describe(value: object) -> str:
    """How a message names a value from input: its length and a digest prefix, never the value.
    Whoever holds the input finds it by the digest (`sha256` of its UTF-8 text)."""
    text = value if isinstance(value, str) else repr(value)
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"<{len(text)} chars, sha256 {digest[:12]}>"


def _matching(grammar: re.Pattern[str], value: object, what: str, rule: str) -> str:
    """`value` if it is a string in `grammar`; else a refusal naming it through describe."""
    if not isinstance(value, str) or not grammar.fullmatch(value):
        raise UnsafePathError(f"{what} {describe(value)} {rule}")
    return value


def check_partition_key(key: object, what: str = "partition key") -> str:
    """`key` if it follows PARTITION_KEY; the UI and the API accept any string, so every asset
    and IO manager that turns a key into a path calls this before touching storage."""
    return _matching(
        PARTITION_KEY,
        key,
        what,
        f"is not {_NAME_RULE} (followed by @ and {VERSION_CHARS} hex digits for a label "
        "export); nothing was read or written for it",
    )


def check_folder_name(name: object, what: str = "folder name") -> str:
    """`name` if it follows FOLDER_NAME: a drop folder's name, used as its partition key."""
    return _matching(
        FOLDER_NAME, name, what, f"is not {_NAME_RULE}; nothing was read or written for it"
    )


def check_sql_name(name: object) -> str:
    """`name` if it follows SQL_NAME; refused before it is written into any DDL."""
    return _matching(
        SQL_NAME,
        name,
        "warehouse name",
        "is not 1-128 characters of a-z 0-9 _ starting with a letter",
    )


def sql_literal(value: object) -> str:
    """A partition key as a quoted SQL string literal, for DDL that takes no query parameters
    (a view's definition). PARTITION_KEY admits no quote or backslash, so none can end it."""
    return f"'{check_partition_key(value)}'"


def key_fault(key: object) -> str | None:
    """Why an object key built from input is unsafe (a reason code), or None if it is fine.

    A key is a relative POSIX path whose components are ASCII letters, digits and `._+-`, not
    starting with a dot (no `..`, no hidden or temporary files).
    """
    if not isinstance(key, str) or not key:
        return "path_missing"
    if len(key) > MAX_KEY_CHARS:
        return "path_too_long"
    if "\x00" in key or any(unicodedata.category(ch) == "Cc" for ch in key):
        return "path_control_character"
    if "\\" in key:
        return "path_backslash"
    if key.startswith("/") or re.match(r"[A-Za-z]:", key):
        return "path_absolute"
    parts = key.split("/")
    if any(part in ("..", ".") for part in parts):
        return "path_parent_reference"
    if not key.isascii():
        # Fullwidth dots and slashes, one-dot leaders and the like normalise to `../`.
        return "path_non_ascii"
    if not all(_COMPONENT.fullmatch(part) for part in parts):
        return "path_bad_component"
    return None


def check_key(key: object) -> str:
    """`key` if `key_fault` finds nothing wrong with it; else UnsafePathError naming the rule."""
    fault = key_fault(key)
    if fault:
        raise UnsafePathError(f"object key {describe(key)} refused ({fault})")
    return key  # type: ignore[return-value]


def contained(root: Path, key: str) -> Path:
    """`root / key`, resolved through symlinks, if it stays inside the resolved `root`."""
    path = (root / check_key(key)).resolve()
    if not path.is_relative_to(root):
        raise UnsafePathError(f"object key {describe(key)} resolves outside its store")
    return path
