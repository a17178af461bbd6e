"""Parquet IO manager for the lake: a local folder or gs://, one file per partition."""

from __future__ import annotations

import uuid
from typing import Any

import dagster as dg
import polars as pl
from dagster._core.storage.upath_io_manager import is_dict_type
from dagster_polars import PolarsParquetIOManager
from dagster_polars.io_managers.utils import get_metadata_schema
from upath import UPath

from identity_data.metadata import add_partition_metadata, partition_metadata
from identity_data.settings import resolve_settings

PARTITION_COLUMN = "source_partition"


def _present(paths: dict[str, UPath]) -> dict[str, UPath]:
    """The paths that exist, from one listing per folder instead of one lookup per partition."""
    folders = {path.parent for path in paths.values()}
    existing = {str(child) for folder in folders if folder.exists() for child in folder.iterdir()}
    return {key: path for key, path in paths.items() if str(path) in existing}


def _is_local(path: UPath) -> bool:
    return getattr(path, "protocol", "") in ("", "file", "local")


def _concat(frames: list[Any]) -> Any:
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()


class LakeIOManager(PolarsParquetIOManager):
    """dagster-polars' parquet IO manager, rooted in the deployment's lake (or `base_dir`).

    Two additions: an output covering several partitions (a single-run backfill) is split into
    one file per partition by its `source_partition` column, and several partitions load as one
    frame. Local files are written under a temporary name and renamed, so a crashed write never
    leaves half a partition; GCS object writes are atomic by themselves.
    """

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        base = self.base_dir or f"{resolve_settings().lake_url}/tables"
        self._base_path = UPath(base, **dict(self.cloud_storage_options or {}))

    def get_metadata(
        self, context: dg.OutputContext, obj: pl.DataFrame | pl.LazyFrame | None
    ) -> dict[str, dg.MetadataValue]:
        # The parent adds a row sample and describe() (min/max of every column). Capture rows are
        # special-category data, so only the schema and the row count reach Dagster's metadata.
        if obj is None:
            return {"missing": dg.MetadataValue.bool(True)}
        metadata = {"dagster/column_schema": get_metadata_schema(obj)}
        if isinstance(obj, pl.DataFrame):
            metadata["dagster/row_count"] = dg.MetadataValue.int(obj.height)
        return metadata

    def sink_df_to_path(self, context: dg.OutputContext, df: pl.LazyFrame, path: UPath) -> Any:
        if _is_local(path):
            return super().sink_df_to_path(context, df, path)
        # polars' native object-store client takes neither gcsfs credentials nor an emulator
        # endpoint; the parent's eager writer goes through the UPath's fsspec handle.
        return self.write_df_to_path(context, df.collect(), path)

    def scan_df_from_path(
        self, path: UPath, context: dg.InputContext, partition_key: str | None = None
    ) -> pl.LazyFrame:
        if _is_local(path):
            return super().scan_df_from_path(path, context, partition_key)
        with path.open("rb") as fh:
            return pl.read_parquet(fh).lazy()

    def write_df_to_path(self, context: dg.OutputContext, df: pl.DataFrame, path: UPath) -> None:
        if not _is_local(path):
            super().write_df_to_path(context, df, path)
            return
        tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
        try:
            super().write_df_to_path(context, df, tmp)
            tmp.rename(path)
        finally:
            tmp.unlink(missing_ok=True)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if not context.has_asset_partitions or len(context.asset_partition_keys) == 1:
            super().handle_output(context, obj)
            return
        frame = obj.collect() if isinstance(obj, pl.LazyFrame) else obj
        paths = self._get_paths_for_partitions(context)
        unknown = set(frame[PARTITION_COLUMN].unique().to_list()) - set(paths)
        if unknown:
            raise ValueError(
                f"{context.asset_key.to_user_string()}: rows for partitions outside this run: "
                f"{sorted(unknown)[:5]}"
            )
        for key, path in paths.items():
            self.make_directory(path.parent)
            part = frame.filter(pl.col(PARTITION_COLUMN) == key)
            self.write_df_to_path(context, part, path)
            add_partition_metadata(
                context,
                key,
                {
                    "path": dg.MetadataValue.path(str(path)),
                    **partition_metadata(part),
                },
            )
        context.add_output_metadata({"partitions": len(paths)})

    def _load_present(self, context: dg.InputContext) -> dict[str, Any]:
        """All materialized partitions among those asked for: a lake-wide input over a daily
        asset asks for every day since the start date, most of which may never have run."""
        present = _present(self._get_paths_for_partitions(context))
        return {key: self.load_from_path(context, path) for key, path in sorted(present.items())}

    def load_input(self, context: dg.InputContext) -> Any:
        loaded = super().load_input(context)
        # A dynamic partitions definition with no partitions yet loads as an empty frame.
        if loaded is None and context.has_asset_partitions:
            return pl.DataFrame()
        return loaded

    def load_partitions(self, context: dg.InputContext) -> Any:
        loaded = (
            self._load_present(context)
            if context.definition_metadata.get("allow_missing_partitions")
            else super().load_partitions(context)
        )
        if isinstance(loaded, dict) and not is_dict_type(context.dagster_type.typing_type):
            return _concat(list(loaded.values()))
        return loaded
