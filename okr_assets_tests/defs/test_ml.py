"""The ML assets on a real Dagster instance, a real DuckDB warehouse and a real local MLflow
tracking store (SQLite + artifact folder under the test's OKR_HOME), verified through MlflowClient;
and against a real `mlflow server` that goes down."""

import json
import os
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pandas as pd
import pytest
from dagster import (
    AssetKey,
    RunRequest,
    SensorResult,
    SkipReason,
    build_schedule_context,
    build_sensor_context,
    materialize,
)

from okr_assets.cli import default_as_of
from okr_assets.defs.ml.automation import okr_retrain_schedule, okr_retrain_sensor
from okr_assets.lib.generator import GeneratorConfig, generate, write_dataset
from okr_assets.resources import KafkaResource
from okr_assets.resources.mlflow import HTTP_DEFAULTS, okr_mlflow, tracking_uri
from okr_assets_tests.conftest import BIN, build_test_resources
from okr_assets_tests.defs.test_assets import ASSETS, metadata
from okr_assets_tests.processes import free_port, start, stop, wait_until


def _range(start: str, end: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}


@pytest.fixture
def ml_resources(resources: dict) -> dict:
    assert resources["mlflow"] is okr_mlflow
    return resources


def _pipeline(okr_home: Path, resources: dict, instance, cycles: int = 4, teams: int = 4) -> None:
    data = generate(GeneratorConfig(seed=4, teams=teams, cycles=cycles, as_of=default_as_of()))
    write_dataset(data, okr_home / "landing", seed=4)
    quarters = sorted({c for c in data.ground_truth["cycle_id"]})
    first_q = f"{quarters[0][:4]}-{3 * (int(quarters[0][-1]) - 1) + 1:02d}-01"
    last_q = f"{quarters[-1][:4]}-{3 * (int(quarters[-1][-1]) - 1) + 1:02d}-01"
    warehouse = resources["warehouse"]
    assert materialize(ASSETS, selection=["okr_raw"], instance=instance, resources=resources).success
    bounds = warehouse.query("SELECT min(partition_date) lo, max(partition_date) hi FROM okr_raw.okr_raw")
    days = _range(bounds["lo"][0].strftime("%Y-%m-%d"), bounds["hi"][0].strftime("%Y-%m-%d"))
    for selection, tags in ((["okr_processed", "okr_rejects"], days),
                            (["okr_curated"], _range(first_q, last_q)),
                            (["okr_features"], _range(first_q, last_q))):
        assert materialize(ASSETS, selection=selection, instance=instance, resources=resources, tags=tags).success


def drift_the_open_cycle(resources: dict, instance) -> None:
    """The open cycle's key results suddenly report much more progress and confidence, and its
    features are rebuilt from that new data."""
    warehouse = resources["warehouse"]
    warehouse.execute("UPDATE okr_processed.okr_processed SET progress = progress + 1.5, "
                      "score = least(greatest(progress + 1.5, 0), 1), confidence = 10 "
                      "WHERE cycle_end >= current_date")
    quarter = warehouse.query("SELECT max(cycle_quarter) AS q FROM okr_ml.okr_features")["q"][0].strftime("%Y-%m-%d")
    assert materialize(ASSETS, selection=["okr_features"], instance=instance, resources=resources,
                       partition_key=quarter).success


