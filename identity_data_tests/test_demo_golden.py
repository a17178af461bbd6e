"""The demo's tables, row counts and check results, compared with a committed fingerprint.

A refactor must not change what the demo produces. The fingerprint of every warehouse table and
every lake table (row count + sha256 of its rows, sorted, floats rounded) and every check
evaluation is kept in golden/demo_tables.json. A change that alters a demo table on purpose
regenerates it with

    IDENTITY_DATA_REGENERATE_GOLDEN=1 .venv/bin/pytest identity_data_tests/test_demo_golden.py

and the diff of that file shows which tables changed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from identity_data import demo
from identity_data_tests.daemon import VOLATILE_COLUMNS
from identity_data_tests.test_demo import ARGS

GOLDEN = Path(__file__).parent / "golden" / "demo_tables.json"
REGENERATE = "IDENTITY_DATA_REGENERATE_GOLDEN"
# Fixed so that subject pseudonyms (a keyed hash) are the same on every run.
SIGNIFICANT_DIGITS = 9
KEY = "53b3337ad24cdeaff122390e304f899145fd02ead9d2651daf76b92071cdc499"


def fingerprint(frame: pl.DataFrame, home: Path) -> dict[str, object]:
    """Row count and a digest of the rows independent of their order and of column order; local
    blob URIs hold the (temporary) data home, which is replaced by a placeholder."""
    frame = frame.select(sorted(c for c in frame.columns if c not in VOLATILE_COLUMNS))
    # Floats to 9 significant digits: numpy and polars pick SIMD kernels by CPU, and a sum in
    # another order differs in the last bits from one machine to the next.
    frame = frame.with_columns(pl.col(pl.Float32, pl.Float64).round_sig_figs(SIGNIFICANT_DIGITS))
    text = frame.write_ndjson().replace(str(home), "$IDENTITY_DATA_HOME")
    lines = sorted(text.splitlines()) if frame.height else []
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    return {"rows": frame.height, "columns": frame.columns, "sha256": digest}


def warehouse_tables(home: Path) -> dict[str, dict[str, object]]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        names = [
            row[0]
            for row in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema='main'"
            ).fetchall()
        ]
        return {
            n: fingerprint(con.execute(f'SELECT * FROM "{n}"').pl(), home) for n in sorted(names)
        }


def lake_tables(home: Path) -> dict[str, dict[str, object]]:
    """Every table under lake/tables: an asset key's folder of partition files, or one file."""
    root = home / "lake" / "tables"
    tables: dict[str, list[Path]] = {}
    for path in sorted(root.rglob("*.parquet")):
        relative = path.relative_to(root)
        # <group>/<name>.parquet (unpartitioned) or <group>/<name>/<partition...>.parquet.
        name = "/".join(relative.parts[:2]).removesuffix(".parquet")
        tables.setdefault(name, []).append(path)
    return {
        name: fingerprint(
            pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed"), home
        )
        for name, files in sorted(tables.items())
    }


def check_results(instance: dg.DagsterInstance) -> dict[str, dict[str, int]]:
    """Per check: how many evaluations passed and failed over the whole demo."""
    results: dict[str, dict[str, int]] = {}
    for record in instance.get_event_records(
        dg.EventRecordsFilter(dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    ):
        event = record.event_log_entry.dagster_event
        assert event is not None
        evaluation = event.event_specific_data
        name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
        tally = results.setdefault(name, {"passed": 0, "failed": 0})
        tally["passed" if evaluation.passed else "failed"] += 1
    return dict(sorted(results.items()))


@pytest.mark.slow
def test_demo_tables_match_the_golden_fingerprint(data_home, instance, monkeypatch, capsys):
    monkeypatch.setenv("IDENTITY_DATA_PSEUDONYM_KEY", KEY)
    assert demo.main(ARGS) == 0
    summary = [
        line.strip()
        for line in capsys.readouterr().out.splitlines()
        if line.startswith(("Checks:", "  warned:", "  failed:"))
    ]
    actual = {
        "args": ARGS,
        "warehouse": warehouse_tables(data_home),
        "lake": lake_tables(data_home),
        "checks": check_results(instance),
        "summary": summary,
    }
    if os.environ.get(REGENERATE) == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(actual, indent=1, sort_keys=True) + "\n")
    expected = json.loads(GOLDEN.read_text())
    differing = [
        f"{part} {name}"
        for part in ("warehouse", "lake", "checks")
        for name in sorted(expected[part].keys() | actual[part].keys())
        if expected[part].get(name) != actual[part].get(name)
    ]
    assert not differing, f"differ from {GOLDEN.name}: {differing}"
    assert actual == expected
