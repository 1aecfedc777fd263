"""ML assets: point-in-time features, the MLflow-registered at-risk model, predictions, drift.

Libraries (pandas, scikit-learn, MLflow, SciPy) and the feature functions of okr_assets.lib are
imported inside the asset bodies: every run process imports this module, and only ML steps need
them.
"""

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    AutomationCondition,
    BackfillPolicy,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from okr_assets.defs.metadata import WAREHOUSE_KIND, column_schema, markdown_table
from okr_assets.defs.ml.checks import OKR_FEATURES_SCHEMA, OKR_PREDICTIONS_SCHEMA
from okr_assets.defs.partitions import quarterly_partitions
from okr_assets.resources import WarehouseResource
from okr_assets.resources.mlflow import CHAMPION, REGISTERED_MODEL

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

OWNERS = ["team:okr-ml"]
OKR_FEATURES = AssetKey("okr_features")
OKR_MODEL = AssetKey("okr_model")

# Follow parents whenever they change, without waiting for every parent partition to exist
# (okr_features has quarters without data, which eager() would treat as "missing parents").
FOLLOW_PARENTS = (
    AutomationCondition.any_deps_updated().since_last_handled()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
).with_label("follow parents")


@asset(
    name="okr_features",
    deps=[AssetKey("okr_curated"), AssetKey("okr_processed")],
    partitions_def=quarterly_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    group_name="ml",
    owners=OWNERS,
    kinds={WAREHOUSE_KIND, "ibis", "pandera"},
    code_version="1",
    tags={"layer": "features"},
    metadata={"dagster/column_schema": column_schema("okr_features"),
              "dagster/table_name": "okr_ml.okr_features"},
    check_specs=[OKR_FEATURES_SCHEMA],
)
def okr_features(context: AssetExecutionContext, warehouse: WarehouseResource
                 ) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Point-in-time feature store: one row per (key result, as-of week) of each cycle, built only
    from check-ins made by that week; labelled (reached 0.7) for closed cycles. Same quarterly
    partitions as okr_curated, so features can be rebuilt for any past cycle. Written to staging,
    checked (okr_features_schema, blocking) and published in one transaction only when it passes."""
    from okr_assets.defs.tables.checks import audit_range
    from okr_assets.lib import features as f
    from okr_assets.lib.modeling import MIN_TRAINING_CYCLES

    warehouse.setup()
    window = context.partition_time_window
    start, end = window.start.date(), window.end.date()
    now = dt.datetime.now(dt.UTC)

    # Built in the warehouse engine, one INSERT ... SELECT into staging per batch of whole cycles
    # (f.BATCH_CHECKINS check-ins). One refresh of okr_features at a time, whoever launched it:
    # the staging twin has one writer, and publishes apply in the order of the reads.
    with warehouse.exclusive("okr_features", on_wait=context.log.info):
        warehouse.clear_staged(["okr_features"])
        processed, curated = warehouse.table("okr_processed"), warehouse.table("okr_curated")
        checkins = processed.filter((processed.cycle_start >= start) & (processed.cycle_start < end)
                                    ).select(*f.CHECKIN_COLUMNS)
        labels = curated.filter((curated.cycle_start >= start) & (curated.cycle_start < end)
                                ).select(*f.LABEL_COLUMNS)
        sizes = warehouse.fetch(checkins.group_by("cycle_id").aggregate(n=checkins.count()))
        batches = f.cycle_batches(dict(zip(sizes["cycle_id"], sizes["n"].astype(int), strict=True)),
                                  f.BATCH_CHECKINS)
        expr = f.cycles_features(checkins.schema(), labels.schema(), now)
        for i, cycles in enumerate(batches, start=1):
            warehouse.insert_staged("okr_features", expr, {
                f.CHECKINS: checkins.filter(checkins.cycle_id.isin(cycles)),
                f.LABELS: labels.filter(labels.cycle_id.isin(cycles))})
            if len(batches) > 1:
                context.log.info(f"okr_features: batch {i} of {len(batches)} staged ({len(cycles)} cycle(s))")
        staged = warehouse.table("okr_features", staged=True)
        sums = warehouse.fetch(staged.aggregate(
            rows=staged.count(), labelled=staged.label.count(), positive=staged.label.sum().coalesce(0)))
        totals = {k: int(v) for k, v in sums.iloc[0].items()}
        totals["key_results"] = int(warehouse.fetch(
            staged.select("key_result_id", "cycle_id").distinct().count().name("n"))["n"].iloc[0])
        cycles = set(warehouse.fetch(staged.select("cycle_id").distinct())["cycle_id"])
        check = audit_range(warehouse, OKR_FEATURES_SCHEMA, "okr_features", "cycle_quarter", start, end)
        selected = OKR_FEATURES_SCHEMA.key in context.selected_asset_check_keys
        if not check.passed:
            warehouse.clear_staged(["okr_features"])
            yield from [check] if selected else []
            raise Failure(description=f"okr_features_schema failed on the new rows of {start} .. "
                                      f"{end - dt.timedelta(days=1)}: {check.description}. Nothing was published: "
                                      "okr_features keeps its previous rows, and nothing downstream is refreshed.")
        warehouse.publish_staged(start, end, [("okr_features", "cycle_quarter")])
    context.log.info(f"okr_features {start}..{end}: {totals['rows']} rows, {totals['labelled']} labelled")
    rows, closed = _table_summary(warehouse)
    yield MaterializeResult(check_results=[check] if selected else [], metadata={
        "dagster/row_count": rows,  # the whole table, as for okr_processed
        # The whole table too: okr_retrain_sensor and okr_retrain_schedule read these to request
        # okr_model only when time_split will find enough closed cycles (a fresh stack has none).
        "closed_cycles": closed,
        "enough_to_train": closed >= MIN_TRAINING_CYCLES,
        "partition_range": f"{start} .. {end - dt.timedelta(days=1)}",
        "rows_written": totals["rows"],
        "cycles": MetadataValue.json(sorted(cycles)),
        "key_results": totals["key_results"],
        "labelled_rows": totals["labelled"],
        "positive_rate": round(totals["positive"] / totals["labelled"], 4) if totals["labelled"] else "n/a",
    })


def _table_summary(warehouse: WarehouseResource) -> tuple[int, int]:
    """(rows, closed labelled cycles) of the whole feature table, in one scan: the cycles are what
    okr_model can train on."""
    counted = warehouse.query("SELECT count(*) AS n, count(DISTINCT cycle_id) FILTER "
                              "(WHERE cycle_closed AND label IS NOT NULL) AS closed FROM okr_ml.okr_features")
    return int(counted["n"].iloc[0]), int(counted["closed"].iloc[0])


def _data_version(frame: "pd.DataFrame") -> str:
    import pandas as pd

    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def _champion(client: "MlflowClient") -> "ModelVersion | None":
    """The model version the champion alias points to; None only when the registered model does
    not exist (RESOURCE_DOES_NOT_EXIST, on the SQL store and from a server) or has no such alias.
    Any other failure of the store propagates: an outage is not "no champion".

    The registered model's alias map answers the alias question: get_model_version_by_alias
    reports a missing alias as INVALID_PARAMETER_VALUE, which MLflow also raises for other causes."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

    try:
        registered = client.get_registered_model(REGISTERED_MODEL)
    except MlflowException as exc:
        if exc.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return None
        raise
    version = registered.aliases.get(CHAMPION)
    return None if version is None else client.get_model_version(REGISTERED_MODEL, str(version))


