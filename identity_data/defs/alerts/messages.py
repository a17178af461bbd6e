"""Alert bodies in Slack's incoming-webhook JSON, and their delivery.

Alerts name assets, checks, partitions, counts and links only: never an error message, metadata
value or log line, which could quote captured content (names, document numbers)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from dataclasses import dataclass

WEBHOOK_URL_ENV = "IDENTITY_DATA_ALERT_WEBHOOK_URL"
DAGSTER_URL_ENV = "IDENTITY_DATA_DAGSTER_URL"
TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class Alert:
    title: str
    fields: dict[str, str]
    link: str | None

    def to_slack(self) -> dict[str, object]:
        """`text` for clients that show one line, `blocks` for Slack's layout."""
        facts = [f"*{key}:* {value}" for key, value in self.fields.items()]
        if self.link:
            facts.append(f"<{self.link}|Open in Dagster>")
        return {
            "text": self.title,
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": self.title[:150]}},
                {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(facts)}},
            ],
        }


def link(base_url: str | None, path: str) -> str | None:
    return f"{base_url.rstrip('/')}/{path.lstrip('/')}" if base_url else None


def run_failed(
    job: str, run_id: str, partition: str | None, failed_steps: list[str], base_url: str | None
) -> Alert:
    fields = {"job": job, "run": run_id[:8], "failed steps": str(len(failed_steps))}
    if failed_steps:
        fields["steps"] = ", ".join(sorted(failed_steps)[:10])
    if partition:
        fields["partition"] = partition
    return Alert(f"Run failed: {job}", fields, link(base_url, f"runs/{run_id}"))


def check_failed(asset: str, check: str, partition: str | None, base_url: str | None) -> Alert:
    fields = {"asset": asset, "check": check, "blocking": "yes: downstream assets did not run"}
    if partition:
        fields["partition"] = partition
    path = f"assets/{urllib.parse.quote(asset)}?view=checks"
    return Alert(f"Blocking check failed: {asset} / {check}", fields, link(base_url, path))


def stale(asset: str, previous_state: str, base_url: str | None) -> Alert:
    fields = {"asset": asset, "freshness": f"{previous_state} -> FAIL"}
    path = f"assets/{urllib.parse.quote(asset)}"
    return Alert(f"Freshness failed: {asset}", fields, link(base_url, path))


def post(url: str, alert: Alert) -> int:
    """POSTs the alert; an HTTP error or an unreachable hook raises, so the tick fails visibly."""
    request = urllib.request.Request(
        url,
        data=json.dumps(alert.to_slack()).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
        return response.status
