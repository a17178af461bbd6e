"""`make demo`: sample sources in, the whole asset graph materialized on the embedded default.

Runs go through the real Dagster instance under $DAGSTER_HOME, so `make dev` shows the same
materializations, checks and partitions afterwards. Safe to run twice: sources are regenerated
byte for byte, blobs are content-addressed and every partition write replaces its partition.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl

from identity_data.dagster_private import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    RUN_KEY_TAG,
    SENSOR_NAME_TAG,
    CodeLocation,
    save_sensor_cursor,
    sensor_cursor,
    wrap_resources_for_execution,
)
from identity_data.definitions import defs as load_defs
from identity_data.definitions import materializable
from identity_data.defs.automation import AUTOMATION_SENSORS
from identity_data.defs.labels.assets import UNMATCHED
from identity_data.defs.labels.sensors import EXPORT_QUARANTINE, label_export_sensor
from identity_data.defs.raw.sensors import campaign_sensor
from identity_data.sample import generate
from identity_data.settings import (
    ENV,
    LocalSettings,
    SettingsError,
    ensure_local_key,
    resolve_settings,
)
from identity_data.sources import SOURCES, CaptureSource

# What `make demo` sets up by hand, as an operator would: a backfill of the sample's capture days
# for every daily source (in production the daily schedule extracts each day as it ends).
# Everything after it is what the daemon would launch: the drop sensors' runs and the automation
# sensors' runs, tick by tick. Statically partitioned sources (open datasets) are imported by hand
# too, one partition per dataset.
DAILY_SOURCES = [s for s in SOURCES if isinstance(s.partitions_def, dg.DailyPartitionsDefinition)]
STATIC_SOURCES = [s for s in SOURCES if isinstance(s.partitions_def, dg.StaticPartitionsDefinition)]
# The sample's last capture day: fixed, so README's commands name days inside the sample.
SAMPLE_END = date(2026, 11, 28)
MAX_TICKS = 30
# workspace.yaml's location; a Definitions object is the repository "__repository__".
LOCATION_NAME = "identity_data"
REPOSITORY_NAME = "__repository__"
RANGE_START, RANGE_END = ASSET_PARTITION_RANGE_START_TAG, ASSET_PARTITION_RANGE_END_TAG


@dataclass
class Tally:
    started: float = field(default_factory=time.monotonic)
    checks_passed: int = 0
    checks_failed: list[str] = field(default_factory=list)
    checks_warned: list[str] = field(default_factory=list)
    failed_runs: list[str] = field(default_factory=list)
    runs: int = 0

    def say(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {message}", flush=True)


class Demo:
    """The daemon's path in one process: the definitions' own sensors evaluated against the
    instance, their run requests executed in order, their cursors stored where the daemon
    reads them, so `make dev` afterwards starts exactly where this left off."""

    def __init__(self, instance: dg.DagsterInstance, tally: Tally) -> None:
        self.instance, self.tally = instance, tally
        self.defs = load_defs()
        self.assets = materializable(self.defs)
        self.resources = dict(self.defs.resources or {})
        self.repository = self.defs.get_repository_def()
        self.sensors = [
            self.repository.get_sensor_def(name)
            for name in (campaign_sensor.name, label_export_sensor.name, *AUTOMATION_SENSORS)
        ]
        self.automation = self.sensors[-len(AUTOMATION_SENSORS) :]

    def run(self, label: str, selection: dg.AssetSelection, **kwargs) -> None:
        self.tally.say(f"materializing {label}")
        self.tally.runs += 1
        result = dg.materialize(
            self.assets,
            selection=selection,
            instance=self.instance,
            resources=self.resources,
            raise_on_error=False,
            # Progress lines come from this script; Dagster's own events stay in the instance.
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            **kwargs,
        )
        for evaluation in result.get_asset_check_evaluations():
            name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
            if evaluation.passed:
                self.tally.checks_passed += 1
            elif evaluation.severity == dg.AssetCheckSeverity.WARN:
                self.tally.checks_warned.append(name)
            else:
                self.tally.checks_failed.append(name)
        if not result.success:
            self.tally.failed_runs.append(label)
            self.tally.say(f"  run FAILED: {label}")

    def backfill(self, source: CaptureSource, days: list[str]) -> None:
        """One single-run backfill of a daily range, as `dg launch --partition-range` runs it."""
        keys = raw_keys(source)
        self.run(
            f"{', '.join(k.to_user_string() for k in keys)} {days[0]}...{days[-1]}",
            dg.AssetSelection.assets(*keys),
            tags=range_tags(days[0], days[-1]),
        )

    def import_static(self, source: CaptureSource) -> None:
        keys = raw_keys(source)
        for partition in source.partitions_def.get_partition_keys():
            self.run(
                f"{', '.join(k.to_user_string() for k in keys)} {partition}",
                dg.AssetSelection.assets(*keys),
                partition_key=partition,
            )

    def start(self, days: list[str], *, open_datasets: bool = True) -> None:
        """What the operator does; everything after it (`settle`) is the sensors'. Automation
        conditions react to changes since their previous tick, so the automation sensors tick
        once first, as the daemon's do when it starts, and every later change counts. The
        backfill comes before the first drop-sensor tick, so consensus and every day's tables
        run once over all of it. Tests that need no open dataset leave out its (slow) import."""
        self.tick_automation()
        for source in DAILY_SOURCES:
            self.backfill(source, days)
        if open_datasets:
            for source in STATIC_SOURCES:
                self.import_static(source)

    def tick(self, sensor: dg.SensorDefinition) -> int:
        """One tick of `sensor` as the daemon evaluates it; returns the runs it launched."""
        # Built as the daemon builds it: with an instance ref, run requests are validated
        # against the partitions the same tick adds.
        with (
            dg.SensorEvaluationContext(
                instance_ref=self.instance.get_ref(),
                cursor=sensor_cursor(self.instance, location(), sensor.name),
                repository_name=REPOSITORY_NAME,
                repository_def=self.repository,
                instance=self.instance,
                sensor_name=sensor.name,
                resources=wrap_resources_for_execution(self.resources),
            ) as context,
            dg.partition_loading_context(dynamic_partitions_store=self.instance),
        ):
            data = sensor.evaluate_tick(context)
        for request in data.dynamic_partitions_requests or []:
            self.instance.add_dynamic_partitions(
                request.partitions_def_name, list(request.partition_keys)
            )
        launched = 0
        for request in data.run_requests or []:
            if request.run_key and self.seen_run_key(sensor.name, request.run_key):
                continue
            self.execute(sensor, request)
            launched += 1
        save_sensor_cursor(self.instance, location(), sensor, data.cursor)
        return launched

    def tick_automation(self) -> int:
        """One tick of each automation sensor, annotations first; returns the runs launched."""
        return sum(self.tick(sensor) for sensor in self.automation)

    def seen_run_key(self, sensor_name: str, run_key: str) -> bool:
        tags = {SENSOR_NAME_TAG: sensor_name, RUN_KEY_TAG: run_key}
        return bool(self.instance.get_run_ids(dg.RunsFilter(tags=tags), limit=1))

    def execute(self, sensor: dg.SensorDefinition, request: dg.RunRequest) -> None:
        if request.asset_selection is not None:
            keys = list(request.asset_selection)
        else:
            if not sensor.has_jobs:
                raise ValueError(f"{sensor.name} requested a run of neither assets nor a job")
            job = self.repository.get_job(sensor.job.name)
            keys = list(job.asset_layer.selected_asset_keys)
        tags = {**request.tags, SENSOR_NAME_TAG: sensor.name}
        if request.run_key:
            tags[RUN_KEY_TAG] = request.run_key
        where = request.partition_key or tags.get(RANGE_START, "")
        if RANGE_START in tags:
            where = f"{tags[RANGE_START]}...{tags[RANGE_END]}"
        label = f"{sensor.name}: {', '.join(k.to_user_string() for k in keys)} {where}".strip()
        self.run(
            label,
            dg.AssetSelection.assets(*keys),
            partition_key=request.partition_key,
            tags=tags,
        )

    def settle(self) -> int:
        """Tick every sensor until a whole round launches nothing, as the daemon would."""
        for round_ in range(MAX_TICKS):
            launched = sum(self.tick(sensor) for sensor in self.sensors)
            if not launched:
                self.tally.say(f"sensors and automation settled after {round_ + 1} rounds")
                return round_ + 1
        raise RuntimeError(f"sensors still launching runs after {MAX_TICKS} rounds")


def raw_keys(source: CaptureSource) -> list[dg.AssetKey]:
    return [source.key("raw", "captures"), source.key("raw", "quarantine")]


def range_tags(start: str, end: str) -> dict[str, str]:
    return {RANGE_START: start, RANGE_END: end}


def location() -> CodeLocation:
    """The code location of workspace.yaml, whose sensors' state the daemon reads."""
    return CodeLocation(
        module_name="identity_data.definitions",
        attribute="defs",
        working_directory=str(Path.cwd()),
        location_name=LOCATION_NAME,
        repository_name=REPOSITORY_NAME,
    )


