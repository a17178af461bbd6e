"""Alert sensors against a real local HTTP server that records what it receives."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dagster as dg
import pytest

from identity_data.dagster_private import FreshnessState, FreshnessStateChange
from identity_data.defs.alerts import messages
from identity_data.defs.alerts.sensors import freshness_alert, run_failure_alert

# Stand-ins for what input could carry; no alert may repeat them.
PII = ["Jane Q. Example", "P1234567<<", "jane@example.org"]


class Hook:
    """An incoming-webhook endpoint: answers 200 and keeps each JSON body."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def do_POST(self) -> None:
                assert self.headers["Content-Type"] == "application/json"
                hook.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T000/B000/hook"


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Hook]:
    server = Hook()
    monkeypatch.setenv(messages.WEBHOOK_URL_ENV, server.url)
    monkeypatch.setenv(messages.DAGSTER_URL_ENV, "https://dagster.example.internal")
    yield server
    server.server.shutdown()
    server.server.server_close()


def _no_pii(body: dict[str, Any]) -> None:
    text = json.dumps(body)
    assert not [value for value in PII if value in text]


@dg.asset(partitions_def=dg.StaticPartitionsDefinition(["2026-11-28"]))
def leaky_asset() -> None:
    raise ValueError(f"bad row for {PII[0]}, document {PII[1]}, contact {PII[2]}")


@dg.asset
def checked_asset() -> int:
    return 1


@dg.asset_check(asset=checked_asset, blocking=True, name="rows_match")
def rows_match(checked_asset: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, metadata={"example": PII[0]}, description=PII[1])


def test_run_failure_posts_job_partition_steps_and_link(
    hook: Hook, instance: dg.DagsterInstance
) -> None:
    result = dg.materialize(
        [leaky_asset], instance=instance, partition_key="2026-11-28", raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert",
        dagster_event=failure,
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(result.run_id),
    ).for_run_failure()
    run_failure_alert(context)
    (body,) = hook.bodies
    assert body["text"] == "Run failed: __ephemeral_asset_job__"
    section = body["blocks"][1]["text"]["text"]
    assert "*partition:* 2026-11-28" in section
    assert "*failed steps:* 1" in section
    assert f"https://dagster.example.internal/runs/{result.run_id}" in section
    _no_pii(body)


def test_failed_blocking_check_is_named_in_the_run_failure_alert(
    hook: Hook, instance: dg.DagsterInstance
) -> None:
    result = dg.materialize([checked_asset, rows_match], instance=instance, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert",
        dagster_event=failure,
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(result.run_id),
    ).for_run_failure()
    run_failure_alert(context)
    assert [body["text"] for body in hook.bodies] == [
        "Run failed: __ephemeral_asset_job__",
        "Blocking check failed: checked_asset / rows_match",
    ]
    assert "assets/checked_asset?view=checks" in hook.bodies[1]["blocks"][1]["text"]["text"]
    for body in hook.bodies:
        _no_pii(body)


def _freshness(instance: dg.DagsterInstance, previous: FreshnessState, new: FreshnessState):
    instance.report_runless_asset_event(
        FreshnessStateChange(
            key=dg.AssetKey("checked_asset"),
            previous_state=previous,
            new_state=new,
            state_change_timestamp=time.time(),
        )
    )


def test_freshness_failure_alerts_once_per_failure(
    hook: Hook, instance: dg.DagsterInstance
) -> None:
    definitions = dg.Definitions(assets=[checked_asset], sensors=[freshness_alert])
    context = dg.build_sensor_context(instance=instance, definitions=definitions)
    _freshness(instance, FreshnessState.UNKNOWN, FreshnessState.PASS)
    freshness_alert(context)
    _freshness(instance, FreshnessState.PASS, FreshnessState.FAIL)
    freshness_alert(context)
    freshness_alert(context)  # still failing: not posted again
    (body,) = hook.bodies
    assert body["text"] == "Freshness failed: checked_asset"
    assert "PASS -> FAIL" in body["blocks"][1]["text"]["text"]
    _freshness(instance, FreshnessState.FAIL, FreshnessState.PASS)
    freshness_alert(context)
    _freshness(instance, FreshnessState.PASS, FreshnessState.FAIL)
    freshness_alert(context)  # a new failure
    assert len(hook.bodies) == 2


def test_without_a_webhook_nothing_is_posted(
    hook: Hook, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(messages.WEBHOOK_URL_ENV)
    definitions = dg.Definitions(assets=[checked_asset], sensors=[freshness_alert])
    _freshness(instance, FreshnessState.PASS, FreshnessState.FAIL)
    skip = freshness_alert(dg.build_sensor_context(instance=instance, definitions=definitions))
    assert messages.WEBHOOK_URL_ENV in skip.skip_message
    assert hook.bodies == []