@asset(
    name="okr_model",
    deps=[OKR_FEATURES],
    group_name="ml",
    owners=OWNERS,
    kinds={"scikit-learn", "mlflow"},
    code_version="1",
    required_resource_keys={"mlflow", "warehouse"},
    tags={"layer": "model"},
)
def okr_model(context: AssetExecutionContext) -> MaterializeResult:
    """At-risk model: will a key result end its cycle with score >= 0.7? Trained on closed cycles
    with the most recent closed cycle as holdout, logged to MLflow and registered as okr_at_risk;
    the `champion` alias moves only when the new version beats the champion on the same holdout.
    When the tracking store fails, the run fails and the alias stays where it was."""
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    from okr_assets.lib.features import CATEGORICAL_FEATURES, FEATURE_COLUMNS, KEY_COLUMNS, NUMERIC_FEATURES
    from okr_assets.lib.modeling import evaluate, time_split, train_and_select
    from okr_assets.resources.mlflow import registry_failures

    warehouse: WarehouseResource = context.resources.warehouse
    # In key order, not the engine's storage order: the same rows train the same model on every engine.
    features = warehouse.query("SELECT * FROM okr_ml.okr_features").sort_values(list(KEY_COLUMNS), ignore_index=True)
    split = time_split(features)
    tracker = context.resources.mlflow
    # The champion is read before anything is written, and by version: the model compared is the
    # one whose version is reported, even if the alias moves meanwhile.
    with registry_failures("reading the champion model", "Nothing was changed: the champion alias was not moved."):
        client = mlflow.MlflowClient()
        champion = _champion(client)
        previous = (mlflow.sklearn.load_model(f"models:/{REGISTERED_MODEL}/{champion.version}")
                    if champion is not None else None)
    result = train_and_select(split)
    new_auc = result.metrics["roc_auc"]
    champion_auc = evaluate(previous, split.holdout)[0]["roc_auc"] if previous is not None else None
    promoted = champion is None or new_auc > champion_auc
    data_version = _data_version(pd.concat([split.train, split.holdout])[[*list(FEATURE_COLUMNS), "label"]])
    with registry_failures("logging and registering the model",
                           "The champion alias was not moved (a new model version may be registered)."):
        tracker.log_params({
            "model": result.name, "train_cycles": json.dumps(split.train_cycles),
            "holdout_cycle": split.holdout_cycle, "train_rows": len(split.train),
            "holdout_rows": len(split.holdout), "features": ",".join(FEATURE_COLUMNS),
            "training_data_version": data_version, "dagster_run_id": context.run.run_id,
        })
        tracker.log_metrics({f"holdout_{k}": v for k, v in result.metrics.items() if k != "rows"})
        for name, metrics in result.candidates.items():
            tracker.log_metrics({f"candidate_{name}_{k}": v for k, v in metrics.items() if k != "rows"})
        for row in result.per_week.itertuples():
            tracker.log_metrics({"holdout_roc_auc_by_week": row.roc_auc, "holdout_brier_by_week": row.brier,
                                 "holdout_calibration_gap_by_week": row.calibration_gap}, step=int(row.week))
        tracker.log_dict({"numeric": list(NUMERIC_FEATURES), "categorical": list(CATEGORICAL_FEATURES)},
                         "features.json")
        example = split.holdout[list(FEATURE_COLUMNS)].head(5)
        signature = infer_signature(example, result.model.predict_proba(example)[:, 1])
        # MLflow stores scikit-learn models with skops, which refuses types it has not been told to
        # trust; this model was trained by this very step, so its own types are trusted.
        import skops.io

        trusted = skops.io.get_untrusted_types(data=skops.io.dumps(result.model))
        # The model is scikit-learn only, stored with skops: its requirements are those two
        # packages, pinned to the versions installed. Left to infer them, MLflow starts a process
        # that loads the model to see what it imports (8 s a model here).
        info = mlflow.sklearn.log_model(
            result.model, name="model", signature=signature, input_example=example,
            registered_model_name=REGISTERED_MODEL, skops_trusted_types=trusted,
            pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_skops=True))
        version = str(info.registered_model_version)
        # Tags before the alias: a champion always carries its training cycles (the drift reference).
        client.set_model_version_tag(REGISTERED_MODEL, version, "holdout_cycle", split.holdout_cycle)
        client.set_model_version_tag(REGISTERED_MODEL, version, "train_cycles", json.dumps(split.train_cycles))
        if promoted:
            client.set_registered_model_alias(REGISTERED_MODEL, CHAMPION, version)
    champion_version = version if promoted else str(champion.version)
    context.log.info(
        f"trained {result.name} (version {version}): holdout {split.holdout_cycle} ROC-AUC {new_auc:.4f}; "
        f"champion {'is now' if promoted else 'stays'} version {champion_version}"
        + (f" (its AUC on the same holdout: {champion_auc:.4f})" if champion_auc is not None else ""))
    return MaterializeResult(metadata={
        "model": result.name,
        "model_version": version,
        "champion_version": champion_version,
        "promoted_to_champion": promoted,
        "holdout_cycle": split.holdout_cycle,
        "train_cycles": MetadataValue.json(split.train_cycles),
        "holdout_roc_auc": round(new_auc, 4),
        "holdout_brier": round(result.metrics["brier"], 4),
        "holdout_log_loss": round(result.metrics["log_loss"], 4),
        "champion_roc_auc_on_same_holdout": round(champion_auc, 4) if champion_auc is not None else "n/a",
        "candidates": markdown_table(pd.DataFrame(result.candidates).T.round(4).reset_index(names="model")),
        "per_week": markdown_table(result.per_week.round(4), limit=20),
        "training_data_version": data_version,
        "mlflow_run_id": mlflow.active_run().info.run_id if mlflow.active_run() else "n/a",
    })


