"""Filing an erasure request from the UI: a job whose launchpad takes the subject's pseudonym.

Only a pseudonym, never a raw reference: whatever the launchpad holds is kept as run config by
Dagster. The raw-reference path stays in the CLI, which pseudonymises before anything is stored.
The request names this run, and the erasure deletes the run once the request has run, so the
pseudonym leaves the instance with the subject.
"""

import dagster as dg

from identity_data.defs.erasure.requests import (
    FILED_BY_RUN,
    ErasureRequestError,
    check_pseudonym,
    file_request,
    new_request_id,
    subject_request,
)
from identity_data.stores.deployment import Deployment

FILE_JOB = "file_erasure_request"


class ErasureRequestConfig(dg.Config):
    """The pseudonym of the subject to erase (64 hex digits), as support staff hold it."""

    pseudonym: str


@dg.op
def file_subject_request(
    context: dg.OpExecutionContext, config: ErasureRequestConfig, deployment: Deployment
) -> None:
    """File the request in the lake; erasure_request_sensor launches its erasure run."""
    try:
        pseudonym = check_pseudonym(config.pseudonym)
    except ErasureRequestError as err:
        raise dg.Failure(str(err)) from None
    request_id = new_request_id("erasure")
    body = {**subject_request(pseudonym, "pseudonym"), FILED_BY_RUN: context.run_id}
    file_request(deployment.lake, request_id, body)
    context.log.info(f"filed erasure request {request_id}")


@dg.job(
    name=FILE_JOB,
    description="File an erasure request by pseudonym; erasure_request_sensor then runs it.",
    tags={"identity_data/erasure": "file"},
)
def file_erasure_request() -> None:
    file_subject_request()
