"""The embedded Dagster instance config (SQLite under DAGSTER_HOME) is written when missing and
never replaces an existing one; `okr-assets init-home` is what `make run` and `make demo` call."""

import os
import subprocess
from pathlib import Path

import pytest
from dagster import DagsterInstance
from dagster._core.storage.runs import SqliteRunStorage

from okr_assets.instance import embedded_config, ensure_dagster_home
from okr_assets.instance.storage import BatchingSqliteEventLogStorage
from okr_assets_tests.conftest import BIN, REPO, build_test_resources, checkin, write_csv

LANE_LIMIT = {"key": "okr/lane", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}


def test_embedded_config_is_written_once_and_uses_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "dagster"
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "elsewhere"))  # the config does not depend on it
    config = ensure_dagster_home(home)
    assert config == home / "dagster.yaml"
    assert config.read_text() == embedded_config(home)
    assert (home / "history" / "runs.db").exists()  # storage created before any server starts

    with DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_storage, SqliteRunStorage)
        assert isinstance(instance.event_log_storage, BatchingSqliteEventLogStorage)
        assert str(home) in instance.run_storage._conn_string  # the runs live under DAGSTER_HOME
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 2
        assert queue.tag_concurrency_limits == [LANE_LIMIT]  # DuckDB has one writer: one run per lane

    config.write_text("telemetry:\n  enabled: false\n")  # a deployment's (or hand-edited) config stays
    ensure_dagster_home(home)
    assert config.read_text() == "telemetry:\n  enabled: false\n"


def test_init_home_command_writes_into_dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**os.environ, "OKR_HOME": str(tmp_path / "okr"), "DAGSTER_HOME": str(tmp_path / "instance")}
    first = subprocess.run([str(BIN / "okr-assets"), "init-home"], env=env, cwd=REPO, capture_output=True,
                           text=True, timeout=60, check=True)
    assert "written" in first.stdout
    assert (tmp_path / "instance" / "dagster.yaml").read_text() == embedded_config(tmp_path / "instance")
    again = subprocess.run([str(BIN / "okr-assets"), "init-home"], env=env, cwd=REPO, capture_output=True,
                           text=True, timeout=60, check=True)
    assert "kept" in again.stdout

    monkeypatch.setenv("OKR_HOME", str(tmp_path / "okr"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert ensure_dagster_home() == tmp_path / "okr" / "dagster" / "dagster.yaml"  # default: under OKR_HOME


DAYS = [f"2025-07-{d:02d}" for d in range(10, 16)]


def _asset_events(instance: DagsterInstance) -> dict:
    """Everything Dagster reads back about the partitioned assets and their checks, minus ids,
    run ids and timestamps (which differ between two instances by nature)."""
    from dagster import AssetCheckKey, AssetKey, AssetRecordsFilter

    seen: dict = {}
    for name in ("okr_processed", "okr_rejects"):
        key = AssetKey(name)
        records = instance.fetch_materializations(key, limit=1000).records
        seen[name] = {
            "materializations": sorted((r.partition_key, tuple(sorted(
                (k, str(v)) for k, v in r.asset_materialization.metadata.items()))) for r in records),
            "planned": sorted(r.partition_key for r in instance.fetch_planned_materializations(
                key, limit=1000).records),
            "materialized_partitions": sorted(instance.get_materialized_partitions(key)),
            "latest": instance.get_latest_materialization_event(key).dagster_event.partition,
            "by_partition": [[r.partition_key for r in instance.fetch_materializations(
                AssetRecordsFilter(asset_key=key, asset_partitions=[day]), limit=10).records] for day in DAYS],
            "tags": sorted(tuple(sorted(t.items())) for t in
                           instance.event_log_storage.get_event_tags_for_asset(key)),
        }
        check = AssetCheckKey(key, f"{name}_schema")
        seen[name]["check_runs"] = [r.status.value for r in
                                    instance.event_log_storage.get_asset_check_execution_history(check, limit=10)]
    return seen


def test_batching_storage_records_what_the_stock_storage_records(
        okr_home: Path, kafka, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same single-run range backfill recorded by Dagster's SQLite storage and by the embedded
    instance's batching one: every event Dagster reads back is the same, and the per-partition
    events really went through the batched path."""
    from dagster import materialize

    from okr_assets_tests.defs.test_assets import ASSETS

    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "500")  # restored after the test either way
    batches: list[int] = []
    real = BatchingSqliteEventLogStorage._store_asset_events

    def counted(self, events) -> None:  # a spy: counts, then stores for real
        batches.append(len(events))
        real(self, events)

    monkeypatch.setattr(BatchingSqliteEventLogStorage, "_store_asset_events", counted)
    write_csv(okr_home / "landing" / "week.csv",
              [checkin(i, day) for i, day in enumerate(DAYS)] + [checkin(9, DAYS[2], weight=5)])  # one reject
    resources = build_test_resources(okr_home, kafka, f"duckdb:///{okr_home / 'warehouse.duckdb'}")
    stock_home, ours_home = tmp_path / "stock", tmp_path / "ours"
    stock_home.mkdir()
    (stock_home / "dagster.yaml").write_text(f"storage:\n  sqlite:\n    base_dir: {stock_home}\n")
    ensure_dagster_home(ours_home)
    tags = {"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[-1]}
    seen = {}
    for name, home in (("stock", stock_home), ("ours", ours_home)):
        with DagsterInstance.from_config(str(home)) as instance:
            assert materialize(ASSETS, selection=["okr_raw"], instance=instance, resources=resources,
                               run_config={"ops": {"okr_raw": {"config": {"files": ["week.csv"]}}}}).success
            assert materialize(ASSETS, selection=["okr_processed", "okr_rejects"], instance=instance,
                               resources=resources, tags=tags).success
            seen[name] = _asset_events(instance)
    assert seen["ours"] == seen["stock"]
    assert seen["ours"]["okr_processed"]["materialized_partitions"] == DAYS
    assert seen["ours"]["okr_processed"]["by_partition"] == [[day] for day in DAYS]
    assert seen["ours"]["okr_rejects"]["check_runs"][0] == "SUCCEEDED"
    # planned events of both assets in one batch at run creation; each asset's materializations in one
    assert 2 * len(DAYS) in batches and batches.count(len(DAYS)) >= 2


def test_the_batching_storage_turns_batching_on_unless_told_otherwise(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "")
    monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE")  # (restored to unset after the test)
    BatchingSqliteEventLogStorage(str(tmp_path / "a"))
    assert os.environ["DAGSTER_EVENT_BATCH_SIZE"] == "500"
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "0")
    BatchingSqliteEventLogStorage(str(tmp_path / "b"))
    assert os.environ["DAGSTER_EVENT_BATCH_SIZE"] == "0"
