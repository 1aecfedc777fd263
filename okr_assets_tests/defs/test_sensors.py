"""Sensors evaluated against a real instance: their run requests *and* their cursors."""

import json
import os
from pathlib import Path

from dagster import AssetKey, DagsterRunStatus, SensorResult, build_sensor_context, materialize

from okr_assets.defs.automation.sensors import STAGES, okr_refresh_sensor
from okr_assets.defs.ingestion.sensors import okr_landing_sensor
from okr_assets_tests.conftest import checkin, write_csv
from okr_assets_tests.defs.test_assets import ASSETS, land


def _tick(sensor, instance, cursor: str | None, resources: dict | None = None) -> SensorResult:
    context = build_sensor_context(instance=instance, cursor=cursor, resources=resources)
    result = sensor(context)
    assert isinstance(result, SensorResult)
    return result


def test_landing_sensor_requests_each_file_version_once(okr_home: Path, resources: dict, instance) -> None:
    landing = okr_home / "landing"
    write_csv(landing / "a.csv", [checkin(1, "2025-07-10")])
    write_csv(landing / "b.csv", [checkin(2, "2025-07-11")])
    (landing / "ignored.json").write_text("{}")
    res = {"landing": resources["landing"], "warehouse": resources["warehouse"]}

    first = _tick(okr_landing_sensor, instance, None, res)
    [request] = first.run_requests
    assert request.run_config["ops"]["okr_raw"]["config"]["files"] == ["a.csv", "b.csv"]
    assert request.tags["okr/landing_files"] == "a.csv, b.csv"
    assert request.run_key.startswith("landing:")
    cursor = json.loads(first.cursor)["files"]
    assert set(cursor) == {"a.csv", "b.csv"} and not any(confirmed for _, confirmed in cursor.values())

    # Not landed yet, but just requested: nothing is asked for twice.
    second = _tick(okr_landing_sensor, instance, first.cursor, res)
    assert not second.run_requests and second.skip_reason is not None
    assert json.loads(second.cursor)["files"] == cursor

    # Same cursor evaluated again (e.g. a retried tick) yields the same run key: the daemon
    # launches a run key once.
    assert _tick(okr_landing_sensor, instance, None, res).run_requests[0].run_key == request.run_key

    # A changed file is requested again, alone; a new file too.
    write_csv(landing / "a.csv", [checkin(1, "2025-07-10", value=99)])
    os.utime(landing / "a.csv", ns=(1, 1))
    write_csv(landing / "c.csv", [checkin(3, "2025-07-12")])
    third = _tick(okr_landing_sensor, instance, second.cursor, res)
    [again] = third.run_requests
    assert again.run_config["ops"]["okr_raw"]["config"]["files"] == ["a.csv", "c.csv"]
    assert again.run_key != request.run_key
    assert json.loads(third.cursor)["files"]["a.csv"] == [f"1:{(landing / 'a.csv').stat().st_size}", False]


def test_landing_sensor_batches_large_drops(okr_home: Path, resources: dict, instance, monkeypatch) -> None:
    monkeypatch.setenv("OKR_LANDING_MAX_FILES_PER_RUN", "2")
    for i in range(5):
        write_csv(okr_home / "landing" / f"f{i}.csv", [checkin(i, "2025-07-10")])
    result = _tick(okr_landing_sensor, instance, None, {"landing": resources["landing"],
                                                          "warehouse": resources["warehouse"]})
    batches = [r.run_config["ops"]["okr_raw"]["config"]["files"] for r in result.run_requests]
    assert batches == [["f0.csv", "f1.csv"], ["f2.csv", "f3.csv"], ["f4.csv"]]
    assert len({r.run_key for r in result.run_requests}) == 3


def test_landing_sensor_waits_for_files_still_being_written(okr_home: Path, resources: dict, instance) -> None:
    from okr_assets.resources import LandingFolderResource

    landing = LandingFolderResource(landing_dir=str(okr_home / "landing"),
                                    quarantine_dir=str(okr_home / "q"), settle_seconds=3600)
    write_csv(okr_home / "landing" / "a.csv", [checkin(1, "2025-07-10")])
    result = _tick(okr_landing_sensor, instance, None, {"landing": landing, "warehouse": resources["warehouse"]})
    assert not result.run_requests and json.loads(result.cursor)["files"] == {}


