"""An output built batch by batch: each batch goes to a local parquet file as it comes, with
its schema failures and value counts tallied, so memory holds one batch, never the day. The
IO manager then streams the files into the lake (`LakeIOManager.sink_df_to_path`)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandera.polars as pa
import polars as pl

from identity_data.validation import FAILURE_SCHEMA, empty_frame, schema_failures


class Spill:
    """The batches of one output of one run, under `folder`, validated against `model`."""

    def __init__(
        self, folder: Path, name: str, model: type[pa.DataFrameModel], tally: tuple[str, ...]
    ) -> None:
        self.folder, self.name, self.model = folder, name, model
        self.files: list[Path] = []
        self.rows = 0
        self.counts: dict[str, Counter] = {column: Counter() for column in tally}
        self._failures = [pl.DataFrame(schema=FAILURE_SCHEMA)]

    def add(self, batch: pl.DataFrame) -> None:
        if not batch.height:
            return
        self._failures.append(schema_failures(batch, self.model))
        for column, counter in self.counts.items():
            counter.update(dict(batch[column].value_counts().iter_rows()))
        path = self.folder / f"{self.name}-{len(self.files):06d}.parquet"
        batch.write_parquet(path, statistics=True)
        self.files.append(path)
        self.rows += batch.height

    @property
    def failures(self) -> pl.DataFrame:
        return pl.concat(self._failures)

    def value_counts(self, column: str) -> dict[str, int]:
        """Counts of each non-null value of a tallied column over every batch."""
        return {k: v for k, v in self.counts[column].items() if k is not None}

    def frame(self) -> pl.LazyFrame:
        """Every batch, in order, as one lazy frame (read as it is written out)."""
        if not self.files:
            return empty_frame(self.model).lazy()
        return pl.scan_parquet(self.files, schema=empty_frame(self.model).schema)
