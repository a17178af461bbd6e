"""Each training snapshot is one partition, added when it is made (UI, CLI or schedule)."""

import dagster as dg

# The name as a plain str: the definition's `name` attribute is typed optional.
SNAPSHOTS = "snapshots"
snapshots = dg.DynamicPartitionsDefinition(name=SNAPSHOTS)
