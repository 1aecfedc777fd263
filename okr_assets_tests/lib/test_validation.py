"""Every reject reason with its own bad row; progress, score and deduplication."""

import datetime as dt

import pandas as pd
import pytest

from okr_assets.lib.contract import CHECKIN_COLUMNS, RejectReason, canonical_enum
from okr_assets.lib.validation import (
    SUPERSEDED_INVALID,
    SUPERSEDED_VALID,
    VersionedResult,
    validate_checkins,
    validate_versions,
)

FIRST = dt.date(2024, 1, 1)
INGESTED = pd.Timestamp("2025-08-01T12:00:00Z")
GOOD = {
    "org_id": "o1", "team_id": "t1", "cycle_id": "2025-Q3", "cycle_start": "2025-07-01",
    "cycle_end": "2025-09-30", "objective_id": "ob1", "objective_title": "Grow", "okr_kind": "committed",
    "key_result_id": "kr1", "kr_title": "Users", "owner_id": "u1", "metric_kind": "numeric",
    "direction": "increase", "unit": "users", "start_value": "10", "target_value": "110",
    "weight": "0.5", "checkin_id": "c1", "checkin_at": "2025-07-15T09:30:00+02:00", "value": "60",
    "confidence": "7", "status": "on_track", "comment": None,
}


def frame(*rows: dict, ingested: pd.Timestamp = INGESTED) -> pd.DataFrame:
    df = pd.DataFrame([{**GOOD, "checkin_id": f"c{i}", **r} for i, r in enumerate(rows)])
    df["raw_id"] = range(1, len(df) + 1)
    df["source"] = "file"
    df["source_ref"] = [f"f.csv:{i + 2}" for i in range(len(df))]
    df["ingested_at"] = ingested
    df["partition_date"] = pd.Timestamp("2025-07-15")
    return df


def test_good_row_is_accepted_with_derived_progress_and_score() -> None:
    result = validate_checkins(frame({}), FIRST)
    assert result.rejects.empty
    row = result.accepted.iloc[0]
    assert row["progress"] == pytest.approx(0.5)
    assert row["score"] == pytest.approx(0.5)
    assert row["checkin_at"] == pd.Timestamp("2025-07-15T07:30:00Z")
    assert row["checkin_date"] == pd.Timestamp("2025-07-15")
    assert row["cycle_start"] == pd.Timestamp("2025-07-01")
    assert row["confidence"] == 7


def test_progress_is_not_clipped_but_score_is() -> None:
    result = validate_checkins(frame({"value": "260"}, {"value": "-40"}), FIRST)
    assert list(result.accepted["progress"]) == pytest.approx([2.5, -0.5])
    assert list(result.accepted["score"]) == pytest.approx([1.0, 0.0])


