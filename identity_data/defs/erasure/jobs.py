"""Filing an erasure request from the UI: a job whose launchpad takes the subject's pseudonym.

Only a pseudonym, never a raw reference: whatever the launchpad holds is kept as run config by
Dagster. The raw-reference path stays in the CLI, which pseudonymises before anything is stored.
The value is checked by the job's config mapping, which Dagster applies while it builds the
execution plan, before it creates a run: a launch with anything else (a raw reference typed by
mistake) is refused with no run, so no run config ever holds it. The request names the run that
filed it, and the erasure deletes that run once the request has run, so the pseudonym leaves the
instance with the subject.
"""

import dagster as dg

from identity_data.defs.erasure.requests import (
    FILED_BY_RUN,
    check_pseudonym,
    file_request,
    new_request_id,
    subject_request,
)
from identity_data.stores.deployment import Deployment

FILE_JOB = "file_erasure_request"
FILE_OP = "file_subject_request"


class ErasureRequestConfig(dg.Config):
    """The pseudonym of the subject to erase (64 hex digits), as support staff hold it."""

    pseudonym: str


@dg.config_mapping
def checked_pseudonym(config: ErasureRequestConfig) -> dg.RunConfig:
    """The launchpad's pseudonym, normalised; refuses anything else before a run exists (the
    error never repeats the value)."""
    pseudonym = check_pseudonym(config.pseudonym)
    return dg.RunConfig(ops={FILE_OP: ErasureRequestConfig(pseudonym=pseudonym)})


@dg.op(name=FILE_OP)
def file_subject_request(
    context: dg.OpExecutionContext, config: ErasureRequestConfig, deployment: Deployment
) -> None:
    """File the request in the lake; erasure_request_sensor launches its erasure run."""
    request_id = new_request_id("erasure")
    body = {**subject_request(config.pseudonym, "pseudonym"), FILED_BY_RUN: context.run_id}
    file_request(deployment.lake, request_id, body)
    context.log.info(f"filed erasure request {request_id}")


@dg.job(
    name=FILE_JOB,
    description="File an erasure request by pseudonym; erasure_request_sensor then runs it.",
    tags={"identity_data/erasure": "file"},
    config=checked_pseudonym,
)
def file_erasure_request() -> None:
    file_subject_request()
