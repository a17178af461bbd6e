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
# +1 opens a level, -1 closes one, 2 is a separator (`,` or `:`); white space and token bytes 0.
_CLASS = np.zeros(256, dtype=np.int8)
for _byte, _code in ((b"[", 1), (b"{", 1), (b"]", -1), (b"}", -1), (b",", 2), (b":", 2)):
    _CLASS[_byte[0]] = _code


class ExportLimitError(ValueError):
    """An export breaks one of the documented limits; names file, limit and byte offset."""


class JsonGuard:
    """Checks each chunk of a JSON document in order; state carries across chunks."""

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
        if not chunk:
            return
        arr = np.frombuffer(chunk, dtype=np.uint8)
        chunk_end = self.offset + arr.size
        quotes = self._unescaped_quotes(arr)
        classes = _CLASS[arr]
        structural = np.flatnonzero(classes)
        # Structural bytes count only outside strings: after an even number of quote toggles.
        toggles = np.searchsorted(quotes, structural) + int(self.in_string)
        structural = structural[toggles % 2 == 0]
        deltas = classes[structural].astype(np.int64)
        deltas[deltas == 2] = 0
        depth_after = self.depth + np.cumsum(deltas)
        if depth_after.size and int(depth_after.max()) > MAX_DEPTH:
            at = int(structural[int(np.argmax(depth_after > MAX_DEPTH))])
            self._fail("nesting depth", MAX_DEPTH, "levels", self.offset + at)

        marks = np.zeros(arr.size, dtype=bool)
        marks[quotes] = True
        marks[structural] = True
        boundaries = np.flatnonzero(marks) + self.offset
        gaps = np.diff(boundaries, prepend=self.last_boundary, append=chunk_end)
        if int(gaps.max()) > MAX_TOKEN_BYTES:
            at = int(np.concatenate(([self.last_boundary], boundaries))[int(np.argmax(gaps))])
            self._fail("one string or token", MAX_TOKEN_BYTES, "bytes", at)
        if boundaries.size:
            self.last_boundary = int(boundaries[-1])

        self._check_tasks(structural + self.offset, deltas, depth_after, chunk_end)
        if depth_after.size:
            self.depth = int(depth_after[-1])
        self.in_string = bool((quotes.size + int(self.in_string)) % 2)
        self.offset = chunk_end

    def _unescaped_quotes(self, arr: np.ndarray) -> np.ndarray:
        """Positions of quotes not escaped, i.e. preceded by an even run of backslashes."""
        quotes = np.flatnonzero(arr == _QUOTE)
        carried = self.trailing_backslashes
        backslashes = arr == _BACKSLASH
        if not backslashes.any():
            self.trailing_backslashes = 0
            # Only a quote right at the start can be escaped, by the previous chunk's backslashes.
            escaped_first = carried % 2 == 1 and quotes.size > 0 and quotes[0] == 0
            return quotes[1:] if escaped_first else quotes
        others = ~backslashes
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
        self, positions: np.ndarray, deltas: np.ndarray, after: np.ndarray, chunk_end: int
    ) -> None:
        """A task is a value at depth 2 (inside the top-level list): bound its bytes."""
        starts = positions[(deltas == 1) & (after == 2)]
        ends = positions[(deltas == -1) & (after == 1)]
        if self.task_start is not None:
            starts = np.concatenate(([self.task_start], starts))
        # Starts and ends alternate; the last start may still be open at the chunk's end.
        closed = min(ends.size, starts.size)
        spans = np.concatenate((ends[:closed], np.full(starts.size - closed, chunk_end))) - starts
        if spans.size and int(spans.max()) > MAX_TASK_BYTES:
            at = int(starts[int(np.argmax(spans > MAX_TASK_BYTES))])
            self._fail("one task", MAX_TASK_BYTES, "bytes", at)
        self.task_start = int(starts[-1]) if starts.size > closed else None


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
