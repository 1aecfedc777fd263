"""The asset graph materialized on a real Dagster instance and a real DuckDB warehouse."""

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance, build_sensor_context, materialize

from okr_assets.definitions import defs
from okr_assets.defs.automation.sensors import okr_refresh_sensor
from okr_assets.summary import table_summary
from okr_assets_tests.conftest import checkin, write_csv

if TYPE_CHECKING:
    import ibis

ASSETS = [*defs.assets, *defs.asset_checks]
JULY = {"dagster/asset_partition_range_start": "2025-07-01",
        "dagster/asset_partition_range_end": "2025-07-31"}


def land(instance: DagsterInstance, resources: dict, files: list[str] | None = None):
    config = {"ops": {"okr_raw": {"config": {"files": files or []}}}}
    result = materialize(ASSETS, selection=["okr_raw"], instance=instance, resources=resources,
                         run_config=config)
    assert result.success
    return result


def process(instance: DagsterInstance, resources: dict, tags: dict | None = None):
    result = materialize(ASSETS, selection=["okr_processed", "okr_rejects"], instance=instance,
                         resources=resources, tags=tags or JULY, raise_on_error=False)
    return result


def metadata(result, key: str) -> dict:
    event = next(e for e in result.get_asset_materialization_events()
                 if e.asset_key == AssetKey(key))
    return {k: getattr(v, "value", getattr(v, "data", v)) for k, v in
            event.event_specific_data.materialization.metadata.items()}


def test_whole_graph_with_every_kind_of_bad_input(okr_home: Path, resources: dict, instance) -> None:
    landing = okr_home / "landing"
    rows = [checkin(i, f"2025-07-{10 + i:02d}") for i in range(6)]
    rows.append(checkin(6, "2025-07-12", weight=2))                       # rejected row
    rows.append(checkin(2, "2025-07-12", value=55))                        # same checkin_id again
    write_csv(landing / "export1.csv", rows)
    with (landing / "export1.csv").open("a") as f:
        f.write("only,three,fields\n")                                     # malformed row
    (landing / "broken.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")      # not a CSV at all
    (landing / "notes.txt").write_text("not a csv, never landed")

    raw = metadata(land(instance, resources), "okr_raw")
    assert raw["rows_landed"] == 10 and raw["files_quarantined"] == 1 and raw["malformed_rows"] == 1
    assert (okr_home / "quarantine").is_dir()
    quarantined = sorted(p.name for p in (okr_home / "quarantine").iterdir())
    assert quarantined[0].endswith("_broken.csv") and quarantined[1].endswith("_broken.csv.error.txt")
    assert not (landing / "broken.csv").exists()

    # The malformed row and the unreadable file are owned by today's partition (ingest date).
    today = pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d")
    result = process(instance, resources, {"dagster/asset_partition_range_start": "2025-07-01",
                                            "dagster/asset_partition_range_end": today})
    assert result.success
    meta = metadata(result, "okr_processed")
    assert (meta["rows_accepted"], meta["rows_rejected"], meta["rows_deduplicated"]) == (6, 3, 1)
    assert meta["rows_landed"] == 10 and meta["counts_add_up"]
    assert meta["okr/touched_cycle_quarters"] == ["2025-07-01"]

    warehouse = resources["warehouse"]
    processed = warehouse.query("SELECT * FROM okr_processed.okr_processed ORDER BY checkin_id")
    assert processed["checkin_id"].tolist() == ["c0", "c1", "c2", "c3", "c4", "c5"]
    assert processed.set_index("checkin_id").loc["c2", "value"] == 55     # newest version won
    rejects = warehouse.query("SELECT * FROM okr_processed.okr_rejects ORDER BY raw_id")
    assert sorted(rejects["reason"]) == ["malformed_row", "unreadable_file", "weight_out_of_range"]
    assert rejects["source_ref"].str.startswith(("export1.csv:", "broken.csv")).all()
    assert "broken.csv" in rejects.set_index("reason").loc["unreadable_file", "message"]

    curated = materialize(ASSETS, selection=["okr_curated"], instance=instance, resources=resources,
                          partition_key="2025-07-01")
    assert curated.success
    table = warehouse.query("SELECT * FROM okr_curated.okr_curated ORDER BY key_result_id")
    assert table["key_result_id"].tolist() == ["kr0", "kr1", "kr2"]
    assert table["n_checkins"].tolist() == [2, 2, 2]
    assert all(e.passed for e in curated.get_asset_check_evaluations())


