"""BigQuery warehouse: one load job to a staging table and one MERGE per slice replacement.

Why MERGE: a single DML statement is atomic in BigQuery, so readers see either the old slice or
the new one, and re-running it after any failure (even one that hid a success) leaves exactly the
staged rows in the slice. Values are bound as query parameters; only identifiers, which come from
the pandera models and are checked below, are written into the SQL text.

Where a real-BigQuery-only fast path would fit: when a slice is exactly one DAY partition of
`spec.partition_column`, the staging table could instead be copied with a copy job, WRITE_TRUNCATE,
into the partition decorator `table$YYYYMMDD` (no DML quota, no scan of the target). The emulator
does not implement partition decorators, so `replace_slice` keeps the MERGE path, which is the
tested default and also covers slices that are not a single partition.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import uuid

import polars as pl
from google.api_core.exceptions import Conflict, NotFound
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
from google.cloud.bigquery.retry import DEFAULT_JOB_RETRY, DEFAULT_RETRY, _should_retry

from identity_data.safety import check_sql_name
from identity_data.stores.warehouse import Slice, TableSpec, check_rows_in_slice, view_predicate

_BQ_TYPES: dict[type[pl.DataType], str] = {
    pl.String: "STRING",
    pl.Int64: "INT64",
    pl.Int32: "INT64",
    pl.Float64: "FLOAT64",
    pl.Float32: "FLOAT64",
    pl.Boolean: "BOOL",
    pl.Date: "DATE",
    pl.Datetime: "TIMESTAMP",
}
# What each BigQuery type is loaded from and read back as.
_POLARS_TYPES: dict[str, pl.DataType] = {
    "STRING": pl.String(),
    "INT64": pl.Int64(),
    "FLOAT64": pl.Float64(),
    "BOOL": pl.Boolean(),
    "DATE": pl.Date(),
    "TIMESTAMP": pl.Datetime("us", "UTC"),
}
# The REST API answers with legacy names for some types.
_LEGACY_NAMES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STAGING_TTL = dt.timedelta(days=1)


def bigquery_type(dtype: pl.DataType | type[pl.DataType]) -> str:
    base = dtype.base_type() if isinstance(dtype, pl.DataType) else dtype
    try:
        return _BQ_TYPES[base]
    except KeyError:
        raise TypeError(f"no BigQuery column type for polars dtype {dtype}") from None


def bigquery_schema(spec: TableSpec) -> list[bigquery.SchemaField]:
    return [
        bigquery.SchemaField(_identifier(col), bigquery_type(dtype))
        for col, dtype in spec.columns.items()
    ]


def _identifier(name: str) -> str:
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"{name!r} is not a plain BigQuery identifier")
    return name


def _parse_timestamp(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value)
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


_PARSERS = {
    "STRING": str,
    "INT64": int,
    "FLOAT64": float,
    "BOOL": {"true": True, "false": False}.__getitem__,
    "DATE": dt.date.fromisoformat,
    "TIMESTAMP": _parse_timestamp,
}


def _param_value(spec: TableSpec, col: str, value: str) -> object:
    """The slice value (a partition key string) as the column's type, to compare like for like."""
    bq_type = bigquery_type(spec.columns[col])
    try:
        return _PARSERS[bq_type](value)
    except (KeyError, ValueError):
        raise ValueError(
            f"table {spec.name}: slice value {value!r} is not a valid {bq_type} for column {col!r}"
        ) from None


def _slice_predicate(
    spec: TableSpec, slice_: Slice, alias: str
) -> tuple[str, list[bigquery.ArrayQueryParameter]]:
    if not slice_:
        return "TRUE", []
    terms, params = [], []
    for i, (col, values) in enumerate(slice_.items()):
        if col not in spec.columns:
            raise ValueError(f"table {spec.name}: slice column {col!r} is not a table column")
        terms.append(f"{alias}`{_identifier(col)}` IN UNNEST(@slice_{i})")
        params.append(
            bigquery.ArrayQueryParameter(
                f"slice_{i}",
                bigquery_type(spec.columns[col]),
                [_param_value(spec, col, value) for value in values],
            )
        )
    return " AND ".join(terms), params