def summary(tally: Tally, home: Path) -> None:
    settings = resolve_settings()
    if not isinstance(settings, LocalSettings):
        raise SettingsError(f"the demo runs on the embedded default ({ENV}=local)")
    print("\nWarehouse tables (" + str(settings.duckdb_path) + "):")
    with duckdb.connect(settings.duckdb_path, read_only=True) as con:
        for (table,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema='main' ORDER BY 1"
        ).fetchall():
            (rows,) = con.execute(f'SELECT count(*) FROM "{table}"').fetchone() or (0,)
            print(f"  {table:<20} {rows:>8} rows")
    print("Quarantined rows (lake parquet):")
    tables = Path(settings.lake_url) / "tables"
    for name in (
        *(source.key("raw", "quarantine").to_user_string() for source in SOURCES),
        EXPORT_QUARANTINE.to_user_string(),
        UNMATCHED.to_user_string(),
    ):
        files = list((tables / name).rglob("*.parquet")) or list(tables.glob(f"{name}.parquet"))
        rows = sum(pl.scan_parquet(f).select(pl.len()).collect().item() for f in files)
        print(f"  {name:<32} {rows:>6}")
    print(
        f"Checks: {tally.checks_passed} passed, {len(tally.checks_warned)} warned, "
        f"{len(tally.checks_failed)} failed"
    )
    for name in tally.checks_warned:
        print(f"  warned: {name}")
    for name in tally.checks_failed:
        print(f"  failed: {name}")
    print(
        f"Files: sources and lake under {home}, Dagster instance under "
        f"{dg.DagsterInstance.get().root_directory}"
    )
    print(f"Runs: {tally.runs}, failed: {len(tally.failed_runs)}")
    print(f"Wall time: {time.monotonic() - tally.started:.1f}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--captures-per-day", type=int, default=200)
    parser.add_argument("--campaigns", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--end-date", type=date.fromisoformat, default=SAMPLE_END)
    args = parser.parse_args(argv)

    tally = Tally()
    home = Path(dg.EnvVar("IDENTITY_DATA_HOME").get_value("data") or "data").resolve()
    end = args.end_date
    tally.say(f"generating sample sources in {home} (seed {args.seed}, {args.days} days)")
    generate(
        home,
        seed=args.seed,
        days=args.days,
        captures_per_day=args.captures_per_day,
        end_date=end,
        campaigns=args.campaigns,
    )
    ensure_local_key(home)
    days = [(end - timedelta(days=n)).isoformat() for n in reversed(range(args.days))]

    demo = Demo(dg.DagsterInstance.get(), tally)
    demo.start(days)
    demo.settle()
    summary(tally, home)
    return 1 if tally.failed_runs or tally.checks_failed else 0


if __name__ == "__main__":
    sys.exit(main())
