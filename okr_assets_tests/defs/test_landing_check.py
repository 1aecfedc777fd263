"""okr_raw_schema runs inside the landing run, on the rows it inserted: it passes on good
landings, counts exactly what landed, and fails the run when landed rows break the model."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import AssetCheckSeverity, materialize

from okr_assets.defs.ingestion.checks import LandedRowsCheck
from okr_assets.lib import landing as landing_lib
from okr_assets.lib.contract import CHECKIN_COLUMNS
from okr_assets_tests.conftest import checkin, write_csv
from okr_assets_tests.defs.test_assets import ASSETS, land, metadata
from okr_assets_tests.defs.test_kafka import good, produce, run_requests, tick


def _evaluation(result):
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == "okr_raw_schema"]
    return evaluation


def test_the_check_counts_what_each_run_inserted(okr_home: Path, resources: dict, instance) -> None:
    write_csv(okr_home / "landing" / "a.csv", [checkin(i, "2025-07-10") for i in range(5)])
    first = land(instance, resources)
    evaluation = _evaluation(first)
    assert evaluation.passed and evaluation.blocking
    assert evaluation.metadata["rows_checked"].value == 5 == metadata(first, "okr_raw")["rows_landed"]
    again = _evaluation(land(instance, resources))  # nothing new: nothing to check, still a result
    assert again.passed and again.metadata["rows_checked"].value == 0

    kafka = resources["kafka"]
    produce(kafka, [good(i) for i in range(7)])
    [outcome] = run_requests(tick(kafka, instance, None, resources["warehouse"]), instance, resources)
    assert _evaluation(outcome).passed and _evaluation(outcome).metadata["rows_checked"].value == 7


def test_landed_rows_that_break_the_model_fail_the_run(okr_home: Path, resources: dict, instance,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    real = landing_lib.rows_from_files

    def unknown_source(*args, **kwargs) -> pd.DataFrame:  # a landing bug: lineage the model refuses
        rows = real(*args, **kwargs).to_pandas()
        rows["source"] = np.where(rows["source_ref"].str.endswith(":3"), "ftp", rows["source"])
        return rows

    monkeypatch.setattr(landing_lib, "rows_from_files", unknown_source)
    write_csv(okr_home / "landing" / "a.csv", [checkin(i, "2025-07-10") for i in range(4)])
    result = materialize(ASSETS, selection=["okr_raw"], instance=instance, resources=resources,
                         run_config={"ops": {"okr_raw": {"config": {"files": []}}}}, raise_on_error=False)
    assert not result.success  # a failed blocking check fails the run: nothing downstream starts
    evaluation = _evaluation(result)
    assert not evaluation.passed and evaluation.severity == AssetCheckSeverity.ERROR
    assert "source" in evaluation.metadata["failures_by_rule"].value
    assert "ftp" in evaluation.metadata["failure_cases"].value
    assert evaluation.metadata["rows_checked"].value == 4
    # Checked inside the landing transaction: none of the batch's rows, and no ledger entry, committed.
    warehouse = resources["warehouse"]
    assert warehouse.count("okr_raw") == 0
    assert warehouse.query("SELECT count(*) AS n FROM okr_raw.landed_files")["n"][0] == 0


def _batch(raw_ids: list[int], keys: list[str]) -> pd.DataFrame:
    n = len(raw_ids)
    frame = pd.DataFrame({c: [None] * n for c in CHECKIN_COLUMNS})
    return frame.assign(raw_id=raw_ids, source="file", source_ref=[f"a.csv:{k}" for k in keys], source_key=keys,
                        ingested_at=pd.Timestamp("2025-07-20T00:00:00Z"), partition_date=pd.Timestamp("2025-07-20"),
                        landing_error=None, landing_error_message=None, raw_payload=None, extra=None, run_id="r")


def test_keys_repeated_on_other_rows_fail_the_check(okr_home: Path, resources: dict, instance) -> None:
    """Each batch is checked on its own before it commits; the run's rows are then compared with
    the whole table: a key of theirs on another row (a landing that bypassed the anti-join) fails."""
    warehouse = resources["warehouse"]
    write_csv(okr_home / "landing" / "a.csv", [checkin(i, "2025-07-10") for i in range(3)])
    run_id = land(instance, resources).run_id
    check = LandedRowsCheck(run_id)
    check.batches = 1  # as if it had checked the run's batch
    assert check.result(warehouse).passed
    # A row reusing one raw_id, and another run's copy of one row (same source_key): on
    # PostgreSQL the table's unique key refuses the copy; DuckDB keeps no index (the check must see it).
    columns = warehouse.columns("okr_raw")

    def copy_of(row: int, **changed: str) -> None:
        select = ", ".join(changed.get(c, f'"{c}"') for c in columns)
        warehouse.execute(f"INSERT INTO okr_raw.okr_raw ({', '.join(columns)}) SELECT {select} "
                          f"FROM okr_raw.okr_raw WHERE raw_id = {row}")

    copy_of(2, source_key="'x' || source_key", run_id="'other'")
    embedded = warehouse.url.startswith("duckdb")
    if embedded:
        copy_of(1, raw_id="raw_id + 100", run_id="'other'")
    else:
        with pytest.raises(Exception, match="duplicate key"):
            copy_of(1, raw_id="raw_id + 100", run_id="'other'")
    result = check.result(warehouse)
    assert not result.passed
    assert result.metadata["repeated_raw_id"].value == 1
    assert result.metadata["repeated_source_key"].value == (1 if embedded else 0)


@pytest.mark.parametrize("valid", [True, False])
def test_a_validated_frame_is_freed_without_a_garbage_collection(valid: bool) -> None:
    """Pandera caches an accessor on the frame it validates (a reference cycle): without breaking
    it, every validated batch or quarter stayed in memory until a full collection (a million-row
    run's checks stacked quarters of ~250 MB). Validating must leave nothing that outlives the frame."""
    import gc
    import weakref

    from pandera.errors import SchemaErrors

    from okr_assets.defs.checking import pandera_check_result, validate_in_place
    from okr_assets.lib.schemas import RawCheckins

    frame = _batch([1, 2], ["k1", "k2"]) if valid else _batch([1, 1], ["k1", "k1"]).assign(source="?")
    freed = weakref.ref(frame)
    gc.disable()
    try:
        if valid:
            validate_in_place(RawCheckins, frame)
        else:
            with pytest.raises(SchemaErrors):
                validate_in_place(RawCheckins, frame)
        del frame
        assert freed() is None, "the validated frame is only freed by the garbage collector"
    finally:
        gc.enable()
    # The failing frame, as given, is what a failed check describes.
    broken = _batch([1, 1], ["k1", "k1"]).assign(source="?")
    result = pandera_check_result(RawCheckins, broken, "test")
    assert not result.passed and "?" in result.metadata["failure_cases"].value
