"""Each erasure request (a subject, or a retention sweep) is one partition."""

import dagster as dg

# The name as a plain str: the definition's `name` attribute is typed optional.
ERASURE_REQUESTS = "erasure_requests"
erasure_requests = dg.DynamicPartitionsDefinition(name=ERASURE_REQUESTS)
