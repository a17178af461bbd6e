"""Label exports are partitioned by file and content: a re-uploaded file is a new partition."""

import dagster as dg

label_exports = dg.DynamicPartitionsDefinition(name="label_exports")
