import dagster as dg
import polars as pl

from identity_data.defs.raw.checks import undecodable_result

KEY = dg.AssetKey(["raw", "campaign_captures"])


def test_undecodable_rate_counts_quarantined_blobs_and_can_fail():
    # The case: 7 of 15 blobs undecodable; the old check saw only the 8 good ones.
    manifest = pl.DataFrame({"capture_id": [f"ok{n}" for n in range(8)]})
    quarantine = pl.DataFrame(
        {
            "decode_status": ["empty", "corrupt", "truncated", "not_image", "missing"] * 1
            + ["corrupt", "unsafe_path", None],
        }
    )
    result = undecodable_result(manifest, quarantine, KEY)
    assert not result.passed
    assert result.metadata["blobs"].value == 15
    assert result.metadata["undecodable"].value == 7
    assert abs(result.metadata["undecodable_rate"].value - 7 / 15) < 1e-9


def test_undecodable_rate_passes_a_clean_partition():
    manifest = pl.DataFrame({"capture_id": [f"ok{n}" for n in range(40)]})
    quarantine = pl.DataFrame({"decode_status": ["corrupt", None]})
    assert undecodable_result(manifest, quarantine, KEY).passed
