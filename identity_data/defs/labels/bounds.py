"""Limits on label exports, enforced on the bytes before any parser sees them.

A JSON parser's memory can grow with what it has not finished reading: ijson keeps one prefix
string per open level (memory grows with the square of the depth) and buffers a token until it
ends. `JsonGuard` tracks, vectorised over each chunk, the nesting depth outside strings, the
longest token (string, number or literal) and the bytes of the task being read, and raises
`ExportLimitError` naming the file, the limit and the byte offset as soon as one is exceeded.
`LineGuard` bounds the physical line of a CSV export the same way.

Limits (documented in ARCHITECTURE.md):
- MAX_DEPTH: 32 levels of arrays/objects, the top-level list included (Label Studio needs 8).
- MAX_TOKEN_BYTES: 1 MiB for one string, number or literal.
- MAX_TASK_BYTES: 8 MiB for one task of the top-level list; it bounds width (items per array
  or object) and the objects built per task, since every item takes at least two bytes.
- MAX_LINE_BYTES: 1 MiB for one line of a flat CSV export.
"""

from __future__ import annotations

import io
from typing import BinaryIO

import numpy as np

MAX_DEPTH = 32
MAX_TOKEN_BYTES = 1 << 20
MAX_TASK_BYTES = 8 << 20
MAX_LINE_BYTES = 1 << 20

_QUOTE, _BACKSLASH = ord('"'), ord("\\")
# `[` 0x5B and `{` 0x7B differ only in bit 0x20, as do `]` 0x5D and `}` 0x7D: one OR finds both.
_OPEN, _CLOSE, _CASE_BIT = ord("{"), ord("}"), 0x20
_SEPARATORS = (b"[", b"]", b"{", b"}", b",", b":")
# Bytes checked per step. No limit is smaller, so a token or task can only break its limit
# across steps: within one step only the first and last boundary and the first task end count.
_STEP = 1 << 16
assert min(MAX_TOKEN_BYTES, MAX_TASK_BYTES) >= _STEP


class ExportLimitError(ValueError):
    """An export breaks one of the documented limits; names file, limit and byte offset."""


