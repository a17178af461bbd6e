"""Hostile inputs carrying personal data go through the real sensors and runs; afterwards no
file of the Dagster instance, and none of the lake outside the source systems, holds any of it.

Inputs: a campaign manifest with quotes left open mid-file and free text in its device and
source label, one whose header is broken, one with wrong types and unsafe paths, a campaign folder
and a label export named by an e-mail address, label exports that are malformed JSON, not UTF-8,
of wrong types, for unknown and malformed capture ids, a flat CSV export with a broken quote, and
rows of the capture database whose capture id, subject reference, device and blob path are
personal data. They take the path `make demo`
and the daemon take: the sensors' ticks on a real instance, each run request a real run.

Scope of the scan:
- every file under DAGSTER_HOME: run and event-log SQLite databases (index.db, one db per run,
  WAL files included), schedule/sensor storage, compute logs, anything else;
- every file under the data home except the source systems, which belong to their owners and
  hold the probes by construction: the capture database and bucket, the campaign drop folders
  (`lake/landing/`), the delivered label exports (`lake/label-exports/`) and the sample's
  ground truth. The raw zone (blobs, manifests, quarantine), the caches, the tables and the
  DuckDB warehouse are all scanned: subject references are pseudonymised inside the
  extraction, and no name, e-mail or document number is a column of any table;
- what the test process itself printed (Dagster's console logger, warnings).
Parquet and DuckDB files compress their pages, so besides their bytes their decoded values are
scanned; every other file is scanned as bytes. Each probe is searched for as UTF-8 (ignoring
case), UTF-16 LE/BE, Latin-1, URL-encoded, JSON-escaped, Python-escaped (`ascii()`) and base64
in all three alignments. Besides the test's probes, every name, document number and subject
reference of the sample's capture database and campaign manifests is a probe too.
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from identity_data import demo
from identity_data.watch import FILE_TAG
from identity_data_tests.conftest import SAMPLE_DAYS

EMAIL = "zebulon.probe@example.org"
NAME = "Zébulon Quxley-Probe"
DOC = "ZQ7X41P9K"
PROBES = (EMAIL, NAME, DOC)
# Source systems: they hold the probes by construction and are not the pipeline's to clean. The
# sample's capture bucket and its ground truth (for measurement only) are sources too.
SOURCES = (
    "capture_db.sqlite",
    "capture-bucket",
    "lake/landing",
    "lake/label-exports",
    "ground_truth",
)
TABULAR = (".parquet", ".duckdb")


def encodings(probe: str) -> set[bytes]:
    """Byte patterns under which `probe` could be stored. Text forms are lower-cased (the
    haystack is too, so case is ignored); base64 keeps its case."""
    raw = probe.encode()
    forms = {
        raw,
        probe.encode("utf-16-le"),
        probe.encode("utf-16-be"),
        probe.encode("latin-1", "replace"),
        urllib.parse.quote(probe).encode(),
        urllib.parse.quote_plus(probe).encode(),
        json.dumps(probe)[1:-1].encode(),
        ascii(probe)[1:-1].encode(),
    }
    return {f.lower() for f in forms}


def base64_forms(probe: str) -> set[bytes]:
    """The part of the base64 text of `probe` that is the same whatever precedes it, for each
    of the three alignments (the first and last 4-character groups mix in other bytes)."""
    raw = probe.encode()
    return {base64.b64encode(b"\0" * k + raw)[4 if k else 0 : -4] for k in range(3)}


@dataclass
class Scan:
    patterns: re.Pattern[bytes]
    b64: re.Pattern[bytes]
    files: int = 0
    bytes: int = 0
    decoded_bytes: int = 0
    hits: list[str] = field(default_factory=list)

    def bytes_of(self, where: str, data: bytes) -> None:
        self.bytes += len(data)
        for pattern, haystack in ((self.patterns, data.lower()), (self.b64, data)):
            for found in pattern.finditer(haystack):
                # The file and offset only: the test's own output must not quote the match.
                self.hits.append(f"{where} @ {found.start()}")

    def file(self, path: Path, label: str) -> None:
        self.files += 1
        self.bytes_of(label, path.read_bytes())
        if path.suffix in TABULAR:
            text = decoded(path)
            self.decoded_bytes += len(text)
            self.bytes_of(f"{label} (decoded)", text)


def decoded(path: Path) -> bytes:
    """Every value of a parquet file or of every DuckDB table, as CSV text."""
    if path.suffix == ".parquet":
        return pl.read_parquet(path).write_csv().encode()
    out = []
    with duckdb.connect(str(path), read_only=True) as con:
        for (table,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
        ).fetchall():
            out.append(con.execute(f'SELECT * FROM "{table}"').pl().write_csv())
    return "".join(out).encode()


def scanner(probes: set[str]) -> Scan:
    def union(forms: set[bytes]) -> re.Pattern[bytes]:
        return re.compile(b"|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))

    text = set().union(*(encodings(p) for p in probes))
    b64 = set().union(*(base64_forms(p) for p in PROBES))
    return Scan(union(text), union(b64))


def scan_tree(scan: Scan, root: Path, skip: tuple[str, ...] = ()) -> None:
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        label = str(path.relative_to(root))
        if not label.startswith(skip):
            scan.file(path, f"{root.name}/{label}")


# ---------------------------------------------------------------------------------------------
# The hostile inputs.


def _task(capture_id: object, annotation: dict, **data: object) -> dict:
    return {"data": {"capture_id": capture_id, **data}, "annotations": [annotation]}


def _annotation(ann_id: object = 1, choice: object = "print", **fields: object) -> dict:
    result = [{"from_name": "attack_type", "type": "choices", "value": {"choices": [choice]}}]
    return {
        "id": ann_id,
        "completed_by": 7,
        "created_at": "2026-11-28T10:00:00Z",
        "result": result,
        **fields,
    }


def write_label_exports(exports: Path) -> None:
    tasks = [
        _task(EMAIL, _annotation(1), name=NAME, document_number=DOC),
        _task("cap-hostile-unknown", _annotation(2, completed_by={"id": 7, "email": EMAIL})),
        _task(
            "cap-hostile-3",
            _annotation(NAME, DOC, created_at=NAME, completed_by=EMAIL),
        ),
        _task("cap-hostile-3", _annotation(4, result=EMAIL)),
        NAME,
        _task("cap-hostile-3", _annotation(5, EMAIL, was_cancelled=DOC)),
        _task(
            "cap-hostile-3",
            _annotation(
                6, result=[{"from_name": DOC, "type": "textarea", "value": {"text": [NAME]}}]
            ),
        ),
        _task("cap-hostile-3", {"id": 8, "result": [NAME, {"value": EMAIL}]}),
        # Valid but for who and which: an annotator or annotation named by personal data.
        _task("cap-hostile-3", _annotation(9, completed_by=EMAIL)),
        _task("cap-hostile-3", _annotation(NAME, completed_by=8)),
    ]
    (exports / "hostile-types.json").write_text(json.dumps(tasks))
    (exports / "hostile-malformed.json").write_text(
        f'[{{"data": {{"capture_id": "{EMAIL}", "name": "{NAME}", "doc": "{DOC}"'
    )
    (exports / "hostile-not-utf8.json").write_bytes(
        b'[{"data": {"capture_id": "'
        + EMAIL.encode()
        + b'\xff\xfe", "n": "'
        + NAME.encode("latin-1")
        + b'"}}]'
    )
    header = "capture_id,annotator,task,label,labeled_at\n"
    (exports / "hostile-types.csv").write_text(
        header
        + f"{EMAIL},{NAME},attack_type,{DOC},2026-11-28T10:00:00Z\n"
        + f"cap-hostile-3,{EMAIL},{NAME},print,{DOC}\n"
        + f"cap-hostile-3,7,attack_type,print,2026-11-28T10:00:00Z,{NAME}\n"
    )
    (exports / "hostile-quote.csv").write_text(
        header + f'cap-hostile-3,7,attack_type,print,"{NAME} {EMAIL} {DOC}\n'
    )
    # A name outside the partition-key grammar: skipped by the sensor, never a key or a tag.
    (exports / f"{EMAIL}.json").write_text(json.dumps([_task("cap-hostile-3", _annotation(11))]))


def write_campaigns(campaigns: Path) -> None:
    (template,) = [p for p in campaigns.iterdir() if p.is_dir()]
    image = next(template.glob("*.jpg"))
    header = "capture_id,subject_ref,capture_type,device,captured_at,file\n"
    quoted = campaigns / "hostile-quote"
    quoted.mkdir()
    at = "2026-11-28T10:00:00Z"
    # Quotes left open mid-file (polars merged lines 2-4 into one record and line 3 vanished),
    # then free text where a device or a source label belongs.
    (quoted / "manifest.csv").write_text(
        header.replace("\n", ",source_label\n")
        + f'cap-hostile-q,"{EMAIL},selfie,lab-rig-1,{at},{image.name},face\n'
        + f"cap-hostile-r,{NAME} {DOC},selfie,lab-rig-1,{at},{image.name},face\n"
        + f'cap-hostile-s,{DOC}",selfie,lab-rig-1,{at},{image.name},face\n'
        + f"cap-hostile-t,{DOC},selfie,{EMAIL},{at},{image.name},face\n"
        + f"cap-hostile-u,{DOC},selfie,{NAME},{at},{image.name},face\n"
        + f"cap-hostile-v,{DOC},selfie,lab-rig-1,{at},{image.name},{EMAIL}\n"
        + f'cap-hostile-w,{DOC},selfie,lab-rig-1,"{at}"{NAME},{image.name},face\n'
    )
    (quoted / image.name).write_bytes(image.read_bytes())
    header_broken = campaigns / "hostile-header"
    header_broken.mkdir()
    (header_broken / "manifest.csv").write_text(
        f'capture_id,"{EMAIL},subject_ref,capture_type,device,captured_at,file\n'
        + f"cap-hostile-h,{NAME},selfie,lab-rig-1,{at},{image.name}\n"
    )
    # A folder named by an e-mail address: skipped by the sensor, never a partition key.
    named = campaigns / EMAIL
    named.mkdir()
    (named / "manifest.csv").write_text(
        header + f"cap-hostile-n,{DOC},selfie,lab-rig-1,{at},{image.name}\n"
    )
    (named / image.name).write_bytes(image.read_bytes())
    typed = campaigns / "hostile-types"
    typed.mkdir()
    (typed / "cap-hostile-3.jpg").write_bytes(image.read_bytes())
    rows = [
        (EMAIL, EMAIL, "selfie", "2026-11-28T10:00:00Z", "cap-hostile-3.jpg"),
        ("cap-hostile-1", EMAIL, DOC, "2026-11-28T10:00:00Z", "cap-hostile-3.jpg"),
        ("cap-hostile-2", NAME, "selfie", NAME, "cap-hostile-3.jpg"),
        ("cap-hostile-3", EMAIL, "selfie", "2026-11-28T10:00:00Z", "cap-hostile-3.jpg"),
        ("cap-hostile-4", DOC, "selfie", "2026-11-28T10:00:00Z", f"../../../{EMAIL}"),
        ("cap-hostile-5", NAME, "selfie", "2026-11-28T10:00:00Z", f"{NAME}.jpg"),
        ("cap-hostile-6", NAME, "selfie", "2026-11-28T10:00:00Z", "absent.jpg"),
        ("cap-hostile-7", NAME, "selfie", "2026-11-28T10:00:00Z", f"/etc/{DOC}"),
    ]
    (typed / "manifest.csv").write_text(
        header + "".join(f"{c},{s},{t},lab-rig-1,{at},{f}\n" for c, s, t, at, f in rows)
    )


def write_db_rows(db: Path) -> None:
    with sqlite3.connect(db) as con:
        (blob_path,) = con.execute(
            "SELECT blob_path FROM captures WHERE captured_at >= ? LIMIT 1", (SAMPLE_DAYS[-1],)
        ).fetchone()
        con.execute(
            "INSERT INTO subjects VALUES ('subj-hostile', ?, ?, ?, '2025-01-01 00:00:00')",
            (EMAIL, NAME, DOC),
        )
        con.execute(
            "INSERT INTO sessions VALUES "
            "('sess-hostile', 'subj-hostile', 'phone', '2026-11-28 09:00:00')"
        )
        rows = [
            (EMAIL, EMAIL, "selfie", "phone", blob_path),
            ("cap-hostile-db-1", NAME, "selfie", "phone", f"../{DOC}.jpg"),
            ("cap-hostile-db-2", EMAIL, DOC, "phone", blob_path),
            ("cap-hostile-db-3", EMAIL, "selfie", "phone", blob_path),
            ("cap-hostile-db-4", DOC, "selfie", EMAIL, blob_path),
            ("cap-hostile-db-5", DOC, "selfie", NAME, blob_path),
        ]
        con.executemany(
            "INSERT INTO captures VALUES (?, 'sess-hostile', ?, ?, ?, "
            "'2026-11-28 10:00:00.000000', ?)",
            rows,
        )


def sample_personal_data(home: Path) -> set[str]:
    """Every name, document number and subject reference the sample's sources hold."""
    with sqlite3.connect(home / "capture_db.sqlite") as con:
        values = {
            v
            for row in con.execute(
                "SELECT customer_ref, full_name, document_number FROM subjects "
                "UNION SELECT subject_ref, subject_ref, subject_ref FROM captures"
            )
            for v in row
        }
    for manifest in (home / "lake/landing").rglob("manifest.csv"):
        frame = pl.read_csv(manifest, infer_schema=False)
        if "subject_ref" in frame.columns:
            values |= set(frame["subject_ref"].drop_nulls())
    return values


