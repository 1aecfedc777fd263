"""Point-in-time features: one row per (key result, as-of week) of a cycle.

A feature at as-of time ``t`` (cycle start + ``week`` weeks, 00:00 UTC) is computed only from
check-ins with ``checkin_at <= t``, so training rows see exactly what an OKR owner could have
seen that week; the label (did the key result end its closed cycle with score >= 0.7) is the
only thing taken from after ``t``.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
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
# What build_features reads of okr_processed and of okr_curated (callers read only these).
CHECKIN_COLUMNS: tuple[str, ...] = (
    "cycle_id", "cycle_start", "cycle_end", "key_result_id", "team_id", "objective_id", "okr_kind",
    "metric_kind", "direction", "weight", "progress", "score", "confidence", "checkin_at", "raw_id",
)
LABEL_COLUMNS: tuple[str, ...] = ("key_result_id", "cycle_id", "reached_target", "cycle_closed")


def _as_of_grid(cycles: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
    """Every (cycle, week) whose as-of time is within the cycle (+1 week) and not after ``now``."""
    weeks = pd.DataFrame({"week": range(1, MAX_WEEKS + 1)})
    grid = cycles.merge(weeks, how="cross")
    start = pd.to_datetime(grid["cycle_start"]).dt.tz_localize("UTC")
    end = pd.to_datetime(grid["cycle_end"]).dt.tz_localize("UTC") + pd.Timedelta(days=1)
    grid["as_of"] = start + pd.to_timedelta(grid["week"] * 7, unit="D")
    # Weeks are consecutive, so "every week up to the first one past the end" = a filter.
    grid = grid[(grid["as_of"] <= end + pd.Timedelta(days=7)) & (grid["as_of"] <= now)]
    length_days = (pd.to_datetime(grid["cycle_end"]) - pd.to_datetime(grid["cycle_start"])).dt.days + 1
    elapsed_days = (grid["as_of"] - start[grid.index]).dt.days
    grid["elapsed_share"] = (elapsed_days / length_days).clip(lower=0.0, upper=1.0)
    return grid.reset_index(drop=True)


def _running_state(checkins: pd.DataFrame) -> pd.DataFrame:
    """Each check-in with what its key result (``_kr``, one integer per cycle and key result)
    looked like right after it: the count so far, the previous check-in, and the first and
    latest confidence given so far."""
    state = checkins.copy()
    g = state.groupby("_kr", sort=False)
    state["n_checkins"] = (g.cumcount() + 1).astype(float)
    prev_at, prev_progress = g["checkin_at"].shift(1), g["progress"].shift(1)
    weeks = (state["checkin_at"] - prev_at).dt.total_seconds() / 604800
    velocity = (state["progress"] - prev_progress) / weeks.where(weeks > 0)
    state["velocity"] = velocity.fillna(0.0).clip(-2, 2)
    confidence = state["confidence"].astype("float64")
    state["latest_confidence"] = confidence.groupby(state["_kr"], sort=False).ffill()
    # The first confidence given is fixed once given: known from that check-in on.
    has_conf = confidence.notna()
    first = confidence.where(has_conf).groupby(state["_kr"], sort=False).transform("first")
    given_yet = has_conf.groupby(state["_kr"], sort=False).cummax()
    state["first_confidence"] = first.where(given_yet)
    return state


def build_features(processed: pd.DataFrame, labels: pd.DataFrame, now: dt.datetime) -> pd.DataFrame:
    """Features for every key result of ``processed`` at every as-of week up to ``now``.

    ``labels``: ``key_result_id, cycle_id, reached_target, cycle_closed`` (from okr_curated).
    Column-wise: each check-in carries its key result's running state, and an as-of join picks,
    for every (key result, week), the last check-in made by that week's as-of time. Text keys
    are turned into integers once per key result, so the joins, groupings and the final sort
    over every (key result, week) compare integers, not strings.
    """
    if processed.empty:
        return pd.DataFrame(columns=list(FEATURE_TABLE_COLUMNS))
    checkins = processed[list(CHECKIN_COLUMNS)].sort_values(["checkin_at", "raw_id"],
                                                            kind="stable").reset_index(drop=True)
    cycles = checkins[["cycle_id", "cycle_start", "cycle_end"]].drop_duplicates("cycle_id")
    now_ts = pd.Timestamp(now)
    now_ts = now_ts.tz_convert("UTC") if now_ts.tzinfo else now_ts.tz_localize("UTC")
    grid = _as_of_grid(cycles, now_ts)
    grid["cycle_quarter"] = pd.to_datetime(grid["cycle_start"]).dt.to_period("Q").dt.start_time
    checkins["_kr"] = checkins.groupby(["cycle_id", "key_result_id"], sort=False).ngroup()
    state = _running_state(checkins.drop(columns=["cycle_start", "cycle_end"]))

    # One row per key result: its label, and its rank in (key_result_id, cycle_id) order, which
    # is the order of the rows returned.
    key_results = (state[["cycle_id", "key_result_id", "_kr"]].drop_duplicates("_kr")
                   .merge(labels[list(LABEL_COLUMNS)].rename(columns={"reached_target": "label"}),
                          on=["key_result_id", "cycle_id"], how="left")
                   .sort_values(["key_result_id", "cycle_id"]))
    key_results["_rank"] = np.arange(len(key_results))
    # Every key result of a cycle at every as-of week of that cycle, then its last check-in by then.
    state["checkin_at"] = state["checkin_at"].astype("datetime64[ns, UTC]")
    slots = grid[["cycle_id", "cycle_quarter", "week", "as_of", "elapsed_share"]].merge(key_results, on="cycle_id")
    slots["as_of"] = slots["as_of"].astype("datetime64[ns, UTC]")
    # Rows are in (checkin_at, raw_id) order, so on equal times the as-of join takes the later row.
    joined = pd.merge_asof(
        slots.sort_values("as_of", kind="stable"), state.drop(columns=["cycle_id", "key_result_id"]),
        left_on="as_of", right_on="checkin_at", by="_kr", direction="backward", allow_exact_matches=True)
    out = joined[joined["checkin_at"].notna()].copy()  # no check-in yet by that week: no row

    out["expected_gap"] = out["progress"] - out["elapsed_share"]
    out["confidence"] = out["latest_confidence"].fillna(5.0)
    out["confidence_trend"] = (out["latest_confidence"] - out["first_confidence"]).fillna(0.0)
    out["days_since_last_checkin"] = (out["as_of"] - out["checkin_at"]).dt.total_seconds() / 86400
    # Each (cycle, week) as one integer: grouping by integers, not text.
    slot = pd.factorize(out["cycle_id"])[0].astype(np.int64) * (MAX_WEEKS + 1) + out["week"].to_numpy()
    team = [slot, pd.factorize(out["team_id"])[0]]
    objective = [slot, pd.factorize(out["objective_id"])[0]]
    out["team_progress"] = out["score"].groupby(team, sort=False).transform("mean")
    weighted = (out["score"] * out["weight"]).groupby(objective, sort=False).transform("sum")
    out["objective_progress"] = weighted / out["weight"].groupby(objective, sort=False).transform("sum")
    out["week"] = out["week"].astype(float)
    out["cycle_closed"] = out["cycle_closed"].fillna(False).astype(bool)
    out["label"] = out["label"].astype("boolean").where(out["cycle_closed"], pd.NA)
    order = np.lexsort((out["week"].to_numpy(), out["_rank"].to_numpy()))
    return out[list(FEATURE_TABLE_COLUMNS)].take(order).reset_index(drop=True)


def open_latest(features: pd.DataFrame) -> pd.DataFrame:
    """For each open key result, its most recent as-of week (what predictions are made on)."""
    open_rows = features[~features["cycle_closed"].astype(bool)]
    return open_rows.sort_values("week").groupby(["key_result_id", "cycle_id"]).tail(1).reset_index(drop=True)

