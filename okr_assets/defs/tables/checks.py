"""Asset checks on the table assets: each table's Pandera model over the partitions just written.

okr_processed and okr_curated checks are blocking: bad rows there must not flow on to curated
tables and models. okr_rejects is checked with a warning: it holds bad data by design, but its
lineage and reason codes must still be complete.

Each table is checked against its model in ``okr_assets.lib.schemas.TABLE_MODELS``, imported
(with pandas and Pandera) when a check runs, not when the code location loads.
"""


import datetime as dt
from collections.abc import Iterator
from typing import TYPE_CHECKING

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    DagsterInvariantViolationError,
    asset_check,
)

from okr_assets.defs.checking import pandera_check_result, passed_check_result
from okr_assets.resources import WarehouseResource
from okr_assets.resources.warehouse import TABLES

if TYPE_CHECKING:
    import pandas as pd


def _partition_window(context: AssetCheckExecutionContext) -> tuple[dt.date, dt.date] | None:
    """The run's partition range as dates, or None when the check runs without one (a check
    executed on its own has no partitions definition, even inside a run tagged with a range)."""
    ctx = context.op_execution_context
    if not (ctx.has_partition_key_range or ctx.has_partition_key):
        return None
    try:
        window = ctx.partition_time_window
    except DagsterInvariantViolationError:
        return None
    return window.start.date(), window.end.date()


def check_table(
    context: AssetCheckExecutionContext, warehouse: WarehouseResource, table: str, column: str | None,
    severity: AssetCheckSeverity = AssetCheckSeverity.ERROR,
) -> AssetCheckResult:
    """Validate the rows of the run's partition range (or the whole table when the run or table
    has none) against the table's Pandera model. A range is read and validated a quarter at a
    time, so a backfill over years is checked in bounded memory; the model's unique columns are
    then checked across the whole range in SQL. The first failing quarter is reported."""
    from okr_assets.lib.memory import free_cycles, older_objects_frozen
    from okr_assets.lib.pipelining import overlapped
    from okr_assets.lib.routing import month_windows
    from okr_assets.lib.schemas import TABLE_MODELS

    model = TABLE_MODELS[table]
    warehouse.setup()
    if column is None:
        frame = warehouse.query(f"SELECT * FROM {TABLES[table].qualified}")
        return pandera_check_result(model, frame, f"all of {table}", severity)
    window = _partition_window(context)
    if window is None:  # the check run on its own (not in a partitioned run): the whole table
        start, end = warehouse.span(table, column)
        scope = f"all of {table}"
    else:
        start, end = window
        scope = f"{table} {start} .. {end - dt.timedelta(days=1)}"

    def quarters() -> "Iterator[tuple[dt.date, dt.date, pd.DataFrame]]":
        # Not monthly: each Pandera call has a fixed cost.
        for lo, hi in month_windows(start, end, months=3):
            yield lo, hi, warehouse.read_range(table, column, lo, hi, text_storage="pyarrow")

    checked = 0
    # The next quarter is read (the database, without the GIL) while this one is validated.
    with older_objects_frozen(), overlapped(quarters(), name=f"{table}-check-reader") as read:
        for lo, hi, frame in read:
            if frame.empty and (checked or hi < end):
                continue
            label = scope if (lo, hi) == (start, end) else f"{table} {lo} .. {hi - dt.timedelta(days=1)} (of {scope})"
            result = pandera_check_result(model, frame, label, severity)
            if not result.passed:
                return result
            checked += len(frame)
            del frame
            free_cycles()  # the quarter's coerced columns (see okr_assets.lib.memory)
    for key, spec in model.to_schema().columns.items():
        if spec.unique:
            shared = warehouse.rows_sharing(table, key, column, start, end)
            if not shared.empty:
                return pandera_check_result(model, shared, f"{scope}: rows sharing a {key}", severity)
    return passed_check_result(model, scope, checked, severity)


@asset_check(asset=AssetKey("okr_processed"), blocking=True, name="okr_processed_schema",
             description="Types, enums, ranges, unique checkin_id, score = clip(progress), "
                         "direction consistent with targets (ProcessedCheckins).")
def okr_processed_schema(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
    return check_table(context, warehouse, "okr_processed", "checkin_date")


@asset_check(asset=AssetKey("okr_rejects"), blocking=False, name="okr_rejects_schema",
             description="Every reject has a known reason code, a message and lineage (RejectedCheckins).")
def okr_rejects_schema(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
    return check_table(context, warehouse, "okr_rejects", "partition_date", AssetCheckSeverity.WARN)


@asset_check(asset=AssetKey("okr_curated"), blocking=True, name="okr_curated_schema",
             description="One row per (key result, cycle); scores in range; final score only for "
                         "closed cycles (CuratedKeyResults).")
def okr_curated_schema(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
    return check_table(context, warehouse, "okr_curated", "cycle_quarter")
