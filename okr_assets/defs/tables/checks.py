"""Asset checks on the table assets: each table's Pandera model over the partitions just written.

okr_processed and okr_curated checks are blocking: bad rows there must not flow on to curated
tables and models. okr_rejects is checked with a warning: it holds bad data by design, but its
lineage and reason codes must still be complete.

Each table is checked against its model in ``okr_assets.lib.schemas.TABLE_MODELS``, imported
(with pandas and Pandera) when a check runs, not when the code location loads.
"""


import datetime as dt
from typing import TYPE_CHECKING

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    asset_check,
)

from okr_assets.defs.checking import pandera_check_result
from okr_assets.resources import WarehouseResource
from okr_assets.resources.warehouse import TABLES

if TYPE_CHECKING:
    import pandas as pd


def _scoped_rows(
    context: AssetCheckExecutionContext, warehouse: WarehouseResource, table: str, column: str | None
) -> "tuple[pd.DataFrame, str]":
    """Rows of the run's partition range, or the whole table when the run (or table) has none."""
    warehouse.setup()
    ctx = context.op_execution_context
    if column is not None and (ctx.has_partition_key_range or ctx.has_partition_key):
        window = ctx.partition_time_window
        start, end = window.start.date(), window.end.date()
        label = f"{table} {start} .. {end - dt.timedelta(days=1)}"
        return warehouse.read_range(table, column, start, end), label
    return warehouse.query(f"SELECT * FROM {TABLES[table].qualified}"), f"all of {table}"


def check_table(
    context: AssetCheckExecutionContext, warehouse: WarehouseResource, table: str, column: str | None,
    severity: AssetCheckSeverity = AssetCheckSeverity.ERROR,
) -> AssetCheckResult:
    """Validate ``table`` (the run's partitions of it, by ``column``) against its Pandera model."""
    from okr_assets.lib.schemas import TABLE_MODELS

    frame, scope = _scoped_rows(context, warehouse, table, column)
    return pandera_check_result(TABLE_MODELS[table], frame, scope, severity)


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
