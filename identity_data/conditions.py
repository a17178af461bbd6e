"""When each downstream asset runs by itself (ARCHITECTURE.md, Automation, says why for each).

Three shapes cover the graph:

- `every_partition()`: eager() over every partition, not only the latest time window, so a
  backfill or a late raw partition pulls its own downstream partitions.
- `pooled()`: for an unpartitioned asset over all partitions of its inputs. It runs when any
  input partition updates and never waits for partitions that were never materialized (a daily
  definition has hundreds of days that never held data).
- `refreshed_on_change(...)`: for a per-partition table fed by pooled assets. A pooled asset
  reports in its materialization metadata which source partitions its output changed for;
  only those partitions re-run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import polars as pl

# Metadata keys a pooled asset writes: a digest per "<source>/<partition>" of the rows the
# partition's downstream reads, and {source: [partition, ...]} whose digest changed.
PARTITION_DIGESTS = "partition_digests"
CHANGED_PARTITIONS = "changed_partitions"
PARTITION_COLUMNS = ("source", "source_partition")
PAGE = 100

AC = dg.AutomationCondition


def _waits() -> dg.AutomationCondition:
    return ~AC.any_deps_in_progress() & ~AC.in_progress()


def _ready(awaiting: Sequence[dg.AssetKey]) -> dg.AutomationCondition:
    """_waits(), and false while one of `awaiting`, inputs another automation sensor runs, is
    due: its own inputs updated after its latest materialization. That sensor's request never
    counts as will_be_requested() here, and its run may not exist yet when this sensor ticks."""
    if not awaiting:
        return _waits()
    due = AC.any_deps_updated().since(AC.newly_updated())
    return ~AC.any_deps_match(due).allow(dg.AssetSelection.assets(*awaiting)) & _waits()


def every_partition(awaiting: Sequence[dg.AssetKey] = ()) -> dg.AutomationCondition:
    """eager(), minus its latest-time-window restriction; waits for the `awaiting` inputs
    another sensor is due to refresh."""
    return (
        (AC.newly_missing() | AC.any_deps_updated()).since_last_handled()
        & ~AC.any_deps_missing()
        & _ready(awaiting)
    ).with_label("eager_every_partition")


def pooled() -> dg.AutomationCondition:
    """Any input partition updated; absent input partitions are simply not read."""
    trigger = AC.newly_missing() | AC.any_deps_updated()
    return (trigger.since_last_handled() & _waits()).with_label("pooled")


class ReportedChange(dg.AutomationCondition[dg.AssetKey]):
    """True for the partitions that a materialization of a reporter since the previous tick
    lists under CHANGED_PARTITIONS for `source`."""

    def __init__(self, reporters: Sequence[dg.AssetKey], source: str) -> None:
        self.reporters, self.source = tuple(reporters), source

    @property
    def name(self) -> str:
        return f"changed_in({', '.join(k.to_user_string() for k in self.reporters)})"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        previous = context.previous_max_storage_id
        if previous is None:
            return dg.AutomationResult(context=context, true_subset=context.get_empty_subset())
        view = context.asset_graph_view
        keys: set[str] = set()
        for reporter in self.reporters:
            keys |= _reported(view.instance, reporter, previous, view.last_event_id, self.source)
        partitions_def = view.asset_graph.get(context.key).partitions_def
        with dg.partition_loading_context(dynamic_partitions_store=view.instance):
            valid = {k for k in keys if partitions_def.has_partition_key(k)}
        subset = view.get_subset_from_partition_keys(context.key, partitions_def, valid)
        return dg.AutomationResult(
            context=context, true_subset=subset.compute_intersection(context.candidate_subset)
        )


class ReporterRequested(dg.AutomationCondition[dg.AssetKey]):
    """True for every candidate partition while a reporter is requested this tick.

    Dagster's will_be_requested() counts only deps that can run in the same run as the asset,
    which an unpartitioned reporter and a daily table never can; without this guard a day's
    table runs next to the consensus run that is about to change it, then once more."""

    def __init__(self, reporters: Sequence[dg.AssetKey]) -> None:
        self.reporters = tuple(reporters)

    @property
    def name(self) -> str:
        return f"requested({', '.join(k.to_user_string() for k in self.reporters)})"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        requested = context.request_subsets_by_key
        if any(key in requested and not requested[key].is_empty for key in self.reporters):
            return dg.AutomationResult(context=context, true_subset=context.candidate_subset)
        return dg.AutomationResult(context=context, true_subset=context.get_empty_subset())


def _reported(
    instance: dg.DagsterInstance, key: dg.AssetKey, after: int, until: int | None, source: str
) -> set[str]:
    # Bounded by this tick's last event id: a later event is read on the next tick, once.
    records_filter = dg.AssetRecordsFilter(
        asset_key=key,
        after_storage_id=after,
        before_storage_id=None if until is None else until + 1,
    )
    keys: set[str] = set()
    cursor = None
    while True:
        page = instance.fetch_materializations(
            records_filter, limit=PAGE, cursor=cursor, ascending=True
        )
        for record in page.records:
            materialization = record.asset_materialization
            changed = _json_object(materialization, CHANGED_PARTITIONS) if materialization else None
            keys |= set(changed.get(source, [])) if changed else set()
        if not page.has_more:
            return keys
        cursor = page.cursor


def refreshed_on_change(
    reporters: Sequence[dg.AssetKey], source: str, awaiting: Sequence[dg.AssetKey] = ()
) -> dg.AutomationCondition:
    """Missing, or an own-partition input updated, or a pooled input changed this partition.

    Waits while a reporter is about to run, so a partition is not built from the old pooled
    output just before the new one lands, and for the `awaiting` inputs as every_partition."""
    reporting = dg.AssetSelection.assets(*reporters)
    trigger = (
        AC.newly_missing()
        | AC.any_deps_updated().ignore(reporting)
        | ReportedChange(reporters, source)
    )
    return (
        # Dagster types since_last_handled() for asset-or-check conditions only; unlike since(),
        # it lacks the overloads for an asset-only operand such as ReportedChange.
        trigger.since_last_handled()  # pyright: ignore[reportAttributeAccessIssue]
        & ~AC.any_deps_missing()
        & ~ReporterRequested(reporters)
        & _ready(awaiting)
    ).with_label("refreshed_on_change")


def partition_digests(rows: pl.DataFrame, columns: Sequence[str]) -> dict[str, str]:
    """A digest of `columns` per "<source>/<partition>", independent of row order."""
    digests = {}
    for (source, partition), group in rows.group_by(*PARTITION_COLUMNS):
        body = group.select(columns).sort(columns).write_csv().encode()
        digests[f"{source}/{partition}"] = hashlib.md5(body, usedforsecurity=False).hexdigest()[:16]
    return dict(sorted(digests.items()))


def change_metadata(
    previous: Mapping[str, str] | None, current: Mapping[str, str]
) -> dict[str, dg.MetadataValue]:
    """The digests, and the partitions whose digest differs from the previous materialization."""
    before = dict(previous or {})
    changed: dict[str, list[str]] = {}
    for name in sorted(set(before) | set(current)):
        if before.get(name) != current.get(name):
            source, _, partition = name.partition("/")
            changed.setdefault(source, []).append(partition)
    return {
        PARTITION_DIGESTS: dg.MetadataValue.json(dict(current)),
        CHANGED_PARTITIONS: dg.MetadataValue.json(changed),
    }


def previous_digests(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str, str] | None:
    event = instance.get_latest_materialization_event(key)
    materialization = event.asset_materialization if event else None
    digests = _json_object(materialization, PARTITION_DIGESTS) if materialization else None
    return None if digests is None else dict(digests)


def _json_object(materialization: dg.AssetMaterialization, key: str) -> Mapping[str, Any] | None:
    """The JSON object a pooled asset wrote under metadata `key`; None when it wrote none."""
    entry = materialization.metadata.get(key)
    if entry is None:
        return None
    if not isinstance(entry, dg.JsonMetadataValue) or not isinstance(entry.data, Mapping):
        raise TypeError(
            f"{materialization.asset_key.to_user_string()}: metadata {key} is not a JSON object"
        )
    return entry.data
