"""One warehouse view per snapshot, `snapshot_<id>`, over the shared `snapshot_examples` table.

A view, not a copy: erasure replaces the snapshot's rows in `snapshot_examples`, and the view
shows the redacted rows at once, with no second table to keep in sync (in DuckDB and BigQuery;
the BigQuery emulator runs views too). The name is the id lower-cased with `.` and `-` as `_`,
checked against identity_data.safety.SQL_NAME before it is written into any DDL.
"""

from __future__ import annotations

from collections.abc import Iterable

from identity_data.defs.snapshots.schemas import SNAPSHOT_TABLE
from identity_data.defs.snapshots.store import check_id
from identity_data.safety import check_sql_name
from identity_data.stores.warehouse import WarehouseBackend

VIEW_PREFIX = "snapshot_"
WAREHOUSE_VIEW = "warehouse_view"


def view_name(snapshot_id: str) -> str:
    folded = check_id(snapshot_id).lower().replace(".", "_").replace("-", "_")
    return check_sql_name(f"{VIEW_PREFIX}{folded}")


def name_taken_by(snapshot_id: str, existing: Iterable[str]) -> str | None:
    """Another snapshot whose view would have the same name (`a-1` and `A_1` fold alike)."""
    name = view_name(snapshot_id)
    return next((o for o in existing if o != snapshot_id and view_name(o) == name), None)


def publish_view(warehouse: WarehouseBackend, snapshot_id: str) -> str:
    name = view_name(snapshot_id)
    warehouse.replace_view(name, SNAPSHOT_TABLE, {"snapshot_id": [snapshot_id]})
    return name
