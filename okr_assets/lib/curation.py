"""Curate processed check-ins into one model-ready row per (key result, cycle)."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from okr_assets.lib.contract import DEFAULT_TARGET_SCORE
from okr_assets.lib.routing import quarter_starts

CURATED_COLUMNS: tuple[str, ...] = (
    "key_result_id", "cycle_id", "cycle_quarter", "org_id", "team_id", "cycle_start", "cycle_end",
    "objective_id", "objective_title", "okr_kind", "kr_title", "owner_id", "metric_kind",
    "direction", "unit", "start_value", "target_value", "weight",
    "n_checkins", "first_checkin_at", "last_checkin_at", "latest_value", "latest_progress",
    "latest_score", "latest_confidence", "latest_status", "objective_progress",
    "cycle_closed", "final_score", "reached_target", "as_of",
)

# Context describing the key result; taken from its latest check-in, since OKR tools let
# owners rename or re-weight a key result mid-cycle.
_CONTEXT = ("org_id", "team_id", "cycle_start", "cycle_end", "objective_id", "objective_title",
            "okr_kind", "kr_title", "owner_id", "metric_kind", "direction", "unit",
            "start_value", "target_value", "weight")


def curate(
    processed: pd.DataFrame,
    as_of: dt.date,
    target_score: float = DEFAULT_TARGET_SCORE,
) -> pd.DataFrame:
    """One row per (key_result_id, cycle_id) from processed check-ins.

    A cycle is closed when its ``cycle_end`` is before ``as_of``; closed cycles get
    ``final_score`` (the score of the last check-in) and ``reached_target``
    (``final_score >= target_score``).
    """
    if processed.empty:
        return pd.DataFrame(columns=list(CURATED_COLUMNS))
    df = processed.sort_values(["key_result_id", "cycle_id", "checkin_at", "raw_id"])
    keys = ["key_result_id", "cycle_id"]
    grouped = df.groupby(keys, sort=False)
    latest = grouped.tail(1).set_index(keys)
    out = latest[list(_CONTEXT)].copy()
    out["n_checkins"] = grouped.size()
    out["first_checkin_at"] = grouped["checkin_at"].min()
    out["last_checkin_at"] = latest["checkin_at"]
    out["latest_value"] = latest["value"]
    out["latest_progress"] = latest["progress"]
    out["latest_score"] = latest["score"]
    out["latest_confidence"] = latest["confidence"].astype("Int64")
    out["latest_status"] = latest["status"]
    out = out.reset_index()

    weighted = out.assign(_ws=out["weight"] * out["latest_score"])
    obj = weighted.groupby(["objective_id", "cycle_id"])[["_ws", "weight"]].transform("sum")
    out["objective_progress"] = obj["_ws"] / obj["weight"]

    cycle_end = pd.to_datetime(out["cycle_end"])
    out["cycle_closed"] = cycle_end < pd.Timestamp(as_of)
    out["final_score"] = out["latest_score"].where(out["cycle_closed"])
    out["reached_target"] = (out["final_score"] >= target_score).astype("boolean").where(
        out["cycle_closed"], pd.NA)
    out["cycle_quarter"] = quarter_starts(pd.to_datetime(out["cycle_start"]))
    out["as_of"] = pd.Timestamp(as_of)
    return out[list(CURATED_COLUMNS)].sort_values(keys).reset_index(drop=True)
