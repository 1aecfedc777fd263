"""Pandera models of the warehouse tables: the single source of each table's shape.

Each model yields (1) the table's asset check, (2) the Dagster column schema shown in the catalog
(generated into ``okr_assets/defs/column_schemas.py`` by ``python -m okr_assets.defs.metadata
--write``; a test fails while that file is out of date), and (3) the warehouse DDL
(``sql_columns``), so a column is declared once.

The tables a step writes in the engine (okr_raw, okr_processed, okr_rejects, okr_curated,
okr_features) are checked where they are stored: their column rules (nullable, unique, Pandera's
built-in checks) and their ``@row_rule`` rules (Ibis predicates) are evaluated by
``okr_assets.lib.table_checks`` in the warehouse. The small ML and alert tables are checked in
pandas with Pandera's own validation (``@pa.dataframe_check``).
Dates are carried as midnight ``datetime64`` in pandas and stored as SQL ``DATE``
(``metadata={"sql": "DATE"}``); timestamps are UTC.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from okr_assets.lib.contract import (
    CONFIDENCE_MAX,
    CONFIDENCE_MIN,
    DIRECTIONS,
    MAX_ABS_PROGRESS,
    METRIC_KINDS,
    OKR_KINDS,
    REJECT_REASON_CODES,
    STATUSES,
)

if TYPE_CHECKING:
    import ibis


@dataclass(frozen=True)
class RowRule:
    """A rule on each row of a table checked in the warehouse engine (okr_raw, okr_processed,
    okr_rejects, okr_curated, okr_features): an Ibis predicate over the checked table, True where
    the row keeps the rule (null counts as broken). Declared in the table's model with
    ``@row_rule``, beside its column rules, and run with them by ``okr_assets.lib.table_checks``;
    the models of the small ML and alert tables, checked in pandas, keep ``@pa.dataframe_check``."""

    name: str
    description: str
    holds: Callable[[ibis.Table], ibis.BooleanValue]


def row_rule(description: str) -> Callable[[Callable[..., ibis.BooleanValue]], Callable[..., ibis.BooleanValue]]:
    """Declare a model's function ``(table) -> predicate`` a row rule (it stays a plain function,
    which Pandera's model ignores)."""
    def declare(holds: Callable[..., ibis.BooleanValue]) -> Callable[..., ibis.BooleanValue]:
        holds.__row_rule__ = description  # type: ignore[attr-defined]
        return holds
    return declare


def row_rules(model: type[pa.DataFrameModel]) -> tuple[RowRule, ...]:
    """The ``@row_rule`` rules of ``model`` and of the models it extends, in declaration order."""
    seen: dict[str, RowRule] = {}
    for cls in reversed(model.__mro__):
        seen.update({name: RowRule(name, fn.__row_rule__, fn) for name, fn in vars(cls).items()
                     if hasattr(fn, "__row_rule__")})
    return tuple(seen.values())


def _isclose(a: ibis.NumericValue, b: ibis.NumericValue) -> ibis.BooleanValue:
    # numpy.isclose's default tolerances, which the pandas code that computes scores was held to.
    return (a - b).abs() <= 1e-8 + 1e-5 * b.abs()


def _unique(t: ibis.Table, *columns: str) -> ibis.BooleanValue:
    """True where no other row has the same values of ``columns`` (nulls compare equal, as in
    ``DataFrame.duplicated``). Counting a never-null expression counts every row of the group."""
    import ibis

    return t[columns[0]].isnull().count().over(ibis.window(group_by=list(columns))) == 1


UtcTimestamp = Annotated[pd.DatetimeTZDtype, "ns", "UTC"]
SOURCES = ("file", "kafka")
_DATE = {"sql": "DATE"}


def _landed(column: str) -> object:
    return pa.Field(nullable=True, description=f"'{column}' exactly as landed (text).")


def _text(description: str, nullable: bool = False, **kwargs: object) -> object:
    return pa.Field(nullable=nullable, description=description, **kwargs)


