"""The campaign drop sensor: a folder name becomes a partition key shown in the UI, logs and run
tags, so a name outside the folder grammar is skipped, counted and logged without its name."""

from pathlib import Path

import dagster as dg
import pytest

from identity_data.defs.raw.sensors import campaign_sensor
from identity_data.safety import UnsafePathError, check_folder_name, check_partition_key
from identity_data_tests.defs.sensor_ticks import tick as sensor_tick

MANIFEST = (
    "capture_id,subject_ref,capture_type,device,captured_at,file\n"
    "x1,s1,selfie,cam,2026-11-28T10:00:00Z,a.jpg\n"
)
HOSTILE = [
    "zebulon.probe@example.org",
    "Zebulon Quxley",
    "zébulon",
    "probe@0123456789ab",
    "...x",
    "-x",
]


@pytest.fixture
def campaigns(data_home: Path) -> Path:
    folder = data_home / "lake" / "landing" / "campaigns"
    folder.mkdir(parents=True)
    return folder


def tick(instance: dg.DagsterInstance, cursor: str | None = None) -> dg.SensorResult:
    return sensor_tick(campaign_sensor, instance, cursor)


def drop(campaigns: Path, name: str) -> None:
    (campaigns / name).mkdir()
    (campaigns / name / "manifest.csv").write_text(MANIFEST)


@pytest.mark.parametrize("name", HOSTILE)
def test_folder_outside_the_grammar_is_skipped_without_its_name(instance, campaigns, name, capfd):
    drop(campaigns, "campaign-2026-11-print")
    drop(campaigns, name)
    result = tick(instance)
    assert [r.partition_key for r in result.run_requests] == ["campaign-2026-11-print"]
    assert instance.get_dynamic_partitions("campaigns") == ["campaign-2026-11-print"]
    logged = capfd.readouterr()
    assert "1 of 2 objects under landing/campaigns/ skipped" in logged.err
    # Neither the log nor the cursor (stored in the instance) holds the name.
    for text in (logged.out + logged.err, result.cursor or ""):
        assert name not in text and ascii(name)[1:-1] not in text
    # The skip is recorded once: the next tick neither requests nor logs it again.
    again = tick(instance, result.cursor)
    assert again.run_requests == []
    assert "skipped" not in capfd.readouterr().err


@pytest.mark.parametrize("name", HOSTILE)
def test_folder_names_are_checked_where_used(name):
    with pytest.raises(UnsafePathError) as err:
        check_folder_name(name)
    assert name not in str(err.value) and ascii(name)[1:-1] not in str(err.value)


def test_only_a_content_version_may_follow_an_at_sign():
    assert check_partition_key("a.json@0123456789ab") == "a.json@0123456789ab"
    for key in ("zebulon.probe@example.org", "a@b.json@0123456789ab", "a.json@0123456789AB"):
        with pytest.raises(UnsafePathError):
            check_partition_key(key)