def test_landing_the_same_file_twice_adds_nothing(okr_home: Path, resources: dict, instance) -> None:
    landing = okr_home / "landing"
    write_csv(landing / "a.csv", [checkin(i, "2025-07-10") for i in range(4)])
    assert metadata(land(instance, resources), "okr_raw")["rows_landed"] == 4
    again = metadata(land(instance, resources), "okr_raw")
    assert again["rows_landed"] == 0 and again["files_skipped_already_landed"] == 1
    shutil.copy(landing / "a.csv", landing / "a_copy.csv")                # same bytes, new name
    assert metadata(land(instance, resources, ["a_copy.csv"]), "okr_raw")["rows_landed"] == 0
    assert resources["warehouse"].count("okr_raw") == 4


def test_changed_file_lands_again_and_is_deduplicated(okr_home: Path, resources: dict, instance) -> None:
    landing = okr_home / "landing"
    write_csv(landing / "a.csv", [checkin(i, "2025-07-10") for i in range(3)])
    land(instance, resources)
    write_csv(landing / "a.csv", [checkin(i, "2025-07-10", value=90) for i in range(3)]
              + [checkin(3, "2025-07-20")])
    changed = metadata(land(instance, resources), "okr_raw")
    assert changed["rows_landed"] == 4
    assert changed["okr/touched_partitions"] == ["2025-07-10", "2025-07-20"]
    meta = metadata(process(instance, resources), "okr_processed")
    assert (meta["rows_accepted"], meta["rows_deduplicated"], meta["rows_landed"]) == (4, 3, 7)
    values = resources["warehouse"].query("SELECT value FROM okr_processed.okr_processed")["value"]
    assert sorted(values) == [13, 90, 90, 90]


def test_late_checkin_supersedes_a_version_in_another_partition(okr_home: Path, resources: dict,
                                                                instance) -> None:
    landing = okr_home / "landing"
    write_csv(landing / "a.csv", [checkin(1, "2025-07-10")])
    land(instance, resources)
    process(instance, resources)
    # The tool re-exports the check-in with a corrected date: both days must be refreshed.
    write_csv(landing / "b.csv", [checkin(1, "2025-07-11", value=42)])
    touched = metadata(land(instance, resources, ["b.csv"]), "okr_raw")["okr/touched_partitions"]
    assert touched == ["2025-07-10", "2025-07-11"]
    process(instance, resources, {"dagster/asset_partition_range_start": "2025-07-10",
                                  "dagster/asset_partition_range_end": "2025-07-11"})
    rows = resources["warehouse"].query("SELECT checkin_date, value FROM okr_processed.okr_processed")
    assert rows.values.tolist() == [[pd.Timestamp("2025-07-11"), 42.0]]


@pytest.mark.parametrize("order", [("2025-07-10", "2025-07-11"), ("2025-07-11", "2025-07-10")],
                         ids=["older-partition-first", "newer-partition-first"])
