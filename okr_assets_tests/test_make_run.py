"""`make run`'s stack (`okr-assets dev`): a Tansu broker, a trickle producer and `dagster dev`.
The UI serves the whole graph, and without any click the sensors land a dropped file and the
streamed Kafka check-ins into okr_processed and okr_curated."""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from okr_assets.instance import ensure_dagster_home
from okr_assets.resources import WarehouseResource
from okr_assets_tests.conftest import BIN, REPO, checkin, write_csv
from okr_assets_tests.processes import free_port, graphql, start, stop, wait_until
from okr_assets_tests.test_definitions import EXPECTED_ASSETS, SENSORS

# Whole-stack tests share one xdist worker: they start servers and time them, so they run one
# after another while the other worker takes the in-process tests.
pytestmark = pytest.mark.xdist_group("stack")

ASSETS_QUERY = "{ assetNodes { assetKey { path } groupName hasAssetChecks } }"
SENSORS_QUERY = """{ repositoriesOrError { ... on RepositoryConnection { nodes {
  sensors { name sensorState { status } } schedules { name scheduleState { status } } } } } }"""


@pytest.fixture
def dagster_dev(tmp_path: Path) -> Iterator[tuple[int, Path, subprocess.Popen]]:
    home = tmp_path / "okr"
    (home / "landing").mkdir(parents=True)
    ensure_dagster_home(home / "dagster")  # the embedded instance config, as `make run` writes it
    port = free_port()
    env = {**os.environ, "OKR_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
           "OKR_LANDING_SENSOR_INTERVAL_SECONDS": "5", "OKR_REFRESH_SENSOR_INTERVAL_SECONDS": "5",
           "OKR_KAFKA_SENSOR_INTERVAL_SECONDS": "5"}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)  # `okr-assets dev` starts its own broker
    log = tmp_path / "dagster_dev.log"
    proc = start([str(BIN / "okr-assets"), "dev", "--port", str(port), "--kafka-port", str(free_port()),
                  "--trickle-rate", "2"], env=env, log=log, cwd=REPO)
    try:
        wait_until(lambda: graphql(port, ASSETS_QUERY)["assetNodes"], 120, "the Dagster UI", proc=proc, log=log)
        yield port, home, proc
    finally:
        stop(proc)


def test_ui_serves_graph_and_sensors_land_dropped_files(dagster_dev: tuple[int, Path, subprocess.Popen]) -> None:
    port, home, proc = dagster_dev
    nodes = graphql(port, ASSETS_QUERY)["assetNodes"]
    assert {n["assetKey"]["path"][0]: n["groupName"] for n in nodes} == EXPECTED_ASSETS
    assert all(n["hasAssetChecks"] for n in nodes if n["assetKey"]["path"][0] != "okr_model")
    [repo] = graphql(port, SENSORS_QUERY)["repositoriesOrError"]["nodes"]
    assert {s["name"]: s["sensorState"]["status"] for s in repo["sensors"]} == dict.fromkeys(SENSORS, "RUNNING")
    assert {s["name"]: s["scheduleState"]["status"] for s in repo["schedules"]} == {
        "okr_refresh_schedule": "RUNNING", "okr_curated_schedule": "RUNNING",
        "okr_retrain_schedule": "RUNNING"}

    # A user drops an export (written under a temporary name, then renamed, like a file copy).
    landing = home / "landing"
    write_csv(landing / "drop.tmp", [checkin(i, "2025-07-1" + str(i)) for i in range(4)])
    os.replace(landing / "drop.tmp", landing / "drop.csv")

    warehouse = WarehouseResource(url=f"duckdb:///{home / 'warehouse.duckdb'}")

    def curated_rows() -> int:
        if not (home / "warehouse.duckdb").exists():
            return 0
        return int(warehouse.query("SELECT count(*) FROM okr_curated.okr_curated").iloc[0, 0])

    def from_file() -> list[str]:
        if not (home / "warehouse.duckdb").exists():
            return []
        return warehouse.query("SELECT checkin_id FROM okr_processed.okr_processed "
                               "WHERE source = 'file' ORDER BY 1")["checkin_id"].tolist()

    def streamed_and_curated() -> bool:
        streamed = warehouse.query(
            "SELECT count(*) AS n, max(checkin_at) AS newest FROM okr_processed.okr_processed WHERE source = 'kafka'")
        if int(streamed["n"][0]) == 0:
            return False
        curated = warehouse.query("SELECT max(last_checkin_at) AS newest FROM okr_curated.okr_curated")
        return bool(curated["newest"][0] >= streamed["newest"][0] - pd.Timedelta(minutes=5))

    assert wait_until(lambda: from_file() == ["c0", "c1", "c2", "c3"], 240,
                      "the dropped file in okr_processed", interval=3, proc=proc)
    wait_until(lambda: curated_rows() >= 3, 120, "okr_curated refreshed from the file", interval=3, proc=proc)
    wait_until(streamed_and_curated, 180, "streamed Kafka check-ins in okr_processed and okr_curated",
               interval=3, proc=proc)
    rejects = warehouse.query("SELECT DISTINCT reason FROM okr_processed.okr_rejects WHERE source = 'kafka'")
    assert rejects.empty or set(rejects["reason"]) <= {
        "message_not_json", "message_not_utf8", "message_not_object", "unknown_schema_version",
        "weight_out_of_range", "missing_required", "unknown_enum"}
