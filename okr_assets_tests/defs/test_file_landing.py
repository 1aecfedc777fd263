"""Landing files against a real warehouse and a real Dagster instance: only regular files, each read
once, and an unreadable file leaves the folder only after its reject row is committed."""

import hashlib
import json
import os
from pathlib import Path

import pytest
from dagster import SensorResult, build_sensor_context, materialize

from okr_assets.defs.ingestion.sensors import okr_landing_sensor
from okr_assets.resources import LandingFolderResource
from okr_assets_tests.conftest import build_test_resources, checkin, execute_request, impatient, write_csv
from okr_assets_tests.defs.test_assets import ASSETS, metadata

BROKEN = b"\x89PNG\r\n\x1a\n\x00\x00 not a csv"


def _tick(instance, cursor: str | None, resources: dict) -> SensorResult:
    result = okr_landing_sensor(build_sensor_context(
        instance=instance, cursor=cursor, resources={"landing": resources["landing"],
                                                     "warehouse": resources["warehouse"]}))
    assert isinstance(result, SensorResult)
    return result


def _land(instance, resources: dict, files: list[str], succeed: bool = True):
    result = materialize(ASSETS, selection=["okr_raw"], instance=instance, resources=resources,
                         run_config={"ops": {"okr_raw": {"config": {"files": files}}}}, raise_on_error=False)
    assert result.success == succeed
    return result


def test_only_regular_files_are_landed(okr_home: Path, tmp_path: Path, resources: dict, instance,
                                       capfd: pytest.CaptureFixture[str]) -> None:
    landing = okr_home / "landing"
    write_csv(landing / "a.csv", [checkin(1, "2025-07-10")])
    elsewhere = write_csv(tmp_path / "secret.csv", [checkin(99, "2025-07-10")])  # outside the folder
    (landing / "link.csv").symlink_to(elsewhere)
    os.mkfifo(landing / "pipe.csv")  # opening it for reading would wait for a writer forever
    (landing / "folder.csv").mkdir()

    capfd.readouterr()
    first = _tick(instance, None, resources)
    [request] = first.run_requests
    assert request.run_config["ops"]["okr_raw"]["config"]["files"] == ["a.csv"]
    logged = capfd.readouterr().err
    assert all(f"{name} is {kind}, not a regular file" in logged for name, kind in
               (("link.csv", "a symbolic link"), ("pipe.csv", "a FIFO"), ("folder.csv", "a directory")))
    _tick(instance, first.cursor, resources)
    assert "not a regular file" not in capfd.readouterr().err  # logged once

    # Named explicitly (run config from the UI), they are still refused, each with a log line.
    result = _land(instance, resources, ["link.csv", "pipe.csv", "a.csv"])
    assert metadata(result, "okr_raw")["files_not_landable"] == 2
    assert resources["warehouse"].query("SELECT checkin_id FROM okr_raw.okr_raw")["checkin_id"].tolist() == ["c1"]


def test_each_file_is_read_once_and_the_ledger_holds_the_bytes_read(okr_home: Path, resources: dict,
                                                                     instance) -> None:
    landing = okr_home / "landing"
    write_csv(landing / "a.csv", [checkin(1, "2025-07-10")])
    [request] = _tick(instance, None, resources).run_requests
    # Rewritten after the sensor asked for it: the run lands what it reads, and records exactly that.
    write_csv(landing / "a.csv", [checkin(2, "2025-07-10"), checkin(3, "2025-07-11")])
    os.utime(landing / "a.csv", ns=(1_000_000_000, 1_000_000_000))
    execute_request(request, instance, resources)
    data = (landing / "a.csv").read_bytes()
    ledger = resources["warehouse"].query("SELECT sha256, file_size, file_mtime_ns, rows FROM okr_raw.landed_files")
    assert ledger.to_dict("records") == [{"sha256": hashlib.sha256(data).hexdigest(), "file_size": len(data),
                                          "file_mtime_ns": 1_000_000_000, "rows": 2}]
    raw = resources["warehouse"].query("SELECT checkin_id, source_key FROM okr_raw.okr_raw ORDER BY 1")
    assert raw["checkin_id"].tolist() == ["c2", "c3"]
    assert raw["source_key"].str.startswith(f"file:{hashlib.sha256(data).hexdigest()}:").all()