def test_broken_reexport_is_rejected_and_leaves_the_valid_version(okr_home: Path, resources: dict, instance,
                                                                   order: tuple[str, str]) -> None:
    """A broken re-export (weight 5) of a processed check-in, landed in the same partition (c1) and
    in another one (c2): each partition refreshed on its own, in either order, keeps the valid
    versions and rejects the broken ones; a fixed (c3) or updated (c4) version still supersedes."""
    landing = okr_home / "landing"
    write_csv(landing / "a.csv", [checkin(1, "2025-07-10"), checkin(2, "2025-07-10"),
                                  checkin(3, "2025-07-12", weight=5), checkin(4, "2025-07-12")])
    land(instance, resources)
    assert process(instance, resources).success
    write_csv(landing / "b.csv", [checkin(1, "2025-07-10", weight=5), checkin(2, "2025-07-11", weight=5),
                                  checkin(3, "2025-07-12"), checkin(4, "2025-07-12", value=50)])
    touched = metadata(land(instance, resources, ["b.csv"]), "okr_raw")["okr/touched_partitions"]
    assert touched == ["2025-07-10", "2025-07-11", "2025-07-12"]
    warehouse = resources["warehouse"]

    def stored() -> tuple[list, list]:
        processed = warehouse.query("SELECT checkin_id, checkin_date, weight, value FROM "
                                    "okr_processed.okr_processed ORDER BY checkin_id")
        rejects = warehouse.query("SELECT checkin_id, partition_date, reason FROM okr_processed.okr_rejects "
                                  "ORDER BY checkin_id")
        return ([[c, d.strftime("%Y-%m-%d"), w, v] for c, d, w, v in processed.values.tolist()],
                [[c, d.strftime("%Y-%m-%d"), r] for c, d, r in rejects.values.tolist()])

    expected = {"2025-07-10": (["c1", "2025-07-10", 1.0, 11.0], ["c1", "2025-07-10", "weight_out_of_range"]),
                "2025-07-11": (["c2", "2025-07-10", 1.0, 12.0], ["c2", "2025-07-11", "weight_out_of_range"])}
    for day in order:
        result = process(instance, resources, {"dagster/asset_partition_range_start": day,
                                               "dagster/asset_partition_range_end": day})
        assert result.success
        meta = metadata(result, "okr_processed")
        assert meta["counts_add_up"] and meta["rows_rejected"] == 1 and meta["rows_deduplicated"] == 0
        assert meta["rejects_older_valid_version_kept"] == 1
        processed, rejects = stored()
        assert expected[day][0] in processed and expected[day][1] in rejects, (day, processed, rejects)
    processed, rejects = stored()  # 2025-07-12 (c3, c4) is not refreshed yet
    assert processed[:2] == [expected["2025-07-10"][0], expected["2025-07-11"][0]]
    assert rejects[:2] == [expected["2025-07-10"][1], expected["2025-07-11"][1]]

    result = process(instance, resources)  # all of July: the partitions agree on every winner
    assert result.success
    meta = metadata(result, "okr_processed")
    assert (meta["rows_landed"], meta["rows_accepted"], meta["rows_rejected"], meta["rows_deduplicated"]) \
        == (8, 4, 2, 2)
    assert meta["counts_add_up"] and meta["rejects_older_valid_version_kept"] == 2
    assert "| valid version superseded by a newer valid one | 1 |" in meta["deduplicated_by_kind"]  # c4
    assert "| invalid version superseded by a newer valid one | 1 |" in meta["deduplicated_by_kind"]  # c3
    processed, rejects = stored()
    assert processed == [expected["2025-07-10"][0], expected["2025-07-11"][0],
                         ["c3", "2025-07-12", 1.0, 13.0], ["c4", "2025-07-12", 1.0, 50.0]]
    assert rejects == [expected["2025-07-10"][1], expected["2025-07-11"][1]]
    # The demo's accounting counts the deduplicated rows on its own and still adds up.
    summary = table_summary(warehouse)
    assert (summary.rows["okr_raw"], summary.rows["okr_processed"], summary.rows["okr_rejects"]) == (8, 4, 2)
    assert summary.deduplicated == 2 and summary.counts_add_up


def test_rematerializing_a_partition_replaces_exactly_that_partition(okr_home: Path, resources: dict,
                                                                    instance) -> None:
    write_csv(okr_home / "landing" / "a.csv",
              [checkin(i, f"2025-07-{10 + i % 3:02d}") for i in range(9)])
    land(instance, resources)
    assert process(instance, resources).success
    warehouse = resources["warehouse"]
    # simulate drift in two partitions
    warehouse.execute("DELETE FROM okr_processed.okr_processed WHERE checkin_date IN "
                      "('2025-07-10', '2025-07-12')")
    result = process(instance, resources, {"dagster/asset_partition_range_start": "2025-07-12",
                                           "dagster/asset_partition_range_end": "2025-07-12"})
    assert result.success
    days = warehouse.query("SELECT checkin_date, count(*) AS n FROM okr_processed.okr_processed "
                           "GROUP BY 1 ORDER BY 1")
    assert days["checkin_date"].dt.strftime("%Y-%m-%d").tolist() == ["2025-07-11", "2025-07-12"]
    assert days["n"].tolist() == [3, 3]


@contextmanager
def a_transform_bug(change: Callable[["ibis.Table"], "ibis.Table"]) -> Iterator[None]:
    """okr_processed's transform gets a bug: ``change`` edits the expression of the accepted rows,
    so they break the table's contract where only the blocking check sees it."""
    import okr_assets.lib.validation as validation

    real = validation.processed_rows

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(validation, "processed_rows", lambda judged: change(real(judged)))
        yield


