"""Asset checks on the ML tables, from their Pandera models (imported when a check runs)."""

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey, asset_check

from okr_assets.defs.metadata import markdown_table
from okr_assets.defs.tables.checks import check_table
from okr_assets.resources import WarehouseResource

AUC_TOLERANCE = 0.05
MIN_JUDGED = 30  # fewer closed predictions say little about a version's ROC-AUC


@asset_check(asset=AssetKey("okr_model_performance"), blocking=False, name="okr_model_performance_schema",
             description="One row per (model version, week); AUC and Brier in [0, 1].")
def okr_model_performance_schema(warehouse: WarehouseResource) -> AssetCheckResult:
    return check_table(warehouse, "okr_model_performance")


# Checked by okr_features on its staged rows before they are published (write, audit, publish).
OKR_FEATURES_SCHEMA = AssetCheckSpec(
    name="okr_features_schema", asset=AssetKey("okr_features"), blocking=True,
    description="One row per (key result, cycle, week); ranges; label only for closed cycles; checked on "
                "the new rows before they are published.")


# Checked by okr_predictions on its new rows before it replaces the table (write, audit, publish).
OKR_PREDICTIONS_SCHEMA = AssetCheckSpec(
    name="okr_predictions_schema", asset=AssetKey("okr_predictions"), blocking=True,
    description="One prediction per open key result, risk in [0, 1], model version set; checked on the new "
                "predictions before they replace the table.")


@asset_check(asset=AssetKey("okr_drift_report"), blocking=False, name="okr_drift_report_schema",
             description="Every tested feature has a test, p-values in [0, 1] and a verdict.")
def okr_drift_report_schema(warehouse: WarehouseResource) -> AssetCheckResult:
    return check_table(warehouse, "okr_drift_report")


@asset_check(asset=AssetKey("okr_model_performance"), blocking=False, name="okr_realised_auc_holds_up",
             description="Warns when a model version's realised ROC-AUC (closed cycles, all weeks pooled) "
                         "falls more than 0.05 below its holdout ROC-AUC.")
def okr_realised_auc_holds_up(warehouse: WarehouseResource) -> AssetCheckResult:
    from okr_assets.lib.modeling import realised_performance

    warehouse.setup()
    log = warehouse.query("SELECT * FROM okr_ml.okr_prediction_log")
    outcomes = warehouse.query("SELECT key_result_id, cycle_id, reached_target FROM okr_curated.okr_curated "
                               "WHERE cycle_closed")
    pooled = realised_performance(log, outcomes, pooled=True)
    judged = pooled[(pooled["predictions"] >= MIN_JUDGED) & pooled["realised_roc_auc"].notna()
                    & pooled["holdout_roc_auc"].notna()]
    worse = judged[judged["realised_roc_auc"] < judged["holdout_roc_auc"] - AUC_TOLERANCE]
    return AssetCheckResult(
        passed=worse.empty,
        severity=AssetCheckSeverity.WARN,
        description=(f"nothing to judge yet: no model version has {MIN_JUDGED}+ served predictions "
                     "for closed cycles" if judged.empty else
                     f"realised ROC-AUC within {AUC_TOLERANCE} of holdout for every judged version" if worse.empty
                     else f"model version(s) {', '.join(worse['model_version'])} realise ROC-AUC more than "
                     f"{AUC_TOLERANCE} below their holdout ROC-AUC"),
        metadata={"versions_judged": len(judged),
                  "pooled": markdown_table(pooled.round(4))},
    )