def _load_champion(unchanged: str) -> tuple[object, str, list[str], float | None] | None:
    """(model, version, training cycles, holdout ROC-AUC) of the champion; None when there is none.
    A failing tracking store raises RegistryError, whose message ends with ``unchanged``."""
    import mlflow

    from okr_assets.resources.mlflow import configure_tracking, registry_failures

    with registry_failures("reading the champion model", f"Nothing was changed: {unchanged}."):
        configure_tracking()
        client = mlflow.MlflowClient()
        champion = _champion(client)
        if champion is None:
            return None
        model = mlflow.sklearn.load_model(f"models:/{REGISTERED_MODEL}/{champion.version}")
        holdout_auc = (client.get_run(champion.run_id).data.metrics.get("holdout_roc_auc")
                       if champion.run_id else None)
    train_cycles = json.loads(champion.tags.get("train_cycles", "[]"))
    return model, str(champion.version), train_cycles, holdout_auc


@asset(
    name="okr_predictions",
    deps=[OKR_MODEL, OKR_FEATURES],
    group_name="ml",
    owners=OWNERS,
    kinds={WAREHOUSE_KIND, "scikit-learn", "mlflow"},
    code_version="1",
    automation_condition=FOLLOW_PARENTS,
    tags={"layer": "predictions"},
    metadata={"dagster/column_schema": column_schema("okr_predictions"),
              "dagster/table_name": "okr_ml.okr_predictions"},
    check_specs=[OKR_PREDICTIONS_SCHEMA],
)
def okr_predictions(context: AssetExecutionContext, warehouse: WarehouseResource
                    ) -> Iterator[MaterializeResult | AssetCheckResult]:
    """The champion model's risk (probability of ending below 0.7) for every open key result at
    its latest as-of week, with the model version that produced it; sort by `risk_rank`. Emptied
    when no champion is registered; when the tracking store fails, the run fails and the table
    keeps its rows. The new predictions are checked (okr_predictions_schema, blocking) before
    they replace the table."""
    import pandas as pd

    from okr_assets.lib.features import FEATURE_COLUMNS, open_latest

    warehouse.setup()
    champion = _load_champion("okr_predictions keeps its rows")
    features = warehouse.query("SELECT * FROM okr_ml.okr_features WHERE NOT cycle_closed")
    latest = open_latest(features) if not features.empty else features
    now = pd.Timestamp.now(tz="UTC")
    if champion is None or latest.empty:
        reason = "no champion model registered yet" if champion is None else "no open key results"
        context.log.warning(f"okr_predictions: {reason}; the table is emptied")
        empty = pd.DataFrame(columns=warehouse.columns("okr_predictions"))
        check = yield from _audited_predictions(context, empty)
        warehouse.replace_table("okr_predictions", empty)
        yield MaterializeResult(metadata={"dagster/row_count": 0, "note": reason}, check_results=check)
        return
    model, version, _, holdout_auc = champion
    p_reach = model.predict_proba(latest[list(FEATURE_COLUMNS)])[:, 1]
    out = latest[["key_result_id", "cycle_id", "team_id", "objective_id", "week", "as_of", "progress",
                  "score"]].copy()
    out["risk"] = 1.0 - p_reach
    out["risk_rank"] = out["risk"].rank(ascending=False, method="first").astype("int64")
    out["model_version"] = version
    out["predicted_at"] = now
    out = out.sort_values("risk_rank")
    check = yield from _audited_predictions(context, out)
    warehouse.replace_table("okr_predictions", out)
    # Every served prediction is kept, so okr_model_performance can judge it once the cycle closes.
    warehouse.append("okr_prediction_log", out.assign(holdout_roc_auc=holdout_auc))
    top = out.head(10)[["risk_rank", "key_result_id", "team_id", "week", "score", "risk"]].round(3)
    yield MaterializeResult(check_results=check, metadata={
        "dagster/row_count": len(out),
        "model_version": version,
        "mean_risk": round(float(out["risk"].mean()), 4),
        "at_risk_over_50pct": int((out["risk"] > 0.5).sum()),
        "most_at_risk": markdown_table(top),
    })


