"""Raw assets materialized from a generated sample on the embedded default."""

import sqlite3
from pathlib import Path

import dagster as dg
import polars as pl
from polars.testing import assert_frame_equal

from identity_data.defs.raw.checks import UNDECODABLE_RATE
from identity_data_tests.conftest import SAMPLE_DAYS

RANGE = {
    "dagster/asset_partition_range_start": SAMPLE_DAYS[0],
    "dagster/asset_partition_range_end": SAMPLE_DAYS[-1],
}
RAW = ("raw/prod_captures", "raw/prod_quarantine")


def read_partitions(home: Path, asset: str) -> pl.DataFrame:
    files = sorted((home / "lake" / "tables" / asset).glob("*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files])


def db_rows(home: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(home / "capture_db.sqlite") as con:
        return con.execute("SELECT capture_id, subject_ref FROM captures").fetchall()


def test_range_backfill_is_one_run_with_a_file_per_day(sample_home, instance, pipeline):
    result = pipeline(instance, *RAW, tags=RANGE)
    assert result.success
    assert len(instance.get_run_records()) == 1
    files = sorted(p.name for p in (sample_home / "lake/tables/raw/prod_captures").iterdir())
    assert files == [f"{day}.parquet" for day in SAMPLE_DAYS]
    manifest = read_partitions(sample_home, "raw/prod_captures")
    for day, part in manifest.group_by("source_partition"):
        assert (part["capture_date"].cast(pl.String) == day[0]).all()


def test_rows_in_equal_manifest_plus_quarantine(sample_home, instance, pipeline):
    pipeline(instance, *RAW, tags=RANGE)
    manifest = read_partitions(sample_home, "raw/prod_captures")
    quarantine = read_partitions(sample_home, "raw/prod_quarantine")
    assert manifest.height + quarantine.height == len(db_rows(sample_home))
    assert set(quarantine["field"]) == {"blob"}
    assert quarantine["reason"].str.contains("zero bytes|not one of|truncat|corrupt").all()
    for key in manifest["blob_key"]:
        assert (sample_home / "lake" / key).is_file()
        assert key.startswith(f"raw/captures/{Path(key).name[:2]}/")


def test_rematerializing_gives_identical_partitions(sample_home, instance, pipeline):
    pipeline(instance, *RAW, tags=RANGE)
    before = read_partitions(sample_home, "raw/prod_captures")
    pipeline(instance, *RAW, partition_key=SAMPLE_DAYS[0])
    pipeline(instance, *RAW, tags=RANGE)
    assert_frame_equal(read_partitions(sample_home, "raw/prod_captures"), before)


def test_no_raw_subject_reference_leaves_the_raw_zone(sample_home, instance, pipeline):
    pipeline(instance, *RAW, tags=RANGE)
    pipeline(instance, *RAW, partition_key=SAMPLE_DAYS[0])
    refs = {ref for _, ref in db_rows(sample_home)}
    tables = sample_home / "lake" / "tables"
    for path in tables.rglob("*.parquet"):
        text = pl.read_parquet(path).write_csv()
        assert not any(ref in text for ref in refs), path
    logs = "".join(
        dg.serialize_value(event)
        for record in instance.get_run_records()
        for event in instance.all_logs(record.dagster_run.run_id)
    )
    assert not any(ref in logs for ref in refs)
    # Metadata holds counts and schemas only: not even a pseudonym or a capture id.
    manifest = read_partitions(sample_home, "raw/prod_captures")
    row_values = set(manifest["capture_id"]) | set(manifest["subject_pseudonym"])
    assert not any(value in logs for value in row_values)


def test_tiny_batches_give_the_same_partitions(sample_home, instance, pipeline, monkeypatch):
    # Memory holds one batch: a day read 7 rows at a time is spilled and streamed in pieces,
    # and must come out exactly as the day read in one batch, checks and row counts included.
    from identity_data.defs.raw import extract

    pipeline(instance, *RAW, tags=RANGE)
    manifest = read_partitions(sample_home, "raw/prod_captures")
    quarantine = read_partitions(sample_home, "raw/prod_quarantine")
    monkeypatch.setattr(extract, "BATCH_ROWS", 7)
    result = pipeline(instance, *RAW, tags=RANGE)
    assert all(
        check.passed
        for check in result.get_asset_check_evaluations()
        if check.check_name != UNDECODABLE_RATE
    )
    assert_frame_equal(read_partitions(sample_home, "raw/prod_captures"), manifest)
    assert_frame_equal(read_partitions(sample_home, "raw/prod_quarantine"), quarantine)
    counts = {
        m.partition: m.metadata["dagster/row_count"].value
        for m in result.asset_materializations_for_node("raw_production")
        if m.asset_key.to_user_string() == "raw/prod_captures"
    }
    assert counts == {day: part.height for (day,), part in manifest.group_by("source_partition")}
