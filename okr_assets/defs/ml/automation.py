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
    RunRequest,
    ScheduleDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from okr_assets.defs.ml.assets import OKR_FEATURES, OKR_MODEL

OKR_DRIFT_REPORT = AssetKey("okr_drift_report")
# Every ML run shares one lane (okr/lane, one run per lane in the embedded instance config), so
# training and scoring never take both run slots from landing and okr_processed refreshes, which
# carry the freshness of new check-ins (benchmarks/freshness.py).
ML_LANE = {"okr/lane": "ml"}

okr_retrain_schedule = ScheduleDefinition(
    name="okr_retrain_schedule",
    cron_schedule="0 4 * * 1",
    execution_timezone="UTC",
    target=[OKR_MODEL],
    tags=ML_LANE,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Retrains okr_model every Monday 04:00 UTC; predictions and the drift report follow.",
)

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
                "features exist but no model was ever trained.",
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
        first = instance.fetch_materializations(OKR_FEATURES, limit=1).records
        if first:
            requests.append(RunRequest(run_key=f"initial:{first[0].storage_id}", asset_selection=[OKR_MODEL],
                                       tags={**ML_LANE, "okr/trigger": "initial training"}))
        else:
            reason = "no model yet, and no okr_features to train on yet"
    if not requests:
        return SensorResult(skip_reason=SkipReason(reason), cursor=json.dumps(cursor))
    return SensorResult(run_requests=requests, cursor=json.dumps(cursor))