class _LandedText(pa.DataFrameModel):
    """The contract's fields exactly as landed (text, nullable); shared by okr_raw and okr_rejects."""

    org_id: Series[pd.StringDtype] = _landed("org_id")
    team_id: Series[pd.StringDtype] = _landed("team_id")
    cycle_id: Series[pd.StringDtype] = _landed("cycle_id")
    cycle_start: Series[pd.StringDtype] = _landed("cycle_start")
    cycle_end: Series[pd.StringDtype] = _landed("cycle_end")
    objective_id: Series[pd.StringDtype] = _landed("objective_id")
    objective_title: Series[pd.StringDtype] = _landed("objective_title")
    okr_kind: Series[pd.StringDtype] = _landed("okr_kind")
    key_result_id: Series[pd.StringDtype] = _landed("key_result_id")
    kr_title: Series[pd.StringDtype] = _landed("kr_title")
    owner_id: Series[pd.StringDtype] = _landed("owner_id")
    metric_kind: Series[pd.StringDtype] = _landed("metric_kind")
    direction: Series[pd.StringDtype] = _landed("direction")
    unit: Series[pd.StringDtype] = _landed("unit")
    start_value: Series[pd.StringDtype] = _landed("start_value")
    target_value: Series[pd.StringDtype] = _landed("target_value")
    weight: Series[pd.StringDtype] = _landed("weight")
    checkin_id: Series[pd.StringDtype] = _landed("checkin_id")
    checkin_at: Series[pd.StringDtype] = _landed("checkin_at")
    value: Series[pd.StringDtype] = _landed("value")
    confidence: Series[pd.StringDtype] = _landed("confidence")
    status: Series[pd.StringDtype] = _landed("status")
    comment: Series[pd.StringDtype] = _landed("comment")


class RawCheckins(_LandedText):
    """okr_raw: every landed row as text, with lineage. Append-only."""

    raw_id: Series[np.int64] = pa.Field(unique=True, ge=1, description="Landing order; grows with ingestion.")
    source: Series[pd.StringDtype] = pa.Field(isin=SOURCES, description="Where the row came from.")
    source_ref: Series[pd.StringDtype] = pa.Field(description="File and line, or topic/partition/offset.")
    source_key: Series[pd.StringDtype] = pa.Field(
        unique=True, description="Idempotency key: file content hash and line, or topic/partition/offset.")
    ingested_at: Series[UtcTimestamp] = pa.Field(description="When the row landed (UTC).")
    partition_date: Series[pa.DateTime] = pa.Field(
        metadata=_DATE, description="okr_processed partition owning the row (check-in date, else ingest date).")
    landing_error: Series[pd.StringDtype] = pa.Field(
        nullable=True, description="Reason code when the row could not be split into fields.")
    landing_error_message: Series[pd.StringDtype] = pa.Field(nullable=True, description="Why, in words.")
    raw_payload: Series[pd.StringDtype] = pa.Field(
        nullable=True, description="The unsplittable row or message, truncated.")
    extra: Series[pd.StringDtype] = pa.Field(nullable=True, description="Columns beyond the contract, as JSON.")
    run_id: Series[pd.StringDtype] = pa.Field(description="Dagster run that landed the row.")

    class Config:
        coerce = True
        strict = True