def _to_load_frame(spec: TableSpec, df: pl.DataFrame) -> pl.DataFrame:
    missing = [c for c in spec.columns if c not in df.columns]
    if missing:
        raise ValueError(f"table {spec.name}: frame lacks columns {missing}")
    exprs = []
    for col, dtype in spec.columns.items():
        target = _POLARS_TYPES[bigquery_type(dtype)]
        expr = pl.col(col)
        if isinstance(target, pl.Datetime):
            # TIMESTAMP is an instant: naive datetimes are taken as UTC, aware ones converted.
            if getattr(df.schema[col], "time_zone", None) is None:
                expr = expr.dt.replace_time_zone("UTC")
            expr = expr.dt.convert_time_zone("UTC")
        exprs.append(expr.cast(target))
    return df.select(exprs)


def _load_should_retry(exc: BaseException) -> bool:
    """Transient errors, and a 404 on the resumable-upload session itself: the session is gone
    (finished by an attempt whose answer was lost, or expired), so the load starts afresh."""
    if isinstance(exc, NotFound) and "upload_id=" in str(exc):
        return True
    # The predicate DEFAULT_RETRY uses; the client gives it no public name.
    return bool(_should_retry(exc))


def _client(project: str, location: str, emulator_host: str | None) -> bigquery.Client:
    """The production client (application default credentials, e.g. workload identity), or
    one for an emulator at `emulator_host`, which takes no credentials, like storage.Client
    under STORAGE_EMULATOR_HOST."""
    if not emulator_host:
        return bigquery.Client(project=project, location=location)
    return bigquery.Client(
        project=project,
        location=location,
        client_options={"api_endpoint": emulator_host},
        credentials=AnonymousCredentials(),
    )


