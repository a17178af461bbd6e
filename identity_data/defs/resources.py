"""The one resources module: local (folder + DuckDB) or prod (GCS + BigQuery), chosen at launch.

Nothing here reads the environment at import time. Each resource resolves `Settings` from
dg.EnvVar values when a run starts, so `dg check defs` passes in either mode and a prod run with
a missing setting fails at launch naming it.
"""

from __future__ import annotations

import dagster as dg

from identity_data.defs.warehouse.io_manager import WarehouseIOManager
from identity_data.stores.deployment import Deployment
from identity_data.stores.lake_io import LakeIOManager


@dg.definitions
def resources() -> dg.Definitions:
    deployment = Deployment()
    return dg.Definitions(
        resources={
            "deployment": deployment,
            "io_manager": LakeIOManager(),
            "warehouse_io_manager": WarehouseIOManager(deployment=deployment),
        }
    )