def test_an_unreadable_file_leaves_the_folder_only_after_its_reject_row_is_committed(
        flaky_warehouse, okr_home: Path, kafka, instance) -> None:
    url, outage = flaky_warehouse
    resources = build_test_resources(okr_home, kafka, url)
    landing, quarantine = okr_home / "landing", okr_home / "quarantine"
    (landing / "broken.csv").write_bytes(BROKEN)
    with outage():  # the commit cannot happen
        _land(instance, impatient(resources), ["broken.csv"], succeed=False)
    assert (landing / "broken.csv").exists() and not quarantine.exists()

    result = _land(instance, resources, ["broken.csv"])
    assert metadata(result, "okr_raw")["files_quarantined"] == 1
    assert not (landing / "broken.csv").exists() and len(list(quarantine.glob("*_broken.csv"))) == 1
    rows = resources["warehouse"].query("SELECT landing_error FROM okr_raw.okr_raw")
    assert rows["landing_error"].tolist() == ["unreadable_file"]
    [unreadable] = resources["warehouse"].query("SELECT unreadable FROM okr_raw.landed_files")["unreadable"]
    assert unreadable


def test_a_file_left_in_the_folder_after_its_row_committed_is_quarantined_by_the_next_run(
        okr_home: Path, resources: dict, instance, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OKR_RETRY_BASE_SECONDS", "0")
    landing = okr_home / "landing"
    (landing / "broken.csv").write_bytes(BROKEN)
    first = _tick(instance, None, resources)
    [request] = first.run_requests
    real = LandingFolderResource.move_to_quarantine

    def died_before_moving(self, name: str, error: str, signature: str) -> Path | None:
        raise OSError("the run process died here")

    monkeypatch.setattr(LandingFolderResource, "move_to_quarantine", died_before_moving)
    execute_request(request, instance, resources, succeed=False)
    monkeypatch.setattr(LandingFolderResource, "move_to_quarantine", real)
    assert (landing / "broken.csv").exists()
    # Landed (as unreadable) but still in the folder: the sensor asks again, the run moves it.
    [again] = _tick(instance, first.cursor, resources).run_requests
    execute_request(again, instance, resources)
    assert not (landing / "broken.csv").exists()
    assert resources["warehouse"].count("okr_raw") == 1  # one reject row, not two
    assert json.loads(_tick(instance, first.cursor, resources).cursor)["files"] == {}


def test_rows_a_run_committed_but_never_reported_are_cascaded_by_the_next_landing(
        okr_home: Path, resources: dict, instance, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that dies after its commit reports no materialization, so nothing would refresh the
    partitions its rows belong to; the landing that finds those rows there reports them."""
    from okr_assets.resources import WarehouseResource

    write_csv(okr_home / "landing" / "a.csv", [checkin(1, "2025-07-10"), checkin(2, "2025-07-12")])
    real = WarehouseResource.count

    def died_after_the_commit(self, table: str, staged: bool = False) -> int:
        raise OSError("the run process died here")

    monkeypatch.setattr(WarehouseResource, "count", died_after_the_commit)
    _land(instance, resources, ["a.csv"], succeed=False)
    monkeypatch.setattr(WarehouseResource, "count", real)
    assert resources["warehouse"].count("okr_raw") == 2  # committed, but no materialization says so

    again = metadata(_land(instance, resources, ["a.csv"]), "okr_raw")
    assert again["rows_landed"] == 0 and again["files_skipped_already_landed"] == 1
    assert again["okr/touched_partitions"] == ["2025-07-10", "2025-07-12"]
    # Bytes landed by a run that succeeded (and reported them) are not reported again.
    write_csv(okr_home / "landing" / "b.csv", [checkin(3, "2025-07-14")])
    assert metadata(_land(instance, resources, ["b.csv"]), "okr_raw")["okr/touched_partitions"] == ["2025-07-14"]
    assert metadata(_land(instance, resources, ["b.csv"]), "okr_raw")["okr/touched_partitions"] == []