class BigQueryWarehouse:
    """A BigQuery dataset whose tables are replaced slice by slice."""

    def __init__(
        self,
        project: str,
        dataset: str,
        location: str,
        client: bigquery.Client | None = None,
        retry_deadline: float = 600.0,
        retry_initial_delay: float = 1.0,
        timeout: float = 120.0,
        emulator_host: str | None = None,
    ) -> None:
        self.client = client or _client(project, location, emulator_host)
        self.project = project
        self.dataset = _identifier(dataset)
        self.location = location
        self.timeout = timeout
        # The client's own policies (429/5xx, backendError, dropped connections, timeouts),
        # bounded so a caller, and the emulator tests, can keep failures short.
        delay = {"initial": retry_initial_delay, "maximum": 30 * retry_initial_delay}
        self.retry = DEFAULT_RETRY.with_timeout(retry_deadline).with_delay(**delay)
        self.job_retry = DEFAULT_JOB_RETRY.with_timeout(retry_deadline).with_delay(**delay)
        self._ready: set[str] = set()

    def _table_id(self, name: str) -> str:
        return f"{self.project}.{self.dataset}.{_identifier(name)}"

    def _ensure_dataset(self) -> None:
        """Look the dataset up before creating it: a least-privilege deployment holds
        bigquery.dataEditor on an existing dataset but not bigquery.datasets.create on the
        project, and a create call is refused for that before "already exists" is checked."""
        dataset_id = f"{self.project}.{self.dataset}"
        try:
            self.client.get_dataset(dataset_id, retry=self.retry, timeout=self.timeout)
        except NotFound:
            dataset = bigquery.Dataset(dataset_id)
            dataset.location = self.location
            self.client.create_dataset(
                dataset, exists_ok=True, retry=self.retry, timeout=self.timeout
            )

    def ensure_table(self, spec: TableSpec) -> str:
        """Create the dataset and the partitioned, clustered table if missing; check its schema."""
        table_id = self._table_id(spec.name)
        schema = bigquery_schema(spec)
        if table_id not in self._ready:
            self._ensure_dataset()
            table = bigquery.Table(table_id, schema=schema)
            if spec.partition_column:
                table.time_partitioning = bigquery.TimePartitioning(
                    type_=bigquery.TimePartitioningType.DAY, field=spec.partition_column
                )
            if spec.cluster_columns:
                table.clustering_fields = list(spec.cluster_columns)
            table = self.client.create_table(
                table, exists_ok=True, retry=self.retry, timeout=self.timeout
            )
            found = [(f.name, _LEGACY_NAMES.get(f.field_type, f.field_type)) for f in table.schema]
            wanted = [(f.name, f.field_type) for f in schema]
            if found != wanted:
                raise ValueError(
                    f"BigQuery table {table_id} has columns {found}, the model wants {wanted}"
                )
            self._ready.add(table_id)
        return table_id

    def replace_slice(self, spec: TableSpec, df: pl.DataFrame, slice_: Slice) -> None:
        """Load `df` into a fresh staging table, then swap it in with one MERGE statement."""
        self.ensure_table(spec)
        frame = _to_load_frame(spec, df)
        check_rows_in_slice(spec, frame, slice_)
        staging_id = self._table_id(f"_staging_{spec.name}_{uuid.uuid4().hex}")
        try:
            self._load_staging(spec, frame, staging_id)
            self._merge(spec, staging_id, slice_)
        finally:
            self.client.delete_table(
                staging_id, not_found_ok=True, retry=self.retry, timeout=self.timeout
            )

    def _load_staging(self, spec: TableSpec, frame: pl.DataFrame, staging_id: str) -> None:
        staging = bigquery.Table(staging_id, schema=bigquery_schema(spec))
        # A crash before the delete below must not leave staging tables behind for ever.
        staging.expires = dt.datetime.now(dt.UTC) + _STAGING_TTL
        self.client.create_table(staging, exists_ok=True, retry=self.retry, timeout=self.timeout)
        buf = io.BytesIO()
        frame.write_parquet(buf)
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            schema=bigquery_schema(spec),
            # Truncate makes a repeated load (after a lost response) load the same rows once.
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
            create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
        )

        def load() -> None:
            job = self.client.load_table_from_file(
                buf,
                staging_id,
                rewind=True,
                location=self.location,
                job_config=config,
                timeout=self.timeout,
            )
            job.result(retry=self.retry, timeout=self.timeout)

        # The upload has no client-side retry of its own beyond chunk retries; repeat it whole,
        # which WRITE_TRUNCATE into this call's own staging table makes safe.
        self.retry.with_predicate(_load_should_retry)(load)()

    def _merge(self, spec: TableSpec, staging_id: str, slice_: Slice) -> None:
        where, params = _slice_predicate(spec, slice_, "T.")
        cols = ", ".join(f"`{_identifier(c)}`" for c in spec.columns)
        values = ", ".join(f"S.`{c}`" for c in spec.columns)
        sql = (
            f"MERGE `{self._table_id(spec.name)}` T USING `{staging_id}` S ON FALSE "
            f"WHEN NOT MATCHED BY SOURCE AND {where} THEN DELETE "
            f"WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({values})"
        )
        job = self.client.query(
            sql,
            job_config=bigquery.QueryJobConfig(query_parameters=params),
            location=self.location,
            retry=self.retry,
            job_retry=self.job_retry,
            timeout=self.timeout,
        )
        job.result(retry=self.retry, job_retry=self.job_retry, timeout=self.timeout)

    def replace_view(self, name: str, spec: TableSpec, slice_: Slice) -> None:
        """A logical view: no copy of the rows, nothing to keep in sync, no storage billed."""
        view = bigquery.Table(self._table_id(check_sql_name(name)))
        view.view_query = (
            f"SELECT * FROM `{self.ensure_table(spec)}` WHERE {view_predicate(slice_)}"
        )
        try:
            self.client.create_table(view, retry=self.retry, timeout=self.timeout)
        except Conflict:
            self.client.update_table(view, ["view_query"], retry=self.retry, timeout=self.timeout)

    def read(self, spec: TableSpec, slice_: Slice) -> pl.DataFrame:
        self.ensure_table(spec)
        where, params = _slice_predicate(spec, slice_, "")
        cols = ", ".join(f"`{_identifier(c)}`" for c in spec.columns)
        job = self.client.query(
            f"SELECT {cols} FROM `{self._table_id(spec.name)}` WHERE {where}",
            job_config=bigquery.QueryJobConfig(query_parameters=params),
            location=self.location,
            retry=self.retry,
            job_retry=self.job_retry,
            timeout=self.timeout,
        )
        table = job.result(retry=self.retry, job_retry=self.job_retry, timeout=self.timeout)
        df = pl.DataFrame(table.to_arrow(create_bqstorage_client=False))
        # Back to the model's dtypes (INT64 -> Int32 where the model says so); TIMESTAMPs come
        # back as UTC instants, like DuckDBWarehouse's TIMESTAMPTZ.
        return df.cast({c: t for c, t in spec.columns.items() if bigquery_type(t) != "TIMESTAMP"})
