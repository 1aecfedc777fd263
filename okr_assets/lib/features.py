"""Point-in-time features: one row per (key result, as-of week) of a cycle.

A feature at as-of time ``t`` (cycle start + ``week`` weeks, 00:00 UTC) is computed only from
check-ins with ``checkin_at <= t``, so training rows see exactly what an OKR owner could have
seen that week; the label (did the key result end its closed cycle with score >= 0.7) is the
only thing taken from after ``t``.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

NUMERIC_FEATURES: tuple[str, ...] = (
    "week", "elapsed_share", "progress", "score", "velocity", "expected_gap", "confidence",
    "confidence_trend", "days_since_last_checkin", "n_checkins", "team_progress", "objective_progress",
    "weight",
)
CATEGORICAL_FEATURES: tuple[str, ...] = ("okr_kind", "metric_kind", "direction")
FEATURE_COLUMNS: tuple[str, ...] = (*NUMERIC_FEATURES, *CATEGORICAL_FEATURES)
KEY_COLUMNS: tuple[str, ...] = ("key_result_id", "cycle_id", "week")
# Drift is tested on what describes the key results, not on the time axis (week and elapsed
# share are fixed by the as-of week); team/objective aggregates are tested once per team/objective.
DRIFT_NUMERIC_FEATURES: tuple[str, ...] = tuple(f for f in NUMERIC_FEATURES if f not in ("week", "elapsed_share"))
DRIFT_UNITS: dict[str, list[str]] = {"team_progress": ["team_id", "cycle_id"],
                                     "objective_progress": ["objective_id", "cycle_id"]}
FEATURE_TABLE_COLUMNS: tuple[str, ...] = (
    "key_result_id", "cycle_id", "cycle_quarter", "team_id", "objective_id", "as_of",
    *FEATURE_COLUMNS, "label", "cycle_closed",
)
MAX_WEEKS = 14


def _as_of_times(cycles: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
    """Every (cycle, week) whose as-of time is within the cycle (+1 week) and not after ``now``."""
    rows = []
    for _, c in cycles.iterrows():
        start = pd.Timestamp(c["cycle_start"]).tz_localize("UTC")
        end = pd.Timestamp(c["cycle_end"]).tz_localize("UTC") + pd.Timedelta(days=1)
        for week in range(1, MAX_WEEKS + 1):
            as_of = start + pd.Timedelta(weeks=week)
            if as_of > end + pd.Timedelta(days=7) or as_of > now:
                break
            rows.append((c["cycle_id"], c["cycle_start"], c["cycle_end"], week, as_of))
    return pd.DataFrame(rows, columns=["cycle_id", "cycle_start", "cycle_end", "week", "as_of"])


def build_features(processed: pd.DataFrame, labels: pd.DataFrame, now: dt.datetime) -> pd.DataFrame:
    """Features for every key result of ``processed`` at every as-of week up to ``now``.

    ``labels``: ``key_result_id, cycle_id, reached_target, cycle_closed`` (from okr_curated).
    """
    if processed.empty:
        return pd.DataFrame(columns=list(FEATURE_TABLE_COLUMNS))
    checkins = processed.sort_values(["checkin_at", "raw_id"]).reset_index(drop=True)
    cycles = checkins[["cycle_id", "cycle_start", "cycle_end"]].drop_duplicates("cycle_id")
    grid = _as_of_times(cycles, pd.Timestamp(now).tz_convert("UTC") if pd.Timestamp(now).tzinfo
                        else pd.Timestamp(now).tz_localize("UTC"))
    frames = []
    for (cycle_id, week), slot in grid.groupby(["cycle_id", "week"], sort=False):
        as_of = slot["as_of"].iloc[0]
        seen = checkins[(checkins["cycle_id"] == cycle_id) & (checkins["checkin_at"] <= as_of)]
        if seen.empty:
            continue
        frames.append(_features_at(seen, slot.iloc[0], as_of, int(week)))
    if not frames:
        return pd.DataFrame(columns=list(FEATURE_TABLE_COLUMNS))
    features = pd.concat(frames, ignore_index=True)
    lab = labels[["key_result_id", "cycle_id", "reached_target", "cycle_closed"]].rename(
        columns={"reached_target": "label"})
    features = features.merge(lab, on=["key_result_id", "cycle_id"], how="left")
    features["cycle_closed"] = features["cycle_closed"].fillna(False).astype(bool)
    features["label"] = features["label"].astype("boolean").where(features["cycle_closed"], pd.NA)
    return features[list(FEATURE_TABLE_COLUMNS)].sort_values(list(KEY_COLUMNS)).reset_index(drop=True)


def _features_at(seen: pd.DataFrame, slot: pd.Series, as_of: pd.Timestamp, week: int) -> pd.DataFrame:
    g = seen.groupby("key_result_id", sort=False)
    last = g.tail(1).set_index("key_result_id")
    out = last[["cycle_id", "team_id", "objective_id", "okr_kind", "metric_kind", "direction", "weight",
                "progress", "score"]].copy()
    out["n_checkins"] = g.size().astype(float)
    # velocity: progress per week between the last two check-ins (0 with a single check-in)
    prev = g.nth(-2).set_index("key_result_id") if len(seen) > 1 else seen.iloc[0:0].set_index("key_result_id")
    dt_weeks = (last["checkin_at"] - prev["checkin_at"].reindex(last.index)).dt.total_seconds() / 604800
    dp = last["progress"] - prev["progress"].reindex(last.index)
    out["velocity"] = (dp / dt_weeks.where(dt_weeks > 0)).fillna(0.0).clip(-2, 2)
    start = pd.Timestamp(slot["cycle_start"]).tz_localize("UTC")
    length = (pd.Timestamp(slot["cycle_end"]) - pd.Timestamp(slot["cycle_start"])).days + 1
    elapsed = min(max((as_of - start).days / length, 0.0), 1.0)
    out["elapsed_share"] = elapsed
    out["expected_gap"] = out["progress"] - elapsed
    conf = seen.dropna(subset=["confidence"]).groupby("key_result_id")["confidence"]
    latest_conf = conf.last().reindex(out.index).astype(float)
    out["confidence"] = latest_conf.fillna(5.0)
    out["confidence_trend"] = (latest_conf - conf.first().reindex(out.index).astype(float)).fillna(0.0)
    out["days_since_last_checkin"] = (as_of - last["checkin_at"]).dt.total_seconds() / 86400
    out["team_progress"] = out.groupby("team_id")["score"].transform("mean")
    weighted = (out["score"] * out["weight"]).groupby(out["objective_id"]).transform("sum")
    out["objective_progress"] = weighted / out["weight"].groupby(out["objective_id"]).transform("sum")
    out["week"] = float(week)
    out["as_of"] = as_of
    out["cycle_quarter"] = pd.Timestamp(slot["cycle_start"]).to_period("Q").start_time
    return out.reset_index()


def open_latest(features: pd.DataFrame) -> pd.DataFrame:
    """For each open key result, its most recent as-of week (what predictions are made on)."""
    open_rows = features[~features["cycle_closed"].astype(bool)]
    return open_rows.sort_values("week").groupby(["key_result_id", "cycle_id"]).tail(1).reset_index(drop=True)

