"""Asset checks on the ML tables, from their Pandera models."""

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetKey, asset_check

from okr_assets.defs.checking import pandera_check_result
from okr_assets.defs.tables.checks import _check
from okr_assets.lib.schemas import AtRiskPredictions, DriftReport, KeyResultFeatures
from okr_assets.resources import WarehouseResource


@asset_check(asset=AssetKey("okr_features"), blocking=True, name="okr_features_schema",
             description="One row per (key result, cycle, week); ranges; label only for closed cycles.")
def okr_features_schema(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
    return _check(context, warehouse, "okr_features", "cycle_quarter", KeyResultFeatures)


@asset_check(asset=AssetKey("okr_predictions"), blocking=True, name="okr_predictions_schema",
             description="One prediction per open key result, risk in [0, 1], model version set.")
def okr_predictions_schema(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
    warehouse.setup()
    frame = warehouse.query("SELECT * FROM okr_ml.okr_predictions")
    return pandera_check_result(AtRiskPredictions, frame, "all of okr_predictions")


@asset_check(asset=AssetKey("okr_drift_report"), blocking=False, name="okr_drift_report_schema",
             description="Every tested feature has a test, p-values in [0, 1] and a verdict.")
def okr_drift_report_schema(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
    warehouse.setup()
    frame = warehouse.query("SELECT * FROM okr_ml.okr_drift_report")
    return pandera_check_result(DriftReport, frame, "all of okr_drift_report")
