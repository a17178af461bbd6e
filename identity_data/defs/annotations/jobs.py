"""Annotation alone, its one heavy step on its own pod: for a large partition, or re-annotating
every partition after a model change (a new ANNOTATOR_CODE_VERSION)."""

import dagster as dg

from identity_data.fanout import step_pod_executor, step_pod_job_tags
from identity_data.sources import SOURCES

annotation_jobs = [
    dg.define_asset_job(
        f"{source.name}_annotation",
        selection=dg.AssetSelection.assets(source.key("annotations", "annotations")),
        partitions_def=source.partitions_def,
        executor_def=step_pod_executor(),
        tags=step_pod_job_tags(),
        description=(
            f"Annotate {source.name} partitions; on Kubernetes the detector runs in a step pod "
            "with the annotation asset's dagster-k8s/config resources."
        ),
    )
    for source in SOURCES
]