class ProcessedCheckins(pa.DataFrameModel):
    """okr_processed: typed, validated, deduplicated check-ins with derived progress and score."""

    checkin_id: Series[pd.StringDtype] = pa.Field(unique=True, description="Check-in id (deduplicated).")
    org_id: Series[pd.StringDtype] = _text("Organisation.")
    team_id: Series[pd.StringDtype] = _text("Team owning the objective.")
    cycle_id: Series[pd.StringDtype] = _text("OKR cycle, e.g. 2025-Q3.")
    cycle_start: Series[pa.DateTime] = pa.Field(metadata=_DATE, description="First day of the cycle.")
    cycle_end: Series[pa.DateTime] = pa.Field(metadata=_DATE, description="Last day of the cycle.")
    objective_id: Series[pd.StringDtype] = _text("Objective.")
    objective_title: Series[pd.StringDtype] = _text("Objective title.", nullable=True)
    okr_kind: Series[pd.StringDtype] = pa.Field(isin=OKR_KINDS, description="committed | aspirational.")
    key_result_id: Series[pd.StringDtype] = _text("Key result.")
    kr_title: Series[pd.StringDtype] = _text("Key result title.", nullable=True)
    owner_id: Series[pd.StringDtype] = _text("Owner of the key result.")
    metric_kind: Series[pd.StringDtype] = pa.Field(isin=METRIC_KINDS, description="How the metric is measured.")
    direction: Series[pd.StringDtype] = pa.Field(isin=DIRECTIONS, description="increase | decrease.")
    unit: Series[pd.StringDtype] = _text("Unit of value.", nullable=True)
    start_value: Series[float] = pa.Field(description="Value at the start of the cycle.")
    target_value: Series[float] = pa.Field(description="Target value.")
    weight: Series[float] = pa.Field(gt=0, le=1, description="Weight of the KR in its objective, (0, 1].")
    checkin_at: Series[UtcTimestamp] = pa.Field(description="When the check-in was made (UTC).")
    checkin_date: Series[pa.DateTime] = pa.Field(metadata=_DATE, description="UTC date of checkin_at: the partition.")
    value: Series[float] = pa.Field(description="Reported current value.")
    confidence: Series[pd.Int64Dtype] = pa.Field(
        ge=CONFIDENCE_MIN, le=CONFIDENCE_MAX, nullable=True, description="Owner's confidence 0-10.")
    status: Series[pd.StringDtype] = pa.Field(isin=STATUSES, description="Canonical status.")
    comment: Series[pd.StringDtype] = _text("Free-text comment.", nullable=True)
    progress: Series[float] = pa.Field(
        ge=-MAX_ABS_PROGRESS, le=MAX_ABS_PROGRESS,
        description="(value - start) / (target - start); not clipped.")
    score: Series[float] = pa.Field(ge=0, le=1, description="progress clipped to [0, 1].")
    raw_id: Series[np.int64] = pa.Field(description="okr_raw row this check-in came from.")
    source: Series[pd.StringDtype] = pa.Field(isin=SOURCES, description="file | kafka.")
    source_ref: Series[pd.StringDtype] = _text("File and line, or topic/partition/offset.")
    ingested_at: Series[UtcTimestamp] = pa.Field(description="When the winning version landed.")

    @row_rule("score == clip(progress, 0, 1)")
    def score_is_clipped_progress(t: ibis.Table) -> ibis.BooleanValue:
        return _isclose(t.score, t.progress.clip(lower=0, upper=1))

    @row_rule("start_value != target_value")
    def start_differs_from_target(t: ibis.Table) -> ibis.BooleanValue:
        return t.start_value != t.target_value

    @row_rule("direction agrees with start/target")
    def direction_matches_target(t: ibis.Table) -> ibis.BooleanValue:
        up = t.direction == "increase"
        return (up & (t.target_value > t.start_value)) | (~up & (t.target_value < t.start_value))

    @row_rule("checkin_date is the UTC date of checkin_at")
    def checkin_date_matches(t: ibis.Table) -> ibis.BooleanValue:
        return t.checkin_at.date() == t.checkin_date

    @row_rule("cycle_start <= cycle_end")
    def cycle_ordered(t: ibis.Table) -> ibis.BooleanValue:
        return t.cycle_start <= t.cycle_end

    class Config:
        coerce = True
        strict = True


