"""Monitoring sensors: turn what goes wrong into alerts (okr_alerts table, log, webhook).

- ``okr_run_failure_sensor``: every failed run (Dagster's run-status cursor walks the failures).
- ``okr_alert_sensor``: reads the instance's event log after its cursor, one stage per kind:
  failed *blocking* asset checks, okr_drift_report materializations whose drift is new, and
  freshness states that became FAIL (written by Dagster's freshness daemon).

Alert ids come from the events (run id, event storage id), and ``AlertsResource`` inserts before
it posts, so a tick evaluated again with the same cursor raises nothing twice. Delivery problems
never fail a tick; only a warehouse that cannot record the alert does, and then the cursor stays
put and the next tick tries again. The alert builders (okr_assets.lib.alerts, which needs pandas
for the table rows) are imported by the ticks, not when the code location loads.
"""

import datetime as dt
import json
from typing import TYPE_CHECKING

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    DefaultSensorStatus,
    RunFailureSensorContext,
    SensorEvaluationContext,
    SensorResult,
    run_failure_sensor,
    sensor,
)

from okr_assets import settings
from okr_assets.resources.alerts import AlertsResource
from okr_assets.resources.warehouse import WarehouseResource

if TYPE_CHECKING:
    from okr_assets.lib.alerts import Alert

OKR_DRIFT_REPORT = AssetKey("okr_drift_report")
_BATCH = 500
STAGES = ("checks", "drift", "freshness")
_RUN_TAGS = ("okr/", "dagster/asset_partition", "dagster/partition")  # what and why, for the message


@run_failure_sensor(
    name="okr_run_failure_sensor",
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Raises an alert (okr_alerts, log, webhook) for every failed run of this code location.",
)
def okr_run_failure_sensor(context: RunFailureSensorContext, alerts: AlertsResource,
                           warehouse: WarehouseResource) -> None:
    from okr_assets.lib.alerts import run_failure_alert

    run = context.dagster_run
    steps = context.get_step_failure_events()
    errors = [e.step_failure_data.error.message for e in steps if e.step_failure_data.error]
    alert = run_failure_alert(
        run.run_id, run.job_name, error=errors[0] if errors else context.failure_event.message,
        failed_steps=[e.step_key for e in steps if e.step_key], assets=_run_assets(context),
        tags={k: v for k, v in run.tags.items() if k.startswith(_RUN_TAGS)})
    alerts.raise_alerts([alert], warehouse, context.log)


def _run_assets(context: RunFailureSensorContext) -> list[str]:
    """The assets the run was to materialize: its asset selection, else (runs of ad-hoc asset
    jobs have none) the assets it planned."""
    selection = context.dagster_run.asset_selection
    if not selection:
        planned = context.instance.get_records_for_run(
            context.dagster_run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED).records
        selection = {r.event_log_entry.get_dagster_event().asset_key for r in planned}
    return sorted(k.to_user_string() for k in selection if k is not None)


# -- okr_alert_sensor stages: (alerts, last storage id read) ---------------------------------------


def _check_failures(instance: DagsterInstance, after: int) -> "tuple[list[Alert], int]":
    from okr_assets.lib.alerts import check_failure_alert

    # Read from the cross-run index like Dagster's own event-log consumer daemon: unlike
    # get_event_records, this accepts a plain storage-id cursor on the run-sharded SQLite storage too.
    events = instance.event_log_storage.get_logs_for_all_runs_by_log_id(
        after_cursor=after, dagster_event_type=DagsterEventType.ASSET_CHECK_EVALUATION, limit=_BATCH)
    found = []
    for storage_id, entry in events.items():
        evaluation = entry.get_dagster_event().asset_check_evaluation_data
        if not evaluation.passed and evaluation.blocking:
            found.append(check_failure_alert(
                storage_id, entry.run_id, evaluation.asset_key.to_user_string(), evaluation.check_name,
                evaluation.severity.value, evaluation.description, evaluation.partition))
    return found, max(events, default=after)


def _value(metadata: dict, key: str, default: object = None) -> object:
    value = metadata.get(key, default)
    return getattr(value, "value", value)


