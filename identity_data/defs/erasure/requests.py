"""Erasure requests as lake objects, never as run config.

Dagster keeps a run's config for ever, so a subject reference (or even a pseudonym) in it would
outlive the erasure. A request is filed as `erasure/requests/<request_id>.json` holding only the
pseudonym (a raw reference is pseudonymised before anything is written) and is deleted when the
request has run; the audit row keeps counts only.
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import UTC, datetime

from identity_data.stores.blobs import BlobStore

REQUEST_PREFIX = "erasure/requests"
_ID = re.compile(r"(erasure|retention)-[0-9TZ-]{8,20}-[0-9a-f]{8}")
_PSEUDONYM = re.compile(r"[0-9a-f]{64}")
# Where a request names the run that filed it from the UI: that run's config holds the pseudonym.
FILED_BY_RUN = "filed_by_run"


class ErasureRequestError(ValueError):
    """A request is malformed, unknown, or already executed."""


def new_request_id(kind: str = "erasure") -> str:
    return f"{kind}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def check_request_id(request_id: str) -> str:
    if not _ID.fullmatch(request_id):
        raise ErasureRequestError("a request id looks like erasure-<UTC time>-<8 hex digits>")
    return request_id


def check_pseudonym(value: str) -> str:
    """The pseudonym, normalised; the message never repeats the value (it may be a raw ref)."""
    pseudonym = value.strip().lower()
    if not _PSEUDONYM.fullmatch(pseudonym):
        raise ErasureRequestError("a pseudonym is 64 hex digits; nothing was filed")
    return pseudonym


def request_key(request_id: str) -> str:
    return f"{REQUEST_PREFIX}/{check_request_id(request_id)}.json"


def file_request(lake: BlobStore, request_id: str, body: dict) -> str:
    body = {**body, "requested_at": datetime.now(UTC).isoformat()}
    if not lake.put_if_absent(request_key(request_id), json.dumps(body).encode()):
        raise ErasureRequestError(f"request {request_id} is filed already")
    return request_id


def subject_request(pseudonym: str, requested_by: str) -> dict:
    return {"scope": "subject", "requested_by": requested_by, "pseudonyms": [pseudonym]}


def retention_request(max_age_days: int, snapshot_in_use_days: int) -> dict:
    return {
        "scope": "retention",
        "requested_by": "retention_policy",
        "max_age_days": max_age_days,
        "snapshot_in_use_days": snapshot_in_use_days,
    }


def filed_requests(lake: BlobStore) -> tuple[list[str], int]:
    """Ids of the requests filed now, and how many other objects sit in the folder."""
    ids, strays = [], 0
    for obj in lake.list(f"{REQUEST_PREFIX}/", (".json",)):
        request_id = obj.key.removeprefix(f"{REQUEST_PREFIX}/").removesuffix(".json")
        if _ID.fullmatch(request_id):
            ids.append(request_id)
        else:
            strays += 1
    return ids, strays


def read_request(lake: BlobStore, request_id: str) -> dict:
    try:
        return json.loads(lake.read(request_key(request_id)))
    except FileNotFoundError:
        raise ErasureRequestError(
            f"request {request_id} is not filed, or has run already (its audit row says when)"
        ) from None


def close_request(lake: BlobStore, request_id: str) -> None:
    lake.delete(request_key(request_id))