def _audited_predictions(context: AssetExecutionContext, predictions: "pd.DataFrame",
                         ) -> Iterator[AssetCheckResult]:
    """okr_predictions_schema on the new predictions, before they replace the table: a failure is
    yielded and fails the run, and the table keeps the predictions it had. Returns the result to
    report with the materialization (none when the run leaves the check out)."""
    from okr_assets.defs.checking import pandera_check_result
    from okr_assets.lib.schemas import AtRiskPredictions

    check = pandera_check_result(AtRiskPredictions, predictions.copy(), f"{len(predictions)} new predictions",
                                 check_name=OKR_PREDICTIONS_SCHEMA.name, asset_key=OKR_PREDICTIONS_SCHEMA.asset_key)
    reported = [check] if OKR_PREDICTIONS_SCHEMA.key in context.selected_asset_check_keys else []
    if not check.passed:
        yield from reported
        raise Failure(description=f"okr_predictions_schema failed on the new predictions: {check.description}. "
                                  "Nothing was published: okr_predictions keeps its previous predictions.")
    return reported


@asset(
    name="okr_drift_report",
    deps=[OKR_FEATURES, OKR_MODEL],
    group_name="ml",
    owners=OWNERS,
    kinds={WAREHOUSE_KIND, "scipy", "mlflow"},
    code_version="1",
    automation_condition=FOLLOW_PARENTS,
    required_resource_keys={"mlflow", "warehouse"},
    tags={"layer": "monitoring"},
    metadata={"dagster/column_schema": column_schema("okr_drift_report"),
              "dagster/table_name": "okr_ml.okr_drift_report"},
)
def okr_drift_report(context: AssetExecutionContext) -> MaterializeResult:
    """Data drift of the latest features window (the open cycle) against the champion's training
    reference, per feature and on the champion's predicted risk; significant *and* practically
    large changes only. A detected drift makes okr_retrain_sensor request retraining, and
    okr_alert_sensor raise an alert when the drift is new. When the tracking store fails, the run
    fails and the table keeps its rows."""
    import pandas as pd

    from okr_assets.lib.drift import detect_drift, html_report, markdown_summary
    from okr_assets.lib.features import (
        CATEGORICAL_FEATURES,
        DRIFT_NUMERIC_FEATURES,
        DRIFT_UNITS,
        FEATURE_COLUMNS,
        open_latest,
    )
    from okr_assets.resources.mlflow import registry_failures

    warehouse: WarehouseResource = context.resources.warehouse
    warehouse.setup()
    champion = _load_champion("okr_drift_report keeps its rows")
    features = warehouse.query("SELECT * FROM okr_ml.okr_features")
    current = features[~features["cycle_closed"].astype(bool)]
    if champion is None or current.empty:
        reason = "no champion model registered yet" if champion is None else "no open cycle to compare"
        context.log.warning(f"okr_drift_report: {reason}")
        warehouse.replace_table("okr_drift_report", pd.DataFrame(columns=warehouse.columns("okr_drift_report")))
        return MaterializeResult(metadata={"dagster/row_count": 0, "drift_detected": False, "note": reason,
                                           "summary": MetadataValue.md(f"_No drift report: {reason}._")})
    model, version, train_cycles, _ = champion
    # One row per key result on both sides (rows of the same KR at successive weeks are not
    # independent samples), compared at the same as-of week: the open cycle's latest week.
    current = open_latest(current)
    reference = features[features["cycle_id"].isin(train_cycles) & features["week"].isin(current["week"])]
    reference = reference.assign(predicted_risk=1 - model.predict_proba(reference[list(FEATURE_COLUMNS)])[:, 1])
    current = current.assign(predicted_risk=1 - model.predict_proba(current[list(FEATURE_COLUMNS)])[:, 1])
    verdict = detect_drift(reference, current, list(DRIFT_NUMERIC_FEATURES), list(CATEGORICAL_FEATURES),
                           units=DRIFT_UNITS)
    ref_label = f"training cycles {', '.join(train_cycles)} of champion v{version} ({len(reference)} rows)"
    cur_label = f"open cycle(s) {', '.join(sorted(current['cycle_id'].unique()))} ({len(current)} rows)"
    summary = markdown_summary(verdict, ref_label, cur_label)
    table = verdict.report.assign(report_at=pd.Timestamp.now(tz="UTC"))
    # MLflow first: when the store fails here, the table still holds the previous report.
    tracker = context.resources.mlflow
    with registry_failures("logging the drift report", "Nothing was changed: okr_drift_report keeps its rows."):
        tracker.log_text(html_report(verdict, summary), "drift/okr_drift_report.html")
        tracker.log_metrics({"drift_detected": float(verdict.drift_detected),
                             "drifted_features": float(len(verdict.drifted_features))})
    warehouse.replace_table("okr_drift_report", table)
    context.log.info(f"drift report: {'DRIFT' if verdict.drift_detected else 'no drift'} "
                     f"{verdict.drifted_features}; prediction shift {verdict.prediction_shift}")
    return MaterializeResult(metadata={
        "dagster/row_count": len(table),
        "drift_detected": verdict.drift_detected,
        "drifted_features": MetadataValue.json(verdict.drifted_features),
        "prediction_shift": bool(verdict.prediction_shift),
        "likely_to_hurt_model": verdict.harmful,
        "champion_version": version,
        "summary": MetadataValue.md(summary),
    })


