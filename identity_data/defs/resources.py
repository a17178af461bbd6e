"""The one resources module: local (folder + DuckDB) or prod (GCS + BigQuery), chosen at launch.

Nothing here reads the environment at import time. The deployment resolves `Settings` from
dg.EnvVar values when a run starts, so `dg check defs` passes in either mode and a prod run with
a missing setting fails at launch naming it. It is resolved once per run: the IO managers receive
it nested, as a resource configured at launch, which Dagster hands them from the top-level key
(a fully configured nested resource would be set up again for each resource that holds it).
"""

from __future__ import annotations

import dagster as dg

from identity_data.defs.warehouse.io_manager import WarehouseIOManager
from identity_data.stores.deployment import Deployment
from identity_data.stores.lake_io import LakeIOManager


@dg.definitions
def resources() -> dg.Definitions:
    deployment = Deployment.configure_at_launch()
    return dg.Definitions(
        resources={
            "deployment": deployment,
            "io_manager": LakeIOManager(deployment=deployment),
            "warehouse_io_manager": WarehouseIOManager(deployment=deployment),
        }
    )
