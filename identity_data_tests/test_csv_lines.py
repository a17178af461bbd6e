import csv
import io

import pytest

from identity_data.csv_lines import read_lines, split_line

PROBE = "zebulon.probe@example.org"


@pytest.mark.parametrize(
    "text",
    [
        "a,b,c",
        'a,"b,c",d',
        'a,"say ""hi""",c',
        'a,b"c,d',
        ',,""',
        ' "a",b',
        '"",x',
    ],
)
def test_a_well_formed_line_splits_as_the_csv_module_does(text):
    assert split_line(text) == (tuple(next(csv.reader([text]))), None, None)


@pytest.mark.parametrize(
    ("text", "fault", "column"),
    [
        ('a,"b,c,d', "unterminated_quote", 1),
        ('"a', "unterminated_quote", 0),
        ('a,"b""', "unterminated_quote", 1),
        ('a,b,"c""d', "unterminated_quote", 2),
        ('a,"b"x,c', "malformed_quote", 1),
        ('"a""b"c', "malformed_quote", 0),
    ],
)
def test_a_broken_quote_names_its_column_and_keeps_no_field(text, fault, column):
    assert split_line(text) == ((), fault, column)


def test_a_quote_left_open_damages_its_own_line_only():
    """The csv module (and polars) merge every line up to the next quote into one record, so the
    lines between vanish inside it; here each physical line is one record."""
    text = f'h1,h2,h3\na,b,c\nd,"{PROBE},f\ng,h,i\r\n\nj,k",l\nm,n,o'
    merged = list(csv.reader(io.StringIO(text, newline="")))
    assert len(merged) < text.count("\n")
    lines = list(read_lines(io.StringIO(text, newline="")))
    assert [(line.number, line.fields, line.fault, line.column) for line in lines] == [
        (1, ("h1", "h2", "h3"), None, None),
        (2, ("a", "b", "c"), None, None),
        (3, (), "unterminated_quote", 1),
        (4, ("g", "h", "i"), None, None),
        # Line 5 is blank: no record, but the numbering stays physical.
        (6, ("j", 'k"', "l"), None, None),
        (7, ("m", "n", "o"), None, None),
    ]
    assert PROBE not in repr(lines)