def test_train_register_predict_and_report(okr_home: Path, ml_resources: dict, instance) -> None:
    import mlflow

    _pipeline(okr_home, ml_resources, instance)
    warehouse = ml_resources["warehouse"]
    first = materialize(ASSETS, selection=["okr_model", "okr_predictions", "okr_drift_report"],
                        instance=instance, resources=ml_resources)
    assert first.success
    model_meta = metadata(first, "okr_model")
    assert model_meta["model_version"] == "1" and model_meta["promoted_to_champion"] is True
    assert model_meta["holdout_roc_auc"] > 0.7
    assert tracking_uri() == f"sqlite:///{okr_home / 'mlflow.db'}"

    client = mlflow.MlflowClient(tracking_uri())
    champion = client.get_model_version_by_alias("okr_at_risk", "champion")
    assert str(champion.version) == "1"
    run = client.get_run(champion.run_id)
    assert run.info.status == "FINISHED"  # the wrapper ends the MLflow run with the step
    assert run.data.params["holdout_cycle"] == model_meta["holdout_cycle"]
    assert json.loads(run.data.params["train_cycles"]) == model_meta["train_cycles"]
    assert run.data.params["training_data_version"] == model_meta["training_data_version"]
    assert abs(run.data.metrics["holdout_roc_auc"] - model_meta["holdout_roc_auc"]) < 1e-3
    assert {"holdout_brier", "holdout_log_loss"} <= set(run.data.metrics)
    per_week = client.get_metric_history(run.info.run_id, "holdout_roc_auc_by_week")
    assert len(per_week) >= 10
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"features.json", "drift"} <= artifacts
    assert (okr_home / "mlartifacts").is_dir()
    # Someone serving the model gets the packages it needs, pinned to the versions it was trained with.
    import sklearn
    import skops

    requirements = mlflow.artifacts.load_text("models:/okr_at_risk/1/requirements.txt").split()
    assert {f"scikit-learn=={sklearn.__version__}", f"skops=={skops.__version__}"} <= set(requirements)

    predictions = warehouse.query("SELECT * FROM okr_ml.okr_predictions ORDER BY risk_rank")
    assert len(predictions) > 0 and (predictions["model_version"] == "1").all()
    assert predictions["risk"].is_monotonic_decreasing and predictions["risk"].between(0, 1).all()
    report = metadata(first, "okr_drift_report")
    assert "drift_detected" in report and "| feature |" in report["summary"]
    assert all(c.passed for c in first.get_asset_check_evaluations())

    # A worse model (labels of the training cycles inverted) is registered but not promoted.
    warehouse.execute("UPDATE okr_ml.okr_features SET label = NOT label WHERE cycle_closed AND cycle_id <> ?",
                      [model_meta["holdout_cycle"]])
    second = materialize(ASSETS, selection=["okr_model"], instance=instance, resources=ml_resources)
    worse = metadata(second, "okr_model")
    assert worse["model_version"] == "2" and worse["promoted_to_champion"] is False
    assert worse["holdout_roc_auc"] < worse["champion_roc_auc_on_same_holdout"]
    assert str(client.get_model_version_by_alias("okr_at_risk", "champion").version) == "1"


# ML and sensor logic: the warehouse reads and writes of these steps run on PostgreSQL too, in
# test_train_register_predict_and_report; here one engine keeps the suite within its time budget.
@pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
def test_significant_drift_requests_retraining(okr_home: Path, ml_resources: dict, instance) -> None:
    _pipeline(okr_home, ml_resources, instance)
    # No model yet: the sensor asks for the first training.
    initial = okr_retrain_sensor(build_sensor_context(instance=instance))
    assert [r.tags["okr/trigger"] for r in initial.run_requests] == ["initial training"]
    weekly = okr_retrain_schedule(build_schedule_context(instance=instance))
    assert isinstance(weekly, RunRequest) and weekly.tags["okr/lane"] == "ml"
    assert materialize(ASSETS, selection=["okr_model"], instance=instance, resources=ml_resources).success
    quiet = okr_retrain_sensor(build_sensor_context(instance=instance, cursor=initial.cursor))
    assert isinstance(quiet, SensorResult) and not quiet.run_requests

    drift_the_open_cycle(ml_resources, instance)
    drift = materialize(ASSETS, selection=["okr_drift_report"], instance=instance, resources=ml_resources)
    report = metadata(drift, "okr_drift_report")
    assert report["drift_detected"] is True and "progress" in report["drifted_features"]
    assert report["likely_to_hurt_model"] is True  # the champion's predicted risk moved too
    result = okr_retrain_sensor(build_sensor_context(instance=instance, cursor=quiet.cursor))
    [request] = result.run_requests
    assert request.asset_selection[0].to_user_string() == "okr_model"
    assert request.tags["okr/trigger"] == "drift" and "progress" in request.tags["okr/drifted_features"]
    assert json.loads(result.cursor)["drift"] > json.loads(quiet.cursor)["drift"]

    # Retrained on those features; the drift persists, but retraining again on the same features
    # cannot help: no retraining loop.
    assert materialize(ASSETS, selection=["okr_model", "okr_drift_report"], instance=instance,
                       resources=ml_resources).success
    again = okr_retrain_sensor(build_sensor_context(instance=instance, cursor=result.cursor))
    assert not again.run_requests and "already retrained" in again.skip_reason.skip_message


