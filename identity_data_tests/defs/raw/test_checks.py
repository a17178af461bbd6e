import dagster as dg

from identity_data.defs.raw.checks import UNDECODABLE_RATE, undecodable_result

KEY = dg.AssetKey(["raw", "camp_captures"])


def test_undecodable_rate_counts_quarantined_blobs_and_can_fail():
    # The case: 7 of 15 blobs undecodable; the old check saw only the 8 good ones.
    # Quarantined rows per decode status; records failing before their blob have none.
    by_status = {"empty": 1, "corrupt": 2, "truncated": 1, "not_image": 1, "missing": 1}
    result = undecodable_result(8, {**by_status, "unsafe_path": 1}, KEY)
    assert not result.passed
    assert result.metadata["blobs"].value == 15
    assert result.metadata["undecodable"].value == 7
    assert abs(result.metadata[UNDECODABLE_RATE].value - 7 / 15) < 1e-9


def test_undecodable_rate_passes_a_clean_partition():
    assert undecodable_result(40, {"corrupt": 1}, KEY).passed
