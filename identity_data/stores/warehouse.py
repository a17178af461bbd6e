"""Warehouse tables: DuckDB by default, BigQuery in production, one atomic write per slice."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import duckdb
import pandera.polars as pa
import polars as pl
import polars.selectors as cs
from polars.datatypes import DataTypeClass

from identity_data.safety import check_sql_name, sql_literal
from identity_data.validation import polars_schema


@dataclass(frozen=True)
class TableSpec:
    """A warehouse table: its columns, and how the warehouse lays it out."""

    name: str
    columns: Mapping[str, pl.DataType]
    partition_column: str | None = None
    cluster_columns: tuple[str, ...] = field(default_factory=tuple)


def table_spec(
    name: str,
    model: type[pa.DataFrameModel],
    partition_column: str | None = None,
    cluster_columns: tuple[str, ...] = (),
) -> TableSpec:
    """Derive a table's columns from its pandera model, the single source of the schema."""
    return TableSpec(name, polars_schema(model), partition_column, cluster_columns)


# Column -> accepted values: the rows one partition (or a partition range) owns in a table.
Slice = Mapping[str, Sequence[str]]


class WarehouseBackend(Protocol):
    """What the warehouse IO manager needs from a warehouse."""

    def replace_slice(self, spec: TableSpec, df: pl.DataFrame, slice_: Slice) -> None:
        """Atomically replace the rows whose `slice_` columns hold one of the listed values
        (every row if `slice_` is empty) with `df`."""
        ...

    def read(self, spec: TableSpec, slice_: Slice) -> pl.DataFrame: ...

    def replace_view(self, name: str, spec: TableSpec, slice_: Slice) -> None:
        """Create (or redefine) the view `name` over the rows of `slice_`: a live window on the
        table, so every later replacement of those rows (an erasure) shows through it."""
        ...


def view_predicate(slice_: Slice) -> str:
    """`slice_` as SQL text for a view definition, which takes no parameters: column names and
    values must pass the strict grammars of identity_data.safety, so nothing can break out."""
    if not slice_:
        return "TRUE"
    return " AND ".join(
        f"{check_sql_name(col)} IN ({', '.join(sql_literal(v) for v in values)})"
        for col, values in slice_.items()
    )


_DUCKDB_TYPES: dict[DataTypeClass | type[pl.DataType], str] = {
    pl.String: "VARCHAR",
    pl.Int64: "BIGINT",
    pl.Int32: "INTEGER",
    pl.Float64: "DOUBLE",
    pl.Float32: "FLOAT",
    pl.Boolean: "BOOLEAN",
    pl.Date: "DATE",
    pl.Datetime: "TIMESTAMPTZ",
}


def duckdb_type(dtype: pl.DataType | DataTypeClass) -> str:
    if isinstance(dtype, pl.List):
        return f"{duckdb_type(dtype.inner)}[]"
    return _DUCKDB_TYPES[dtype.base_type()]


def check_rows_in_slice(spec: TableSpec, df: pl.DataFrame, slice_: Slice) -> None:
    """A row outside the slice would survive a re-run of the replacement and be inserted twice."""
    for col, values in slice_.items():
        bad = df.with_row_index("_row").filter(
            ~pl.col(col).cast(pl.String).is_in(list(values)).fill_null(False)
        )
        if bad.height:
            raise ValueError(
                f"table {spec.name}: row {bad['_row'][0]} has {col}={bad[col][0]!r}, "
                f"outside the slice being replaced ({col} in {list(values)[:5]})"
            )


def _where(slice_: Slice) -> tuple[str, list[str]]:
    if not slice_:
        return "TRUE", []
    clauses = [f'"{col}" IN ({", ".join("?" * len(values))})' for col, values in slice_.items()]
    return " AND ".join(clauses), [v for values in slice_.values() for v in values]


class WarehouseLockedError(RuntimeError):
    """The DuckDB file stayed locked by another process for the whole bounded wait."""


def _is_lock_conflict(err: duckdb.Error) -> bool:
    text = str(err)
    return "Could not set lock" in text or "Conflicting lock" in text


class DuckDBWarehouse:
    """A DuckDB file; each slice replacement is one transaction.

    DuckDB allows one process to hold the file read-write, or any number read-only. A connection
    that meets another process's lock is retried with jittered exponential backoff for up to
    `lock_timeout` seconds, then fails naming the file: a notebook holding the file open (in
    either mode) delays warehouse writes until it closes its connection, and fails them after
    that wait. Reads open read-only, so they never block one another.
    """

    def __init__(self, path: str | Path, schema: str = "main", lock_timeout: float = 120.0) -> None:
        self.path = str(path)
        self.schema = schema
        self.lock_timeout = lock_timeout

    def _connect(self, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        if not read_only:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        deadline, delay = time.monotonic() + self.lock_timeout, 0.05
        while True:
            try:
                return duckdb.connect(self.path, read_only=read_only)
            except duckdb.IOException as err:
                if not _is_lock_conflict(err) or time.monotonic() + delay > deadline:
                    if _is_lock_conflict(err):
                        raise WarehouseLockedError(
                            f"{self.path} stayed locked by another process for "
                            f"{self.lock_timeout:.0f} s; close other connections to it "
                            "(e.g. a notebook) and re-run"
                        ) from None
                    raise
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 2.0)

    def _ensure_table(self, con: duckdb.DuckDBPyConnection, spec: TableSpec) -> str:
        table = f'"{self.schema}"."{spec.name}"'
        cols = ", ".join(f'"{c}" {duckdb_type(t)}' for c, t in spec.columns.items())
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({cols})")
        return table

    def replace_slice(self, spec: TableSpec, df: pl.DataFrame, slice_: Slice) -> None:
        check_rows_in_slice(spec, df, slice_)
        where, params = _where(slice_)
        with self._connect() as con:
            table = self._ensure_table(con, spec)
            con.register("staged", df.select(list(spec.columns)).to_arrow())
            con.begin()
            try:
                con.execute(f"DELETE FROM {table} WHERE {where}", params)
                con.execute(f"INSERT INTO {table} SELECT * FROM staged")
                con.commit()
            except Exception:
                con.rollback()
                raise

    def replace_view(self, name: str, spec: TableSpec, slice_: Slice) -> None:
        with self._connect() as con:
            table = self._ensure_table(con, spec)
            view = f'"{self.schema}"."{check_sql_name(name)}"'
            con.execute(
                f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM {table} "
                f"WHERE {view_predicate(slice_)}"
            )

    def read(self, spec: TableSpec, slice_: Slice) -> pl.DataFrame:
        where, params = _where(slice_)
        empty = pl.DataFrame(schema=dict(spec.columns))
        if not Path(self.path).exists():
            return empty
        with self._connect(read_only=True) as con:
            found = con.execute(
                "SELECT count(*) FROM information_schema.tables "
                "WHERE table_schema = ? AND table_name = ?",
                [self.schema, spec.name],
            ).fetchone()
            if not found or not found[0]:
                return empty
            table = f'"{self.schema}"."{spec.name}"'
            frame = con.execute(f"SELECT * FROM {table} WHERE {where}", params).pl()
        # DuckDB names the zone "Etc/UTC"; BigQuery and the pandera models say "UTC".
        return frame.with_columns(cs.datetime(time_zone="*").dt.convert_time_zone("UTC"))