class JsonGuard:
    """Checks each chunk of a JSON document in order; state carries across chunks.

    Per step of at most _STEP bytes, vectorised work touches only quotes and brackets: string
    state at each bracket from the quotes before it, depth from a running sum over brackets
    outside strings; token boundaries come from `bytes.find` (see _STEP).
    """

    def __init__(self, source_file: str) -> None:
        self.source_file = source_file
        self.offset = 0  # absolute offset of the next chunk's first byte
        self.depth = 0
        self.in_string = False
        self.trailing_backslashes = 0
        self.last_boundary = 0  # offset of the last quote or structural byte
        self.task_start: int | None = None  # offset where the open task began

    def _fail(self, what: str, limit: int, unit: str, at: int) -> None:
        raise ExportLimitError(
            f"{self.source_file}: {what} exceeds the limit of {limit:,} {unit} "
            f"(at byte offset {at:,}); the export is rejected unread"
        )

    def check(self, chunk: bytes) -> None:
        for start in range(0, len(chunk), _STEP):
            self._check_step(chunk[start : start + _STEP])

    def _check_step(self, step: bytes) -> None:
        arr = np.frombuffer(step, dtype=np.uint8)
        step_end = self.offset + arr.size
        starts_in_string = self.in_string
        quotes = self._unescaped_quotes(arr, has_backslash=b"\\" in step)
        folded = arr | _CASE_BIT
        brackets = np.flatnonzero((folded == _OPEN) | (folded == _CLOSE))
        # A bracket is outside strings after an even number of quote toggles.
        outside = (np.searchsorted(quotes, brackets) + int(starts_in_string)) % 2 == 0
        brackets = brackets[outside]
        deltas = np.where(folded[brackets] == _OPEN, 1, -1)
        depth_after = self.depth + np.cumsum(deltas)
        if depth_after.size and int(depth_after.max()) > MAX_DEPTH:
            at = int(brackets[int(np.argmax(depth_after > MAX_DEPTH))])
            self._fail("nesting depth", MAX_DEPTH, "levels", self.offset + at)
        self.in_string = bool((quotes.size + int(starts_in_string)) % 2)
        self._check_tokens(step, quotes, starts_in_string, step_end)
        self._check_tasks(brackets + self.offset, deltas, depth_after, step_end)
        if depth_after.size:
            self.depth = int(depth_after[-1])
        self.offset = step_end

    def _check_tokens(
        self, step: bytes, quotes: np.ndarray, starts_in_string: bool, step_end: int
    ) -> None:
        """Bound the bytes between boundaries (unescaped quotes, separators outside strings).

        Separators before the step's first quote are outside strings unless one was open; after
        its last quote, unless that quote opened one. Between them gaps are within the step.
        """
        found = [i for i in (step.find(s) for s in _SEPARATORS) if i >= 0]
        first_sep = min(found, default=None) if not starts_in_string else None
        if first_sep is not None and quotes.size and quotes[0] < first_sep:
            first_sep = None
        last_sep = max(step.rfind(s) for s in _SEPARATORS) if not self.in_string else -1
        candidates = [int(quotes[0])] if quotes.size else []
        if first_sep is not None:
            candidates.append(first_sep)
        if not candidates:
            if step_end - self.last_boundary > MAX_TOKEN_BYTES:
                self._fail("one string or token", MAX_TOKEN_BYTES, "bytes", self.last_boundary)
            return
        if self.offset + min(candidates) - self.last_boundary > MAX_TOKEN_BYTES:
            self._fail("one string or token", MAX_TOKEN_BYTES, "bytes", self.last_boundary)
        last = max(int(quotes[-1]) if quotes.size else -1, last_sep)
        self.last_boundary = self.offset + last

    def _unescaped_quotes(self, arr: np.ndarray, has_backslash: bool) -> np.ndarray:
        """Positions of quotes not escaped, i.e. preceded by an even run of backslashes."""
        quotes = np.flatnonzero(arr == _QUOTE)
        carried = self.trailing_backslashes
        if not has_backslash:
            self.trailing_backslashes = 0
            # Only a quote right at the start can be escaped, by the previous chunk's backslashes.
            escaped_first = carried % 2 == 1 and quotes.size > 0 and quotes[0] == 0
            return quotes[1:] if escaped_first else quotes
        others = arr != _BACKSLASH
        last_other = np.maximum.accumulate(np.where(others, np.arange(arr.size), -1))
        self.trailing_backslashes = (
            arr.size - 1 - int(last_other[-1]) if last_other[-1] >= 0 else carried + arr.size
        )
        if not quotes.size:
            return quotes
        before = np.where(quotes > 0, last_other[np.maximum(quotes - 1, 0)], -1)
        run = np.where(before < 0, quotes + carried, quotes - 1 - before)
        return quotes[run % 2 == 0]

    def _check_tasks(
        self, positions: np.ndarray, deltas: np.ndarray, after: np.ndarray, step_end: int
    ) -> None:
        """A task is a value at depth 2 (inside the top-level list): bound its bytes.

        A task opened and closed within one step is shorter than the limit; only the task open
        when the step began, and the one still open at its end, can break it.
        """
        ends = positions[(deltas == -1) & (after == 1)]
        starts = positions[(deltas == 1) & (after == 2)]
        if self.task_start is not None:
            end = int(ends[0]) if ends.size else step_end
            if end - self.task_start > MAX_TASK_BYTES:
                self._fail("one task", MAX_TASK_BYTES, "bytes", self.task_start)
        if starts.size and (not ends.size or starts[-1] > ends[-1]):
            self.task_start = int(starts[-1])
        elif ends.size:
            self.task_start = None


class _LineLimited(io.RawIOBase):
    """A binary stream that refuses a physical line longer than MAX_LINE_BYTES."""

    def __init__(self, raw: BinaryIO, source_file: str) -> None:
        self._raw = raw
        self._source_file = source_file
        self._line_bytes = 0
        self._line = 1

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        data = self._raw.read(len(buffer))
        if not data:
            return 0
        newlines = data.count(b"\n")
        first = data.find(b"\n")
        head = first if first >= 0 else len(data)
        longest = max(self._line_bytes + head, *(len(p) for p in data.split(b"\n")[1:-1]), 0)
        if longest > MAX_LINE_BYTES:
            raise ExportLimitError(
                f"{self._source_file}: a line near line {self._line + newlines:,} exceeds the "
                f"limit of {MAX_LINE_BYTES:,} bytes; the export is rejected unread"
            )
        self._line_bytes = (
            len(data) - data.rfind(b"\n") - 1 if newlines else self._line_bytes + len(data)
        )
        self._line += newlines
        buffer[: len(data)] = data
        return len(data)


def line_limited(raw: BinaryIO, source_file: str) -> io.BufferedReader:
    """`raw` as a buffered stream whose lines are at most MAX_LINE_BYTES long."""
    return io.BufferedReader(_LineLimited(raw, source_file))