def _score_of_c1_off(accepted: "ibis.Table") -> "ibis.Table":
    return accepted.mutate(score=(accepted.checkin_id == "c1").ifelse(0.99, accepted.score))


def fail_the_processed_check(okr_home: Path, resources: dict, instance: DagsterInstance):
    """Land and process three check-ins; then a newer version of c1 lands and okr_processed is
    refreshed with a transform bug (c1's score no longer matches its progress): the blocking
    check fails that run on the staged rows. Returns the run's result."""
    write_csv(okr_home / "landing" / "a.csv", [checkin(i, "2025-07-10") for i in range(3)])
    land(instance, resources)
    assert process(instance, resources).success
    write_csv(okr_home / "landing" / "b.csv", [checkin(1, "2025-07-10", value=60)])
    land(instance, resources, ["b.csv"])
    with a_transform_bug(_score_of_c1_off):
        result = process(instance, resources)
    assert not result.success
    return result


def test_the_blocking_check_holds_published_rows_to_the_contracts_rules(
        okr_home: Path, resources: dict, instance) -> None:
    """A transform bug that lets a row through which routing rejects (weight 1.5, a check-in before
    its cycle's grace) fails okr_processed_schema with the contract's rules, counted in the
    engine; nothing is published."""
    warehouse = resources["warehouse"]
    write_csv(okr_home / "landing" / "a.csv", [checkin(i, "2025-07-10") for i in range(3)])
    land(instance, resources)

    def broken_rows(accepted: "ibis.Table") -> "ibis.Table":
        c1, c2 = accepted.checkin_id == "c1", accepted.checkin_id == "c2"
        return accepted.mutate(weight=c1.ifelse(1.5, accepted.weight),
                               cycle_start=c2.ifelse(ibis.date(2025, 8, 1), accepted.cycle_start),
                               cycle_end=c2.ifelse(ibis.date(2025, 9, 30), accepted.cycle_end))

    import ibis

    with a_transform_bug(broken_rows):
        result = process(instance, resources)
    assert not result.success
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == "okr_processed_schema"]
    assert not evaluation.passed
    by_rule = evaluation.metadata["failures_by_rule"].value
    assert "weight_out_of_range" in by_rule and "outside_cycle" in by_rule and "invalid_cycle" not in by_rule
    cases = evaluation.metadata["failure_cases"].value
    assert "c1" in cases and "c2" in cases and "c0" not in cases
    assert evaluation.metadata["rows_checked"].value == 3
    assert warehouse.count("okr_processed") == 0


def test_rows_failing_a_blocking_check_are_never_published(okr_home: Path, resources: dict, instance) -> None:
    warehouse = resources["warehouse"]
    write_csv(okr_home / "landing" / "a.csv", [checkin(i, "2025-07-10") for i in range(3)])
    land(instance, resources)
    assert process(instance, resources).success
    before = warehouse.query("SELECT * FROM okr_processed.okr_processed ORDER BY checkin_id")
    cascade = okr_refresh_sensor(build_sensor_context(instance=instance))  # the good refresh's cascade
    write_csv(okr_home / "landing" / "b.csv", [checkin(1, "2025-07-10", value=60)])
    land(instance, resources, ["b.csv"])
    with a_transform_bug(_score_of_c1_off):
        result = process(instance, resources)

    assert not result.success
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == "okr_processed_schema"]
    assert not evaluation.passed and evaluation.blocking
    assert "score_is_clipped_progress" in evaluation.metadata["failures_by_rule"].value
    assert "c1" in evaluation.metadata["example_rows"].value
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "Nothing was published" in str(failure.event_specific_data.error)
    assert not result.get_asset_materialization_events()
    # The old rows stay, nothing of the failed range is left in staging, nothing downstream is asked for.
    pd.testing.assert_frame_equal(warehouse.query("SELECT * FROM okr_processed.okr_processed ORDER BY checkin_id"),
                                  before)
    assert warehouse.count("okr_processed", staged=True) == 0 == warehouse.count("okr_rejects", staged=True)
    after = okr_refresh_sensor(build_sensor_context(instance=instance, cursor=cascade.cursor))
    assert not [r for r in after.run_requests if r.asset_selection == [AssetKey("okr_curated")]]
    # Fixed, the same refresh publishes.
    assert process(instance, resources).success
    assert warehouse.query("SELECT value FROM okr_processed.okr_processed WHERE checkin_id = 'c1'")["value"][0] == 60


