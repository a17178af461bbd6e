"""CSV read one physical line at a time, so a broken quote damages its own line only.

A CSV reader (the csv module, polars) lets a quoted field run across line ends: a quote left open
on one line swallows every following line up to the next quote into one record, and the lines in
between vanish without a trace (the merged record can even pass as valid). No field of a campaign
manifest or a flat label export holds a line break, so here a record is exactly one physical line:
a quote that is not closed on its line is a fault of that line, reported with the column it opens
in, and the next line is read as a record of its own. Rows in = physical non-blank lines, always.

Quoting otherwise follows RFC 4180 as the csv module reads it: a field that starts with `"` is
quoted, `""` inside it is one quote, and a quote inside an unquoted field is plain text.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

UNTERMINATED = "unterminated_quote"
MALFORMED = "malformed_quote"
# Reason texts for a quarantine row or an error: they describe the fault, never the content.
FAULT_TEXT = {
    UNTERMINATED: "unterminated quote: a field cannot span lines",
    MALFORMED: "text after a closing quote",
}


@dataclass(frozen=True, slots=True)
class Line:
    """One physical line: its fields, or the fault and the 0-based column it was found in."""

    number: int
    fields: tuple[str, ...]
    fault: str | None = None
    column: int | None = None


def split_line(text: str) -> tuple[tuple[str, ...], str | None, int | None]:
    """(fields, None, None) for a well-formed line without its line end, else ((), fault,
    column)."""
    if '"' not in text:
        return tuple(text.split(",")), None, None
    fields: list[str] = []
    i, n = 0, len(text)
    while True:
        if i < n and text[i] == '"':
            parts, i = [], i + 1
            while True:
                close = text.find('"', i)
                if close < 0:
                    return (), UNTERMINATED, len(fields)
                parts.append(text[i:close])
                if text.startswith('"', close + 1):
                    parts.append('"')
                    i = close + 2
                    continue
                i = close + 1
                break
            if i < n and text[i] != ",":
                return (), MALFORMED, len(fields)
            fields.append("".join(parts))
        else:
            end = text.find(",", i)
            end = n if end < 0 else end
            fields.append(text[i:end])
            i = end
        if i >= n:
            return tuple(fields), None, None
        i += 1  # past the comma: a field follows, empty if the line ends here


def read_lines(lines: Iterable[str]) -> Iterator[Line]:
    """Each non-blank line of `lines` (as a text stream opened with `newline=""` yields them),
    numbered from 1 by physical line, blank lines included in the numbering."""
    for number, raw in enumerate(lines, start=1):
        text = raw.rstrip("\r\n")
        if text:
            yield Line(number, *split_line(text))
