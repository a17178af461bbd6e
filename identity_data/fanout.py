"""How a deployment spreads work over processes and pods (ARCHITECTURE.md, "Running on
Kubernetes").

The only settings read when the definitions load rather than when a run launches: a backfill
policy, an executor and a sensor's run tags are part of a definition. The code server and every
run and step pod load the definitions with the same environment (the chart's ConfigMap), so they
agree.
"""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

from identity_data.settings import ENV

FANOUT = "IDENTITY_DATA_FANOUT"
SINGLE, KUBERNETES = "single", "kubernetes"
# A week of days per run pod: a 30-day backfill is 5 runs, two at a time per backfill
# (deploy/helm/values.yaml), each paying the pod start and one definitions load once.
PARTITIONS_PER_RUN = 7
# The run pod of a step-pod job only orchestrates: it waits on its step's Job.
ORCHESTRATOR_RESOURCES = {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}
# Face detection, the one heavy step: its worker pool uses every core of its pod.
DETECTOR_RESOURCES = {"requests": {"cpu": "4", "memory": "6Gi"}, "limits": {"memory": "6Gi"}}


def fanout() -> str:
    """`kubernetes` under IDENTITY_DATA_ENV=prod, `single` otherwise; IDENTITY_DATA_FANOUT
    overrides it (a cluster with local stores, as in identity_data_tests/deploy)."""
    default = KUBERNETES if dg.EnvVar(ENV).get_value("local") == "prod" else SINGLE
    mode = dg.EnvVar(FANOUT).get_value(default) or default
    if mode not in (SINGLE, KUBERNETES):
        raise ValueError(f"{FANOUT} must be {SINGLE!r} or {KUBERNETES!r}, not {mode!r}")
    return mode


def backfill_policy() -> dg.BackfillPolicy:
    """One run for a whole range locally; one run per chunk of partitions on Kubernetes."""
    if fanout() == KUBERNETES:
        return dg.BackfillPolicy.multi_run(max_partitions_per_run=PARTITIONS_PER_RUN)
    return dg.BackfillPolicy.single_run()


def step_pod_executor() -> dg.ExecutorDefinition:
    """A pod per step on Kubernetes (for jobs of one heavy step), in-process elsewhere."""
    if fanout() != KUBERNETES:
        return dg.in_process_executor
    # Only here: the Kubernetes client costs every local definitions load about a second.
    from dagster_k8s import k8s_job_executor

    return k8s_job_executor


def pod_resources_tags(resources: Mapping[str, object]) -> dict[str, object]:
    """The dagster-k8s/config tag that gives a run's (or a step's) pod `resources`; the
    launcher merges it over runK8sConfig."""
    return {"dagster-k8s/config": {"container_config": {"resources": resources}}}


def step_pod_job_tags() -> dict[str, object]:
    """On Kubernetes a small run pod for a step-pod job, instead of runK8sConfig's."""
    return pod_resources_tags(ORCHESTRATOR_RESOURCES) if fanout() == KUBERNETES else {}


def detector_run_tags() -> dict[str, object]:
    """On Kubernetes the detector's resources for a run pod that holds annotation steps only
    (the daemon's annotation runs, in-process like every other automation run)."""
    return pod_resources_tags(DETECTOR_RESOURCES) if fanout() == KUBERNETES else {}