class RejectedCheckins(_LandedText):
    """okr_rejects: every landed row that failed validation, with reason, message and lineage."""

    raw_id: Series[np.int64] = pa.Field(unique=True, description="okr_raw row that was rejected.")
    source: Series[pd.StringDtype] = pa.Field(isin=SOURCES, description="file | kafka.")
    source_ref: Series[pd.StringDtype] = _text("File and line, or topic/partition/offset.")
    ingested_at: Series[UtcTimestamp] = pa.Field(description="When the row landed.")
    partition_date: Series[pa.DateTime] = pa.Field(metadata=_DATE, description="Partition that rejected it.")
    reason: Series[pd.StringDtype] = pa.Field(isin=REJECT_REASON_CODES, description="Machine-readable reason code.")
    message: Series[pd.StringDtype] = _text("Why, in one sentence.")
    raw_payload: Series[pd.StringDtype] = _text("Unsplittable row or message, truncated.", nullable=True)

    class Config:
        coerce = True
        strict = True


class CuratedKeyResults(pa.DataFrameModel):
    """okr_curated: one model-ready row per (key result, cycle)."""

    key_result_id: Series[pd.StringDtype] = _text("Key result.")
    cycle_id: Series[pd.StringDtype] = _text("OKR cycle.")
    cycle_quarter: Series[pa.DateTime] = pa.Field(metadata=_DATE, description="Quarter of cycle_start: the partition.")
    org_id: Series[pd.StringDtype] = _text("Organisation.")
    team_id: Series[pd.StringDtype] = _text("Team.")
    cycle_start: Series[pa.DateTime] = pa.Field(metadata=_DATE, description="First day of the cycle.")
    cycle_end: Series[pa.DateTime] = pa.Field(metadata=_DATE, description="Last day of the cycle.")
    objective_id: Series[pd.StringDtype] = _text("Objective.")
    objective_title: Series[pd.StringDtype] = _text("Objective title.", nullable=True)
    okr_kind: Series[pd.StringDtype] = pa.Field(isin=OKR_KINDS, description="committed | aspirational.")
    kr_title: Series[pd.StringDtype] = _text("Key result title.", nullable=True)
    owner_id: Series[pd.StringDtype] = _text("Owner.")
    metric_kind: Series[pd.StringDtype] = pa.Field(isin=METRIC_KINDS, description="Metric kind.")
    direction: Series[pd.StringDtype] = pa.Field(isin=DIRECTIONS, description="increase | decrease.")
    unit: Series[pd.StringDtype] = _text("Unit.", nullable=True)
    start_value: Series[float] = pa.Field(description="Start value (latest check-in).")
    target_value: Series[float] = pa.Field(description="Target value (latest check-in).")
    weight: Series[float] = pa.Field(gt=0, le=1, description="KR weight.")
    n_checkins: Series[np.int64] = pa.Field(ge=1, description="Number of check-ins in the cycle.")
    first_checkin_at: Series[UtcTimestamp] = pa.Field(description="First check-in.")
    last_checkin_at: Series[UtcTimestamp] = pa.Field(description="Latest check-in.")
    latest_value: Series[float] = pa.Field(description="Value at the latest check-in.")
    latest_progress: Series[float] = pa.Field(
        ge=-MAX_ABS_PROGRESS, le=MAX_ABS_PROGRESS, description="Progress at the latest check-in.")
    latest_score: Series[float] = pa.Field(ge=0, le=1, description="Score at the latest check-in.")
    latest_confidence: Series[pd.Int64Dtype] = pa.Field(
        ge=CONFIDENCE_MIN, le=CONFIDENCE_MAX, nullable=True, description="Latest confidence.")
    latest_status: Series[pd.StringDtype] = pa.Field(isin=STATUSES, description="Latest status.")
    objective_progress: Series[float] = pa.Field(
        ge=0, le=1, description="Weight-averaged latest KR scores of the objective.")
    cycle_closed: Series[bool] = pa.Field(description="cycle_end is before as_of.")
    final_score: Series[float] = pa.Field(ge=0, le=1, nullable=True, description="Score at close (closed cycles).")
    reached_target: Series[pd.BooleanDtype] = pa.Field(
        nullable=True, description="final_score >= target score (0.7 by default); closed cycles only.")
    as_of: Series[pa.DateTime] = pa.Field(metadata=_DATE, description="Date the row was curated.")

    @row_rule("(key_result_id, cycle_id) is unique")
    def one_row_per_kr_cycle(t: ibis.Table) -> ibis.BooleanValue:
        return _unique(t, "key_result_id", "cycle_id")

    @row_rule("final_score is set exactly for closed cycles")
    def final_score_iff_closed(t: ibis.Table) -> ibis.BooleanValue:
        return t.final_score.notnull() == t.cycle_closed

    @row_rule("first_checkin_at <= last_checkin_at")
    def checkins_ordered(t: ibis.Table) -> ibis.BooleanValue:
        return t.first_checkin_at <= t.last_checkin_at

    class Config:
        coerce = True
        strict = True


