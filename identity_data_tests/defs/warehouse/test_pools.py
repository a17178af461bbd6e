"""Runs writing one warehouse table serialise through a Dagster concurrency pool."""

import shutil
from pathlib import Path

import dagster as dg

from identity_data.contracts import WAREHOUSE_TABLE
from identity_data.definitions import defs as load_defs
from identity_data.defs.warehouse.assets import warehouse_pool


def test_every_warehouse_asset_queues_on_its_table_pool(tmp_path):
    defs = load_defs()
    warehouse = [a for a in defs.assets or [] if any(k.path[0] == "warehouse" for k in a.keys)]
    assert warehouse
    for asset in warehouse:
        (table,) = {asset.metadata_by_key[k][WAREHOUSE_TABLE] for k in asset.keys}
        assert asset.op.pool == warehouse_pool(table), asset.keys
    # The project's dagster.yaml gives each pool one slot.
    shutil.copy(Path(__file__).parents[3] / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