# ML and sensor logic: the warehouse reads and writes of these steps run on PostgreSQL too, in
# test_train_register_predict_and_report; here one engine keeps the suite within its time budget.
@pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
def test_no_training_requested_before_two_closed_cycles(okr_home: Path, ml_resources: dict, instance) -> None:
    # A fresh stack has features long before it has two closed cycles (the time-based holdout
    # needs one to train on and one to hold out): the sensor and the schedule wait, instead of
    # requesting an okr_model run that can only fail, again after every okr_features refresh.
    _pipeline(okr_home, ml_resources, instance, cycles=2)  # one closed cycle and the open one
    features = instance.fetch_materializations(AssetKey("okr_features"), limit=1).records[0]
    meta = features.asset_materialization.metadata
    assert meta["closed_cycles"].value == 1 and meta["enough_to_train"].value is False
    result = okr_retrain_sensor(build_sensor_context(instance=instance))
    assert isinstance(result, SensorResult) and not result.run_requests
    assert "1 closed cycle(s), not enough to train" in result.skip_reason.skip_message
    weekly = okr_retrain_schedule(build_schedule_context(instance=instance))
    assert isinstance(weekly, SkipReason) and "1 closed cycle(s)" in weekly.skip_message
    # What the skip prevents.
    failed = materialize(ASSETS, selection=["okr_model"], instance=instance, resources=ml_resources,
                         raise_on_error=False)
    assert not failed.success


# ML and sensor logic: the warehouse reads and writes of these steps run on PostgreSQL too, in
# test_train_register_predict_and_report; here one engine keeps the suite within its time budget.
@pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
def test_realised_performance_of_served_predictions(okr_home: Path, ml_resources: dict, instance) -> None:
    _pipeline(okr_home, ml_resources, instance)
    warehouse = ml_resources["warehouse"]
    assert materialize(ASSETS, selection=["okr_model", "okr_predictions", "okr_model_performance"],
                       instance=instance, resources=ml_resources).success
    log = warehouse.query("SELECT * FROM okr_ml.okr_prediction_log")
    assert len(log) > 30 and (log["model_version"] == "1").all() and log["holdout_roc_auc"].notna().all()
    assert warehouse.count("okr_model_performance") == 0  # nothing served has closed yet

    def close_open_cycle(reached_when_low_risk: bool) -> dict:
        # the open cycle ends with outcomes the model ranked ...
        warehouse.execute(
            "UPDATE okr_curated.okr_curated c SET cycle_closed = true, final_score = latest_score, "
            "reached_target = CASE WHEN p.risk < 0.5 THEN ? ELSE NOT ? END "
            "FROM okr_ml.okr_predictions p WHERE p.key_result_id = c.key_result_id "
            "AND p.cycle_id = c.cycle_id", [reached_when_low_risk, reached_when_low_risk])
        result = materialize(ASSETS, selection=["okr_model_performance"], instance=instance,
                             resources=ml_resources, raise_on_error=False)
        return {e.check_name: e for e in result.get_asset_check_evaluations()}

    checks = close_open_cycle(reached_when_low_risk=True)  # ... perfectly
    table = warehouse.query("SELECT * FROM okr_ml.okr_model_performance")
    assert len(table) == 1 and table["predictions"][0] == len(log) and table["realised_roc_auc"][0] == 1.0
    assert checks["okr_realised_auc_holds_up"].passed
    checks = close_open_cycle(reached_when_low_risk=False)  # ... exactly backwards
    warned = checks["okr_realised_auc_holds_up"]
    assert not warned.passed and warned.severity.value == "WARN"
    assert "more than 0.05 below" in warned.description