def test_decreasing_key_result_progress() -> None:
    result = validate_checkins(
        frame({"direction": "decrease", "start_value": "100", "target_value": "20", "value": "40"}), FIRST)
    assert result.accepted["progress"].iloc[0] == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("override", "reason", "fragment"),
    [
        ({"team_id": None}, RejectReason.MISSING_REQUIRED, "team_id"),
        ({"checkin_id": "  "}, RejectReason.MISSING_REQUIRED, "checkin_id"),
        ({"value": "12,5"}, RejectReason.UNPARSEABLE_NUMBER, "value"),
        ({"value": "NaN"}, RejectReason.UNPARSEABLE_NUMBER, "value"),
        ({"target_value": "inf"}, RejectReason.UNPARSEABLE_NUMBER, "target_value"),
        ({"confidence": "high"}, RejectReason.UNPARSEABLE_NUMBER, "confidence"),
        ({"cycle_start": "01/07/2025"}, RejectReason.UNPARSEABLE_DATE, "cycle_start"),
        ({"checkin_at": "yesterday"}, RejectReason.UNPARSEABLE_DATE, "checkin_at"),
        ({"checkin_at": "2025-07-15T09:30:00"}, RejectReason.UNPARSEABLE_DATE, "offset"),
        ({"status": "maybe"}, RejectReason.UNKNOWN_ENUM, "status"),
        ({"okr_kind": "wishful"}, RejectReason.UNKNOWN_ENUM, "okr_kind"),
        ({"metric_kind": "vibes"}, RejectReason.UNKNOWN_ENUM, "metric_kind"),
        ({"direction": "sideways"}, RejectReason.UNKNOWN_ENUM, "direction"),
        ({"cycle_end": "2025-06-01"}, RejectReason.INVALID_CYCLE, "before"),
        ({"target_value": "10"}, RejectReason.START_EQUALS_TARGET, "equals"),
        ({"target_value": "5", "value": "7"}, RejectReason.DIRECTION_CONTRADICTION, "increase"),
        ({"direction": "decrease"}, RejectReason.DIRECTION_CONTRADICTION, "decrease"),
        ({"confidence": "11"}, RejectReason.CONFIDENCE_OUT_OF_RANGE, "11"),
        ({"confidence": "-1"}, RejectReason.CONFIDENCE_OUT_OF_RANGE, "-1"),
        ({"confidence": "7.5"}, RejectReason.CONFIDENCE_OUT_OF_RANGE, "7.5"),
        ({"weight": "0"}, RejectReason.WEIGHT_OUT_OF_RANGE, "weight"),
        ({"weight": "1.5"}, RejectReason.WEIGHT_OUT_OF_RANGE, "weight"),
        ({"checkin_at": "2025-08-01T12:06:00Z"}, RejectReason.CHECKIN_IN_FUTURE, "5 minutes"),
        ({"checkin_at": "2023-12-31T23:00:00Z", "cycle_start": "2023-10-01", "cycle_end": "2023-12-31"},
         RejectReason.BEFORE_FIRST_PARTITION, "2024-01-01"),
        ({"checkin_at": "2025-06-16T00:00:00Z"}, RejectReason.OUTSIDE_CYCLE, "14 days"),
        ({"checkin_at": "2025-07-31T00:00:00Z", "cycle_end": "2025-07-16"}, RejectReason.OUTSIDE_CYCLE, "cycle"),
        ({"value": "700"}, RejectReason.PROGRESS_OUT_OF_RANGE, "unit error"),
        ({"value": "-600"}, RejectReason.PROGRESS_OUT_OF_RANGE, "unit error"),
    ],
)
def test_each_reject_reason(override: dict, reason: RejectReason, fragment: str) -> None:
    result = validate_checkins(frame(override), FIRST)
    assert result.accepted.empty
    assert len(result.rejects) == 1
    reject = result.rejects.iloc[0]
    assert reject["reason"] == reason.value
    assert fragment in reject["message"]
    # lineage and the raw values travel with the reject
    assert reject["source_ref"] == "f.csv:2"
    assert reject["raw_id"] == 1
    assert set(CHECKIN_COLUMNS) <= set(result.rejects.columns)


def test_within_tolerances_is_accepted() -> None:
    result = validate_checkins(frame(
        {"checkin_at": "2025-08-01T12:04:00Z"},            # 4 minutes after ingestion
        {"checkin_at": "2025-06-17T00:00:00Z"},            # exactly 14 days before the cycle
        {"checkin_at": "2025-07-24T10:00:00Z", "cycle_end": "2025-07-10"},  # 14 days late
        {"confidence": None, "comment": "ok", "weight": "1"},
        {"value": "510"},                                  # progress exactly 5
        {"value": "511"},                                  # progress 5.01
    ), FIRST)
    assert sorted(result.accepted["checkin_id"]) == ["c0", "c1", "c2", "c3", "c4"]
    assert result.rejects["checkin_id"].tolist() == ["c5"]


def test_late_checkin_after_ingest_date_partition_rules() -> None:
    # 14 days after cycle end is allowed; 15 is not.
    ok = validate_checkins(frame({"checkin_at": "2025-07-30T23:00:00Z", "cycle_end": "2025-07-16"}), FIRST)
    assert len(ok.accepted) == 1
    late = validate_checkins(frame({"checkin_at": "2025-07-31T00:00:00Z", "cycle_end": "2025-07-16"}), FIRST)
    assert late.rejects["reason"].tolist() == ["outside_cycle"]


@pytest.mark.parametrize("spelling", ["On Track", "ON_TRACK", "on-track", " on track "])
def test_status_synonyms(spelling: str) -> None:
    result = validate_checkins(frame({"status": spelling}), FIRST)
    assert result.accepted["status"].tolist() == ["on_track"]


