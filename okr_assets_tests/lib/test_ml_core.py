"""Point-in-time features, the time-based split, training, and drift tests that keep their nerve."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from okr_assets.lib.curation import curate_frame
from okr_assets.lib.drift import detect_drift, markdown_summary
from okr_assets.lib.features import FEATURE_COLUMNS, build_features, cycle_batches, open_latest
from okr_assets.lib.generator import GeneratorConfig, generate
from okr_assets.lib.modeling import realised_performance, time_split, train_and_select
from okr_assets.lib.validation import validate_versions

NOW = dt.datetime(2026, 11, 23, 12, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def processed() -> pd.DataFrame:
    data = generate(GeneratorConfig(seed=21, teams=4, cycles=4, as_of=NOW))
    raw = pd.concat(data.files.values(), ignore_index=True)
    raw = raw.assign(raw_id=range(1, len(raw) + 1), source="file", source_ref="f.csv:2",
                     ingested_at=pd.Timestamp(NOW), partition_date=pd.Timestamp(NOW.date()))
    return validate_versions(raw, dt.date(2024, 1, 1)).accepted


@pytest.fixture(scope="module")
def features(processed: pd.DataFrame) -> pd.DataFrame:
    return build_features(processed, curate_frame(processed, NOW.date()), NOW)


def test_features_are_point_in_time(processed: pd.DataFrame, features: pd.DataFrame) -> None:
    labels = curate_frame(processed, NOW.date())
    kr = processed["key_result_id"].iloc[0]
    rows = processed[processed["key_result_id"] == kr].sort_values("checkin_at")
    cut = rows["checkin_at"].iloc[len(rows) // 2]
    # Rewrite every later check-in of that key result: earlier weeks must not change.
    changed = processed.copy()
    later = (changed["key_result_id"] == kr) & (changed["checkin_at"] > cut)
    changed.loc[later, ["progress", "score", "value"]] = [4.0, 1.0, 999.0]
    changed.loc[later, "confidence"] = 0
    again = build_features(changed, labels, NOW)
    mine = features["key_result_id"] == kr
    early = mine & (features["as_of"] < cut)
    assert early.any()
    pd.testing.assert_frame_equal(features[early].reset_index(drop=True),
                                  again[(again["key_result_id"] == kr) & (again["as_of"] < cut)].reset_index(drop=True))
    first_later = rows.loc[rows["checkin_at"] > cut, "checkin_at"].min()
    late = (again["key_result_id"] == kr) & (again["as_of"] >= first_later)
    assert late.any() and (again.loc[late, "score"] == 1.0).all()  # the rewrite is seen from then on


def _features_by_hand(processed: pd.DataFrame, key_result_id: str, week: int) -> pd.Series:
    """One feature row the slow, obvious way: filter the check-ins seen by the as-of time."""
    rows = processed[processed["key_result_id"] == key_result_id]
    start = pd.Timestamp(rows["cycle_start"].iloc[0]).tz_localize("UTC")
    as_of = start + pd.Timedelta(weeks=week)
    cycle = processed[(processed["cycle_id"] == rows["cycle_id"].iloc[0]) & (processed["checkin_at"] <= as_of)]
    latest = cycle.sort_values(["checkin_at", "raw_id"]).groupby("key_result_id").tail(1).set_index("key_result_id")
    seen = cycle[cycle["key_result_id"] == key_result_id].sort_values(["checkin_at", "raw_id"])
    last, conf = seen.iloc[-1], seen["confidence"].dropna().astype(float)
    length = (pd.Timestamp(last["cycle_end"]) - pd.Timestamp(last["cycle_start"])).days + 1
    velocity = 0.0
    if len(seen) > 1:
        weeks = (last["checkin_at"] - seen["checkin_at"].iloc[-2]).total_seconds() / 604800
        velocity = min(max((last["progress"] - seen["progress"].iloc[-2]) / weeks, -2), 2) if weeks > 0 else 0.0
    team = latest[latest["team_id"] == last["team_id"]]
    objective = latest[latest["objective_id"] == last["objective_id"]]
    elapsed = min(7 * week / length, 1.0)
    return pd.Series({
        "n_checkins": float(len(seen)), "progress": last["progress"], "velocity": velocity,
        "elapsed_share": elapsed, "expected_gap": last["progress"] - elapsed,
        "confidence": conf.iloc[-1] if len(conf) else 5.0,
        "confidence_trend": conf.iloc[-1] - conf.iloc[0] if len(conf) else 0.0,
        "days_since_last_checkin": (as_of - last["checkin_at"]).total_seconds() / 86400,
        "team_progress": team["score"].mean(),
        "objective_progress": (objective["score"] * objective["weight"]).sum() / objective["weight"].sum(),
    })


def test_features_match_a_row_by_row_computation(processed: pd.DataFrame, features: pd.DataFrame) -> None:
    """The column-wise build (as-of join over running state) equals the per-slot definition."""
    picked = features.sample(120, random_state=3)
    for row in picked.itertuples():
        expected = _features_by_hand(processed, row.key_result_id, int(row.week))
        got = pd.Series({k: getattr(row, k) for k in expected.index})
        pd.testing.assert_series_equal(got.astype(float), expected.astype(float), check_names=False, rtol=1e-9)


def test_cycle_batches_hold_whole_cycles_up_to_the_size() -> None:
    sizes = {"c3": 5, "c1": 4, "c2": 3, "c4": 12, "c5": 1}
    batches = cycle_batches(sizes, 8)
    assert batches == [["c1", "c2"], ["c3"], ["c4"], ["c5"]]  # c4 alone: larger than a batch
    assert sorted(c for batch in batches for c in batch) == sorted(sizes)
    assert cycle_batches({}, 8) == []
    assert cycle_batches(sizes, 100) == [["c1", "c2", "c3", "c4", "c5"]]


def test_labels_only_for_closed_cycles(features: pd.DataFrame) -> None:
    assert features.loc[features["cycle_closed"], "label"].notna().all()
    assert features.loc[~features["cycle_closed"], "label"].isna().all()
    assert (features["as_of"] <= pd.Timestamp(NOW)).all()
    latest = open_latest(features)
    assert not latest.duplicated(["key_result_id", "cycle_id"]).any() and len(latest) > 0


def test_time_split_and_training(features: pd.DataFrame) -> None:
    split = time_split(features)
    assert split.holdout_cycle == "2026-Q3"
    assert max(split.train_cycles) < split.holdout_cycle
    assert set(split.holdout["cycle_id"]) == {"2026-Q3"} and "2026-Q4" not in set(split.train["cycle_id"])
    result = train_and_select(split)
    assert set(result.candidates) == {"logistic_regression", "gradient_boosting"}
    assert result.metrics["roc_auc"] == max(c["roc_auc"] for c in result.candidates.values())
    assert 0.7 < result.metrics["roc_auc"] <= 1.0
    # later weeks know more: the last week ranks far better than the first
    per_week = result.per_week.set_index("week")["roc_auc"]
    assert per_week.iloc[-1] > per_week.iloc[0]


def test_time_split_needs_two_closed_cycles(features: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="2 closed cycles"):
        time_split(features[features["cycle_id"].isin(["2026-Q3", "2026-Q4"])])


def _sample(rng: np.random.Generator, n: int, shift: float = 0.0, share: float = 0.3) -> pd.DataFrame:
    return pd.DataFrame({"x": rng.normal(shift, 1.0, n), "y": rng.normal(0, 1, n),
                         "kind": np.where(rng.random(n) < share, "aspirational", "committed")})


def test_drift_flags_an_injected_shift_and_not_a_resample() -> None:
    rng = np.random.default_rng(0)
    reference = _sample(rng, 2000)
    same = detect_drift(reference, reference.sample(2000, replace=True, random_state=1), ["x", "y"], ["kind"])
    assert not same.drift_detected
    shifted = detect_drift(reference, _sample(rng, 2000, shift=0.5), ["x", "y"], ["kind"])
    assert shifted.drift_detected and shifted.drifted_features == ["x"]
    category = detect_drift(reference, _sample(rng, 2000, share=0.45), ["x", "y"], ["kind"])
    assert category.drifted_features == ["kind"]
    assert "Drift detected" in markdown_summary(shifted, "ref", "cur")


def test_large_samples_do_not_alarm_on_irrelevant_shifts() -> None:
    rng = np.random.default_rng(1)
    verdict = detect_drift(_sample(rng, 100_000), _sample(rng, 100_000, shift=0.05), ["x"], ["kind"])
    row = verdict.report.set_index("feature").loc["x"]
    assert row["significant"] and not row["practical"] and not verdict.drift_detected


def test_feature_columns_have_no_label_leak() -> None:
    assert "label" not in FEATURE_COLUMNS and "cycle_closed" not in FEATURE_COLUMNS


def test_realised_auc_pools_every_served_week() -> None:
    # Version 1 ranked four key results backwards at week 1 and perfectly at week 2 (a and b
    # reached the target). Pooled over weeks, its ROC-AUC is that of all eight predictions; the
    # latest prediction of each key result alone would say 1.0.
    served_at = pd.Timestamp("2026-08-01", tz="UTC")
    rows = [("a", 1, 0.9), ("b", 1, 0.2), ("c", 1, 0.1), ("d", 1, 0.8),
            ("a", 2, 0.1), ("b", 2, 0.2), ("c", 2, 0.8), ("d", 2, 0.9)]
    log = pd.DataFrame([{"key_result_id": kr, "cycle_id": "2026-Q3", "week": float(week), "risk": risk,
                         "model_version": "1", "predicted_at": served_at + pd.Timedelta(weeks=week),
                         "holdout_roc_auc": 0.8} for kr, week, risk in rows])
    # Week 2 of key result a was served twice: the later prediction is the one that counts.
    log = pd.concat([log.assign(risk=0.99, predicted_at=served_at).iloc[[4]], log], ignore_index=True)
    outcomes = pd.DataFrame({"key_result_id": list("abcd"), "cycle_id": "2026-Q3",
                             "reached_target": [True, True, False, False]})

    pooled = realised_performance(log, outcomes, pooled=True)
    assert list(pooled.columns) == ["model_version", "predictions", "realised_roc_auc", "realised_brier",
                                    "holdout_roc_auc"]
    [version] = pooled.itertuples()
    assert version.model_version == "1" and version.predictions == 8
    assert version.realised_roc_auc == pytest.approx(10 / 16)  # positive above negative in 10 of 16 pairs
    assert version.holdout_roc_auc == 0.8

    per_week = realised_performance(log, outcomes).set_index("week")
    assert per_week["predictions"].to_dict() == {1.0: 4, 2.0: 4}
    assert per_week["realised_roc_auc"].to_dict() == {1.0: pytest.approx(0.25), 2.0: 1.0}
    latest_only = realised_performance(log.assign(week=0.0), outcomes)  # one prediction per key result
    assert latest_only["predictions"].tolist() == [4] and latest_only["realised_roc_auc"].tolist() == [1.0]
