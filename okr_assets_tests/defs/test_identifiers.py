"""Names that reach SQL or the file system are validated: a malicious table name, partition key,
Kafka topic or file name in config is refused with a clear error and changes nothing."""

from pathlib import Path

import pytest
from dagster import ExecuteInProcessResult, materialize

from okr_assets.resources import WarehouseResource
from okr_assets_tests.conftest import checkin, write_csv
from okr_assets_tests.defs.test_assets import ASSETS, land

EVIL = "okr_raw; DROP TABLE okr_raw.okr_raw; --"


def _failure_message(result: ExecuteInProcessResult) -> str:
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return failure.event_specific_data.error.to_string()


def test_table_and_column_names_come_from_the_registry_only(tmp_path: Path) -> None:
    warehouse = WarehouseResource(url=f"duckdb:///{tmp_path / 'w.duckdb'}")
    with pytest.raises(ValueError, match="unknown warehouse table"):
        warehouse.count(EVIL)
    with pytest.raises(ValueError, match="is not a column of okr_raw"):
        warehouse.read_range("okr_raw", "partition_date >= '1900-01-01' OR 1=1 --", None, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown warehouse table"):
        warehouse.append(EVIL, warehouse.query("SELECT 1 AS x"))


def test_malicious_partition_keys_are_refused(okr_home: Path, resources: dict, instance) -> None:
    write_csv(okr_home / "landing" / "a.csv", [checkin(i, "2025-07-10") for i in range(3)])
    land(instance, resources)
    before = resources["warehouse"].count("okr_raw")
    with pytest.raises(Exception, match="2025-07-01'; DROP TABLE"):
        materialize(ASSETS, selection=["okr_processed", "okr_rejects"], instance=instance, resources=resources,
                    partition_key="2025-07-01'; DROP TABLE okr_raw.okr_raw; --")
    bad_range = {"dagster/asset_partition_range_start": "2025-07-01",
                 "dagster/asset_partition_range_end": "2025-07-31') OR 1=1 --"}
    with pytest.raises(Exception, match="OR 1=1"):
        materialize(ASSETS, selection=["okr_processed", "okr_rejects"], instance=instance, resources=resources,
                    tags=bad_range)
    assert resources["warehouse"].count("okr_raw") == before


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"kafka_ranges": [{"topic": "t'; DROP TABLE x; --", "partition": 0, "start": 0, "end": 1}]},
         "is not a legal Kafka topic name"),
        ({"kafka_ranges": [{"topic": "okr_raw_ingest", "partition": 0, "start": 9, "end": 1}]},
         "is before start"),
        ({"files": ["../../etc/passwd"]}, "not plain file names"),
    ],
)
def test_malicious_landing_config_is_refused(resources: dict, instance, config: dict, message: str) -> None:
    resources["warehouse"].setup()
    result = materialize(ASSETS, selection=["okr_raw"], instance=instance, resources=resources,
                         run_config={"ops": {"okr_raw": {"config": config}}}, raise_on_error=False)
    assert not result.success and message in _failure_message(result)
    assert resources["warehouse"].count("okr_raw") == 0
