"""Point-in-time features: one row per (key result, as-of week) of a cycle.

A feature at as-of time ``t`` (cycle start + ``week`` weeks, 00:00 UTC) is computed only from
check-ins with ``checkin_at <= t``, so training rows see exactly what an OKR owner could have
seen that week; the label (did the key result end its closed cycle with score >= 0.7) is the
only thing taken from after ``t``.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    import ibis

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


_SECONDS_PER_WEEK, _SECONDS_PER_DAY = 604_800, 86_400


def features(processed: ibis.Table, labels: ibis.Table, now: dt.datetime) -> ibis.Table:
    """Features for every key result of ``processed`` (``CHECKIN_COLUMNS``) at every as-of week up
    to ``now``; ``labels``: ``LABEL_COLUMNS`` of okr_curated.

    Each check-in carries its key result's running state (count so far, velocity since the
    previous check-in, latest and first confidence given so far); every (key result, as-of week)
    of its cycle then takes the state of its last check-in by that week's as-of time (on equal
    times the later landed, ``raw_id``). No check-in yet by a week: no row for it.
    """
    import ibis

    kr = ["cycle_id", "key_result_id"]
    in_order = ibis.window(group_by=kr, order_by=["checkin_at", "raw_id"])
    so_far = ibis.cumulative_window(group_by=kr, order_by=["checkin_at", "raw_id"])
    p = processed.select(*CHECKIN_COLUMNS)
    state = p.mutate(
        n_checkins=(ibis.row_number().over(in_order) + 1).cast("float64"),
        _prev_at=p.checkin_at.lag().over(in_order),
        _prev_progress=p.progress.lag().over(in_order),
        # confidences given so far: the latest is the one that started the current run of
        # rows with the same count (LAST_VALUE ... IGNORE NULLS is not in every engine)
        _given=p.confidence.count().over(so_far),
    )
    weeks = (state.checkin_at.epoch_seconds() - state._prev_at.epoch_seconds()) / _SECONDS_PER_WEEK
    velocity = ((state.progress - state._prev_progress) / ibis.ifelse(weeks > 0, weeks, ibis.null()))
    confidence = state.confidence.cast("float64")
    state = state.mutate(
        velocity=velocity.fill_null(0.0).clip(lower=-2.0, upper=2.0),
        latest_confidence=confidence.max().over(ibis.window(group_by=[*kr, "_given"])),
        first_confidence=ibis.ifelse(
            state._given > 0,
            ibis.ifelse(state._given == 1, confidence, ibis.null("float64")).max().over(ibis.window(group_by=kr)),
            ibis.null("float64")),
    )

    # The cycles (their dates from their earliest check-in) at every as-of week within the cycle
    # (+1 week) and not after now.
    first_of_cycle = ibis.window(group_by="cycle_id", order_by=["checkin_at", "raw_id"])
    cycles = (p.mutate(_first=ibis.row_number().over(first_of_cycle))
              .filter(lambda t: t._first == 0).select("cycle_id", "cycle_start", "cycle_end"))
    grid = cycles.mutate(week=ibis.range(1, MAX_WEEKS + 1).unnest())
    start = grid.cycle_start.cast("timestamp('UTC')")
    grid = grid.mutate(
        as_of=start + (grid.week * 7).as_interval("D"),
        _length_days=grid.cycle_end.delta(grid.cycle_start, unit="day") + 1,
    )
    end = grid.cycle_end.cast("timestamp('UTC')") + ibis.interval(days=8)
    grid = grid.filter((grid.as_of <= end) & (grid.as_of <= ibis.timestamp(now.astimezone(dt.UTC))))
    grid = grid.select(
        "cycle_id", "week", "as_of", cycle_quarter=grid.cycle_start.truncate("Q"),
        elapsed_share=(grid.week * 7 / grid._length_days).clip(lower=0.0, upper=1.0))

    # A check-in is first seen by the as-of week w with cycle_start + 7w days >= checkin_at; a
    # week's state is that of the last check-in first seen by it or by an earlier week. So: the
    # last check-in per (key result, week first seen), numbered in week order (its run); each
    # week of the key result's grid counts the weeks with such a check-in up to it (a running
    # count over the narrow grid), and takes the state of the check-in with that number: a
    # forward fill by an equi-join, with no range join and no window carrying the state columns.
    cycle_epoch = state.cycle_start.cast("timestamp('UTC')").epoch_seconds()
    seen_week = ((state.checkin_at.epoch_seconds() - cycle_epoch) / _SECONDS_PER_WEEK).ceil().clip(lower=1)
    last_of_week = ibis.window(group_by=[*kr, "_week"], order_by=[ibis.desc("checkin_at"), ibis.desc("raw_id")])
    weekly = state.mutate(_week=seen_week.cast("int64"))
    weekly = weekly.mutate(_rank=ibis.row_number().over(last_of_week))
    weekly = weekly.filter(weekly._rank == 0)
    weekly = weekly.mutate(_run=ibis.row_number().over(ibis.window(group_by=kr, order_by="_week")) + 1)
    carried = ("team_id", "objective_id", "okr_kind", "metric_kind", "direction", "weight", "progress", "score",
               "checkin_at", "n_checkins", "velocity", "latest_confidence", "first_confidence")

    key_results = state.select(*kr).distinct()
    key_results = key_results.left_join(labels.select(*LABEL_COLUMNS), kr).select(
        *kr, label=labels.reached_target, _closed=labels.cycle_closed)
    slots = grid.join(key_results, "cycle_id")
    seen = weekly.select(_cycle=weekly.cycle_id, _kr=weekly.key_result_id, _seen=weekly._week)
    placed = slots.left_join(seen, [slots.cycle_id == seen._cycle, slots.key_result_id == seen._kr,
                                    slots.week == seen._seen])
    placed = placed.select(*slots.columns, _present=placed._seen.notnull())
    weeks_so_far = ibis.cumulative_window(group_by=kr, order_by="week")
    placed = placed.mutate(_run=placed._present.ifelse(1, 0).sum().over(weeks_so_far))
    placed = placed.filter(placed._run > 0)  # no check-in yet by that week: no row
    out = placed.join(weekly.select(*kr, "_run", *carried), [*kr, "_run"])
    slot_team = ibis.window(group_by=["cycle_id", "week", "team_id"])
    slot_objective = ibis.window(group_by=["cycle_id", "week", "objective_id"])
    out = out.mutate(
        team_progress=out.score.mean().over(slot_team),
        objective_progress=(out.score * out.weight).sum().over(slot_objective) / out.weight.sum().over(slot_objective),
    )
    closed = out._closed.fill_null(False)
    out = out.mutate(
        expected_gap=out.progress - out.elapsed_share,
        confidence=out.latest_confidence.fill_null(5.0),
        confidence_trend=(out.latest_confidence - out.first_confidence).fill_null(0.0),
        days_since_last_checkin=(out.as_of.epoch_seconds() - out.checkin_at.epoch_seconds()) / _SECONDS_PER_DAY,
        week=out.week.cast("float64"),
        cycle_closed=closed,
        label=ibis.ifelse(closed, out.label, ibis.null("boolean")),
    )
    return out.select(*FEATURE_TABLE_COLUMNS)


# The unbound inputs of ``cycles_features``, bound by the caller to one batch of cycles.
CHECKINS, LABELS = "okr_feature_checkins", "okr_feature_labels"
# Check-ins per statement: every window of ``features`` is per cycle, so a batch of whole cycles
# gives exactly that batch's rows. A window holds its whole input while it runs: per batch, the
# statement's memory is bounded by the batch rather than the range, and stays within the embedded
# engine's default 512 MB limit instead of spilling (a million check-ins: 7.7 s in six statements,
# 9.5 s in one; benchmarks/batch_pipeline.py).
BATCH_CHECKINS = 200_000


def cycles_features(checkin_schema: ibis.Schema, label_schema: ibis.Schema, now: dt.datetime) -> ibis.Table:
    """``features`` of the unbound tables ``CHECKINS`` (``CHECKIN_COLUMNS``) and ``LABELS``
    (``LABEL_COLUMNS``): one expression per run, compiled once and bound to each batch."""
    import ibis

    return features(ibis.table(checkin_schema, name=CHECKINS), ibis.table(label_schema, name=LABELS), now)


def cycle_batches(checkins_per_cycle: dict[str, int], max_checkins: int) -> list[list[str]]:
    """The cycles in order, in consecutive batches of at most ``max_checkins`` check-ins (a larger
    cycle is a batch of its own): whole cycles, so each batch's features are complete."""
    batches: list[list[str]] = []
    size = 0
    for cycle, n in sorted(checkins_per_cycle.items()):
        if not batches or size + n > max_checkins:
            batches.append([])
            size = 0
        batches[-1].append(cycle)
        size += n
    return batches


def build_features(processed: pd.DataFrame, labels: pd.DataFrame, now: dt.datetime) -> pd.DataFrame:
    """``features`` over DataFrames (okr_processed's and okr_curated's columns), as a DataFrame in
    okr_features' dtypes, in (key_result_id, cycle_id, week) order."""
    from okr_assets.lib.engine import on_frames

    if processed.empty:
        return pd.DataFrame(columns=list(FEATURE_TABLE_COLUMNS))

    return on_frames(lambda processed, labels: features(processed, labels, now), list(KEY_COLUMNS),
                     dates=("cycle_start", "cycle_end"), processed=processed[list(CHECKIN_COLUMNS)],
                     labels=labels[list(LABEL_COLUMNS)])


def open_latest(features: pd.DataFrame) -> pd.DataFrame:
    """For each open key result, its most recent as-of week (what predictions are made on)."""
    open_rows = features[~features["cycle_closed"].astype(bool)]
    return open_rows.sort_values("week").groupby(["key_result_id", "cycle_id"]).tail(1).reset_index(drop=True)