class KeyResultFeatures(pa.DataFrameModel):
    """okr_features: point-in-time features per (key result, cycle, as-of week), plus the label."""

    key_result_id: Series[pd.StringDtype] = _text("Key result.")
    cycle_id: Series[pd.StringDtype] = _text("OKR cycle.")
    cycle_quarter: Series[pa.DateTime] = pa.Field(metadata=_DATE, description="Quarter of cycle_start: the partition.")
    team_id: Series[pd.StringDtype] = _text("Team.")
    objective_id: Series[pd.StringDtype] = _text("Objective.")
    as_of: Series[UtcTimestamp] = pa.Field(description="Cycle start + week weeks: only check-ins up to it are used.")
    week: Series[float] = pa.Field(ge=1, le=14, description="As-of week of the cycle.")
    elapsed_share: Series[float] = pa.Field(ge=0, le=1, description="Share of the cycle elapsed at as_of.")
    progress: Series[float] = pa.Field(ge=-MAX_ABS_PROGRESS, le=MAX_ABS_PROGRESS, description="Progress at as_of.")
    score: Series[float] = pa.Field(ge=0, le=1, description="Score at as_of.")
    velocity: Series[float] = pa.Field(ge=-2, le=2, description="Progress per week over the last two check-ins.")
    expected_gap: Series[float] = pa.Field(description="progress - elapsed_share (behind the linear path < 0).")
    confidence: Series[float] = pa.Field(ge=0, le=10, description="Latest confidence (5 when never given).")
    confidence_trend: Series[float] = pa.Field(ge=-10, le=10, description="Latest minus first confidence.")
    days_since_last_checkin: Series[float] = pa.Field(ge=0, description="Days from the last check-in to as_of.")
    n_checkins: Series[float] = pa.Field(ge=1, description="Check-ins seen by as_of.")
    team_progress: Series[float] = pa.Field(ge=0, le=1, description="Mean score of the team's KRs at as_of.")
    objective_progress: Series[float] = pa.Field(ge=0, le=1, description="Weighted objective score at as_of.")
    weight: Series[float] = pa.Field(gt=0, le=1, description="KR weight.")
    okr_kind: Series[pd.StringDtype] = pa.Field(isin=OKR_KINDS, description="committed | aspirational.")
    metric_kind: Series[pd.StringDtype] = pa.Field(isin=METRIC_KINDS, description="Metric kind.")
    direction: Series[pd.StringDtype] = pa.Field(isin=DIRECTIONS, description="increase | decrease.")
    label: Series[pd.BooleanDtype] = pa.Field(nullable=True, description="Reached the target score (closed cycles).")
    cycle_closed: Series[bool] = pa.Field(description="The cycle has ended.")

    @row_rule("(key_result_id, cycle_id, week) is unique")
    def one_row_per_week(t: ibis.Table) -> ibis.BooleanValue:
        return _unique(t, "key_result_id", "cycle_id", "week")

    @row_rule("label is set exactly for closed cycles")
    def label_iff_closed(t: ibis.Table) -> ibis.BooleanValue:
        return t.label.notnull() == t.cycle_closed

    class Config:
        coerce = True
        strict = True