def test_synonym_lookup() -> None:
    assert canonical_enum("status", "at risk") == "at_risk"
    assert canonical_enum("status", "Off-Track") == "off_track"
    assert canonical_enum("status", "unknown") is None


def test_landing_error_becomes_reject() -> None:
    df = frame({})
    df["landing_error"] = "malformed_row"
    df["landing_error_message"] = "row has 2 fields, the header has 23"
    df["raw_payload"] = "bad,row"
    result = validate_checkins(df, FIRST)
    assert result.rejects[["reason", "message", "raw_payload"]].values.tolist() == [
        ["malformed_row", "row has 2 fields, the header has 23", "bad,row"]]


def test_first_failing_rule_wins_and_counts_add_up() -> None:
    df = frame({}, {"team_id": None, "weight": "2"}, {"weight": "2"}, {})
    result = validate_checkins(df, FIRST)
    assert len(result.accepted) + len(result.rejects) == len(df)
    assert result.rejects["reason"].tolist() == ["missing_required", "weight_out_of_range"]


def versions(*rows: dict, first_raw_id: int = 1, ingested: pd.Timestamp = INGESTED) -> pd.DataFrame:
    """Landed rows of check-in ``x`` unless a row says otherwise, ``raw_id`` from ``first_raw_id``."""
    df = frame(*({"checkin_id": "x", **r} for r in rows), ingested=ingested)
    df["raw_id"] = range(first_raw_id, first_raw_id + len(df))
    return df


def outcome(result: VersionedResult) -> dict[str, list]:
    """raw_ids by where they went (rejects with their reason), and the counts of what happened."""
    return {"accepted": result.accepted["raw_id"].tolist(),
            "rejected": list(zip(result.rejects["raw_id"], result.rejects["reason"], strict=True)),
            "superseded": list(zip(result.superseded["raw_id"], result.superseded["supersession"], strict=True)),
            "rejected_over_valid": [result.rejected_over_valid]}


def test_newer_valid_version_supersedes_an_older_valid_one() -> None:
    df = frame({"checkin_id": "x", "value": "20"}, {"checkin_id": "x", "value": "30"}, {"checkin_id": "y"})
    result = validate_versions(df, FIRST)
    assert result.accepted[["raw_id", "value"]].values.tolist() == [[2, 30], [3, 60]]
    assert outcome(result)["superseded"] == [(1, SUPERSEDED_VALID)]


def test_invalid_newer_version_is_rejected_and_the_valid_one_stays() -> None:
    result = validate_versions(versions({"value": "20"}, {"weight": "5"}), FIRST)
    assert outcome(result) == {"accepted": [1], "rejected": [(2, "weight_out_of_range")], "superseded": [],
                               "rejected_over_valid": [1]}
    assert result.accepted["value"].tolist() == [20]
    assert "weight 5 is outside (0, 1]" in result.rejects["message"].iloc[0]


def test_valid_newer_version_supersedes_an_invalid_older_one() -> None:
    result = validate_versions(versions({"weight": "5"}, {"value": "30"}), FIRST)
    assert outcome(result) == {"accepted": [2], "rejected": [], "superseded": [(1, SUPERSEDED_INVALID)],
                               "rejected_over_valid": [0]}
    assert result.deduplicated_by_kind() == {SUPERSEDED_VALID: 0, SUPERSEDED_INVALID: 1}


def test_several_invalid_versions() -> None:
    # Each invalid version newer than the winner is rejected with its own reason.
    result = validate_versions(versions({"weight": "5"}, {}, {"value": "NaN"}, {"status": "maybe"}), FIRST)
    assert outcome(result) == {
        "accepted": [2], "superseded": [(1, SUPERSEDED_INVALID)],
        "rejected": [(3, "unparseable_number"), (4, "unknown_enum")], "rejected_over_valid": [2]}
    # Without any valid version every version is rejected, none supersedes another.
    none_valid = validate_versions(versions({"weight": "5"}, {"value": "NaN"}), FIRST)
    assert outcome(none_valid) == {"accepted": [], "superseded": [], "rejected_over_valid": [0],
                                   "rejected": [(1, "weight_out_of_range"), (2, "unparseable_number")]}