@asset(
    name="okr_model_performance",
    deps=[AssetKey("okr_predictions"), AssetKey("okr_curated")],
    group_name="ml",
    owners=OWNERS,
    kinds={WAREHOUSE_KIND, "scikit-learn"},
    code_version="1",
    automation_condition=FOLLOW_PARENTS,
    tags={"layer": "monitoring"},
    metadata={"dagster/column_schema": column_schema("okr_model_performance"),
              "dagster/table_name": "okr_ml.okr_model_performance"},
)
def okr_model_performance(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """How the served predictions turned out: once a cycle closes, the realised ROC-AUC and Brier
    score of the predictions each model version made for it, per as-of week, next to the version's
    holdout ROC-AUC (a check warns when reality falls more than 0.05 below it)."""
    import pandas as pd

    from okr_assets.lib.modeling import realised_performance

    warehouse.setup()
    log = warehouse.query("SELECT * FROM okr_ml.okr_prediction_log")
    outcomes = warehouse.query("SELECT key_result_id, cycle_id, reached_target FROM okr_curated.okr_curated "
                               "WHERE cycle_closed")
    table = realised_performance(log, outcomes).assign(evaluated_at=pd.Timestamp.now(tz="UTC"))
    warehouse.replace_table("okr_model_performance", table)
    context.log.info(f"okr_model_performance: {len(table)} (version, week) rows from {len(log)} served predictions")
    return MaterializeResult(metadata={
        "dagster/row_count": len(table),
        "served_predictions": len(log),
        "judged_predictions": int(table["predictions"].sum()) if len(table) else 0,
        "by_version_and_week": markdown_table(table.drop(columns="evaluated_at").round(4), limit=30),
    })