def _start_mlflow_server(folder: Path, port: int) -> tuple[subprocess.Popen, Path]:
    """A real tracking server (SQLite backend store and artifact folder in ``folder``) starting on
    127.0.0.1:``port``, and its log (one per start)."""
    log = folder / f"mlflow-{time.monotonic_ns()}.log"
    return start([str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
                  "--artifacts-destination", str(folder / "mlartifacts"), "--host", "127.0.0.1",
                  "--port", str(port), "--workers", "1"], env=dict(os.environ), log=log, cwd=folder), log


def _wait_until_healthy(proc: subprocess.Popen, log: Path, port: int) -> None:
    def healthy() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return response.status == 200

    wait_until(healthy, 120, f"the MLflow server on port {port}", interval=0.3, proc=proc, log=log)


def _failure_text(result) -> str:
    """Every error a run reported (a step's, a resource's, the run's), with its causes, as text."""
    errors = (getattr(e.event_specific_data, "error", None) for e in result.all_events)
    return "\n".join(error.to_string() for error in errors if error is not None)


def test_registry_outage_fails_runs_and_changes_nothing(okr_home: Path, kafka: KafkaResource, instance,
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the tracking server down, okr_predictions, okr_drift_report and okr_model fail within
    seconds, saying so, and leave the served tables and the champion alias as they were."""
    import mlflow

    for name in HTTP_DEFAULTS:  # the product's own limits, whatever this shell sets
        monkeypatch.delenv(name, raising=False)
    server_dir, port = tmp_path / "mlflow-server", free_port()
    server_dir.mkdir()
    secret = f"pw-{uuid.uuid4().hex}"  # a tracking URI can carry credentials: none may leak
    uri = f"http://okr:{secret}@127.0.0.1:{port}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("OKR_MLFLOW_ARTIFACT_ROOT", "mlflow-artifacts:/okr_at_risk")  # through the server
    resources = build_test_resources(okr_home, kafka, f"duckdb:///{okr_home / 'warehouse.duckdb'}")
    warehouse = resources["warehouse"]
    server, log = _start_mlflow_server(server_dir, port)  # starts while the warehouse is filled
    try:
        _pipeline(okr_home, resources, instance, cycles=3, teams=1)
        _wait_until_healthy(server, log, port)
        served = materialize(ASSETS, selection=["okr_model", "okr_predictions", "okr_drift_report"],
                             instance=instance, resources=resources)
        assert served.success and metadata(served, "okr_model")["champion_version"] == "1"
        before = {table: warehouse.query(f"SELECT * FROM okr_ml.{table}") for table in
                  ("okr_predictions", "okr_drift_report")}
        assert all(len(rows) > 0 for rows in before.values())
        stop(server)

        for asset in ("okr_predictions", "okr_drift_report", "okr_model"):
            started = time.monotonic()
            failed = materialize(ASSETS, selection=[asset], instance=instance, resources=resources,
                                 raise_on_error=False)
            elapsed = time.monotonic() - started
            error = _failure_text(failed)
            assert not failed.success, f"{asset} succeeded without its registry"
            # MLflow's own retry defaults would wait ~4 minutes per request
            assert elapsed < 45, f"{asset} took {elapsed:.0f} s to fail"
            assert f"MLflow tracking store http://127.0.0.1:{port} failed while" in error, error
            assert "Connection refused" in error and "Nothing was changed" in error, error
            assert secret not in error
        for table, rows in before.items():
            pd.testing.assert_frame_equal(warehouse.query(f"SELECT * FROM okr_ml.{table}"), rows)
        recorded = "\n".join(repr(entry) for run in instance.get_runs() for entry in instance.all_logs(run.run_id))
        assert secret not in recorded

        server, log = _start_mlflow_server(server_dir, port)
        _wait_until_healthy(server, log, port)
        client = mlflow.MlflowClient(uri)
        assert str(client.get_model_version_by_alias("okr_at_risk", "champion").version) == "1"
        assert len(client.search_model_versions("name = 'okr_at_risk'")) == 1  # okr_model registered nothing
    finally:
        stop(server)
