"""Label exports built to hurt: wrong types, limits, non-UTF-8, adversarial shapes."""

import io
import json
import subprocess
import sys

import pytest

from identity_data.defs.labels.bounds import (
    MAX_DEPTH,
    MAX_LINE_BYTES,
    MAX_TASK_BYTES,
    MAX_TOKEN_BYTES,
    JsonGuard,
)
from identity_data.defs.labels.parse import LabelExportError, parse_flat_csv, parse_label_studio

PROBE = "probe.person@example.org"


def _ann(ann_id, result):
    return {"id": ann_id, "completed_by": 3, "created_at": "2026-11-28T10:00:00Z", "result": result}


GOOD = [{"from_name": "attack_type", "type": "choices", "value": {"choices": ["print"]}}]


def test_a_type_error_quarantines_only_its_unit():
    tasks = [
        {"data": {"capture_id": "cap-1"}, "annotations": [_ann(1, GOOD), _ann(2, PROBE)]},
        PROBE,
        {"data": {"capture_id": "cap-2"}, "annotations": {"email": PROBE}},
        {"data": {"capture_id": "cap-3"}, "annotations": [[PROBE], _ann(3, GOOD)]},
        {"data": {"capture_id": "cap-4"}, "annotations": [_ann(4, [PROBE, *GOOD])]},
        {"data": {"capture_id": PROBE}, "annotations": [_ann(5, GOOD)]},
        {
            "data": {"capture_id": "cap-7"},
            "annotations": [{**_ann(7, GOOD), "completed_by": PROBE}],
        },
        {"data": {"capture_id": "cap-8"}, "annotations": [_ann(PROBE, GOOD)]},
        {
            "data": {"capture_id": "cap-6"},
            "annotations": [_ann(6, [{**GOOD[0], "from_name": PROBE}])],
        },
    ]
    annotations, quarantine = parse_label_studio(
        io.BytesIO(json.dumps(tasks).encode()), "e", "mixed.json"
    )
    assert sorted(annotations["capture_id"]) == ["cap-1", "cap-3", "cap-4"]
    assert sorted(quarantine["reason"]) == sorted(
        [
            "result_not_list",
            "task_not_object",
            "annotations_not_list",
            "annotation_not_object",
            "result_item_not_object",
            "malformed_capture_id",
            "malformed_annotator",
            "malformed_annotation_id",
            "unknown_task",
        ]
    )
    # Quarantine rows copy no free text: the probe appears nowhere.
    assert PROBE not in quarantine.write_csv()


