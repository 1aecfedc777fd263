"""`make run`'s server: `dagster dev` serves the whole graph, and the sensors land a dropped file
into okr_processed and okr_curated without any click."""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from okr_assets.resources import WarehouseResource
from okr_assets_tests.conftest import BIN, REPO, checkin, write_csv
from okr_assets_tests.processes import free_port, graphql, start, stop, wait_until

ASSETS_QUERY = "{ assetNodes { assetKey { path } groupName hasAssetChecks } }"
SENSORS_QUERY = """{ repositoriesOrError { ... on RepositoryConnection { nodes {
  sensors { name sensorState { status } } schedules { name scheduleState { status } } } } } }"""


@pytest.fixture
def dagster_dev(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    home = tmp_path / "okr"
    (home / "landing").mkdir(parents=True)
    (home / "dagster").mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster" / "dagster.yaml")
    port = free_port()
    env = {**os.environ, "OKR_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
           "OKR_LANDING_SENSOR_INTERVAL_SECONDS": "5", "OKR_REFRESH_SENSOR_INTERVAL_SECONDS": "5"}
    log = tmp_path / "dagster_dev.log"
    proc = start([str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                 env=env, log=log, cwd=REPO)
    try:
        wait_until(lambda: graphql(port, ASSETS_QUERY)["assetNodes"], 120, "the Dagster UI", proc=proc, log=log)
        yield port, home
    finally:
        stop(proc)


def test_ui_serves_graph_and_sensors_land_dropped_files(dagster_dev: tuple[int, Path]) -> None:
    port, home = dagster_dev
    nodes = graphql(port, ASSETS_QUERY)["assetNodes"]
    assert {n["assetKey"]["path"][0]: n["groupName"] for n in nodes} == {
        "okr_raw": "ingestion", "okr_processed": "tables", "okr_rejects": "tables", "okr_curated": "tables"}
    assert all(n["hasAssetChecks"] for n in nodes)
    [repo] = graphql(port, SENSORS_QUERY)["repositoriesOrError"]["nodes"]
    assert {s["name"]: s["sensorState"]["status"] for s in repo["sensors"]} == {
        "okr_landing_sensor": "RUNNING", "okr_kafka_sensor": "RUNNING", "okr_refresh_sensor": "RUNNING"}
    assert {s["name"]: s["scheduleState"]["status"] for s in repo["schedules"]} == {
        "okr_refresh_schedule": "RUNNING"}

    # A user drops an export (written under a temporary name, then renamed, like a file copy).
    landing = home / "landing"
    write_csv(landing / "drop.tmp", [checkin(i, "2025-07-1" + str(i)) for i in range(4)])
    os.replace(landing / "drop.tmp", landing / "drop.csv")

    warehouse = WarehouseResource(url=f"duckdb:///{home / 'warehouse.duckdb'}")

    def curated_rows() -> int:
        if not (home / "warehouse.duckdb").exists():
            return 0
        return int(warehouse.query("SELECT count(*) FROM okr_curated.okr_curated").iloc[0, 0])

    wait_until(curated_rows, 240, "okr_curated to be refreshed by the sensors", interval=3)
    processed = warehouse.query("SELECT checkin_id FROM okr_processed.okr_processed ORDER BY 1")
    assert processed["checkin_id"].tolist() == ["c0", "c1", "c2", "c3"]
    assert curated_rows() == 3
