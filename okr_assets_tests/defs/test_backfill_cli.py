"""A date-range backfill through the Dagster CLI rewrites exactly those partitions."""

import os
import subprocess
from pathlib import Path

import pytest
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

from okr_assets.instance import ensure_dagster_home
from okr_assets.resources import WarehouseResource
from okr_assets_tests.conftest import BIN, REPO, checkin, write_csv

# Whole-stack tests share one xdist worker: they start servers and time them, so they run one
# after another while the other worker takes the in-process tests.
pytestmark = pytest.mark.xdist_group("stack")


def _dagster(args: list[str], env: dict) -> str:
    proc = subprocess.run([str(BIN / "dagster"), "asset", "materialize", "-m", "okr_assets.definitions",
                           *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_cli_partition_range_backfill(okr_home: Path) -> None:
    dagster_home = ensure_dagster_home(okr_home / "dagster").parent  # the embedded instance config
    env = {**os.environ, "OKR_HOME": str(okr_home), "DAGSTER_HOME": str(dagster_home)}
    write_csv(okr_home / "landing" / "a.csv",
              [checkin(i, f"2025-07-{10 + i % 4:02d}") for i in range(12)])

    _dagster(["--select", "okr_raw"], env)
    _dagster(["--select", "okr_processed,okr_rejects", "--partition-range", "2025-07-01...2025-07-31"], env)
    warehouse = WarehouseResource(url=f"duckdb:///{okr_home / 'warehouse.duckdb'}")
    warehouse.execute("UPDATE okr_processed.okr_processed SET value = -1 WHERE checkin_date IN "
                      "('2025-07-10', '2025-07-11', '2025-07-12')")  # corrupt three days by hand

    _dagster(["--select", "okr_processed,okr_rejects", "--partition-range", "2025-07-10...2025-07-11"], env)

    corrupted = warehouse.query("SELECT strftime(checkin_date, '%Y-%m-%d') AS day, count(*) AS n "
                                "FROM okr_processed.okr_processed WHERE value = -1 GROUP BY 1")
    assert corrupted.values.tolist() == [["2025-07-12", 3]]  # outside the range: untouched
    assert warehouse.count("okr_processed") == 12

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        def materializations(day: str) -> int:
            records = instance.fetch_materializations(
                AssetRecordsFilter(asset_key=AssetKey("okr_processed"), asset_partitions=[day]), limit=10)
            return len(records.records)

        assert [materializations(d) for d in ("2025-07-09", "2025-07-10", "2025-07-11", "2025-07-12")] \
            == [1, 2, 2, 1]
        runs = instance.get_runs()
        assert runs[0].tags["dagster/asset_partition_range_start"] == "2025-07-10"
        assert runs[0].tags["dagster/asset_partition_range_end"] == "2025-07-11"
