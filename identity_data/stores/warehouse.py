"""Warehouse tables: DuckDB by default, BigQuery in production, one atomic write per slice."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import duckdb
import pandera.polars as pa
import polars as pl
import polars.selectors as cs


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
    schema = model.to_schema()
    columns = {col: spec.dtype.type for col, spec in schema.columns.items()}
    return TableSpec(name, columns, partition_column, cluster_columns)


# Column -> accepted values: the rows one partition (or a partition range) owns in a table.
Slice = Mapping[str, Sequence[str]]


class WarehouseBackend(Protocol):
    """What the warehouse IO manager needs from a warehouse."""

    def replace_slice(self, spec: TableSpec, df: pl.DataFrame, slice_: Slice) -> None:
        """Atomically replace the rows whose `slice_` columns hold one of the listed values
        (every row if `slice_` is empty) with `df`."""
        ...

    def read(self, spec: TableSpec, slice_: Slice) -> pl.DataFrame: ...


_DUCKDB_TYPES: dict[type[pl.DataType], str] = {
    pl.String: "VARCHAR",
    pl.Int64: "BIGINT",
    pl.Int32: "INTEGER",
    pl.Float64: "DOUBLE",
    pl.Float32: "FLOAT",
    pl.Boolean: "BOOLEAN",
    pl.Date: "DATE",
    pl.Datetime: "TIMESTAMPTZ",
}


def duckdb_type(dtype: pl.DataType) -> str:
    base = dtype.base_type() if isinstance(dtype, pl.DataType) else dtype
    if base is pl.List:
        return f"{duckdb_type(dtype.inner)}[]"
    return _DUCKDB_TYPES[base]


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


class DuckDBWarehouse:
    """A DuckDB file; each slice replacement is one transaction."""

    def __init__(self, path: str | Path, schema: str = "main") -> None:
        self.path = str(path)
        self.schema = schema

    def _connect(self) -> duckdb.DuckDBPyConnection:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        return duckdb.connect(self.path)

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

    def read(self, spec: TableSpec, slice_: Slice) -> pl.DataFrame:
        where, params = _where(slice_)
        with self._connect() as con:
            table = self._ensure_table(con, spec)
            frame = con.execute(f"SELECT * FROM {table} WHERE {where}", params).pl()
        # DuckDB names the zone "Etc/UTC"; BigQuery and the pandera models say "UTC".
        return frame.with_columns(cs.datetime(time_zone="*").dt.convert_time_zone("UTC"))