def _signature(metadata: dict) -> str | None:
    from okr_assets.lib.alerts import drift_signature

    return drift_signature(bool(_value(metadata, "drift_detected", False)),
                           str(_value(metadata, "champion_version", "?")),
                           list(_value(metadata, "drifted_features", []) or []))


def _new_drift(instance: DagsterInstance, after: int) -> "tuple[list[Alert], int]":
    from okr_assets.lib.alerts import drift_alert

    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=OKR_DRIFT_REPORT, after_storage_id=after), limit=_BATCH, ascending=True).records
    if not records:
        return [], after
    before = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=OKR_DRIFT_REPORT, before_storage_id=records[0].storage_id), limit=1).records
    previous = _signature(before[0].asset_materialization.metadata) if before else None
    found = []
    for record in records:
        metadata = record.asset_materialization.metadata
        current = _signature(metadata)
        # okr_drift_report follows every features refresh: a persisting drift is reported once.
        if current is not None and current != previous:
            found.append(drift_alert(
                record.storage_id, record.run_id, str(_value(metadata, "champion_version", "?")),
                list(_value(metadata, "drifted_features", []) or []),
                bool(_value(metadata, "prediction_shift", False)),
                bool(_value(metadata, "likely_to_hurt_model", False))))
        previous = current
    return found, records[-1].storage_id


def _stale_assets(context: SensorEvaluationContext, after: int) -> "tuple[list[Alert], int]":
    from okr_assets.lib.alerts import freshness_alert

    instance = context.instance
    events = instance.event_log_storage.get_logs_for_all_runs_by_log_id(
        after_cursor=after, dagster_event_type=DagsterEventType.FRESHNESS_STATE_CHANGE, limit=_BATCH)
    found = []
    for storage_id, entry in events.items():
        change = entry.get_dagster_event().asset_freshness_state_change_data
        if change.new_state.value != "FAIL":  # WARN shows in the UI; only FAIL is alerted
            continue
        latest = instance.get_latest_materialization_event(change.key)
        found.append(freshness_alert(
            storage_id, change.key.to_user_string(), change.previous_state.value, _fail_window(context, change.key),
            dt.datetime.fromtimestamp(latest.timestamp, dt.UTC) if latest else None))
    return found, max(events, default=after)


def _fail_window(context: SensorEvaluationContext, key: AssetKey) -> dt.timedelta | None:
    """The fail window of the asset's time-window policy, for the message (None for others)."""
    repository = context.repository_def
    if repository is None or not repository.asset_graph.has(key):
        return None
    window = getattr(repository.asset_graph.get(key).freshness_policy, "fail_window", None)
    return window.to_timedelta() if window is not None else None


@sensor(
    name="okr_alert_sensor",
    minimum_interval_seconds=settings.alert_sensor_interval(),
    default_status=DefaultSensorStatus.RUNNING,
    description="Raises alerts (okr_alerts, log, webhook) for failed blocking asset checks, new "
                "significant drift in okr_drift_report and assets whose freshness policy fails.",
)
def okr_alert_sensor(context: SensorEvaluationContext, alerts: AlertsResource,
                     warehouse: WarehouseResource) -> SensorResult:
    if not context.cursor:
        # First tick: start from now. Failures from before the sensor existed are not news.
        start = context.instance.event_log_storage.get_maximum_record_id() or 0
        cursor = dict.fromkeys(STAGES, start)
        return SensorResult(skip_reason=f"monitoring starts after event {start}", cursor=json.dumps(cursor))
    cursor = {**dict.fromkeys(STAGES, 0), **json.loads(context.cursor)}
    checks, cursor["checks"] = _check_failures(context.instance, cursor["checks"])
    drift, cursor["drift"] = _new_drift(context.instance, cursor["drift"])
    stale, cursor["freshness"] = _stale_assets(context, cursor["freshness"])
    raised = alerts.raise_alerts([*checks, *drift, *stale], warehouse, context.log)
    kinds = sorted({a.kind for a in raised})
    message = f"raised {len(raised)} alert(s): {', '.join(kinds)}" if raised else "nothing new to alert on"
    return SensorResult(skip_reason=message, cursor=json.dumps(cursor))
