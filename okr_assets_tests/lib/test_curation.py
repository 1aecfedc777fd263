"""Curation: one row per (key result, cycle), objective progress, final scores of closed cycles."""

import datetime as dt

import pandas as pd
import pytest

from okr_assets.lib.curation import curate_frame
from okr_assets.lib.quarters import quarter_end, quarter_start
from okr_assets.lib.validation import partition_dates, validate_checkins
from okr_assets_tests.lib.test_table_checks import assert_valid
from okr_assets_tests.lib.test_validation import FIRST, frame


def processed(*rows: dict) -> pd.DataFrame:
    return validate_checkins(frame(*rows), FIRST).accepted


def test_one_row_per_key_result_with_latest_state() -> None:
    df = processed(
        {"key_result_id": "a", "checkin_at": "2025-07-10T00:00:00Z", "value": "30", "weight": "1"},
        {"key_result_id": "a", "checkin_at": "2025-07-20T00:00:00Z", "value": "90", "status": "at risk",
         "weight": "1"},
        {"key_result_id": "b", "checkin_at": "2025-07-12T00:00:00Z", "value": "10", "weight": "0.25"},
    )
    assert_valid("okr_processed", df)
    out = curate_frame(df, as_of=dt.date(2025, 8, 1))
    assert_valid("okr_curated", out)
    a = out.set_index("key_result_id").loc["a"]
    assert a["n_checkins"] == 2
    assert a["latest_score"] == pytest.approx(0.8)
    assert a["latest_status"] == "at_risk"
    # weight-averaged: (1 * 0.8 + 0.25 * 0.0) / 1.25
    assert a["objective_progress"] == pytest.approx(0.64)
    assert not a["cycle_closed"] and pd.isna(a["final_score"]) and pd.isna(a["reached_target"])
    assert a["cycle_quarter"] == pd.Timestamp("2025-07-01")


def test_closed_cycle_gets_final_score_and_target_flag() -> None:
    df = processed({"key_result_id": "a", "value": "80"}, {"key_result_id": "b", "value": "70"})
    out = curate_frame(df, as_of=dt.date(2025, 10, 20)).set_index("key_result_id")
    assert out["cycle_closed"].all()
    assert out.loc["a", "final_score"] == pytest.approx(0.7)
    assert bool(out.loc["a", "reached_target"]) is True
    assert bool(out.loc["b", "reached_target"]) is False
    stricter = curate_frame(df, as_of=dt.date(2025, 10, 20), target_score=0.8)
    assert not stricter["reached_target"].any()


def test_empty_input() -> None:
    assert curate_frame(processed({})[:0], as_of=dt.date(2025, 1, 1)).empty


def test_quarters() -> None:
    assert quarter_start(dt.date(2025, 8, 17)) == dt.date(2025, 7, 1)
    assert quarter_end(dt.date(2025, 12, 31)) == dt.date(2026, 1, 1)


def test_routing_sends_unusable_dates_to_the_ingest_day() -> None:
    ingested = pd.Timestamp("2025-08-01T12:00:00Z")
    landed = pd.DataFrame({"checkin_at": ["2025-07-15T23:30:00-02:00", "garbage", None, "2023-05-01T00:00:00Z",
                                          "2025-09-01T00:00:00Z", " 2025-07-20t10:00:00z "],
                           "ingested_at": ingested})
    days = partition_dates(landed, dt.date(2024, 1, 1))
    assert [d.date().isoformat() for d in days] == [
        "2025-07-16", "2025-08-01", "2025-08-01", "2025-08-01", "2025-08-01", "2025-07-20"]
