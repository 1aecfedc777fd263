"""Curate processed check-ins into one model-ready row per (key result, cycle).

``curate`` is an Ibis expression: the warehouse compiles it to its engine's SQL and runs it where
okr_processed is (okr_curated); ``curate_frame`` runs the same expression on a DataFrame in an
in-memory DuckDB, for the model's pure code and its tests.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from okr_assets.lib.contract import DEFAULT_TARGET_SCORE

if TYPE_CHECKING:
    import ibis
    import pandas as pd

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
_KEYS = ("key_result_id", "cycle_id")


def curate(processed: ibis.Table, as_of: dt.date, target_score: float = DEFAULT_TARGET_SCORE) -> ibis.Table:
    """One row per (key_result_id, cycle_id) of processed check-ins (okr_processed's columns).

    The context and the latest state come from the latest check-in (by ``checkin_at``, then the
    latest landed, ``raw_id``). A cycle is closed when its ``cycle_end`` is before ``as_of``;
    closed cycles get ``final_score`` (the score of the last check-in) and ``reached_target``
    (``final_score >= target_score``). ``objective_progress`` is the weight-averaged latest score
    of the objective's key results in the cycle.
    """
    import ibis

    per_kr = ibis.window(group_by=list(_KEYS))
    latest_first = ibis.window(group_by=list(_KEYS), order_by=[ibis.desc("checkin_at"), ibis.desc("raw_id")])
    ranked = processed.mutate(
        _rank=ibis.row_number().over(latest_first),
        n_checkins=processed.checkin_id.count().over(per_kr),
        first_checkin_at=processed.checkin_at.min().over(per_kr),
    )
    latest = ranked.filter(ranked._rank == 0)
    out = latest.select(
        *_KEYS, *_CONTEXT, "n_checkins", "first_checkin_at",
        last_checkin_at=latest.checkin_at, latest_value=latest.value, latest_progress=latest.progress,
        latest_score=latest.score, latest_confidence=latest.confidence, latest_status=latest.status,
    )
    per_objective = ibis.window(group_by=["objective_id", "cycle_id"])
    closed = out.cycle_end < ibis.date(as_of)
    out = out.mutate(
        objective_progress=(out.weight * out.latest_score).sum().over(per_objective)
        / out.weight.sum().over(per_objective),
        cycle_closed=closed,
        final_score=closed.ifelse(out.latest_score, ibis.null("float64")),
        reached_target=closed.ifelse(out.latest_score >= target_score, ibis.null("boolean")),
        cycle_quarter=out.cycle_start.truncate("Q"),
        as_of=ibis.date(as_of),
    )
    return out.select(*CURATED_COLUMNS)


def curate_frame(processed: pd.DataFrame, as_of: dt.date, target_score: float = DEFAULT_TARGET_SCORE
                 ) -> pd.DataFrame:
    """``curate`` over a DataFrame of processed check-ins, as a DataFrame in okr_curated's dtypes
    (what ``WarehouseResource.query`` returns for the table), sorted by key result and cycle."""
    from okr_assets.lib.engine import on_frames

    return on_frames(lambda processed: curate(processed, as_of, target_score), list(_KEYS),
                     dates=("cycle_start", "cycle_end"), processed=processed)