def test_a_range_is_processed_and_checked_as_a_whole(okr_home: Path, resources: dict, instance) -> None:
    """A three-month run writes, counts and checks the whole range: the blocking check sees a
    checkin_id duplicated across two quarters."""
    days = ["2025-06-20", "2025-07-10", "2025-08-10"]  # June is in the cycle's 14-day grace
    write_csv(okr_home / "landing" / "a.csv", [checkin(i, days[i % 3]) for i in range(9)])
    land(instance, resources)
    quarter = {"dagster/asset_partition_range_start": "2025-06-01",
               "dagster/asset_partition_range_end": "2025-08-31"}
    result = process(instance, resources, quarter)
    assert result.success
    meta = metadata(result, "okr_processed")
    assert (meta["rows_landed"], meta["rows_accepted"], meta["rows_rejected"]) == (9, 9, 0)
    warehouse = resources["warehouse"]
    months = warehouse.query("SELECT extract(month FROM checkin_date) AS m, count(*) AS n "
                             "FROM okr_processed.okr_processed "
                             "GROUP BY 1 ORDER BY 1")
    assert months.values.tolist() == [[6, 3], [7, 3], [8, 3]]
    [passed] = [e for e in result.get_asset_check_evaluations() if e.check_name == "okr_processed_schema"]
    assert passed.passed and passed.metadata["rows_checked"].value == 9

    # Each quarter is valid on its own; only the range as a whole has c0 twice (June and July).
    def c1_renamed_c0(accepted: "ibis.Table") -> "ibis.Table":
        return accepted.mutate(checkin_id=(accepted.checkin_id == "c1").ifelse("c0", accepted.checkin_id))

    with a_transform_bug(c1_renamed_c0):
        rerun = process(instance, resources, quarter)
    [failed] = [e for e in rerun.get_asset_check_evaluations() if e.check_name == "okr_processed_schema"]
    assert not failed.passed
    assert failed.metadata["scope"].value == "new rows of okr_processed 2025-06-01 .. 2025-08-31"
    assert "field_uniqueness" in failed.metadata["failures_by_rule"].value
    assert "| checkin_id | field_uniqueness | c0 | c0 |" in failed.metadata["failure_cases"].value
    assert warehouse.query("SELECT count(*) FROM okr_processed.okr_processed WHERE checkin_id = 'c0'").iloc[0, 0] == 1


def test_a_failure_after_staging_fails_the_run_and_keeps_the_old_rows(
        okr_home: Path, resources: dict, instance, monkeypatch) -> None:
    """The accepted rows of a quarter are staged, then building the rejects fails: the run fails
    with that error and okr_processed keeps its previous rows (nothing staged is published)."""
    import okr_assets.lib.validation as validation

    days = ["2025-07-10", "2025-08-10", "2025-09-10"]
    write_csv(okr_home / "landing" / "a.csv", [checkin(i, days[i % 3]) for i in range(9)])
    land(instance, resources)
    quarter = {"dagster/asset_partition_range_start": "2025-07-01",
               "dagster/asset_partition_range_end": "2025-09-30"}
    assert process(instance, resources, quarter).success
    warehouse = resources["warehouse"]
    before = warehouse.query("SELECT checkin_id, score FROM okr_processed.okr_processed ORDER BY 1")
    assert len(before) == 9
    write_csv(okr_home / "landing" / "b.csv", [checkin(1, "2025-08-10", value=60)])
    land(instance, resources, ["b.csv"])

    staged_before_the_failure = []

    def blow_up(judged):
        staged_before_the_failure.append(warehouse.count("okr_processed", staged=True))
        raise RuntimeError("building the rejects blew up")

    monkeypatch.setattr(validation, "reject_rows", blow_up)
    result = process(instance, resources, quarter)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "building the rejects blew up" in str(failure.event_specific_data.error)
    assert staged_before_the_failure[0] > 0  # the accepted rows were staged ...
    after = warehouse.query("SELECT checkin_id, score FROM okr_processed.okr_processed ORDER BY 1")
    pd.testing.assert_frame_equal(after, before)  # ... and not published
