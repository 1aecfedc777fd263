"""The code location loads, and every asset is self-describing. This pins the graph's shape."""

import datetime as dt
import os
import subprocess
import sys

from dagster import AssetKey, build_schedule_context

from okr_assets.definitions import defs
from okr_assets.defs.automation.schedules import okr_curated_schedule, okr_refresh_schedule
from okr_assets.defs.metadata import GENERATED, column_schema, pandera_column_schema, render_column_schemas
from okr_assets.lib.schemas import TABLE_MODELS
from okr_assets_tests.conftest import BIN, REPO

EXPECTED_ASSETS = {
    "okr_raw": "ingestion", "okr_processed": "tables", "okr_rejects": "tables", "okr_curated": "tables",
    "okr_features": "ml", "okr_model": "ml", "okr_predictions": "ml", "okr_drift_report": "ml",
    "okr_model_performance": "ml",
}
EXPECTED_CHECKS = {
    ("okr_raw", "okr_raw_schema"), ("okr_processed", "okr_processed_schema"),
    ("okr_rejects", "okr_rejects_schema"), ("okr_curated", "okr_curated_schema"),
    ("okr_features", "okr_features_schema"), ("okr_predictions", "okr_predictions_schema"),
    ("okr_drift_report", "okr_drift_report_schema"), ("okr_model_performance", "okr_model_performance_schema"),
    ("okr_model_performance", "okr_realised_auc_holds_up"),
}
SENSORS = {"okr_landing_sensor", "okr_kafka_sensor", "okr_refresh_sensor", "okr_retrain_sensor",
           "okr_automation_sensor", "okr_alert_sensor"}


def test_graph_shape() -> None:
    graph = defs.resolve_asset_graph()
    specs = {k.to_user_string(): graph.get(k) for k in graph.get_all_asset_keys()}
    assert {k: n.group_name for k, n in specs.items()} == EXPECTED_ASSETS
    assert {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys} == EXPECTED_CHECKS
    assert graph.get(AssetKey("okr_processed")).parent_keys == {AssetKey("okr_raw")}
    assert graph.get(AssetKey("okr_curated")).parent_keys == {AssetKey("okr_processed")}
    assert graph.get(AssetKey("okr_features")).parent_keys == {AssetKey("okr_curated"), AssetKey("okr_processed")}
    assert graph.get(AssetKey("okr_predictions")).parent_keys == {AssetKey("okr_model"), AssetKey("okr_features")}
    assert graph.get(AssetKey("okr_predictions")).automation_condition is not None
    assert {s.name for s in defs.sensors} == SENSORS
    assert {s.name for s in defs.schedules} == {"okr_refresh_schedule", "okr_curated_schedule",
                                                "okr_retrain_schedule"}
    assert {s.default_status.value for s in (*defs.sensors, *defs.schedules)} == {"RUNNING"}


def test_freshness_policies_are_sized_to_the_six_hourly_refresh() -> None:
    graph = defs.resolve_asset_graph()
    policies = {k.to_user_string(): graph.get(k).freshness_policy for k in graph.get_all_asset_keys()}
    fresh = {name: (p.warn_window.to_timedelta(), p.fail_window.to_timedelta())
             for name, p in policies.items() if p is not None}
    refresh = (dt.timedelta(hours=7), dt.timedelta(hours=13))  # one missed 6 h refresh warns, two fail
    assert fresh == {"okr_curated": refresh, "okr_features": refresh, "okr_predictions": refresh}


def test_every_asset_is_self_describing() -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        name = key.to_user_string()
        assert node.description and len(node.description) > 40, name
        assert node.owners in (["team:okr-data-platform"], ["team:okr-ml"]), name
        assert node.code_version, name
        kinds = {t.removeprefix("dagster/kind/") for t in node.tags if t.startswith("dagster/kind/")}
        if name == "okr_model":  # a model in the MLflow registry, not a table
            assert "mlflow" in kinds
            continue
        assert "duckdb" in kinds, name  # the embedded engine (postgres when OKR_WAREHOUSE_URL says so)
        schema = node.metadata["dagster/column_schema"]
        schema = getattr(schema, "schema", schema)
        assert len(schema.columns) >= 7 and all(c.description for c in schema.columns), name
    partitions = {k.to_user_string(): graph.get(k).partitions_def for k in graph.get_all_asset_keys()}
    assert partitions["okr_raw"] is None
    assert partitions["okr_processed"].get_first_partition_key() == "2024-01-01"
    assert partitions["okr_curated"].get_first_partition_key() == "2023-10-01"


def test_schedule_refreshes_yesterday_today_and_the_current_quarter() -> None:
    context = build_schedule_context(scheduled_execution_time=dt.datetime(2025, 8, 10, 6, tzinfo=dt.UTC))
    [days] = okr_refresh_schedule.evaluate_tick(context).run_requests
    [quarter] = okr_curated_schedule.evaluate_tick(context).run_requests
    assert days.tags["dagster/asset_partition_range_start"] == "2025-08-09"
    assert days.tags["dagster/asset_partition_range_end"] == "2025-08-10"
    assert {k.to_user_string() for k in days.asset_selection} == {"okr_processed", "okr_rejects"}
    # Curated (and, through okr_refresh_sensor, features) stay fresh on days without check-ins.
    assert quarter.tags["dagster/asset_partition_range_start"] == "2025-07-01"
    assert quarter.tags["dagster/asset_partition_range_end"] == "2025-07-01"
    assert [k.to_user_string() for k in quarter.asset_selection] == ["okr_curated"]
    assert days.run_key != quarter.run_key


def test_dagster_definitions_validate(tmp_path) -> None:
    env = {**os.environ, "OKR_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path)}
    proc = subprocess.run([str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Validation successful" in proc.stdout + proc.stderr


# Imported by the asset, check, sensor and resource bodies that need them, never by loading the
# code location (every run process and the code server do that; benchmarks/code_load.py).
HEAVY_LIBRARIES = ("pandas", "numpy", "pyarrow", "pandera", "dagster_pandera", "scipy", "sklearn", "mlflow",
                   "dagster_mlflow", "kafka", "duckdb", "psycopg2", "sqlalchemy", "ibis", "sqlglot")


def test_heavy_libraries_stay_out_of_definitions_import() -> None:
    # A fresh interpreter, as a run process: this one has imported everything already.
    code = ("import sys; from okr_assets.definitions import defs; defs.get_repository_def(); "
            f"print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY_LIBRARIES!r}))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert loaded.stdout.strip() == "", f"loading the code location imports {loaded.stdout.strip()}"


def test_column_schemas_are_generated_from_the_pandera_models() -> None:
    # The code location ships column schemas as generated data (no Pandera import at load time);
    # the Pandera models stay the source of truth, and this fails until the file is regenerated.
    assert GENERATED.read_text(encoding="utf-8") == render_column_schemas(), (
        "okr_assets/defs/column_schemas.py is out of date: run python -m okr_assets.defs.metadata --write")
    for table, model in TABLE_MODELS.items():
        assert column_schema(table) == pandera_column_schema(model), table


def test_openmp_threads_wait_passively_in_every_run_process() -> None:
    """A run process imports the code location before scikit-learn; by then OpenMP's threads are
    set to wait passively (spinning ones starve concurrent runs), unless the environment says
    otherwise."""
    probe = ("import os, okr_assets.definitions, sklearn.ensemble; "
             "print(os.environ.get('OMP_WAIT_POLICY'))")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "PASSIVE"
    chosen = subprocess.run([sys.executable, "-c", probe], env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
                            capture_output=True, text=True, check=True)
    assert chosen.stdout.strip() == "ACTIVE"
