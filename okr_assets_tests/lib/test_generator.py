"""The synthetic data generator: deterministic, stable in time, valid, realistic, honest about bad rows."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pandas as pd
import pytest

from okr_assets.lib.contract import CHECKIN_COLUMNS, RejectReason, canonical_enum
from okr_assets.lib.csv_reader import read_checkin_csv
from okr_assets.lib.generator import BAD_REASONS, GeneratedData, GeneratorConfig, generate, write_dataset
from okr_assets.lib.validation import validate_checkins

AS_OF = dt.datetime(2026, 11, 23, 12, tzinfo=dt.UTC)   # in 2026-Q4: cycles 2025-Q3 .. 2026-Q4
INGESTED_AT = pd.Timestamp(AS_OF) + pd.Timedelta(hours=1)
FIRST_PARTITION = dt.date(2024, 1, 1)
OPEN_CYCLE = "2026-Q4"


def rows(data: GeneratedData) -> pd.DataFrame:
    return pd.concat(data.files.values(), ignore_index=True)


def unique_rows(data: GeneratedData) -> pd.DataFrame:
    """Good check-ins once each (the exports overlap), in time order, with a parsed timestamp."""
    frame = rows(data).drop_duplicates("checkin_id")
    frame = frame.assign(ts=pd.to_datetime(frame["checkin_at"], utc=True))
    return frame.sort_values(["ts", "checkin_id"]).reset_index(drop=True)


def as_raw(frame: pd.DataFrame) -> pd.DataFrame:
    """Text rows plus the lineage columns landing would add."""
    return frame.reindex(columns=list(CHECKIN_COLUMNS)).assign(
        raw_id=range(1, len(frame) + 1), source="file", source_ref="x:1", ingested_at=INGESTED_AT,
        partition_date=pd.Timestamp(AS_OF.date()))


def read_back(paths: list[Path]) -> pd.DataFrame:
    parsed = [read_checkin_csv(p.read_bytes()) for p in paths]
    assert all(p.malformed_rows == 0 for p in parsed)
    return pd.concat([p.rows for p in parsed], ignore_index=True)


def progress(frame: pd.DataFrame) -> pd.Series:
    v, v0, v1 = (frame[c].astype(float) for c in ("value", "start_value", "target_value"))
    return (v - v0) / (v1 - v0)


@pytest.fixture(scope="module")
def default() -> GeneratedData:
    return generate(GeneratorConfig(as_of=AS_OF))


@pytest.fixture(scope="module")
def large() -> GeneratedData:
    return generate(GeneratorConfig(seed=3, teams=40, as_of=AS_OF))


def test_same_config_gives_identical_data_and_bytes(default: GeneratedData, tmp_path: Path) -> None:
    again = generate(GeneratorConfig(as_of=AS_OF))
    assert default.files.keys() == again.files.keys()
    assert all(default.files[k].equals(again.files[k]) for k in default.files)
    pd.testing.assert_frame_equal(default.ground_truth, again.ground_truth)
    a, b = write_dataset(default, tmp_path / "a", seed=42), write_dataset(again, tmp_path / "b", seed=42)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    other = generate(GeneratorConfig(seed=43, as_of=AS_OF))
    assert not set(rows(other)["checkin_id"]) & set(rows(default)["checkin_id"])
    assert not rows(other)["value"].equals(rows(default)["value"])


def test_invalid_config_is_refused() -> None:
    with pytest.raises(ValueError, match="bad_share"):
        GeneratorConfig(bad_share=0.6)
    with pytest.raises(ValueError, match="at least 1"):
        GeneratorConfig(teams=0)


def test_an_earlier_as_of_is_a_prefix_of_the_same_timeline(default: GeneratedData) -> None:
    early_as_of = AS_OF - dt.timedelta(days=20)   # same (last) quarter
    early = unique_rows(generate(GeneratorConfig(as_of=early_as_of)))
    late = unique_rows(default)
    prefix = late[late["ts"] <= pd.Timestamp(early_as_of)].reset_index(drop=True)
    assert 0 < len(early) < len(late)
    pd.testing.assert_frame_equal(early, prefix)
    # the same check-ins whatever the number of cycles requested
    short = unique_rows(generate(GeneratorConfig(cycles=2, as_of=AS_OF)))
    pd.testing.assert_frame_equal(short, late[late["cycle_id"].isin(short["cycle_id"].unique())]
                                  .reset_index(drop=True))
    # ground truth of visible key results is the same model, completed or not
    truth = generate(GeneratorConfig(as_of=early_as_of)).ground_truth.drop(columns="complete")
    later = default.ground_truth.drop(columns="complete").set_index("key_result_id").loc[truth["key_result_id"]]
    pd.testing.assert_frame_equal(truth.set_index("key_result_id"), later)


def test_good_rows_round_trip_through_csv_and_validate(default: GeneratedData, tmp_path: Path) -> None:
    foreign = tmp_path / "someone_elses.csv"
    foreign.write_text("keep me")
    paths = write_dataset(default, tmp_path, seed=42)
    assert [p.name for p in paths] == list(default.files)
    assert all(p.suffix == ".csv" and p.name.startswith("okr_checkins_s42_") for p in paths)
    assert foreign.read_text() == "keep me" and not list(tmp_path.glob("*.tmp"))

    parsed = read_back(paths)
    assert list(parsed.columns[: len(CHECKIN_COLUMNS)]) == list(CHECKIN_COLUMNS)
    assert parsed["comment"].str.contains("\n", na=False).any()      # quoted newlines survive
    assert parsed["comment"].str.contains('"', na=False).any()
    result = validate_checkins(as_raw(parsed), FIRST_PARTITION)
    assert result.rejects.empty, result.rejects[["reason", "message"]].head()
    assert len(result.accepted) == len(parsed) == len(rows(default))
    assert (result.accepted["checkin_at"] <= pd.Timestamp(AS_OF)).all()

    document = json.loads((tmp_path / "okr_ground_truth_s42.json").read_text())
    assert document["header"]["parameters"]["sigma"] > 0 and document["header"]["config"]["seed"] == 42
    assert len(document["key_results"]) == len(default.ground_truth)
    assert not list(tmp_path.glob("okr_ground_truth*.csv"))
    # unchanged files are not rewritten (the folder sensor would see a new version)
    mtimes = [p.stat().st_mtime_ns for p in paths]
    write_dataset(default, tmp_path, seed=42)
    assert [p.stat().st_mtime_ns for p in paths] == mtimes


def test_default_size_and_speed() -> None:
    started = time.perf_counter()
    data = generate(GeneratorConfig(as_of=AS_OF))
    assert time.perf_counter() - started < 2.0
    assert 2_000 <= len(unique_rows(data)) <= 5_000


def test_structure_ids_and_enums(large: GeneratedData) -> None:
    frame = unique_rows(large)
    assert frame["org_id"].unique().tolist() == ["org-s3"]
    assert frame["team_id"].nunique() == 40
    assert sorted(frame["cycle_id"].unique()) == ["2025-Q3", "2025-Q4", "2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4"]
    q3 = frame[frame["cycle_id"] == "2026-Q3"]
    assert set(q3["cycle_start"]) == {"2026-07-01"} and set(q3["cycle_end"]) == {"2026-09-30"}
    objectives = frame.groupby(["team_id", "cycle_id"])["objective_id"].nunique()
    assert objectives.between(2, 4).all()
    krs = frame.groupby("objective_id")["key_result_id"].nunique()
    assert krs.median() == 3 and krs.between(2, 5).all()
    assert frame["checkin_at"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()
    for column in ("okr_kind", "metric_kind", "direction", "status"):
        assert frame[column].map(lambda v, c=column: canonical_enum(c, v)).notna().all()
    kr = frame.drop_duplicates("key_result_id")
    assert 0.25 <= (kr["okr_kind"] == "aspirational").mean() <= 0.35
    assert (kr["metric_kind"].isin(["numeric", "percent", "currency"])).mean() >= 0.7
    assert set(kr["metric_kind"]) == {"numeric", "percent", "currency", "boolean", "milestone"}
    weight = kr["weight"].astype(float)
    assert weight.between(0, 1, inclusive="right").all() and (weight == 1).mean() > 0.5
    confidence = pd.to_numeric(frame["confidence"])
    assert confidence.dropna().between(0, 10).all() and (confidence.dropna() % 1 == 0).all()
    assert 0.02 <= confidence.isna().mean() <= 0.08
    synonyms = ~frame["status"].isin(["not_started", "on_track", "at_risk", "off_track", "achieved"])
    assert 0.02 <= synonyms.mean() <= 0.08
    assert 0.3 <= frame["comment"].isna().mean() <= 0.8
    assert progress(frame).abs().max() < 3


def test_realistic_statistics(large: GeneratedData) -> None:
    frame = unique_rows(large)
    gaps = frame.groupby("key_result_id")["ts"].diff().dt.total_seconds().dropna() / 86400
    assert 9 <= gaps.median() <= 13 and gaps.min() >= 1
    assert 4 <= gaps.quantile(0.1) <= 8 and 18 <= gaps.quantile(0.9) <= 30

    first = frame.groupby("key_result_id").head(1)
    assert 0.80 <= (first["confidence"] == "5").mean() <= 0.90
    assert 0.01 <= (first["direction"] == "decrease").mean() <= 0.10
    cycle_start = pd.to_datetime(first["cycle_start"]).dt.tz_localize("UTC")
    assert ((first["ts"] - cycle_start) <= pd.Timedelta(days=10)).all()
    assert (first.loc[progress(first) == 0, "status"].str.lower().str.replace(" ", "_") == "not_started").mean() > 0.8

    last = frame.groupby("key_result_id").tail(1)
    cycle_end = pd.to_datetime(last["cycle_end"]).dt.tz_localize("UTC")
    assert ((last["ts"] - cycle_end) <= pd.Timedelta(days=8)).all()
    closed = last[last["cycle_id"] != OPEN_CYCLE]
    silent = (pd.to_datetime(closed["cycle_end"]).dt.tz_localize("UTC") - closed["ts"]) > pd.Timedelta(days=25)
    assert 0.05 <= silent.mean() <= 0.2

    score = progress(closed).clip(0, 1)
    reached = (score >= 0.7).mean()
    assert 0.38 <= reached <= 0.47
    kind = closed["okr_kind"]
    assert score[kind == "aspirational"].mean() < score[kind == "committed"].mean() - 0.05

    truth = large.ground_truth[large.ground_truth["cycle_id"] != OPEN_CYCLE]
    assert truth["complete"].all() and len(truth) == len(closed)
    assert truth["p_reach"].between(0, 1).all()
    assert abs(truth["p_reach"].mean() - reached) < 0.05
    # the realised outcome in the ground truth is what the exports show
    by_kr = pd.Series((score >= 0.7).to_numpy(), index=closed["key_result_id"])
    assert (truth.set_index("key_result_id")["reached"] == by_kr.loc[truth["key_result_id"]]).mean() > 0.995
    # calibration: the exact probability sorts key results by outcome
    high, low = truth[truth["p_reach"] > 0.8], truth[truth["p_reach"] < 0.2]
    assert high["reached"].mean() > 0.8 and low["reached"].mean() < 0.2


def test_overlapping_exports_repeat_checkins(default: GeneratedData) -> None:
    parts = [f for name, f in default.files.items() if "_2026-Q2_" in name]
    assert len(parts) == 3
    for part in parts:
        assert not part["checkin_id"].duplicated().any()
        assert part["checkin_at"].is_monotonic_increasing
    both = pd.concat(parts, ignore_index=True)
    repeated = both[both["checkin_id"].duplicated(keep=False)]
    assert len(repeated) > 0
    # a re-export carries identical content
    assert len(repeated.drop_duplicates()) == repeated["checkin_id"].nunique()


def test_an_open_cycle_only_has_the_exports_so_far() -> None:
    data = generate(GeneratorConfig(as_of=dt.datetime(2026, 10, 20, tzinfo=dt.UTC)))
    current = [name for name in data.files if "_2026-Q4_" in name]
    assert current == ["okr_checkins_s42_2026-Q4_part1.csv"]
    assert all(len(f) for f in data.files.values())
    truth = data.ground_truth[data.ground_truth["cycle_id"] == "2026-Q4"]
    assert len(truth) and not truth["complete"].any() and truth["p_reach"].between(0, 1).all()


def test_bad_rows_cover_every_reason_and_are_rejected_for_it(tmp_path: Path) -> None:
    assert set(BAD_REASONS) == set(RejectReason) - {
        RejectReason.UNREADABLE_FILE, RejectReason.LOST_BEFORE_LANDING, RejectReason.MALFORMED_ROW,
        RejectReason.MESSAGE_TOO_LARGE,
        RejectReason.MESSAGE_NOT_UTF8, RejectReason.MESSAGE_NOT_JSON, RejectReason.MESSAGE_NOT_OBJECT,
        RejectReason.UNKNOWN_SCHEMA_VERSION, RejectReason.INVALID_ENVELOPE, RejectReason.UNSTORABLE_CHARACTER}
    data = generate(GeneratorConfig(seed=9, as_of=AS_OF, bad_share=0.1))
    clean = generate(GeneratorConfig(seed=9, as_of=AS_OF))
    frame = read_back(write_dataset(data, tmp_path, seed=9))
    is_bad = frame["checkin_id"].str.contains("-bad-")
    expected_bad = sum(round(0.1 * len(f)) for f in clean.files.values())
    assert is_bad.sum() == expected_bad and (~is_bad).sum() == len(rows(clean))
    assert frame.loc[is_bad, "checkin_id"].is_unique
    assert not set(frame.loc[is_bad, "checkin_id"]) & set(frame.loc[~is_bad, "checkin_id"])

    result = validate_checkins(as_raw(frame), FIRST_PARTITION)
    assert len(result.accepted) == (~is_bad).sum()
    assert set(result.rejects["reason"]) == {r.value for r in BAD_REASONS}
    assert result.rejects["checkin_id"].str.contains("-bad-").all()
    intended = result.rejects["checkin_id"].str.extract(r"-bad-(\d+)$")[0].astype(int) % len(BAD_REASONS)
    assert (result.rejects["reason"].to_numpy() == [BAD_REASONS[i].value for i in intended]).all()

    # only the "future" rows are dated after as_of
    bad = result.rejects.assign(ts=pd.to_datetime(result.rejects["checkin_at"], utc=True, errors="coerce",
                                                  format="ISO8601"))
    future = bad["ts"] > pd.Timestamp(AS_OF)
    assert (bad.loc[future, "reason"] == RejectReason.CHECKIN_IN_FUTURE.value).all()
    assert future.sum() == (bad["reason"] == RejectReason.CHECKIN_IN_FUTURE.value).sum()