def test_versions_landed_elsewhere_decide_the_winner() -> None:
    """The check-in's versions in other partitions are validated too but never returned."""
    valid_here = versions({"checkin_id": " x "}, first_raw_id=10)
    newer_invalid = versions({"weight": "5"}, first_raw_id=90)
    assert outcome(validate_versions(valid_here, FIRST, newer_invalid)) == {
        "accepted": [10], "rejected": [], "superseded": [], "rejected_over_valid": [0]}
    invalid_here = versions({"weight": "5"}, first_raw_id=90)
    assert outcome(validate_versions(invalid_here, FIRST, valid_here)) == {
        "accepted": [], "rejected": [(90, "weight_out_of_range")], "superseded": [], "rejected_over_valid": [1]}
    newer_valid = versions({}, first_raw_id=99)
    assert outcome(validate_versions(valid_here, FIRST, newer_valid))["superseded"] == [(10, SUPERSEDED_VALID)]
    # A version elsewhere is judged by its own ingestion time: a check-in in its future is invalid.
    early = versions({}, first_raw_id=99, ingested=pd.Timestamp("2025-07-01T00:00:00Z"))
    assert outcome(validate_versions(valid_here, FIRST, early))["accepted"] == [10]


def test_rows_without_checkin_id_are_never_superseded() -> None:
    df = versions({"checkin_id": None}, {"checkin_id": "  "}, {}, {"checkin_id": None, "value": "30"})
    result = validate_versions(df, FIRST)
    assert outcome(result) == {"accepted": [3], "superseded": [], "rejected_over_valid": [0],
                               "rejected": [(1, "missing_required"), (2, "missing_required"),
                                            (4, "missing_required")]}


def test_versions_counts_add_up() -> None:
    df = versions({}, {"weight": "5"}, {"value": "30"}, {"value": "NaN"},
                  {"checkin_id": "y", "weight": "5"}, {"checkin_id": "y"}, {"checkin_id": "y", "value": "40"},
                  {"checkin_id": "z", "weight": "0"}, {"checkin_id": None}, first_raw_id=10)
    result = validate_versions(df, FIRST, versions({"checkin_id": "z"}, first_raw_id=1))
    assert len(result.accepted) + len(result.rejects) + len(result.superseded) == len(df)
    assert sum(result.deduplicated_by_kind().values()) == len(result.superseded)
    assert result.deduplicated_by_kind() == {SUPERSEDED_VALID: 2, SUPERSEDED_INVALID: 2}
    assert result.accepted["raw_id"].tolist() == [12, 16]  # x and y; z's valid version is elsewhere
    assert result.rejected_over_valid == 2  # x's NaN and z's weight 0; not the row without an id


def test_the_readme_lists_the_reject_reasons_of_the_rules_table() -> None:
    """The README's reason table is generated from okr_assets.lib.rules; every reason code the
    contract knows is in it exactly once."""
    from pathlib import Path

    from okr_assets.lib.contract import REJECT_REASON_CODES
    from okr_assets.lib.rules import readme_with_reason_table, reason_table

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert readme_with_reason_table(readme) == readme, "run: python -m okr_assets.lib.rules --write"
    listed = [line.split("`")[1] for line in reason_table().splitlines()[2:]]
    assert sorted(listed) == sorted(REJECT_REASON_CODES)


def test_a_confidence_no_integer_can_hold_is_rejected_not_a_failed_cast() -> None:
    """Found by test_fuzz: the rejected row's confidence must never reach an integer cast."""
    result = validate_checkins(frame({"confidence": "9.223372036854776e+18"}, {}), FIRST)
    assert result.rejects["reason"].tolist() == [RejectReason.CONFIDENCE_OUT_OF_RANGE.value]
    assert len(result.accepted) == 1


def test_a_progress_no_integer_can_hold_is_rejected_with_its_value_in_words() -> None:
    """Found by test_fuzz: the reject sentence printed a huge progress through a 64-bit floor."""
    result = validate_checkins(frame({"value": "-2.1728997e+127"}, {"value": "710"}), FIRST)
    assert result.rejects["reason"].tolist() == [RejectReason.PROGRESS_OUT_OF_RANGE.value] * 2
    messages = result.rejects["message"].tolist()
    assert "progress -2.1728997e+125 " in messages[0] and "progress 7.0 " in messages[1]
