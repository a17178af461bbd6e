"""The label-export sensor across restarts, bursts, changed content and empty files."""

import json
from pathlib import Path

import dagster as dg
import pytest

from identity_data.defs.labels.sensors import export_file, export_partition, label_export_sensor
from identity_data.safety import UnsafePathError
from identity_data.stores.deployment import Deployment
from identity_data_tests.defs.sensor_ticks import tick as sensor_tick


@pytest.fixture
def exports(data_home: Path) -> Path:
    folder = data_home / "lake" / "label-exports"
    folder.mkdir(parents=True)
    return folder


def tick(instance: dg.DagsterInstance, cursor: str | None = None) -> dg.SensorResult:
    return sensor_tick(label_export_sensor, instance, cursor)


def write(folder: Path, name: str, tasks: list | None = None) -> None:
    (folder / name).write_text(json.dumps(tasks if tasks is not None else [{"id": name}]))


def test_each_file_once_across_restarts(instance, exports):
    write(exports, "a.json")
    write(exports, "b.json")
    first = tick(instance, None)
    assert sorted(r.partition_key.split("@")[0] for r in first.run_requests) == ["a.json", "b.json"]
    # A restart resumes from the stored cursor: nothing is requested twice.
    again = tick(instance, first.cursor)
    assert again.run_requests == []
    write(exports, "c.json")
    third = tick(instance, again.cursor)
    assert [r.partition_key.split("@")[0] for r in third.run_requests] == ["c.json"]
    assert len(instance.get_dynamic_partitions("label_exports")) == 3


def test_changed_content_is_a_new_partition(instance, exports):
    write(exports, "a.json", [{"id": 1}])
    first = tick(instance, None)
    write(exports, "a.json", [{"id": 2}])
    second = tick(instance, first.cursor)
    (old,), (new,) = first.run_requests, second.run_requests
    assert old.partition_key != new.partition_key
    assert old.run_key != new.run_key
    # Rewriting the same bytes is no change.
    write(exports, "a.json", [{"id": 2}])
    assert tick(instance, second.cursor).run_requests == []


def test_a_burst_drains_over_bounded_ticks(instance, exports):
    for n in range(60):
        write(exports, f"burst-{n:03}.json")
    cursor, seen = None, []
    for _ in range(3):
        result = tick(instance, cursor)
        assert len(result.run_requests) <= 25
        seen += [r.partition_key for r in result.run_requests]
        cursor = result.cursor
    assert len(seen) == len(set(seen)) == 60
    assert tick(instance, cursor).run_requests == []


def test_run_keys_dedupe_a_replayed_tick(instance, exports):
    write(exports, "a.json")
    first = tick(instance, None)
    replay = tick(instance, None)
    assert [r.run_key for r in replay.run_requests] == [r.run_key for r in first.run_requests]


def test_zero_byte_export_gets_a_run_that_fails_visibly(instance, exports):
    (exports / "empty.json").write_bytes(b"")
    result = tick(instance, None)
    (request,) = result.run_requests
    assert request.partition_key.startswith("empty.json@")


@pytest.mark.parametrize(
    "name",
    [
        "evil name.json",
        "\uff0e\uff0e.json",
        "..json",
        "a\u2215b.json",
        "-x.json",
        "x" * 210 + ".json",
        "zebulon.probe@example.org.json",
        "probe@0123456789ab.json",
    ],
)
def test_names_outside_the_key_grammar_are_skipped(instance, exports, name, capfd):
    (exports / name).write_text("[]  ")
    write(exports, "good.json")
    result = tick(instance, None)
    assert [r.partition_key.split("@")[0] for r in result.run_requests] == ["good.json"]
    assert [p.split("@")[0] for p in instance.get_dynamic_partitions("label_exports")] == [
        "good.json"
    ]
    assert "1 of 2 objects under label-exports/ skipped" in capfd.readouterr().err


@pytest.mark.parametrize("name", ["zebulon.probe@example.org.json", "Zébulon Quxley.json"])
def test_a_skipped_export_is_logged_and_remembered_without_its_name(instance, exports, name, capfd):
    (exports / name).write_text(json.dumps([{"id": 1}]))
    result = tick(instance, None)
    assert result.run_requests == []
    logged = capfd.readouterr()
    assert "object 1 of 1 under label-exports/" in logged.err
    stem = name.removesuffix(".json")
    for text in (logged.out + logged.err, result.cursor or ""):
        assert stem not in text and ascii(stem)[1:-1] not in text
    # Remembered (by digest) in the cursor: the next tick neither requests nor logs it again.
    assert tick(instance, result.cursor).run_requests == []
    assert "skipped" not in capfd.readouterr().err


@pytest.mark.parametrize(
    "key",
    [
        "../../../../outside/pwn",
        "x.json@abc/../../y",
        "/etc/passwd",
        "x\x00.json@0123456789ab",
        "\uff0e\uff0e\uff0fx.json@0123456789ab",
        "x.json@not-hex-at-all",
        "x.json",
        "zebulon.probe@example.org@0123456789ab",
    ],
)
def test_export_partition_keys_are_checked_where_used(key):
    with pytest.raises(UnsafePathError):
        export_file(key)


def test_empty_list_export_creates_nothing(instance, exports):
    (exports / "empty.json").write_bytes(b"\xef\xbb\xbf [ ]\n")
    assert tick(instance, None).run_requests == []


def test_partition_key_carries_content_version(data_home):
    lake = Deployment().lake
    lake.put_if_absent("label-exports/x.json", b'[{"id": 1}]')
    (info,) = lake.list("label-exports/x.json")
    assert export_partition(info, lake) == f"x.json@{info.version[:12]}"
