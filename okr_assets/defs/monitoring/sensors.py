"""Monitoring: ``okr_alert_sensor`` turns what goes wrong into alerts (log, okr_alerts table, webhook).

It reads the instance's event log after its cursor, one stage per kind: failed runs (RUN_FAILURE
events, whichever way the run failed), failed *blocking* asset checks, okr_raw materializations
that recorded Kafka offsets lost before landing, observations the other sensors record when
something cannot be done (offsets that went backwards, partitions the cascade cannot request),
okr_drift_report materializations whose drift is new, and freshness states that became FAIL
(written by Dagster's freshness daemon).

Alert ids come from the events (run id, event storage id), and ``AlertsResource`` inserts before
it posts, so a tick evaluated again with the same cursor raises nothing twice. Neither a webhook
nor the warehouse being down fails a tick: an alert that cannot be recorded is logged and posted
anyway and kept in the cursor (``unrecorded``) until a later tick records it. One sensor holds
every kind so that one cursor can hold that list. The alert builders (okr_assets.lib.alerts,
which needs pandas for the table rows) are imported by the ticks, not when the code location loads.
"""

import datetime as dt
import json
from typing import TYPE_CHECKING

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DefaultSensorStatus,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from okr_assets import settings
from okr_assets.defs.automation.sensors import UNREQUESTABLE
from okr_assets.defs.ingestion.assets import LOST_RANGES
from okr_assets.defs.ingestion.kafka_sensor import OFFSETS_WENT_BACKWARDS
from okr_assets.resources.alerts import AlertsResource
from okr_assets.resources.warehouse import WarehouseResource

if TYPE_CHECKING:
    from okr_assets.lib.alerts import Alert

OKR_DRIFT_REPORT = AssetKey("okr_drift_report")
OKR_RAW = AssetKey("okr_raw")
_BATCH = 500
STAGES = ("runs", "checks", "drift", "freshness", "loss", "observations")
_RUN_TAGS = ("okr/", "dagster/asset_partition", "dagster/partition")  # what and why, for the message


def _run_failures(instance: DagsterInstance, after: int) -> "tuple[list[Alert], int]":
    """Every run that failed (RUN_FAILURE events: a step failed, or run monitoring found its
    process dead): the failed steps, the first error and the assets it was to materialize."""
    from okr_assets.lib.alerts import run_failure_alert

    events = instance.event_log_storage.get_logs_for_all_runs_by_log_id(
        after_cursor=after, dagster_event_type=DagsterEventType.RUN_FAILURE, limit=_BATCH)
    found = []
    for entry in events.values():
        run = instance.get_run_by_id(entry.run_id)
        if run is None:
            continue
        steps = [r.event_log_entry.get_dagster_event() for r in instance.get_records_for_run(
            run.run_id, of_type=DagsterEventType.STEP_FAILURE).records]
        errors = [_user_error(e.step_failure_data.error) for e in steps if e.step_failure_data.error]
        found.append(run_failure_alert(
            run.run_id, run.job_name, error=errors[0] if errors else entry.get_dagster_event().message,
            failed_steps=[e.step_key for e in steps if e.step_key], assets=_run_assets(instance, run),
            tags={k: v for k, v in run.tags.items() if k.startswith(_RUN_TAGS)}))
    return found, max(events, default=after)


def _user_error(error: object) -> str:
    """The message of the error the step's code raised: Dagster wraps an exception of user code
    in one of its own ("Error occurred while executing op ...") with the real one as its cause."""
    while getattr(error, "cause", None) is not None and getattr(error, "cls_name", "") in _WRAPPERS:
        error = error.cause
    return str(getattr(error, "message", error))


_WRAPPERS = {"DagsterExecutionStepExecutionError", "DagsterUserCodeExecutionError"}


def _run_assets(instance: DagsterInstance, run: DagsterRun) -> list[str]:
    """The assets the run was to materialize: its asset selection, else (runs of ad-hoc asset
    jobs have none) the assets it planned."""
    selection = run.asset_selection
    if not selection:
        planned = instance.get_records_for_run(
            run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED).records
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


