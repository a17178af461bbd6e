"""Alerting: failed runs (with their failed blocking asset checks) and freshness failures,
posted to the Slack-compatible webhook in IDENTITY_DATA_ALERT_WEBHOOK_URL (unset: skipped)."""

from __future__ import annotations

import json

import dagster as dg

from identity_data.defs.alerts import messages

FAIL = "FAIL"


def _webhook() -> str | None:
    return dg.EnvVar(messages.WEBHOOK_URL_ENV).get_value()


def _dagster_url() -> str | None:
    return dg.EnvVar(messages.DAGSTER_URL_ENV).get_value()


@dg.run_failure_sensor(
    name="run_failure_alert",
    monitor_all_code_locations=True,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts every failed run (job, partition, failed steps, link) to the alert hook.",
)
def run_failure_alert(context: dg.RunFailureSensorContext) -> dg.SkipReason | None:
    url = _webhook()
    if not url:
        return dg.SkipReason(f"{messages.WEBHOOK_URL_ENV} is not set")
    run = context.dagster_run
    steps = [event.step_key for event in context.get_step_failure_events() if event.step_key]
    alert = messages.run_failed(
        run.job_name, run.run_id, run.tags.get("dagster/partition"), steps, _dagster_url()
    )
    messages.post(url, alert)
    # A failed blocking check fails its run; say which check, one alert each.
    for record in context.instance.all_logs(
        run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ):
        if record.dagster_event is None:
            continue
        evaluation = record.dagster_event.asset_check_evaluation_data
        if not evaluation.passed and evaluation.blocking:
            check = messages.check_failed(
                evaluation.asset_key.to_user_string(),
                evaluation.check_name,
                evaluation.partition,
                _dagster_url(),
            )
            messages.post(url, check)
    return None


@dg.sensor(
    name="freshness_alert",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts each asset whose freshness turns FAIL, once per failure.",
)
def freshness_alert(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    url = _webhook()
    if not url:
        return dg.SkipReason(f"{messages.WEBHOOK_URL_ENV} is not set")
    if context.repository_def is None:
        raise dg.DagsterInvariantViolationError("freshness_alert needs its repository's assets")
    keys = dg.AssetSelection.all().resolve(context.repository_def.asset_graph)
    records = context.instance.get_freshness_state_records(list(keys))
    # The cursor holds the last state seen per asset, so a failure is posted when it begins.
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    sent = 0
    for key, record in sorted(records.items()):
        name, state = key.to_user_string(), record.freshness_state.value
        if state == FAIL and seen.get(name) != FAIL:
            messages.post(url, messages.stale(name, seen.get(name, "UNKNOWN"), _dagster_url()))
            sent += 1
        seen[name] = state
    context.update_cursor(json.dumps(seen, sort_keys=True))
    return dg.SkipReason(f"{sent} freshness alert(s) posted")
