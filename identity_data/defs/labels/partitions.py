"""Label exports are partitioned by file and content: a re-uploaded file is a new partition."""

import dagster as dg

# The name as a plain str: the definition's `name` attribute is typed optional.
LABEL_EXPORTS = "label_exports"
label_exports = dg.DynamicPartitionsDefinition(name=LABEL_EXPORTS)