def _lost_messages(instance: DagsterInstance, after: int) -> "tuple[list[Alert], int]":
    """okr_raw materializations that recorded Kafka offsets the broker no longer held."""
    from okr_assets.lib.alerts import data_loss_alert

    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=OKR_RAW, after_storage_id=after), limit=_BATCH, ascending=True).records
    found = []
    for record in records:
        metadata = record.asset_materialization.metadata
        lost = list(_value(metadata, LOST_RANGES, []) or [])
        if lost:
            found.append(data_loss_alert(record.storage_id, record.run_id, lost,
                                         int(_value(metadata, "messages_lost", 0) or 0)))
    return found, records[-1].storage_id if records else after


def _observed_problems(instance: DagsterInstance, after: int) -> "tuple[list[Alert], int]":
    """Observations the ingestion and refresh sensors record when something cannot be done:
    Kafka offsets that went backwards (okr_raw), partitions the cascade cannot request."""
    from okr_assets.lib.alerts import cascade_gap_alert, data_loss_alert

    events = instance.event_log_storage.get_logs_for_all_runs_by_log_id(
        after_cursor=after, dagster_event_type=DagsterEventType.ASSET_OBSERVATION, limit=_BATCH)
    found = []
    for storage_id, entry in events.items():
        observation = entry.get_dagster_event().asset_observation_data.asset_observation
        metadata, asset = observation.metadata, observation.asset_key.to_user_string()
        if OFFSETS_WENT_BACKWARDS in metadata:
            detail = _value(metadata, OFFSETS_WENT_BACKWARDS, {}) or {}
            found.append(data_loss_alert(storage_id, entry.run_id or None, [], None,
                                         detail=f"{detail.get('topic')}: {detail.get('detail')}"))
        if UNREQUESTABLE in metadata:
            found.append(cascade_gap_alert(storage_id, asset, list(_value(metadata, UNREQUESTABLE, []) or []),
                                           str(_value(metadata, "upstream", "?")), str(_value(metadata, "reason", ""))))
    return found, max(events, default=after)


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
    description="Raises alerts (log, okr_alerts, webhook) for failed runs, failed blocking asset checks, Kafka "
                "messages lost before landing, partitions the cascade cannot refresh, new significant drift "
                "in okr_drift_report and assets whose freshness policy fails; alerts raised while the "
                "warehouse is down are logged and posted at once and recorded once it is back.",
)
def okr_alert_sensor(context: SensorEvaluationContext, alerts: AlertsResource,
                     warehouse: WarehouseResource) -> SensorResult:
    if not context.cursor:
        # First tick: start from now. Failures from before the sensor existed are not news.
        start = context.instance.event_log_storage.get_maximum_record_id() or 0
        cursor = dict.fromkeys(STAGES, start)
        return SensorResult(skip_reason=f"monitoring starts after event {start}", cursor=json.dumps(cursor))
    saved = json.loads(context.cursor)
    # A stage added since the cursor was written starts where the oldest known stage is.
    cursor = {**dict.fromkeys(STAGES, min((saved[k] for k in STAGES if k in saved), default=0)),
              **{k: v for k, v in saved.items() if k in STAGES}}
    found: list[Alert] = []
    for stage, read in (("runs", _run_failures), ("checks", _check_failures), ("drift", _new_drift),
                        ("loss", _lost_messages), ("observations", _observed_problems)):
        alerts_found, cursor[stage] = read(context.instance, cursor[stage])
        found += alerts_found
    stale, cursor["freshness"] = _stale_assets(context, cursor["freshness"])
    delivery = alerts.raise_alerts([*found, *stale], warehouse, context.log, saved.get("unrecorded", []))
    kinds = sorted({a.kind for a in delivery.raised})
    message = (f"raised {len(delivery.raised)} alert(s): {', '.join(kinds)}" if delivery.raised
               else "nothing new to alert on")
    if delivery.unrecorded:
        message += f"; {len(delivery.unrecorded)} alert(s) wait to be recorded in okr_alerts (warehouse unavailable)"
    return SensorResult(skip_reason=message, cursor=json.dumps({**cursor, "unrecorded": delivery.unrecorded}))
