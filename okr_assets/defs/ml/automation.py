"""When the model retrains: weekly, on significant drift, and once when there is first enough data."""

import json

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    AssetSelection,
    AutomationConditionSensorDefinition,
    DagsterInstance,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    EventLogRecord,
    RunRequest,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    schedule,
    sensor,
)

from okr_assets.defs.ml.assets import OKR_FEATURES, OKR_MODEL

OKR_DRIFT_REPORT = AssetKey("okr_drift_report")
# Every ML run shares one lane (okr/lane, one run per lane in the embedded instance config), so
# training and scoring never take both run slots from landing and okr_processed refreshes, which
# carry the freshness of new check-ins (benchmarks/freshness.py).
ML_LANE = {"okr/lane": "ml"}


def _latest_features(instance: DagsterInstance) -> EventLogRecord | None:
    records = instance.fetch_materializations(OKR_FEATURES, limit=1).records
    return records[0] if records else None


def _why_not_trainable(features: EventLogRecord | None) -> str | None:
    """Why okr_model cannot train yet (None when it can). okr_features records whether the whole
    table has enough closed cycles for a time-based holdout; until then a training run can only
    fail (a fresh stack fed by Kafka has only the open cycle). Older records without the flag
    count as trainable."""
    if features is None:
        return "no okr_features to train on yet"
    metadata = features.asset_materialization.metadata
    if "enough_to_train" not in metadata or _flag(metadata, "enough_to_train"):
        return None
    closed = getattr(metadata.get("closed_cycles"), "value", "too few")
    return f"okr_features has {closed} closed cycle(s), not enough to train with a time-based holdout"


@schedule(
    name="okr_retrain_schedule",
    cron_schedule="0 4 * * 1",
    execution_timezone="UTC",
    target=[OKR_MODEL],
    default_status=DefaultScheduleStatus.RUNNING,
    description="Retrains okr_model every Monday 04:00 UTC (skipped while okr_features has too few "
                "closed cycles); predictions and the drift report follow.",
)
def okr_retrain_schedule(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
    blocker = _why_not_trainable(_latest_features(context.instance))
    if blocker is not None:
        return SkipReason(blocker)
    return RunRequest(tags={**ML_LANE, "okr/trigger": "weekly retraining"})


# Predictions and the drift report carry automation conditions (follow their parents); this
# sensor evaluates them. Declared here rather than relying on Dagster's implicit default sensor,
# so it is visible, named and on in every deployment.
okr_automation_sensor = AutomationConditionSensorDefinition(
    "okr_automation_sensor",
    target=AssetSelection.assets("okr_predictions", "okr_drift_report", "okr_model_performance"),
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    run_tags=ML_LANE,
    description="Refreshes okr_predictions, okr_drift_report and okr_model_performance when their "
                "parents (features, model, curated outcomes) change.",
)


def _latest_storage_id(instance: DagsterInstance, key: AssetKey) -> int:
    records = instance.fetch_materializations(key, limit=1).records
    return records[0].storage_id if records else 0


def _new_features_since_training(instance: DagsterInstance) -> bool:
    return _latest_storage_id(instance, OKR_FEATURES) > _latest_storage_id(instance, OKR_MODEL)


def _flag(metadata: dict, key: str) -> bool:
    value = metadata.get(key)
    return bool(getattr(value, "value", value))


@sensor(
    name="okr_retrain_sensor",
    target=[OKR_MODEL],
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Requests okr_model when a drift report finds significant drift, and once when "
                "okr_features has enough closed cycles but no model was ever trained.",
)
def okr_retrain_sensor(context: SensorEvaluationContext) -> SensorResult | SkipReason:
    cursor = json.loads(context.cursor) if context.cursor else {"drift": 0}
    instance = context.instance
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=OKR_DRIFT_REPORT, after_storage_id=cursor["drift"]),
        limit=100, ascending=True).records
    requests = []
    drifted = [r for r in records if _flag(r.asset_materialization.metadata, "drift_detected")]
    if records:
        cursor["drift"] = records[-1].storage_id
    reason = "no significant drift in new drift reports"
    if drifted and not _new_features_since_training(instance):
        # Retraining on the features the model already saw cannot fix the drift; wait for new data
        # (otherwise drift -> retrain -> drift report -> retrain would loop).
        reason = "drift persists, but the model was already retrained on the current features"
        drifted = []
    if drifted:
        last = drifted[-1]
        features = getattr(last.asset_materialization.metadata.get("drifted_features"), "data", [])
        requests.append(RunRequest(run_key=f"drift:{last.storage_id}", asset_selection=[OKR_MODEL],
                                   tags={**ML_LANE, "okr/trigger": "drift",
                                         "okr/drifted_features": ",".join(features)[:200]}))
    if not drifted and instance.get_latest_materialization_event(OKR_MODEL) is None:
        features = _latest_features(instance)
        blocker = _why_not_trainable(features)
        if blocker is None:
            requests.append(RunRequest(run_key=f"initial:{features.storage_id}", asset_selection=[OKR_MODEL],
                                       tags={**ML_LANE, "okr/trigger": "initial training"}))
        else:
            reason = f"no model yet: {blocker}"
    if not requests:
        return SensorResult(skip_reason=SkipReason(reason), cursor=json.dumps(cursor))
    return SensorResult(run_requests=requests, cursor=json.dumps(cursor))
