"""`make demo`: sample sources in, the whole asset graph materialized on the embedded default.

Runs go through the real Dagster instance under $DAGSTER_HOME, so `make dev` shows the same
materializations, checks and partitions afterwards. Safe to run twice: sources are regenerated
byte for byte, blobs are content-addressed and every partition write replaces its partition.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl

from identity_data.definitions import defs as load_defs
from identity_data.defs.labels.assets import EXPORT_ANNOTATIONS, EXPORT_QUARANTINE
from identity_data.defs.labels.sensors import label_export_sensor
from identity_data.defs.raw.assets import SOURCES, CaptureSource
from identity_data.defs.raw.sensors import campaign_sensor
from identity_data.sample import generate
from identity_data.settings import ensure_local_key, resolve_settings

LABEL_KEYS = [
    dg.AssetKey(["labels", "consensus_labels"]),
    dg.AssetKey(["annotations", "near_duplicates"]),
]


@dataclass
class Tally:
    started: float = field(default_factory=time.monotonic)
    checks_passed: int = 0
    checks_failed: list[str] = field(default_factory=list)
    checks_warned: list[str] = field(default_factory=list)
    failed_runs: list[str] = field(default_factory=list)

    def say(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {message}", flush=True)


class Demo:
    def __init__(self, instance: dg.DagsterInstance, tally: Tally) -> None:
        self.instance, self.tally = instance, tally
        self.defs = load_defs()
        self.assets = list(self.defs.assets or [])
        self.resources = dict(self.defs.resources or {})

    def run(self, label: str, selection: dg.AssetSelection, **kwargs) -> None:
        self.tally.say(f"materializing {label}")
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

    def discover(self, sensor: dg.SensorDefinition) -> list[str]:
        """Evaluate a sensor exactly as the daemon would and register its partitions."""
        context = dg.build_sensor_context(instance=self.instance, resources=self.resources)
        result = sensor(context)
        for request in result.dynamic_partitions_requests or []:
            self.instance.add_dynamic_partitions(
                request.partitions_def_name, list(request.partition_keys)
            )
        return sorted({r.partition_key for r in result.run_requests or []})

    def materialize_graph(
        self, sources: Sequence[CaptureSource], days: list[str]
    ) -> tuple[list[str], list[str]]:
        """The whole graph in dependency order, as the sensors and automation would launch it;
        returns the campaign and label-export partitions the sensors found."""
        campaigns = self.discover(campaign_sensor)
        exports = self.discover(label_export_sensor)
        self.tally.say(f"sensors found {len(campaigns)} campaigns, {len(exports)} label exports")
        runs = [(s, run) for s in sources for run in partition_runs(s, days, campaigns)]
        for source, run in runs:
            tables = ("captures", "annotations")
            self.run(f"{source.name} {run}", source_selection(source, tables), **run)
        for export in exports:
            self.run(
                f"label export {export}",
                dg.AssetSelection.assets(EXPORT_ANNOTATIONS, EXPORT_QUARANTINE),
                partition_key=export,
            )
        self.run(
            "consensus and near-duplicates",
            dg.AssetSelection.assets(*LABEL_KEYS).required_multi_asset_neighbors()
            | dg.AssetSelection.assets(
                dg.AssetKey(["warehouse", "labels"]),
                dg.AssetKey(["warehouse", "annotator_quality"]),
            ),
        )
        for source, run in runs:
            self.run(
                f"{source.name} training examples {run}",
                dg.AssetSelection.assets(source.key("warehouse", "training_examples")),
                **run,
            )
        return campaigns, exports


def source_selection(source, tables: tuple[str, ...]) -> dg.AssetSelection:
    keys = [
        source.key("raw", "captures"),
        source.key("raw", "quarantine"),
        source.key("annotations", "annotations"),
    ]
    keys += [source.key("warehouse", t) for t in tables]
    return dg.AssetSelection.assets(*keys)


def partition_runs(source, days: list[str], campaigns: list[str]) -> list[dict]:
    if source.name == "production":
        return [
            {
                "tags": {
                    "dagster/asset_partition_range_start": days[0],
                    "dagster/asset_partition_range_end": days[-1],
                }
            }
        ]
    keys = campaigns if source.name == "campaign" else source.partitions_def.get_partition_keys()
    return [{"partition_key": key} for key in keys]


def summary(tally: Tally, home: Path) -> None:
    settings = resolve_settings()
    print("\nWarehouse tables (" + str(settings.duckdb_path) + "):")
    with duckdb.connect(settings.duckdb_path, read_only=True) as con:
        for (table,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema='main' ORDER BY 1"
        ).fetchall():
            rows = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
            print(f"  {table:<20} {rows:>8} rows")
    print("Quarantined rows (lake parquet):")
    tables = Path(settings.lake_url) / "tables"
    for name in (
        "raw/production_quarantine",
        "raw/campaign_quarantine",
        "raw/open_dataset_quarantine",
        "labels/export_quarantine",
        "labels/unmatched_annotations",
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
    print(f"Wall time: {time.monotonic() - tally.started:.1f}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--captures-per-day", type=int, default=200)
    parser.add_argument("--campaigns", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    tally = Tally()
    home = Path(dg.EnvVar("IDENTITY_DATA_HOME").get_value("data") or "data").resolve()
    end = datetime.now(UTC).date() - timedelta(days=1)
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

    Demo(dg.DagsterInstance.get(), tally).materialize_graph(SOURCES, days)
    summary(tally, home)
    return 1 if tally.failed_runs or tally.checks_failed else 0


if __name__ == "__main__":
    sys.exit(main())