def test_refresh_sensor_cascades_exact_partitions(okr_home: Path, resources: dict, instance) -> None:
    # Check-ins on 10, 11 and 14 July plus a late one for 2 July: three contiguous ranges.
    write_csv(okr_home / "landing" / "a.csv",
              [checkin(1, "2025-07-10"), checkin(2, "2025-07-11"), checkin(3, "2025-07-14"),
               checkin(4, "2025-07-02")])
    land(instance, resources)

    first = _tick(okr_refresh_sensor, instance, None)
    ranges = [(r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
              for r in first.run_requests]
    assert ranges == [("2025-07-02", "2025-07-02"), ("2025-07-10", "2025-07-11"), ("2025-07-14", "2025-07-14")]
    assert all(set(r.asset_selection) == {AssetKey("okr_processed"), AssetKey("okr_rejects")}
               for r in first.run_requests)
    [raw_record] = instance.fetch_materializations(AssetKey("okr_raw"), limit=1).records
    cursor = json.loads(first.cursor)
    assert {k: cursor[k] for k in STAGES} == {"raw": raw_record.storage_id, "processed": 0, "curated": 0}
    assert sorted((p["start"], p["end"]) for p in cursor["pending"]) == ranges  # until a run gets them done

    # Nothing new: nothing requested; the requested ranges wait for their runs.
    second = _tick(okr_refresh_sensor, instance, first.cursor)
    assert not second.run_requests and json.loads(second.cursor)["pending"] == cursor["pending"]

    # Execute what the sensor asked for; the processed materializations cascade to curated.
    for request in first.run_requests:
        result = materialize(ASSETS, selection=list(request.asset_selection), instance=instance,
                             resources=resources, tags=request.tags)
        assert result.success
    third = _tick(okr_refresh_sensor, instance, second.cursor)
    [curate] = third.run_requests
    assert [(p["stage"], p["start"]) for p in json.loads(third.cursor)["pending"]] == [("processed", "2025-07-01")]
    assert curate.asset_selection == [AssetKey("okr_curated")]
    assert (curate.tags["dagster/asset_partition_range_start"],
            curate.tags["dagster/asset_partition_range_end"]) == ("2025-07-01", "2025-07-01")
    assert json.loads(third.cursor)["processed"] > 0
    assert materialize(ASSETS, selection=["okr_curated"], instance=instance, resources=resources,
                       tags=curate.tags).success
    assert resources["warehouse"].count("okr_curated") == 3
    fourth = _tick(okr_refresh_sensor, instance, third.cursor)
    [features] = fourth.run_requests
    assert features.asset_selection == [AssetKey("okr_features")]
    assert features.tags["dagster/asset_partition_range_start"] == "2025-07-01"
    assert features.tags["okr/lane"] == "refresh:okr_features"
    assert not _tick(okr_refresh_sensor, instance, fourth.cursor).run_requests


def test_refresh_sensor_does_not_queue_what_is_already_waiting(okr_home: Path, resources: dict,
                                                                instance, monkeypatch) -> None:
    write_csv(okr_home / "landing" / "a.csv", [checkin(1, "2025-07-10"), checkin(2, "2025-07-11")])
    land(instance, resources)
    [request] = _tick(okr_refresh_sensor, instance, None).run_requests
    # The requested run sits in the queue (not started) when more data lands for the same days.
    from dagster._core.test_utils import create_run_for_test

    create_run_for_test(instance, job_name="__ASSET_JOB", status=DagsterRunStatus.NOT_STARTED, tags=request.tags)
    cursor = _tick(okr_refresh_sensor, instance, None).cursor
    write_csv(okr_home / "landing" / "b.csv", [checkin(3, "2025-07-11")])
    land(instance, resources, ["b.csv"])
    result = _tick(okr_refresh_sensor, instance, cursor)
    assert not result.run_requests  # 2025-07-11 is inside the waiting 2025-07-10..11 run
    assert json.loads(result.cursor)["raw"] > json.loads(cursor)["raw"]
    # The waiting run is cancelled (from the UI): what it covered is requested again.
    [waiting] = [r for r in instance.get_runs() if r.status == DagsterRunStatus.NOT_STARTED]
    instance.report_run_canceled(waiting)
    monkeypatch.setenv("OKR_RETRY_BASE_SECONDS", "0")
    again = _tick(okr_refresh_sensor, instance, result.cursor)
    ranges = {(r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
              for r in again.run_requests}
    assert ("2025-07-10", "2025-07-11") in ranges and all("repair" in r.tags["okr/trigger"] for r in again.run_requests)


def test_refresh_sensor_requests_again_what_a_failed_run_left(okr_home: Path, resources: dict, instance,
                                                              monkeypatch) -> None:
    import okr_assets.lib.validation as validation

    monkeypatch.setenv("OKR_RETRY_BASE_SECONDS", "0")
    write_csv(okr_home / "landing" / "a.csv", [checkin(1, "2025-07-10")])
    land(instance, resources)
    first = _tick(okr_refresh_sensor, instance, None)
    [request] = first.run_requests
    real = validation.range_verdicts

    def broken(*args, **kwargs):
        raise RuntimeError("the warehouse went away mid-refresh")

    monkeypatch.setattr(validation, "range_verdicts", broken)
    assert not materialize(ASSETS, selection=list(request.asset_selection), instance=instance,
                           resources=resources, tags=request.tags, raise_on_error=False).success
    monkeypatch.setattr(validation, "range_verdicts", real)
    second = _tick(okr_refresh_sensor, instance, first.cursor)
    [retry] = second.run_requests
    assert (retry.tags["dagster/asset_partition_range_start"], retry.tags["dagster/asset_partition_range_end"]) == \
        ("2025-07-10", "2025-07-10")
    assert retry.run_key != request.run_key and "repair" in retry.tags["okr/trigger"]
    assert materialize(ASSETS, selection=list(retry.asset_selection), instance=instance, resources=resources,
                       tags=retry.tags).success
    done = _tick(okr_refresh_sensor, instance, second.cursor)
    assert not [p for p in json.loads(done.cursor)["pending"] if p["stage"] == "raw"]
    assert resources["warehouse"].count("okr_processed") == 1
