"""The synthetic data generator: deterministic, realistic, valid, and honest about bad rows."""

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

from okr_assets.lib.contract import RejectReason
from okr_assets.lib.csv_reader import read_checkin_csv
from okr_assets.lib.generator import BAD_REASONS, GeneratorConfig, generate, write_dataset
from okr_assets.lib.validation import validate_checkins

AS_OF = dt.datetime(2026, 11, 23, 12, tzinfo=dt.UTC)


def rows(data) -> pd.DataFrame:
    return pd.concat(data.files.values(), ignore_index=True)


def as_raw(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(raw_id=range(1, len(frame) + 1), source="file", source_ref="f.csv:2",
                        ingested_at=pd.Timestamp(AS_OF) + pd.Timedelta(hours=1),
                        partition_date=pd.Timestamp(AS_OF.date()))


@pytest.fixture(scope="module")
def large():
    return generate(GeneratorConfig(seed=3, teams=40, as_of=AS_OF))


def test_deterministic_and_seeded() -> None:
    a, b = generate(GeneratorConfig(seed=7, as_of=AS_OF)), generate(GeneratorConfig(seed=7, as_of=AS_OF))
    assert a.files.keys() == b.files.keys()
    assert all(a.files[k].equals(b.files[k]) for k in a.files)
    assert not rows(generate(GeneratorConfig(seed=8, as_of=AS_OF))).equals(rows(a))


def test_an_earlier_as_of_is_a_prefix_of_the_same_timeline() -> None:
    late = rows(generate(GeneratorConfig(seed=7, as_of=AS_OF))).drop_duplicates("checkin_id")
    early = rows(generate(GeneratorConfig(seed=7, as_of=AS_OF - dt.timedelta(days=20)))).drop_duplicates("checkin_id")
    assert len(early) < len(late)
    merged = early.merge(late, on="checkin_id", suffixes=("", "_late"))
    assert len(merged) == len(early)
    assert (merged["value"].astype(str) == merged["value_late"].astype(str)).all()


def test_good_rows_round_trip_and_validate(tmp_path: Path) -> None:
    data = generate(GeneratorConfig(seed=11, as_of=AS_OF))
    paths = write_dataset(data, tmp_path, seed=11)
    assert paths and all(p.suffix == ".csv" for p in paths)
    parsed = pd.concat([read_checkin_csv(p.read_bytes()).rows for p in paths], ignore_index=True)
    result = validate_checkins(as_raw(parsed), dt.date(2024, 1, 1))
    assert result.rejects.empty, result.rejects[["reason", "message"]].head()
    assert len(result.accepted) == len(parsed)
    truth = json.loads((tmp_path / "okr_ground_truth_s11.json").read_text())
    assert len(truth["key_results"]) == len(data.ground_truth)
    # unchanged files are not rewritten (the landing sensor would see a new version)
    mtimes = [p.stat().st_mtime_ns for p in paths]
    write_dataset(data, tmp_path, seed=11)
    assert [p.stat().st_mtime_ns for p in paths] == mtimes


def test_realistic_statistics(large) -> None:
    frame = rows(large).drop_duplicates("checkin_id")
    frame["ts"] = pd.to_datetime(frame["checkin_at"], utc=True)
    frame = frame.sort_values("ts")
    gaps = frame.groupby("key_result_id")["ts"].diff().dt.total_seconds().dropna() / 86400
    assert 9 <= gaps.median() <= 13
    assert 4 <= gaps.quantile(0.1) <= 8 and 18 <= gaps.quantile(0.9) <= 30
    first = frame.groupby("key_result_id").head(1)
    assert 0.80 <= (first["confidence"] == "5").mean() <= 0.90
    assert 0.01 <= (first["direction"] == "decrease").mean() <= 0.10
    krs_per_objective = frame.groupby("objective_id")["key_result_id"].nunique()
    assert krs_per_objective.median() == 3

    last = frame.groupby("key_result_id").tail(1)
    last = last[last["cycle_id"] != "2026-Q4"]  # closed cycles
    v, v0, v1 = (last[c].astype(float) for c in ("value", "start_value", "target_value"))
    score = ((v - v0) / (v1 - v0)).clip(0, 1)
    assert 0.38 <= (score >= 0.7).mean() <= 0.47
    assert score[last["okr_kind"] == "aspirational"].mean() < score[last["okr_kind"] == "committed"].mean()
    truth = large.ground_truth[large.ground_truth["cycle_id"] != "2026-Q4"]
    assert abs(truth["p_reach"].mean() - (score >= 0.7).mean()) < 0.05
    assert truth["p_reach"].between(0, 1).all()


def test_overlapping_exports_repeat_checkins() -> None:
    data = generate(GeneratorConfig(seed=5, as_of=AS_OF))
    cycle = [f for name, f in data.files.items() if "2026-Q2" in name]
    ids = pd.concat([f["checkin_id"] for f in cycle])
    assert ids.duplicated().sum() > 0


def test_bad_rows_cover_every_reason_and_are_rejected_for_it() -> None:
    data = generate(GeneratorConfig(seed=9, as_of=AS_OF, bad_share=0.1))
    frame = rows(data)
    result = validate_checkins(as_raw(frame), dt.date(2024, 1, 1))
    bad = frame["checkin_id"].fillna("ci-s9-bad").str.contains("-bad")
    assert result.rejects["reason"].value_counts().to_dict().keys() == {r.value for r in BAD_REASONS}
    assert len(result.rejects) == bad.sum()
    assert set(BAD_REASONS) == set(RejectReason) - {
        RejectReason.UNREADABLE_FILE, RejectReason.MALFORMED_ROW, RejectReason.MESSAGE_TOO_LARGE,
        RejectReason.MESSAGE_NOT_UTF8, RejectReason.MESSAGE_NOT_JSON, RejectReason.MESSAGE_NOT_OBJECT,
        RejectReason.UNKNOWN_SCHEMA_VERSION, RejectReason.INVALID_ENVELOPE}
    # the bad row's id carries its index, and the index decides the intended reason
    indexed = result.rejects.dropna(subset=["checkin_id"])
    intended = indexed["checkin_id"].str.extract(r"-bad-(\d+)$")[0].astype(int) % len(BAD_REASONS)
    assert (indexed["reason"].to_numpy() == [BAD_REASONS[i].value for i in intended]).all()