class AtRiskPredictions(pa.DataFrameModel):
    """okr_predictions: the champion's risk for every open key result at its latest as-of week."""

    key_result_id: Series[pd.StringDtype] = _text("Key result.")
    cycle_id: Series[pd.StringDtype] = _text("OKR cycle.")
    team_id: Series[pd.StringDtype] = _text("Team.")
    objective_id: Series[pd.StringDtype] = _text("Objective.")
    week: Series[float] = pa.Field(ge=1, le=14, description="As-of week the prediction was made at.")
    as_of: Series[UtcTimestamp] = pa.Field(description="Point in time of the features used.")
    progress: Series[float] = pa.Field(description="Progress at as_of.")
    score: Series[float] = pa.Field(ge=0, le=1, description="Score at as_of.")
    risk: Series[float] = pa.Field(ge=0, le=1, description="Probability of ending below the target score.")
    risk_rank: Series[np.int64] = pa.Field(ge=1, description="1 = most at risk.")
    model_version: Series[pd.StringDtype] = _text("Registered okr_at_risk version that predicted.")
    predicted_at: Series[UtcTimestamp] = pa.Field(description="When the prediction was made.")

    @pa.dataframe_check(ignore_na=False, description="(key_result_id, cycle_id) is unique")
    def one_row_per_kr(cls, df: pd.DataFrame) -> pd.Series:
        return ~df.duplicated(["key_result_id", "cycle_id"], keep=False)

    class Config:
        coerce = True
        strict = True


class PredictionLog(pa.DataFrameModel):
    """okr_prediction_log: every prediction ever served (append-only), to judge it once cycles close."""

    key_result_id: Series[pd.StringDtype] = _text("Key result.")
    cycle_id: Series[pd.StringDtype] = _text("OKR cycle.")
    week: Series[float] = pa.Field(ge=1, le=14, description="As-of week of the prediction.")
    risk: Series[float] = pa.Field(ge=0, le=1, description="Predicted probability of ending below target.")
    model_version: Series[pd.StringDtype] = _text("Model version that predicted.")
    holdout_roc_auc: Series[float] = pa.Field(nullable=True, description="That version's holdout ROC-AUC.")
    predicted_at: Series[UtcTimestamp] = pa.Field(description="When the prediction was made.")

    class Config:
        coerce = True
        strict = True


class ModelPerformance(pa.DataFrameModel):
    """okr_model_performance: realised quality of served predictions, per model version and week."""

    model_version: Series[pd.StringDtype] = _text("Model version.")
    week: Series[float] = pa.Field(ge=1, le=14, description="As-of week the predictions were made at.")
    predictions: Series[np.int64] = pa.Field(ge=1, description="Predictions whose cycle has closed.")
    realised_roc_auc: Series[float] = pa.Field(nullable=True, ge=0, le=1, description="ROC-AUC against outcomes.")
    realised_brier: Series[float] = pa.Field(ge=0, le=1, description="Brier score against outcomes.")
    holdout_roc_auc: Series[float] = pa.Field(nullable=True, description="The version's holdout ROC-AUC.")
    evaluated_at: Series[UtcTimestamp] = pa.Field(description="When this was computed.")

    @pa.dataframe_check(ignore_na=False, description="(model_version, week) is unique")
    def one_row_per_version_week(cls, df: pd.DataFrame) -> pd.Series:
        return ~df.duplicated(["model_version", "week"], keep=False)

    class Config:
        coerce = True
        strict = True


