"""Each erasure request (a subject, or a retention sweep) is one partition."""

import dagster as dg

erasure_requests = dg.DynamicPartitionsDefinition(name="erasure_requests")
