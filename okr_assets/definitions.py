"""The okr_assets code location: every asset, check, sensor, schedule and resource, assembled.

Cross-cutting policy applied here:
- executor: in-process. Each step of the multiprocess executor pays ~6 s of imports in a fresh
  process; our steps are short pandas/SQL jobs on 2-core machines, so one process per run wins.
- freshness: the curated, feature and prediction tables carry a freshness policy sized to the
  six-hourly refresh (defs/monitoring/freshness.py); okr_alert_sensor alerts when one fails.
"""

from __future__ import annotations

from dagster import Definitions, in_process_executor, map_asset_specs

from okr_assets.defs.automation.schedules import okr_curated_schedule, okr_refresh_schedule
from okr_assets.defs.automation.sensors import okr_refresh_sensor
from okr_assets.defs.ingestion.assets import okr_raw
from okr_assets.defs.ingestion.kafka_sensor import okr_kafka_sensor
from okr_assets.defs.ingestion.sensors import okr_landing_sensor
from okr_assets.defs.ml.assets import (
    okr_drift_report,
    okr_features,
    okr_model,
    okr_model_performance,
    okr_predictions,
)
from okr_assets.defs.ml.automation import okr_automation_sensor, okr_retrain_schedule, okr_retrain_sensor
from okr_assets.defs.ml.checks import (
    okr_drift_report_schema,
    okr_model_performance_schema,
    okr_realised_auc_holds_up,
)
from okr_assets.defs.monitoring.freshness import REFRESH_CADENCE, with_freshness_policies
from okr_assets.defs.monitoring.sensors import okr_alert_sensor
from okr_assets.defs.tables.assets import okr_curated, process_checkins
from okr_assets.resources import build_resources

# Freshness: how old a table may get before Dagster marks it stale (WARN, then FAIL -> alert).
FRESHNESS = {"okr_curated": REFRESH_CADENCE, "okr_features": REFRESH_CADENCE, "okr_predictions": REFRESH_CADENCE}

defs = Definitions(
    assets=map_asset_specs(with_freshness_policies(FRESHNESS), [
        okr_raw,                                                           # group: ingestion
        process_checkins, okr_curated,                                     # group: tables
        okr_features, okr_model, okr_predictions, okr_drift_report,        # group: ml
        okr_model_performance,
    ]),
    # (okr_raw_schema and the schemas of okr_processed, okr_rejects, okr_curated, okr_features and
    # okr_predictions are check specs of the assets: each checks its new rows before they are published.)
    asset_checks=[okr_drift_report_schema,
                  okr_model_performance_schema, okr_realised_auc_holds_up],
    sensors=[okr_landing_sensor, okr_kafka_sensor, okr_refresh_sensor, okr_retrain_sensor,
             okr_automation_sensor,
             okr_alert_sensor],                                                  # monitoring and alerts
    schedules=[okr_refresh_schedule, okr_curated_schedule, okr_retrain_schedule],
    resources=build_resources(),
    executor=in_process_executor,
)