@pytest.mark.parametrize(
    ("payload", "limit"),
    [
        (b"[" * 50_000 + b"]" * 50_000, f"nesting depth exceeds the limit of {MAX_DEPTH}"),
        (b'[{"data": {"x": [' * 20 + b"1" + b"]}}" * 20 + b"]", "nesting depth"),
        (b'[{"data": "' + b"x" * (MAX_TOKEN_BYTES + 10) + b'"}]', "one string or token"),
        (b"[1" + b"1" * (MAX_TOKEN_BYTES + 10) + b"]", "one string or token"),
        (b'[{"a": [' + b'"x",' * (MAX_TASK_BYTES // 4 + 10) + b'"x"]}]', "one task"),
        # Long top-level lists stream: the task limit is per task, not per file.
        (b"[" + b"1," * 200_000 + b"1]", None),
    ],
    ids=["deep", "deep-in-task", "long-string", "long-number", "wide-task", "many-tasks"],
)
def test_limits_reject_early_naming_file_and_limit(payload, limit):
    if limit is None:
        annotations, quarantine = parse_label_studio(io.BytesIO(payload), "e", "x.json")
        assert annotations.height == 0 and quarantine.height == 200_001
        return
    with pytest.raises(LabelExportError, match=rf"^x\.json: {limit}") as err:
        parse_label_studio(io.BytesIO(payload), "e", "x.json")
    assert err.value.__cause__ is None


def test_guard_tracks_strings_and_escapes_across_chunks():
    # Brackets and escaped quotes inside strings do not count; the result does not depend on
    # where chunks split.
    text = 'x\\"[[{\\\\'
    value: object = text
    for _ in range(MAX_DEPTH - 1):
        value = [value, {"k\\": text}]
    doc = json.dumps(value).encode()
    for size in (1, 2, 3, 7, len(doc)):
        guard = JsonGuard("f.json")
        for start in range(0, len(doc), size):
            guard.check(doc[start : start + size])
        assert (guard.depth, guard.in_string) == (0, False)
    with pytest.raises(ValueError, match="nesting depth"):
        JsonGuard("f.json").check(json.dumps([value]).encode())


def _padded_task(size: int) -> bytes:
    """`[{"a": ["x", ...   ]}]` whose task (from `{` to `}`) is exactly `size` bytes."""
    items = b'"x",' * ((size - 13) // 4) + b'"x"'
    return b'[{"a": [' + items + b" " * (size - 9 - len(items)) + b"]}]"


LIMIT_EDGES = {
    "string-at-limit": (b'["' + b"x" * (MAX_TOKEN_BYTES - 1) + b'"]', None),
    "string-over-limit": (b'["' + b"x" * MAX_TOKEN_BYTES + b'"]', "one string or token"),
    "escaped-string-over-limit": (
        b'["' + b'\\"' * (MAX_TOKEN_BYTES // 2) + b'"]',
        "one string or token",
    ),
    "number-at-limit": (b"[" + b"1" * (MAX_TOKEN_BYTES - 1) + b"]", None),
    "number-over-limit": (b"[" + b"1" * MAX_TOKEN_BYTES + b"]", "one string or token"),
    "task-at-limit": (_padded_task(MAX_TASK_BYTES + 1), None),
    "task-over-limit": (_padded_task(MAX_TASK_BYTES + 2), "one task"),
    "depth-at-limit": (b"[" * MAX_DEPTH + b"]" * MAX_DEPTH, None),
    "depth-over-limit": (b'["[", ' + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"]", "nesting depth"),
}


@pytest.mark.parametrize("chunk", [4096, 65536, 100_003, 3 << 20])
@pytest.mark.parametrize("name", list(LIMIT_EDGES))
def test_guard_limits_are_exact_whatever_the_chunking(name, chunk):
    doc, limit = LIMIT_EDGES[name]
    guard = JsonGuard("f.json")
    if limit is None:
        for start in range(0, len(doc), chunk):
            guard.check(doc[start : start + chunk])
        assert (guard.depth, guard.in_string, guard.offset) == (0, False, len(doc))
        return
    with pytest.raises(ValueError, match=f"^f.json: {limit} exceeds"):
        for start in range(0, len(doc), chunk):
            guard.check(doc[start : start + chunk])


@pytest.mark.parametrize(
    "payload",
    [
        b'[{"data": {"capture_id": "' + PROBE.encode() + b'\xff\xfe"}}]',
        b'[{"data": {"capture_id": "' + PROBE.encode() + b'", }}]',
        b'[{"data": {"n": 1' + b"1" * 5000 + b'}, "e": "' + PROBE.encode() + b'"}]',
    ],
    ids=["non-utf8", "malformed", "huge-int"],
)
def test_parser_errors_quote_no_content(payload):
    with pytest.raises(LabelExportError, match=r"^bad\.json: ") as err:
        parse_label_studio(io.BytesIO(payload), "e", "bad.json")
    assert PROBE not in str(err.value) and "\\x" not in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__


@pytest.mark.parametrize(
    "payload",
    [
        b"capture_id,annotator,task,label,labeled_at\n" + PROBE.encode() + b"\xff,a,b,c,d\n",
        b"capture_id,annotator,task,label,labeled_at\n"
        + b"x," * (MAX_LINE_BYTES // 2 + 10)
        + b"\n",
    ],
    ids=["non-utf8", "long-line"],
)
def test_csv_errors_quote_no_content(payload):
    with pytest.raises(LabelExportError, match=r"^bad\.csv: ") as err:
        parse_flat_csv(io.BytesIO(payload), "e", "bad.csv")
    assert PROBE not in str(err.value)
    assert err.value.__cause__ is None


# Parses one adversarial export under a 1 GiB address-space cap; prints outcome and peak RSS.
CAPPED = """
import resource, sys
from pathlib import Path
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from identity_data.defs.labels.parse import LabelExportError, parse_label_studio
try:
    a, q = parse_label_studio(sys.argv[1], "e", "adversarial.json")
    outcome = f"ok:{a.height + q.height}"
except LabelExportError as err:
    outcome = "rejected:" + str(err).split(": ", 1)[1].split(" exceeds")[0].replace(" ", "_")
peak_kib = Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]
print(outcome, peak_kib)
"""

ADVERSARIAL = {
    # The 200 KB document nested tens of thousands of levels deep (20 GB before).
    "deep-200kb": b'[{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}]",
    "string-64mb": b'[{"data": "' + b"x" * (64 << 20) + b'"}]',
    "wide-task-64mb": b'[{"a": [' + b"0," * (32 << 20) + b"0]}]",
    "many-empty-tasks-64mb": b"[" + b"{}," * ((64 << 20) // 3) + b"{}]",
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_adversarial_exports_stay_within_a_memory_cap(tmp_path, name):
    path = tmp_path / "adversarial.json"
    path.write_bytes(ADVERSARIAL[name])
    out = subprocess.run(
        [sys.executable, "-c", CAPPED, str(path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    outcome, peak_kib = out.stdout.split()
    print(
        f"{name}: {path.stat().st_size:,} bytes -> {outcome}, peak {int(peak_kib) / 1024:.0f} MiB"
    )
    expected = {
        "deep-200kb": "rejected:nesting_depth",
        "string-64mb": "rejected:one_string_or_token",
        "wide-task-64mb": "rejected:one_task",
    }
    # Empty tasks have no annotation, so no accounting row.
    assert outcome == expected.get(name, "ok:0")