# ---------------------------------------------------------------------------------------------


def test_scanner_finds_each_probe_in_every_encoding(tmp_path):
    scan = scanner(set(PROBES))
    for probe in PROBES:
        for form in encodings(probe) | base64_forms(probe):
            before = len(scan.hits)
            scan.bytes_of("x", b"..." + form.upper() + b"...")
            scan.bytes_of("x", b"..." + form + b"...")
            assert len(scan.hits) > before, form
        for k in range(3):
            payload = base64.b64encode(b"a" * k + probe.encode() + b"tail")
            assert scan.b64.search(payload)
    table = tmp_path / "t.parquet"
    pl.DataFrame({"v": [EMAIL] * 1000}).write_parquet(table, compression="zstd")
    hidden = Scan(scan.patterns, scan.b64)
    hidden.file(table, "t.parquet")
    assert any("(decoded)" in hit for hit in hidden.hits)


@pytest.mark.slow
def test_no_personal_data_reaches_the_instance_or_the_lake(sample_home, instance, tmp_path, capfd):
    probes = set(PROBES) | sample_personal_data(sample_home)
    write_label_exports(sample_home / "lake/label-exports")
    write_campaigns(sample_home / "lake/landing/campaigns")
    write_db_rows(sample_home / "capture_db.sqlite")

    tally = demo.Tally()
    path = demo.Demo(instance, tally)
    path.start(SAMPLE_DAYS, open_datasets=False)
    path.settle()
    printed = capfd.readouterr()

    # The unreadable files fail visibly, each alone; the rest is quarantined row by row.
    failed = {
        run.tags.get(FILE_TAG)
        for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
    }
    assert failed == {
        "landing/campaigns/hostile-header/manifest.csv",
        "label-exports/hostile-malformed.json",
        "label-exports/hostile-not-utf8.json",
    }
    # The names outside the key grammar got no partition, so no run either.
    for partitions in ("campaigns", "label_exports"):
        assert not [k for k in instance.get_dynamic_partitions(partitions) if "@example" in k]
    tables = sample_home / "lake/tables"
    # Each line of the broken manifest is one record: in = out + quarantined, lines counted.
    quoted = pl.read_parquet(tables / "raw/camp_captures/hostile-quote.parquet")
    assert quoted["capture_id"].to_list() == ["cap-hostile-r", "cap-hostile-s"]
    quoted_out = pl.read_parquet(tables / "raw/camp_quarantine/hostile-quote.parquet")
    assert quoted_out.sort("record").select("record", "field").rows() == [
        (f"landing/campaigns/hostile-quote/manifest.csv:line {n}", field)
        for n, field in [
            (2, "subject_ref"),
            (5, "device"),
            (6, "device"),
            (7, "source_label"),
            (8, "captured_at"),
        ]
    ]
    manifest = pl.read_parquet(tables / "raw/camp_captures/hostile-types.parquet")
    assert manifest["capture_id"].to_list() == ["cap-hostile-3"]
    assert manifest["subject_pseudonym"].str.len_chars().to_list() == [64]
    quarantine = pl.read_parquet(tables / "raw/camp_quarantine/hostile-types.parquet")
    assert quarantine.height == 7
    exports = pl.concat(
        pl.read_parquet(f) for f in (tables / "labels/export_quarantine").glob("hostile*")
    )
    # A quote left open at the end of a CSV export runs to the end of the file: one bad line.
    assert exports.group_by("source_file").len().sort("source_file").rows() == [
        ("label-exports/hostile-quote.csv", 1),
        ("label-exports/hostile-types.csv", 3),
        ("label-exports/hostile-types.json", 10),
    ]
    production = pl.concat(
        pl.read_parquet(f) for f in (tables / "raw/prod_quarantine").glob("*.parquet")
    )
    records = set(production["record"])
    assert {"captures:cap-hostile-db-1", "captures:cap-hostile-db-2"} <= records
    devices = production.filter(pl.col("field") == "device")["record"].to_list()
    assert sorted(devices) == ["captures:cap-hostile-db-4", "captures:cap-hostile-db-5"]
    # The row whose capture id is an e-mail address is named by its position in the day.
    assert any(re.fullmatch(r"captures:2026-11-28 row \d+", r) for r in records)

    scan = scanner(probes)
    scan_tree(scan, Path(instance.root_directory))
    scan_tree(scan, sample_home, skip=SOURCES)
    for stream, text in (("stdout", printed.out), ("stderr", printed.err)):
        scan.bytes_of(f"test process {stream}", text.encode())
    print(
        f"PII scan: {len(probes)} probes, {scan.files} files, {scan.bytes:,} bytes scanned "
        f"({scan.decoded_bytes:,} of them decoded parquet/DuckDB values), "
        f"{len(scan.hits)} hits; {tally.runs} runs, {len(failed)} failed"
    )
    assert not scan.hits, scan.hits[:20]

    # The scan is not vacuous: the same scanner finds the probes in the sources.
    control = scanner(set(PROBES))
    scan_tree(control, sample_home / "lake/label-exports")
    assert control.hits