class DriftReport(pa.DataFrameModel):
    """okr_drift_report: one row per tested feature (and the model's predicted risk)."""

    feature: Series[pd.StringDtype] = pa.Field(unique=True, description="Feature tested.")
    kind: Series[pd.StringDtype] = pa.Field(isin=("numeric", "categorical"), description="Feature kind.")
    test: Series[pd.StringDtype] = pa.Field(isin=("ks", "chi2"), description="Two-sample test.")
    statistic: Series[float] = pa.Field(ge=0, description="Test statistic.")
    p_value: Series[float] = pa.Field(ge=0, le=1, description="Raw p-value.")
    p_adjusted: Series[float] = pa.Field(ge=0, le=1, description="Bonferroni-adjusted p-value.")
    effect_metric: Series[pd.StringDtype] = _text("wasserstein/sd or total_variation.")
    effect_size: Series[float] = pa.Field(ge=0, description="Effect size compared with the floor.")
    psi: Series[float] = pa.Field(description="Population stability index.")
    significant: Series[bool] = pa.Field(description="p_adjusted < alpha.")
    practical: Series[bool] = pa.Field(description="effect_size >= floor.")
    drift: Series[bool] = pa.Field(description="significant and practical.")
    reference_n: Series[np.int64] = pa.Field(ge=0, description="Reference rows.")
    current_n: Series[np.int64] = pa.Field(ge=0, description="Current rows.")
    report_at: Series[UtcTimestamp] = pa.Field(description="When the report was made.")

    class Config:
        coerce = True
        strict = True


ALERT_KINDS = ("run_failure", "check_failure", "drift", "freshness", "data_loss", "cascade_gap")


class Alerts(pa.DataFrameModel):
    """okr_alerts: every alert raised, whether or not a webhook is configured or reachable."""

    alert_id: Series[pd.StringDtype] = pa.Field(unique=True, description="Stable id: an alert is raised once.")
    kind: Series[pd.StringDtype] = pa.Field(isin=ALERT_KINDS, description="What happened.")
    severity: Series[pd.StringDtype] = pa.Field(isin=("warning", "error"), description="warning or error.")
    asset_key: Series[pd.StringDtype] = pa.Field(nullable=True, description="Asset concerned, if any.")
    run_id: Series[pd.StringDtype] = pa.Field(nullable=True, description="Dagster run concerned, if any.")
    summary: Series[pd.StringDtype] = _text("One-line human summary.")
    details: Series[pd.StringDtype] = pa.Field(nullable=True, description="JSON with the specifics.")
    raised_at: Series[UtcTimestamp] = pa.Field(description="When the alert was raised.")
    webhook_status: Series[pd.StringDtype] = pa.Field(
        nullable=True,
        description="Webhook delivery: delivered, failed: <reason>, pending (post never completed), or null "
                    "(no webhook).")

    class Config:
        coerce = True
        strict = True


TABLE_MODELS: dict[str, type[pa.DataFrameModel]] = {
    "okr_raw": RawCheckins,
    "okr_processed": ProcessedCheckins,
    "okr_rejects": RejectedCheckins,
    "okr_curated": CuratedKeyResults,
    "okr_features": KeyResultFeatures,
    "okr_predictions": AtRiskPredictions,
    "okr_drift_report": DriftReport,
    "okr_prediction_log": PredictionLog,
    "okr_model_performance": ModelPerformance,
    "okr_alerts": Alerts,
}

# The columns a check names a failing row by (what a user looks the row up with).
CHECK_KEYS: dict[str, tuple[str, ...]] = {
    "okr_raw": ("raw_id",),
    "okr_processed": ("checkin_id",),
    "okr_rejects": ("raw_id",),
    "okr_curated": ("key_result_id", "cycle_id"),
    "okr_features": ("key_result_id", "cycle_id", "week"),
}


def sql_columns(model: type[pa.DataFrameModel]) -> list[tuple[str, str]]:
    """(column, SQL type) pairs for a model, portable between DuckDB and PostgreSQL."""
    out: list[tuple[str, str]] = []
    for name, column in model.to_schema().columns.items():
        meta = column.metadata or {}
        if "sql" in meta:
            out.append((name, meta["sql"]))
            continue
        dtype = str(column.dtype).lower()
        if "datetime64" in dtype and "utc" in dtype:
            sql = "TIMESTAMPTZ"
        elif "int" in dtype:
            sql = "BIGINT"
        elif "float" in dtype:
            sql = "DOUBLE PRECISION"
        elif "bool" in dtype:
            sql = "BOOLEAN"
        elif "datetime" in dtype:
            sql = "TIMESTAMP"
        else:
            sql = "TEXT"
        out.append((name, sql))
    return out
