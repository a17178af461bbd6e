"""Parquet IO manager for the lake: a local folder or gs://, one file per partition."""

# No `from __future__ import annotations`: Dagster reads the nested `deployment` annotation when
# the class is created, and only a real class lets it accept the deployment configured at launch.

import contextlib
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
from dagster_polars import PolarsParquetIOManager
from dagster_polars.io_managers.utils import get_metadata_schema
from pydantic import PrivateAttr
from upath import UPath

from identity_data.contracts import ALLOW_MISSING_PARTITIONS, PARTITION_COLUMN
from identity_data.dagster_private import is_dict_type
from identity_data.metadata import add_partition_metadata, partition_metadata
from identity_data.safety import UnsafePathError, check_partition_key
from identity_data.stores.deployment import Deployment

# A write's temporary file: the `.tmp` suffix matches no reader's `*.parquet`; one older than
# STALE_TMP_SECONDS is a killed write's leftover and is removed by the next write beside it.
TMP_PREFIX = ".tmp-"
STALE_TMP_SECONDS = 3600


def _present(paths: dict[str, UPath]) -> dict[str, UPath]:
    """The paths that exist, from one listing per folder instead of one lookup per partition."""
    folders = {path.parent for path in paths.values()}
    existing = {str(child) for folder in folders if folder.exists() for child in folder.iterdir()}
    return {key: path for key, path in paths.items() if str(path) in existing}


def _is_local(path: UPath) -> bool:
    return getattr(path, "protocol", "") in ("", "file", "local")


@contextlib.contextmanager
def _replaced_atomically(path: UPath) -> Iterator[UPath]:
    """A temporary sibling of the local `path`, renamed onto it once written, so a reader sees the
    old file or the new one, never half of one; a failed write leaves no temporary behind."""
    _sweep_stale_tmp(Path(str(path)).parent)
    tmp = path.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}-{path.name}.tmp")
    try:
        yield tmp
        tmp.rename(path)
    finally:
        tmp.unlink(missing_ok=True)


def _sweep_stale_tmp(folder: Path) -> None:
    """Remove killed writes' temporary files; a fresh one may belong to a write in progress."""
    cutoff = time.time() - STALE_TMP_SECONDS
    for leftover in folder.glob(f"{TMP_PREFIX}*") if folder.is_dir() else ():
        try:
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()
        except FileNotFoundError:
            continue


def _concat(frames: list[Any]) -> Any:
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()


class LakeIOManager(PolarsParquetIOManager):
    """dagster-polars' parquet IO manager, rooted in the deployment's lake (or `base_dir`).

    Two additions: an output covering several partitions (a single-run backfill) is split into
    one file per partition by its `source_partition` column, and several partitions load as one
    frame. Local files are written under a temporary name and renamed, so a crashed write never
    leaves half a partition; GCS object writes are atomic by themselves.
    """

    # The run's deployment, whose settings were resolved once at launch.
    deployment: Deployment
    # (run id, path) of every file written by this process: two outputs never share one path.
    _written: set[tuple[str, str]] = PrivateAttr(default_factory=set)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        base = self.base_dir or f"{self.deployment.settings.lake_url}/tables"
        self._base_path = UPath(base, **dict(self.cloud_storage_options or {}))

    def get_metadata(
        self, context: dg.OutputContext, obj: pl.DataFrame | pl.LazyFrame | None
    ) -> dict[str, dg.MetadataValue]:
        # The parent adds a row sample and describe() (min/max of every column). Capture rows are
        # special-category data, so only the schema and the row count reach Dagster's metadata.
        if obj is None:
            return {"missing": dg.MetadataValue.bool(True)}
        metadata: dict[str, dg.MetadataValue] = {
            "dagster/column_schema": dg.MetadataValue.table_schema(get_metadata_schema(obj))
        }
        if isinstance(obj, pl.DataFrame):
            metadata["dagster/row_count"] = dg.MetadataValue.int(obj.height)
        return metadata

    def sink_df_to_path(self, context: dg.OutputContext, df: pl.LazyFrame, path: UPath) -> Any:
        """Stream a lazy frame into one file without collecting it: locally under a temporary
        name then renamed; to GCS through a local temporary file, uploaded as one object
        (polars' native object-store client takes neither gcsfs credentials nor an emulator
        endpoint)."""
        if _is_local(path):
            with _replaced_atomically(path) as tmp:
                super().sink_df_to_path(context, df, tmp)
            return None
        with tempfile.TemporaryDirectory(prefix="lake-") as folder:
            local = Path(folder) / path.name
            super().sink_df_to_path(context, df, UPath(str(local)))
            path.fs.put_file(str(local), path.path)
        return None

    def scan_df_from_path(
        self, path: UPath, context: dg.InputContext, partition_key: str | None = None
    ) -> pl.LazyFrame:
        if _is_local(path):
            return super().scan_df_from_path(path, context, partition_key)
        with path.open("rb") as fh:
            return pl.read_parquet(fh).lazy()

    def get_path_for_partition(
        self, context: dg.InputContext | dg.OutputContext, path: UPath, partition: str
    ) -> UPath:
        # The UI and the API accept any partition key; this one is about to become a file name.
        check_partition_key(partition, f"{context.asset_key.to_user_string()} partition")
        full = super().get_path_for_partition(context, path, partition)
        if _is_local(full) and not Path(full.path).resolve().is_relative_to(
            Path(path.path).resolve()
        ):
            raise UnsafePathError(f"partition {partition} resolves outside {path}")
        return full

    def _claim(self, context: dg.OutputContext, path: UPath) -> None:
        claim = (context.run_id, str(path))
        if claim in self._written:
            raise UnsafePathError(
                f"{context.asset_key.to_user_string()}: {path} was already written by another "
                "output of this run; refusing to overwrite it"
            )
        self._written.add(claim)

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        self._claim(context, path)
        super().dump_to_path(context, obj, path)

    def write_df_to_path(
        self, context: dg.OutputContext, df: pl.DataFrame | pl.LazyFrame, path: UPath
    ) -> None:
        # dagster-polars routes by the output's annotation, not by the object: an un-annotated
        # lazy output (the raw zone's spilled batches) lands here and is streamed, not collected.
        if isinstance(df, pl.LazyFrame):
            self.sink_df_to_path(context, df, path)
            return
        if not _is_local(path):
            super().write_df_to_path(context, df, path)
            return
        with _replaced_atomically(path) as tmp:
            super().write_df_to_path(context, df, tmp)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if not context.has_asset_partitions or len(context.asset_partition_keys) == 1:
            super().handle_output(context, obj)
            return
        # A lazy output (the raw zone's spilled batches) is split without collecting it.
        frame = obj if isinstance(obj, pl.LazyFrame) else obj.lazy()
        paths = self._get_paths_for_partitions(context)
        present = frame.select(pl.col(PARTITION_COLUMN).unique()).collect()[PARTITION_COLUMN]
        unknown = set(present.to_list()) - set(paths)
        if unknown:
            raise ValueError(
                f"{context.asset_key.to_user_string()}: rows for partitions outside this run: "
                f"{sorted(unknown)[:5]}"
            )
        for key, path in paths.items():
            self.make_directory(path.parent)
            self._claim(context, path)
            part = frame.filter(pl.col(PARTITION_COLUMN) == key)
            self.sink_df_to_path(context, part, path)
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
            if context.definition_metadata.get(ALLOW_MISSING_PARTITIONS)
            else super().load_partitions(context)
        )
        if isinstance(loaded, dict) and not is_dict_type(context.dagster_type.typing_type):
            return _concat(list(loaded.values()))
        return loaded
