"""Partition keys typed into the UI become paths: runs refuse bad ones before any read or write."""

from pathlib import Path

import polars as pl
import pytest

from identity_data.stores.blobs import LocalBlobStore

CAMPAIGN = ("raw/camp_captures", "raw/camp_quarantine")
EXPORT = ("labels/export_votes", "labels/export_quarantine")
MANIFEST = (
    b"capture_id,subject_ref,capture_type,device,captured_at,file\n"
    b"x1,s1,selfie,cam,2026-11-28T10:00:00Z,a.jpg\n"
)
KEYS = [
    "../../../../outside/pwn",
    "../outside",
    "/tmp/pwn",
    "pwn\x00",
    "\uff0e\uff0e\uff0foutside",  # fullwidth ../
    "\u2025\u2215outside",  # two-dot leader, division slash
]


def _files(root: Path) -> set[Path]:
    """Every file under root except the Dagster instance's own (run and compute logs)."""
    return {p for p in root.rglob("*") if p.is_file() and "dagster_home" not in p.parts}


@pytest.mark.parametrize("key", KEYS)
def test_campaign_key_outside_the_grammar_fails_before_any_io(
    data_home, instance, pipeline, key, tmp_path
):
    outside = tmp_path / "outside" / "pwn"
    outside.mkdir(parents=True)
    (outside / "manifest.csv").write_bytes(MANIFEST)
    before = _files(tmp_path)
    instance.add_dynamic_partitions("campaigns", [key])
    result = pipeline(instance, *CAMPAIGN, partition_key=key, raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    error = failure.step_failure_data.error.to_string()
    assert "UnsafePathError" in error and "is not 1-200 characters" in error
    assert _files(tmp_path) - before == set(), "a file was written"
    assert (outside / "manifest.csv").read_bytes() == MANIFEST


@pytest.mark.parametrize("key", ["../../x.json@0123456789ab", "..@0123456789ab", KEYS[4]])
def test_export_key_outside_the_grammar_fails_before_any_io(
    data_home, instance, pipeline, key, tmp_path
):
    before = _files(tmp_path)
    instance.add_dynamic_partitions("label_exports", [key])
    result = pipeline(instance, *EXPORT, partition_key=key, raise_on_error=False)
    assert not result.success
    assert _files(tmp_path) - before == set()


def test_temp_leftovers_are_ignored_by_every_reader(sample_home, instance, pipeline):
    """Kills leave `.tmp-` files beside blobs and partitions; lists, sensors and loads skip them."""
    pipeline(instance, *CAMPAIGN, partition_key=_campaign(sample_home, instance))
    tables = sample_home / "lake" / "tables" / "raw" / "camp_captures"
    (tables / ".tmp-0123-c.parquet.tmp").write_bytes(b"not parquet")
    blob_dir = next((sample_home / "lake" / "raw" / "captures").iterdir())
    (blob_dir / ".tmp-abcd.tmp").write_bytes(b"half a blob")
    lake = LocalBlobStore(sample_home / "lake")
    assert not [o for o in lake.list("raw/captures") if ".tmp-" in o.key]
    frames = [pl.read_parquet(p) for p in tables.glob("*.parquet")]
    assert sum(f.height for f in frames) > 0
    # A downstream load of the partition ignores the leftover, and a write beside it succeeds.
    key = _campaign(sample_home, instance)
    assert pipeline(instance, "annotations/camp_annotations", partition_key=key).success
    assert pipeline(instance, *CAMPAIGN, partition_key=key).success


def _campaign(home: Path, instance) -> str:
    (campaign,) = [p.name for p in (home / "lake" / "landing" / "campaigns").iterdir()]
    if campaign not in instance.get_dynamic_partitions("campaigns"):
        instance.add_dynamic_partitions("campaigns", [campaign])
    return campaign
